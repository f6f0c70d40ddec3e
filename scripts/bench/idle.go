package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/modelgate/modelgate/mlflow"
	"github.com/modelgate/modelgate/transitions"
)

// idle seeds registries of growing size with versions that are already decided and
// measures, per size: the requests of modelgate's start-up full scan, the requests of an
// idle pass (the cost that must not grow with the registry), and modelgate's peak memory.
func idle(ctx context.Context, args []string) error {
	fs := newFlags("idle")
	sizesFlag := fs.String("sizes", "100,1000,10000", "registry sizes")
	passes := fs.Int("passes", 5, "idle passes measured per size")
	audit := fs.Bool("audit", false, "audit trail on (its experiment is created and loaded at start-up; the seeded records name no events, so none are written)")
	_ = fs.Parse(args)
	var sizes []int
	for _, s := range strings.Split(*sizesFlag, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("-sizes: %w", err)
		}
		sizes = append(sizes, n)
	}

	fmt.Printf("== requests per idle pass, by registry size (versions already decided; audit trail %s)\n", map[bool]string{false: "off", true: "on"}[*audit])
	fmt.Printf("%8s %12s %14s %16s %14s %12s\n", "versions", "seed time", "full scan req", "idle pass req", "idle pass ms", "peak RSS MB")
	for _, size := range sizes {
		e, err := newEnv(ctx, false)
		if err != nil {
			return err
		}
		seedStart := time.Now()
		if err := seedDecided(ctx, e.client, size); err != nil {
			e.Close()
			return err
		}
		seeded := time.Since(seedStart)
		// Idle means nothing registered within the incremental pass' 30s lookback.
		time.Sleep(31 * time.Second)
		// The seeded records name no events, so with the audit trail on nothing is
		// written to it: the figure is the trail's loading and its per-pass checks.
		auditEnv := "MODELGATE_AUDIT_EXPERIMENT=off"
		if *audit {
			auditEnv = "MODELGATE_AUDIT_EXPERIMENT=bench-idle-audit"
		}
		d, err := e.startDaemon(ctx, "MODELGATE_POLL_INTERVAL=1s", auditEnv)
		if err != nil {
			e.Close()
			return err
		}
		// readyz answers once the first pass (a full scan) is done.
		full, _ := d.metric("modelgate_mlflow_requests_total", "")
		polls0, _ := d.metric("modelgate_poll_duration_seconds_count", "")
		dur0, _ := d.metric("modelgate_poll_duration_seconds_sum", "")
		if err := waitUntil(ctx, 5*time.Minute, func() bool {
			n, _ := d.metric("modelgate_poll_duration_seconds_count", "")
			return n >= polls0+float64(*passes)
		}); err != nil {
			d.stop()
			e.Close()
			return err
		}
		after, _ := d.metric("modelgate_mlflow_requests_total", "")
		polls1, _ := d.metric("modelgate_poll_duration_seconds_count", "")
		dur1, _ := d.metric("modelgate_poll_duration_seconds_sum", "")
		rss, _ := d.peakRSS()
		d.stop()
		e.Close()
		passesDone := polls1 - polls0
		fmt.Printf("%8d %12s %14.0f %16.1f %14.1f %12.1f\n", size, seeded.Round(time.Second), full,
			(after-full)/passesDone, 1000*(dur1-dur0)/passesDone, rss)
	}
	fmt.Println()
	return nil
}

// seedDecided registers size versions over ten models through the REST API, one
// goroutine per model (so each version's number is known when it is created), each
// created decided: status rejected and its record, signed with the daemon's key.
func seedDecided(ctx context.Context, c *mlflow.Client, size int) error {
	const models = 10
	g, gctx := errgroup.WithContext(ctx)
	for m := range models {
		name := fmt.Sprintf("bench-idle-%d", m)
		g.Go(func() error {
			if _, err := c.CreateRegisteredModel(gctx, name, nil, ""); err != nil && !mlflow.IsAlreadyExists(err) {
				return err
			}
			for v := 1; (v-1)*models+m < size; v++ {
				version := strconv.Itoa(v)
				rec := transitions.Keys{Current: signingKey}.Encode(name, version, transitions.Record{Seq: 1, Status: transitions.StatusRejected, Gate: "bench", At: "2026-11-01T00:00:00Z"})
				if _, err := c.CreateModelVersion(gctx, mlflow.CreateModelVersionRequest{
					Name: name, Source: "s3://bench/model",
					Tags: mlflow.Tags{transitions.TagStatus: string(transitions.StatusRejected), transitions.TagRecord: rec},
				}); err != nil {
					return err
				}
			}
			return nil
		})
	}
	return g.Wait()
}
