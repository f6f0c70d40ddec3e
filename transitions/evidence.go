package transitions

import (
	"context"
	"fmt"
	"maps"

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
func GatherEvidence(ctx context.Context, r EvidenceReader, g *rules.Gate, mv mlflow.ModelVersion) (*rules.Evidence, error) {
	ev := &rules.Evidence{Model: mv.Name, Version: mv.Version, VersionTags: mv.Tags}
	metrics, params, runTags, err := versionMetrics(ctx, r, mv)
	if err != nil {
		return nil, err
	}
	ev.Metrics, ev.Params, ev.RunTags = metrics, params, runTags
	for _, ref := range g.Baselines() {
		base, ok, err := baseline(ctx, r, mv, ref)
		if err != nil {
			return nil, err
		}
		if ok {
			if ev.Baselines == nil {
				ev.Baselines = map[rules.BaselineRef]rules.Baseline{}
			}
			ev.Baselines[ref] = base
		}
	}
	return ev, nil
}

// versionMetrics reads a version's run and logged model.
func versionMetrics(ctx context.Context, r EvidenceReader, mv mlflow.ModelVersion) (map[string]float64, map[string]string, map[string]string, error) {
	metrics := map[string]float64{}
	params := map[string]string{}
	var runTags map[string]string
	if mv.RunID != "" {
		run, err := r.GetRun(ctx, mv.RunID)
		switch {
		case mlflow.IsNotFound(err):
		case err != nil:
			return nil, nil, nil, fmt.Errorf("read run %s of %s/%s: %w", mv.RunID, mv.Name, mv.Version, err)
		default:
			maps.Copy(metrics, mlflow.LatestMetrics(run.Data.Metrics))
			maps.Copy(params, mlflow.ParamMap(run.Data.Params))
			runTags = run.Data.Tags
		}
	}
	if id := mv.LoggedModelID(); id != "" {
		lm, err := r.GetLoggedModel(ctx, id)
		switch {
		case mlflow.IsNotFound(err):
		case err != nil:
			return nil, nil, nil, fmt.Errorf("read logged model %s of %s/%s: %w", id, mv.Name, mv.Version, err)
		default:
			maps.Copy(metrics, mlflow.LatestMetrics(lm.Data.Metrics))
			maps.Copy(params, mlflow.ParamMap(lm.Data.Params))
		}
	}
	return metrics, params, runTags, nil
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
	metrics, _, _, err := versionMetrics(ctx, r, holder)
	if err != nil {
		return rules.Baseline{}, false, fmt.Errorf("baseline %s: %w", ref, err)
	}
	return rules.Baseline{Version: holder.Version, Metrics: metrics}, true, nil
}
