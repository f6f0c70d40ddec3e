package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/modelgate/modelgate/mlflow"
	"github.com/modelgate/modelgate/mlflow/mlflowtest"
)

// backfill registers three identical sets of n versions over several models (every
// fourth one unfair, the rest good) and decides each set a different way, on the same
// server, timing each:
//   - modelgate starting on a registry where they wait (one pass decides them all);
//   - the floor: a tight Go loop issuing the bare requests those decisions need (read
//     the run, find the champion and its metrics, write the report, the tags, the alias,
//     the status), with modelgate's parallelism (models at once, a model's versions in
//     order);
//   - the script teams write today: Python, MlflowClient, one version after the other.
func backfill(ctx context.Context, args []string) error {
	fs := newFlags("backfill")
	n := fs.Int("n", 200, "versions per set")
	models := fs.Int("models", 8, "models per set")
	_ = fs.Parse(args)

	e, err := newEnv(ctx, false)
	if err != nil {
		return err
	}
	defer e.Close()
	fmt.Printf("== backfill: %d versions over %d models, decided three ways\n", *n, *models)
	for _, prefix := range []string{"bench-mg", "floor", "py"} {
		start := time.Now()
		if err := seedUndecided(ctx, e.client, prefix, *n, *models); err != nil {
			return err
		}
		fmt.Printf("seeded %s-*: %s\n", prefix, time.Since(start).Round(time.Second))
	}

	// modelgate: its first pass is a full scan that finds and decides them.
	start := time.Now()
	d, err := e.startDaemon(ctx, "MODELGATE_POLL_INTERVAL=1h")
	if err != nil {
		return err
	}
	if err := waitUntil(ctx, 30*time.Minute, func() bool {
		v, _ := d.metric("modelgate_decisions_total", "")
		return v >= float64(*n)
	}); err != nil {
		d.stop()
		return err
	}
	mgTime := time.Since(start)
	mgReqs, _ := d.metric("modelgate_mlflow_requests_total", "")
	d.stop()

	floorTime, floorReqs, err := floor(ctx, e, "floor", *models)
	if err != nil {
		return err
	}

	py, err := mlflowtest.Python()
	if err != nil {
		return err
	}
	script, err := filepath.Abs("scripts/bench/baseline.py")
	if err != nil {
		return err
	}
	start = time.Now()
	cmd := exec.CommandContext(ctx, py, script, "py-")
	cmd.Env = append(os.Environ(), "MLFLOW_TRACKING_URI="+e.srv.URL, "GIT_PYTHON_REFRESH=quiet")
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("python baseline: %w\n%s", err, out)
	}
	pyTime := time.Since(start)

	fmt.Printf("%-36s %10s %10s %12s\n", "", "time", "requests", "per version")
	fmt.Printf("%-36s %10s %10.0f %12s\n", "modelgate", mgTime.Round(time.Millisecond), mgReqs, (mgTime / time.Duration(*n)).Round(time.Microsecond))
	fmt.Printf("%-36s %10s %10d %12s\n", "floor (bare requests, same parallelism)", floorTime.Round(time.Millisecond), floorReqs, (floorTime / time.Duration(*n)).Round(time.Microsecond))
	fmt.Printf("%-36s %10s %10s %12s\n", "Python MlflowClient script", pyTime.Round(time.Millisecond), "", (pyTime / time.Duration(*n)).Round(time.Microsecond))
	fmt.Printf("modelgate / floor = %.2f; Python script / modelgate = %.1f\n\n", float64(mgTime)/float64(floorTime), float64(pyTime)/float64(mgTime))
	return nil
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
	c, err := mlflow.New(mlflow.Options{TrackingURI: e.srv.URL, Observer: counter, MaxRetries: 5})
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
	if _, err := c.UpdateModelVersionDescription(ctx, mv.Name, mv.Version, "report: "+status); err != nil {
		return err
	}
	tags := []string{"modelgate.gate", "modelgate.summary", "modelgate.decided_at", "modelgate.policy_digest", "modelgate.evidence_digest"}
	if ok {
		tags = append(tags, "modelgate.promoted_to")
		if previous != "" {
			tags = append(tags, "modelgate.previous_version")
		}
	}
	for _, k := range tags {
		if err := c.SetModelVersionTag(ctx, mv.Name, mv.Version, k, "x"); err != nil {
			return err
		}
	}
	if ok {
		if err := c.SetAlias(ctx, mv.Name, "champion", mv.Version); err != nil {
			return err
		}
	}
	return c.SetModelVersionTag(ctx, mv.Name, mv.Version, "modelgate.status", status)
}
