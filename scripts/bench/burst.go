package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/modelgate/modelgate/mlflow/mlflowtest"
	"github.com/modelgate/modelgate/transitions"
)

// burstPolicy is benchPolicy with a JSON notification of each decision, which the
// benchmark receives to time it.
const burstPolicy = benchPolicy + `notifications:
  - url_env: BENCH_NOTIFY_URL
    format: json
    events: [promoted, rejected]
`

// burst registers n versions over d (evenly paced, 8 at a time) with webhooks on and
// measures: every version decided once, the time from its create_model_version returning
// to modelgate's notification of its decision (median, p95), modelgate's peak RSS, and
// the requests it made per decision.
func burst(ctx context.Context, args []string) error {
	fs := newFlags("burst")
	n := fs.Int("n", 1000, "versions")
	over := fs.Duration("over", time.Minute, "registered over this time")
	models := fs.Int("models", 20, "models")
	_ = fs.Parse(args)

	e, err := newEnv(ctx, true)
	if err != nil {
		return err
	}
	defer e.Close()
	fmt.Printf("== burst: %d versions over %d models registered in %s, webhooks on (polling every hour)\n", *n, *models, *over)

	// The notification receiver: when each version's decision arrived.
	var mu sync.Mutex
	decided := map[string]time.Time{}
	notices := 0
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	receiver := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct{ Model, Version string }
		_ = json.NewDecoder(r.Body).Decode(&body)
		mu.Lock()
		notices++
		if _, seen := decided[body.Model+"/"+body.Version]; !seen {
			decided[body.Model+"/"+body.Version] = time.Now()
		}
		mu.Unlock()
	}), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = receiver.Serve(l) }()
	defer receiver.Close()

	d, err := e.startDaemonWith(ctx, burstPolicy, "MODELGATE_POLL_INTERVAL=1h", "MODELGATE_WEBHOOK_SECRET="+webhookSecret,
		"MODELGATE_AUDIT_EXPERIMENT=off", "BENCH_NOTIFY_URL=http://"+l.Addr().String()+"/")
	if err != nil {
		return err
	}
	defer d.stop()
	if _, err := transitions.RegisterWebhook(ctx, e.client, "http://"+d.addr+"/webhooks/mlflow", []byte(webhookSecret)); err != nil {
		return err
	}
	time.Sleep(1500 * time.Millisecond) // MLflow's one-second subscriber cache
	reqsBefore, _ := d.metric("modelgate_mlflow_requests_total", "")

	created := make([]time.Time, *n)
	keys := make([]string, *n)
	interval := *over / time.Duration(*n)
	start := time.Now()
	var next atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	for range 8 {
		g.Go(func() error {
			for {
				i := int(next.Add(1) - 1)
				if i >= *n {
					return nil
				}
				if wait := time.Until(start.Add(time.Duration(i) * interval)); wait > 0 {
					time.Sleep(wait)
				}
				v := goodVersion(fmt.Sprintf("bench-burst-%d", i%*models))
				if i%4 == 3 {
					v.Metrics["recall_sex_f"] = 0.5
				}
				mv, err := mlflowtest.CreateVersion(gctx, e.client, v)
				if err != nil {
					return err
				}
				created[i], keys[i] = time.Now(), mv.Name+"/"+mv.Version
			}
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	registered := time.Since(start)
	if err := waitUntil(ctx, 30*time.Minute, func() bool {
		v, _ := d.metric("modelgate_decisions_total", "")
		return v >= float64(*n)
	}); err != nil {
		v, _ := d.metric("modelgate_decisions_total", "")
		return fmt.Errorf("%.0f of %d versions decided: %w", v, *n, err)
	}
	time.Sleep(3 * time.Second) // a decision taken twice would show now
	decisions, _ := d.metric("modelgate_decisions_total", "")
	reqs, _ := d.metric("modelgate_mlflow_requests_total", "")
	rss, _ := d.peakRSS()
	limit, _ := d.metric("modelgate_mlflow_inflight_limit", "")
	// A version approved while a newer one already held champion is decided without a
	// notice (there is no "approved" event): the latency covers the notified ones.
	var ds []time.Duration
	mu.Lock()
	for i, k := range keys {
		if at, ok := decided[k]; ok {
			ds = append(ds, at.Sub(created[i]))
		}
	}
	twice := notices - len(decided)
	mu.Unlock()
	fmt.Printf("registered in %s; %.0f decisions counted; %d notified (promoted or rejected), %d notices beyond one per version\n",
		registered.Round(time.Second), decisions, len(ds), twice)
	fmt.Printf("decision latency: median %s, p95 %s, max %s\n", quantile(ds, 0.5).Round(time.Millisecond),
		quantile(ds, 0.95).Round(time.Millisecond), quantile(ds, 1).Round(time.Millisecond))
	fmt.Printf("requests per decision %.1f; peak RSS %.1f MB; in-flight limit at the end %.0f\n\n",
		(reqs-reqsBefore)/float64(*n), rss, limit)
	if decisions != float64(*n) || twice != 0 {
		return fmt.Errorf("%.0f decisions and %d extra notices for %d versions: a version was decided twice", decisions, twice, *n)
	}
	return nil
}
