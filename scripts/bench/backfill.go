package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/modelgate/modelgate/mlflow"
	"github.com/modelgate/modelgate/mlflow/mlflowtest"
)

// backfill registers four identical sets of n versions over several models (every
// fourth one unfair, the rest good) and decides each set a different way, on the same
// server, timing each:
//   - modelgate starting on a registry where they wait (one pass decides them all), with
//     its audit trail off (the script writes none) and, on the second set, on;
//   - the floor: a tight Go loop issuing the bare requests those decisions need (read
//     the run, find the champion and its metrics, write the report, the tags, the alias,
//     the status, the former champion's superseded state), with modelgate's parallelism
//     (models at once, a model's versions in order);
//   - the script teams write today: Python, MlflowClient, one version after the other.
func backfill(ctx context.Context, args []string) error {
	fs := newFlags("backfill")
	n := fs.Int("n", 200, "versions per set")
	models := fs.Int("models", 8, "models per set")
	runs := fs.Int("runs", 3, "runs; the figures are their medians")
	_ = fs.Parse(args)

	e, err := newEnv(ctx, false)
	if err != nil {
		return err
	}
	defer e.Close()
	fmt.Printf("== backfill: %d versions over %d models, decided four ways, %d runs\n", *n, *models, *runs)
	fmt.Printf("%-4s %12s %12s %12s %12s %9s %9s %9s %11s %11s %11s\n", "run", "modelgate", "mg+audit", "floor", "python",
		"mg req/v", "audit/v", "floor/v", "mg / floor", "python / mg", "py / mg+au")
	var mg, mga, fl, py []time.Duration
	for r := range *runs {
		res, err := backfillOnce(ctx, e, r, *n, *models)
		if err != nil {
			return err
		}
		mg, mga, fl, py = append(mg, res.modelgate), append(mga, res.withAudit), append(fl, res.floor), append(py, res.python)
		fmt.Printf("%-4d %12s %12s %12s %12s %9.1f %9.1f %9.1f %11.2f %11.2f %11.2f\n", r+1, res.modelgate.Round(time.Millisecond),
			res.withAudit.Round(time.Millisecond), res.floor.Round(time.Millisecond), res.python.Round(time.Millisecond),
			res.modelgateReqs/float64(*n), res.auditReqs/float64(*n), float64(res.floorReqs)/float64(*n),
			ratio(res.modelgate, res.floor), ratio(res.python, res.modelgate), ratio(res.python, res.withAudit))
	}
	mgMed, mgaMed, flMed, pyMed := quantile(mg, 0.5), quantile(mga, 0.5), quantile(fl, 0.5), quantile(py, 0.5)
	fmt.Printf("%-4s %12s %12s %12s %12s\n", "med", mgMed.Round(time.Millisecond), mgaMed.Round(time.Millisecond), flMed.Round(time.Millisecond), pyMed.Round(time.Millisecond))
	fmt.Printf("modelgate / floor = %.2f (target <= 1.5); Python script / modelgate = %.2f (audit off), %.2f (audit on)\n\n",
		ratio(mgMed, flMed), ratio(pyMed, mgMed), ratio(pyMed, mgaMed))
	return nil
}

func ratio(a, b time.Duration) float64 { return float64(a) / float64(b) }

type backfillResult struct {
	modelgate, withAudit, floor, python time.Duration
	modelgateReqs, auditReqs            float64 // the audit trail's requests in the audit-on run
	floorReqs                           int64
}

// auditEndpoints are the requests of the audit trail (runs in its experiment).
var auditEndpoints = []string{`endpoint="runs/create"`, `endpoint="runs/log-batch"`, `endpoint="runs/update"`,
	`endpoint="runs/search"`, `endpoint="experiments/get-by-name"`, `endpoint="experiments/create"`, `endpoint="experiments/set-experiment-tag"`}

// backfillOnce seeds four fresh sets of versions (named after the run) and decides them
// with modelgate (audit trail off, then on), with the floor, and with the Python script.
func backfillOnce(ctx context.Context, e *env, run, n, models int) (backfillResult, error) {
	var res backfillResult
	mgPrefix, auditPrefix, floorPrefix, pyPrefix := fmt.Sprintf("bench-mg%d", run), fmt.Sprintf("bench-au%d", run), fmt.Sprintf("floor%d", run), fmt.Sprintf("py%d", run)
	for _, prefix := range []string{mgPrefix, auditPrefix, floorPrefix, pyPrefix} {
		if err := seedUndecided(ctx, e.client, prefix, n, models); err != nil {
			return res, err
		}
	}

	// modelgate: its first pass is a full scan that finds and decides them. Each daemon
	// gates only its own set (its policy's glob names the set's prefix).
	for _, arm := range []struct {
		prefix string
		audit  bool
		took   *time.Duration
	}{{mgPrefix, false, &res.modelgate}, {auditPrefix, true, &res.withAudit}} {
		extra := []string{"MODELGATE_POLL_INTERVAL=1h"}
		if !arm.audit {
			extra = append(extra, "MODELGATE_AUDIT_EXPERIMENT=off")
		} else {
			extra = append(extra, fmt.Sprintf("MODELGATE_AUDIT_EXPERIMENT=bench-audit-%d", run))
		}
		policy := strings.Replace(benchPolicy, `models: ["bench-*"]`, fmt.Sprintf(`models: ["%s-*"]`, arm.prefix), 1)
		start := time.Now()
		d, err := e.startDaemonWith(ctx, policy, extra...)
		if err != nil {
			return res, err
		}
		if err := waitUntil(ctx, 30*time.Minute, func() bool {
			v, _ := d.metric("modelgate_decisions_total", "")
			return v >= float64(n)
		}); err != nil {
			d.stop()
			return res, err
		}
		*arm.took = time.Since(start)
		if !arm.audit {
			res.modelgateReqs, _ = d.metric("modelgate_mlflow_requests_total", "")
		} else {
			for _, ep := range auditEndpoints {
				v, _ := d.metric("modelgate_mlflow_requests_total", ep)
				res.auditReqs += v
			}
		}
		d.stop()
	}

	var err error
	if res.floor, res.floorReqs, err = floor(ctx, e, floorPrefix, models); err != nil {
		return res, err
	}

	python, err := mlflowtest.Python()
	if err != nil {
		return res, err
	}
	script, err := filepath.Abs("scripts/bench/baseline.py")
	if err != nil {
		return res, err
	}
	start := time.Now()
	cmd := exec.CommandContext(ctx, python, script, pyPrefix+"-")
	cmd.Env = append(append(os.Environ(), "MLFLOW_TRACKING_URI="+e.srv.URL, "GIT_PYTHON_REFRESH=quiet"), authEnv()...)
	cmd.Stderr = os.Stderr
	if out, err := cmd.Output(); err != nil {
		return res, fmt.Errorf("python baseline: %w\n%s", err, out)
	}
	res.python = time.Since(start)
	return res, nil
}

// seedUndecided registers n versions with runs and metrics over the models
// <prefix>-0..<prefix>-(models-1), round robin; every fourth is unfair.
func seedUndecided(ctx context.Context, c *mlflow.Client, prefix string, n, models int) error {
	var next atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	for range 8 {
		g.Go(func() error {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return nil
				}
				v := goodVersion(fmt.Sprintf("%s-%d", prefix, i%models))
				if i%4 == 3 {
					v.Metrics["recall_sex_f"] = 0.5
				}
				if _, err := mlflowtest.CreateVersion(gctx, c, v); err != nil {
					return err
				}
			}
		})
	}
	return g.Wait()
}

// requestCounter counts the floor's requests.
type requestCounter struct{ n atomic.Int64 }

func (r *requestCounter) ObserveMLflowRequest(string, string, time.Duration) { r.n.Add(1) }

// floor decides the <prefix>-* versions with the bare requests: no policy engine, no
// report rendering, the same checks hard-coded.
func floor(ctx context.Context, e *env, prefix string, parallel int) (time.Duration, int64, error) {
	counter := &requestCounter{}
	c, err := mlflow.New(authed(mlflow.Options{TrackingURI: e.srv.URL, Observer: counter, MaxRetries: 5}))
	if err != nil {
		return 0, 0, err
	}
	start := time.Now()
	vs, err := c.SearchModelVersions(ctx, mlflow.SearchOptions{Filter: "name LIKE '" + prefix + "-%'", OrderBy: []string{"creation_timestamp DESC"}, PageSize: 1000})
	if err != nil {
		return 0, 0, err
	}
	byModel := map[string][]mlflow.ModelVersion{}
	for _, mv := range vs {
		byModel[mv.Name] = append(byModel[mv.Name], mv)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(parallel)
	for _, versions := range byModel {
		slices.SortFunc(versions, func(a, b mlflow.ModelVersion) int { return mlflow.CompareVersions(a.Version, b.Version) })
		g.Go(func() error {
			for _, mv := range versions {
				if err := floorDecide(gctx, c, mv); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return 0, 0, err
	}
	return time.Since(start), counter.n.Load(), nil
}

func floorDecide(ctx context.Context, c *mlflow.Client, mv mlflow.ModelVersion) error {
	run, err := c.GetRun(ctx, mv.RunID)
	if err != nil {
		return err
	}
	m := mlflow.LatestMetrics(run.Data.Metrics)
	ok := m["accuracy"] >= 0.8 && m["auc"] >= 0.7 && m["recall_sex_m"]-m["recall_sex_f"] <= 0.1
	champ, err := c.GetModelVersionByAlias(ctx, mv.Name, "champion")
	previous := ""
	switch {
	case mlflow.IsNotFound(err):
	case err != nil:
		return err
	default:
		previous = champ.Version
		base, err := c.GetRun(ctx, champ.RunID)
		if err != nil {
			return err
		}
		ok = ok && m["f1_score"] >= mlflow.LatestMetrics(base.Data.Metrics)["f1_score"]
	}
	status := "rejected"
	if ok {
		status = "promoted"
	}
	// What modelgate writes (PRODUCT.md v2): the report, the summary and the signed
	// record, the alias, the status last; and the former champion's report, summary,
	// record and status (superseded).
	if _, err := c.UpdateModelVersionDescription(ctx, mv.Name, mv.Version, "report: "+status); err != nil {
		return err
	}
	for _, k := range []string{"modelgate.summary", "modelgate.record"} {
		if err := c.SetModelVersionTag(ctx, mv.Name, mv.Version, k, "x"); err != nil {
			return err
		}
	}
	if ok {
		if err := c.SetAlias(ctx, mv.Name, "champion", mv.Version); err != nil {
			return err
		}
	}
	if err := c.SetModelVersionTag(ctx, mv.Name, mv.Version, "modelgate.status", status); err != nil {
		return err
	}
	if ok && previous != "" {
		if _, err := c.UpdateModelVersionDescription(ctx, mv.Name, previous, "report: superseded"); err != nil {
			return err
		}
		for _, k := range []string{"modelgate.summary", "modelgate.record", "modelgate.status"} {
			if err := c.SetModelVersionTag(ctx, mv.Name, previous, k, "superseded"); err != nil {
				return err
			}
		}
	}
	return nil
}
