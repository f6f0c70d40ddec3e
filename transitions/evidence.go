package transitions

import (
	"context"
	"fmt"
	"maps"

	"golang.org/x/sync/errgroup"

	"github.com/modelgate/modelgate/mlflow"
	"github.com/modelgate/modelgate/rules"
)

// EvidenceReader is what gathering evidence reads from MLflow.
type EvidenceReader interface {
	GetRun(ctx context.Context, runID string) (mlflow.Run, error)
	GetLoggedModel(ctx context.Context, modelID string) (mlflow.LoggedModel, error)
	GetModelVersionByAlias(ctx context.Context, name, alias string) (mlflow.ModelVersion, error)
	GetLatestVersions(ctx context.Context, name string, stages ...string) ([]mlflow.ModelVersion, error)
}

// GatherEvidence reads what a gate judges a version on: the metrics, params and tags of
// its run; the metrics and params logged against its MLflow 3 logged model (a version
// registered from "models:/m-..." may have no run at all), which win over the run's; its
// own tags; and the metrics of each baseline version the gate compares with.
//
// A run or logged model that no longer exists leaves its evidence out (the checks then
// report it missing); any other error is returned.
//
// The reads are independent and run in parallel.
func GatherEvidence(ctx context.Context, r EvidenceReader, g *rules.Gate, mv mlflow.ModelVersion) (*rules.Evidence, error) {
	ev := &rules.Evidence{Model: mv.Name, Version: mv.Version, VersionTags: mv.Tags}
	refs := g.Baselines()
	bases := make([]rules.Baseline, len(refs))
	found := make([]bool, len(refs))
	eg, ectx := errgroup.WithContext(ctx)
	eg.Go(func() (err error) {
		ev.Metrics, ev.Params, ev.RunTags, ev.Datasets, err = versionMetrics(ectx, r, mv)
		return err
	})
	for i, ref := range refs {
		eg.Go(func() (err error) {
			bases[i], found[i], err = baseline(ectx, r, mv, ref)
			return err
		})
	}
	if err := eg.Wait(); err != nil {
		return nil, err
	}
	for i, ref := range refs {
		if found[i] {
			if ev.Baselines == nil {
				ev.Baselines = map[rules.BaselineRef]rules.Baseline{}
			}
			ev.Baselines[ref] = bases[i]
		}
	}
	return ev, nil
}

// versionMetrics reads a version's run and logged model (in parallel); the logged
// model's metrics and params win over the run's.
func versionMetrics(ctx context.Context, r EvidenceReader, mv mlflow.ModelVersion) (map[string]float64, map[string]string, map[string]string, []rules.Dataset, error) {
	var run mlflow.Run
	var lm mlflow.LoggedModel
	eg, ectx := errgroup.WithContext(ctx)
	if mv.RunID != "" {
		eg.Go(func() (err error) {
			if run, err = r.GetRun(ectx, mv.RunID); mlflow.IsNotFound(err) {
				return nil
			} else if err != nil {
				return fmt.Errorf("read run %s of %s/%s: %w", mv.RunID, mv.Name, mv.Version, err)
			}
			return nil
		})
	}
	if id := mv.LoggedModelID(); id != "" {
		eg.Go(func() (err error) {
			if lm, err = r.GetLoggedModel(ectx, id); mlflow.IsNotFound(err) {
				return nil
			} else if err != nil {
				return fmt.Errorf("read logged model %s of %s/%s: %w", id, mv.Name, mv.Version, err)
			}
			return nil
		})
	}
	if err := eg.Wait(); err != nil {
		return nil, nil, nil, nil, err
	}
	metrics := mlflow.LatestMetrics(run.Data.Metrics)
	maps.Copy(metrics, mlflow.LatestMetrics(lm.Data.Metrics))
	params := mlflow.ParamMap(run.Data.Params)
	maps.Copy(params, mlflow.ParamMap(lm.Data.Params))
	var datasets []rules.Dataset
	for _, in := range run.Inputs.DatasetInputs {
		datasets = append(datasets, rules.Dataset{Name: in.Dataset.Name, Digest: in.Dataset.Digest, Context: in.Tags["mlflow.data.context"]})
	}
	return metrics, params, run.Data.Tags, datasets, nil
}

// baseline finds the version a baseline ref points at and reads its metrics. No version
// (alias unset, stage empty), or the candidate itself, means no baseline.
func baseline(ctx context.Context, r EvidenceReader, mv mlflow.ModelVersion, ref rules.BaselineRef) (rules.Baseline, bool, error) {
	var holder mlflow.ModelVersion
	if ref.Stage != "" {
		latest, err := r.GetLatestVersions(ctx, mv.Name, ref.Stage)
		if err != nil {
			return rules.Baseline{}, false, fmt.Errorf("find the %s version of %s: %w", ref.Stage, mv.Name, err)
		}
		if len(latest) == 0 {
			return rules.Baseline{}, false, nil
		}
		holder = latest[0]
	} else {
		v, err := r.GetModelVersionByAlias(ctx, mv.Name, ref.Alias)
		if mlflow.IsNotFound(err) {
			return rules.Baseline{}, false, nil
		}
		if err != nil {
			return rules.Baseline{}, false, fmt.Errorf("find the version of %s holding alias %s: %w", mv.Name, ref.Alias, err)
		}
		holder = v
	}
	if holder.Version == mv.Version {
		return rules.Baseline{}, false, nil
	}
	metrics, _, _, _, err := versionMetrics(ctx, r, holder)
	if err != nil {
		return rules.Baseline{}, false, fmt.Errorf("baseline %s: %w", ref, err)
	}
	return rules.Baseline{Version: holder.Version, Metrics: metrics}, true, nil
}
