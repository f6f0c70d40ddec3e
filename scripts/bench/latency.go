package main

import (
	"context"
	"fmt"
	"time"

	"github.com/modelgate/modelgate/mlflow/mlflowtest"
	"github.com/modelgate/modelgate/transitions"
)

// latency measures, for n versions registered one after the other, the time from
// create_model_version returning to modelgate.status being set: once with webhooks (and
// polling every hour), once with polling alone, on the same MLflow server.
func latency(ctx context.Context, args []string) error {
	fs := newFlags("latency")
	n := fs.Int("n", 20, "versions per mode")
	poll := fs.Duration("poll", 5*time.Second, "poll interval of the polling mode")
	_ = fs.Parse(args)

	e, err := newEnv(ctx, true)
	if err != nil {
		return err
	}
	defer e.Close()
	fmt.Printf("== decision latency: create_model_version returned -> modelgate.status set (%d versions per mode)\n", *n)
	modes := []struct {
		name string
		env  []string
	}{
		{"webhooks (poll every 1h)", []string{"MODELGATE_POLL_INTERVAL=1h", "MODELGATE_WEBHOOK_SECRET=" + webhookSecret}},
		{fmt.Sprintf("polling every %s", *poll), []string{"MODELGATE_POLL_INTERVAL=" + poll.String()}},
	}
	var medians []time.Duration
	for i, m := range modes {
		extra := m.env
		d, err := e.startDaemon(ctx, extra...)
		if err != nil {
			return err
		}
		if i == 0 {
			// Register the webhook with the daemon's address, then let MLflow's one-second
			// subscriber cache expire.
			if _, err := transitions.RegisterWebhook(ctx, e.client, "http://"+d.addr+"/webhooks/mlflow", []byte(webhookSecret)); err != nil {
				d.stop()
				return err
			}
			time.Sleep(1500 * time.Millisecond)
		}
		model := fmt.Sprintf("bench-latency-%d", i)
		var ds []time.Duration
		for range *n {
			mv, err := mlflowtest.CreateVersion(ctx, e.client, goodVersion(model))
			if err != nil {
				d.stop()
				return err
			}
			start := time.Now()
			if err := waitUntil(ctx, 5*time.Minute, func() bool {
				got, err := e.client.GetModelVersion(ctx, mv.Name, mv.Version)
				return err == nil && got.Tags["modelgate.status"] != ""
			}); err != nil {
				d.stop()
				return fmt.Errorf("%s: version %s not decided: %w", m.name, mv.Version, err)
			}
			ds = append(ds, time.Since(start))
		}
		d.stop()
		med, p95 := quantile(ds, 0.5), quantile(ds, 0.95)
		medians = append(medians, med)
		fmt.Printf("%-28s median %7s  p95 %7s  (min %s, max %s)\n", m.name, med.Round(time.Millisecond), p95.Round(time.Millisecond),
			quantile(ds, 0).Round(time.Millisecond), quantile(ds, 1).Round(time.Millisecond))
	}
	fmt.Printf("webhooks decide %.1fx faster than polling (median)\n\n", float64(medians[1])/float64(medians[0]))
	return nil
}

// goodVersion passes every check of benchPolicy (its f1 never falls below a champion's).
func goodVersion(model string) mlflowtest.Version {
	return mlflowtest.Version{Model: model, Metrics: map[string]float64{
		"accuracy": 0.93, "recall_sex_f": 0.80, "recall_sex_m": 0.84, "auc": 0.91, "f1_score": 0.90,
	}}
}
