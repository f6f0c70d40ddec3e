package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/modelgate/modelgate/metrics"
	"github.com/modelgate/modelgate/mlflow"
	"github.com/modelgate/modelgate/rules"
	"github.com/modelgate/modelgate/transitions"
	"github.com/modelgate/modelgate/transitions/notify"
)

// runDaemon is `modelgate run`: poll MLflow, decide, act, until ctx ends (SIGTERM or
// SIGINT), then finish the version in hand, drain notifications and exit 0. With --once
// it makes one full pass and exits: 0, or 3 when MLflow could not be read.
func runDaemon(ctx context.Context, args, environ []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	once := fs.Bool("once", false, "one full reconcile pass, then exit")
	dryRun := fs.Bool("dry-run", false, "evaluate and log what would be done; write nothing (also MODELGATE_DRY_RUN=true)")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "modelgate run: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	d, code := newDaemon(environ, *dryRun, *once, stdout, stderr)
	if d == nil {
		return code
	}
	if *once {
		return d.runOnce(ctx)
	}
	// Listen before anything reaches MLflow: a port in use is a configuration error.
	ln, err := net.Listen("tcp", d.cfg.ListenAddr)
	if err != nil {
		fmt.Fprintf(stderr, "modelgate: MODELGATE_LISTEN_ADDR=%s: %v\n", d.cfg.ListenAddr, err)
		return exitUsage
	}
	return d.serve(ctx, ln)
}

// daemon is `modelgate run` wired up: configuration, MLflow client, metrics, notifier
// and reconciler, ready to serve.
type daemon struct {
	cfg      Config
	logger   *slog.Logger
	registry *prometheus.Registry
	metrics  *metrics.Metrics
	client   *mlflow.Client
	sender   *notify.Notifier
	rec      *transitions.Reconciler
}

// newDaemon reads the configuration and the policy and builds the daemon; on a problem it
// prints it and returns nil with the exit code.
func newDaemon(environ []string, dryRun, once bool, stdout, stderr io.Writer) (*daemon, int) {
	cfg, err := loadConfig(environ)
	if err == nil {
		err = cfg.requireTrackingURI()
	}
	if err != nil {
		fmt.Fprintf(stderr, "modelgate: %v\n", err)
		return nil, exitUsage
	}
	cfg.DryRun = cfg.DryRun || dryRun
	if !cfg.DryRun {
		if err := cfg.requireSigningKey(); err != nil {
			fmt.Fprintf(stderr, "modelgate: %v\n", err)
			return nil, exitUsage
		}
	}
	policy, err := loadPolicy(cfg.PolicyPath)
	if err != nil {
		return nil, printPolicyError(stdout, stderr, err)
	}
	d := &daemon{cfg: cfg, logger: newLogger(cfg, stderr), registry: prometheus.NewRegistry()}
	d.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	d.metrics = metrics.New(buildVersion(), d.registry)
	d.metrics.InitSeries(metricSeries(policy))
	if d.client, err = newClient(cfg, d.logger, d.metrics); err != nil {
		fmt.Fprintf(stderr, "modelgate: %v\n", err)
		return nil, exitUsage
	}
	env := envMap(environ)
	d.sender, err = notify.New(policy.Notifications, notify.Options{
		LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok },
		UIURL:     cfg.UIURL,
		Logger:    d.logger,
		Recorder:  d.metrics,
	})
	if err != nil {
		fmt.Fprintf(stderr, "modelgate: %v\n", err)
		return nil, exitUsage
	}
	var writer transitions.Writer = d.client
	var notifier transitions.Notifier = d.sender
	if cfg.DryRun {
		writer = transitions.DryRun{Logger: d.logger}
		notifier = dryRunNotifier{logger: d.logger}
	}
	keys := cfg.keys()
	if cfg.DryRun && len(keys.Current) == 0 {
		d.logger.Warn("MODELGATE_SIGNING_KEY is not set: a dry run reads records without checking their signatures")
	}
	start := time.Now()
	d.rec, err = transitions.New(transitions.Config{
		Reader:       d.client,
		Writer:       writer,
		Policy:       policy,
		Logger:       d.logger,
		Metrics:      d.metrics,
		Notifier:     notifier,
		Keys:         keys,
		Audit:        newAudit(cfg, d.client, keys, d.logger, d.metrics),
		Concurrency:  cfg.Concurrency,
		Since:        cfg.Since.Cutoff(start),
		PollInterval: cfg.PollInterval,
	})
	if err != nil {
		fmt.Fprintf(stderr, "modelgate: %v\n", err)
		return nil, exitUsage
	}
	d.logger.Info("modelgate starting", "version", buildVersion(), "tracking_uri", d.client.TrackingURI(), "policy", cfg.PolicyPath,
		"policy_digest", policy.Digest(), "gates", len(policy.Gates), "dry_run", cfg.DryRun, "once", once,
		"audit_experiment", cfg.AuditExperiment,
		"since", cfg.Since.Cutoff(start).Format(time.RFC3339), "poll_interval", cfg.PollInterval.String())
	return d, exitOK
}

// runOnce is `run --once`: one full pass, its notifications drained, then the exit code.
func (d *daemon) runOnce(ctx context.Context) int {
	notifyCtx, stopNotify := context.WithCancel(context.WithoutCancel(ctx))
	var g errgroup.Group
	g.Go(func() error { d.sender.Run(notifyCtx); return nil })
	err := d.rec.RunOnce(ctx)
	stopNotify() // the notifier drains what the pass queued, within its deadline
	_ = g.Wait()
	if err != nil {
		d.logger.Error("reconcile pass failed", "error", err)
		return exitCode(err)
	}
	return exitOK
}

// serve runs the daemon on ln until ctx ends: the HTTP server (metrics, probes,
// webhooks), the reconciler, the notifier and the webhook registration, each owned by
// one errgroup. If the HTTP server stops serving, everything stops and serve returns 2:
// deciding with no metrics or probes would hide the daemon from its operators.
func (d *daemon) serve(ctx context.Context, ln net.Listener) int {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(d.registry, promhttp.HandlerOpts{Registry: d.registry}))
	mux.Handle("GET /healthz", liveHandler())
	mux.Handle("GET /readyz", readyHandler(d.rec, d.client, 3*d.cfg.PollInterval+time.Minute, time.Now))
	paths := "/metrics /healthz /readyz"
	var receiver *transitions.WebhookReceiver
	secret := d.cfg.WebhookSecret.Reveal()
	if secret != "" {
		var err error
		receiver, err = transitions.NewWebhookReceiver(transitions.WebhookOptions{
			Secret: []byte(secret), Nudger: d.rec, Recorder: d.metrics, Logger: d.logger,
		})
		if err != nil {
			ln.Close()
			d.logger.Error("webhook receiver", "error", err)
			return exitUsage
		}
		mux.Handle("/webhooks/mlflow", receiver)
		paths += " /webhooks/mlflow"
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(d.logger.Handler(), slog.LevelWarn)}

	// Notifications go out until the reconciler has stopped, then what is queued is
	// drained (bounded): stopping never cuts a decision's notification short.
	notifyCtx, stopNotify := context.WithCancel(context.WithoutCancel(ctx))
	defer stopNotify()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { d.sender.Run(notifyCtx); return nil })
	if receiver != nil && d.cfg.WebhookURL != "" && !d.cfg.DryRun {
		g.Go(func() error {
			transitions.KeepWebhookRegistered(gctx, d.client, d.cfg.WebhookURL, []byte(secret), d.logger)
			return nil
		})
	}
	d.logger.Info("serving", "addr", ln.Addr().String(), "paths", paths)
	g.Go(func() error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("HTTP server on %s stopped: %w", ln.Addr(), err)
		}
		return nil
	})
	g.Go(func() error {
		_ = d.rec.Run(gctx)
		d.logger.Info("shutting down")
		shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
		stopNotify()
		return nil
	})
	if err := g.Wait(); err != nil {
		d.logger.Error("modelgate stopped: it cannot serve its metrics and probes", "error", err)
		return exitUsage
	}
	return exitOK
}

// metricSeries lists the gates, checks and notification formats of the policy, whose
// metric series start at 0.
func metricSeries(p *rules.Policy) ([]metrics.Gate, []string) {
	gates := make([]metrics.Gate, 0, len(p.Gates))
	for _, g := range p.Gates {
		mg := metrics.Gate{Name: g.Name}
		for _, c := range g.Checks {
			mg.Checks = append(mg.Checks, c.Name)
		}
		gates = append(gates, mg)
	}
	var formats []string
	for _, n := range p.Notifications {
		formats = append(formats, n.Format)
	}
	return gates, formats
}

// envMap turns KEY=value strings into a map.
func envMap(environ []string) map[string]string {
	m := make(map[string]string, len(environ))
	for _, kv := range environ {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}

// dryRunNotifier logs the notifications a real run would send.
type dryRunNotifier struct {
	logger interface{ Info(string, ...any) }
}

func (d dryRunNotifier) Notify(n transitions.Notice) {
	d.logger.Info("dry-run: would notify", "event", n.Event, "model", n.Model, "version", n.Version, "status", n.Status)
}
