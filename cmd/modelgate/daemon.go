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
	"github.com/modelgate/modelgate/transitions/leader"
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
		if code := d.checkServer(ctx, stderr); code != exitOK {
			return code
		}
		return d.runOnce(ctx)
	}
	// Listen before anything reaches MLflow: a port in use is a configuration error.
	ln, err := net.Listen("tcp", d.cfg.ListenAddr)
	if err != nil {
		fmt.Fprintf(stderr, "modelgate: MODELGATE_LISTEN_ADDR=%s: %v\n", d.cfg.ListenAddr, err)
		return exitUsage
	}
	return d.serve(ctx, ln, stderr)
}

// daemon is `modelgate run` wired up: configuration, MLflow client, metrics, notifier
// and reconciler, ready to serve.
type daemon struct {
	limits   serverLimits
	cfg      Config
	logger   *slog.Logger
	registry *prometheus.Registry
	metrics  *metrics.Metrics
	client   *mlflow.Client
	sender   *notify.Notifier
	rec      *transitions.Reconciler // without leader election; with it, one per term (newReconciler)
	recCfg   transitions.Config
	elector  *leader.Elector // nil without leader election
	router   *router
	server   serverInfo // the MLflow release, read at start-up
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
	d := &daemon{cfg: cfg, logger: newLogger(cfg, stderr), registry: prometheus.NewRegistry(), limits: defaultLimits()}
	d.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	d.metrics = metrics.New(buildVersion(), d.registry)
	d.metrics.InitSeries(metricSeries(policy))
	var fence func(context.Context) (context.Context, context.CancelFunc, error)
	if cfg.LeaderElection == "kubernetes" && !cfg.DryRun {
		if d.elector, err = newElector(cfg, d.logger, d.metrics); err != nil {
			fmt.Fprintf(stderr, "modelgate: %v\n", err)
			return nil, exitUsage
		}
		fence = d.elector.Fence
	} else {
		d.metrics.Leader(true) // the one replica decides
	}
	if d.client, err = newClient(cfg, d.logger, d.metrics, fence); err != nil {
		fmt.Fprintf(stderr, "modelgate: %v\n", err)
		return nil, exitUsage
	}
	env := envMap(environ)
	d.sender, err = notify.New(policy.Notifications, notify.Options{
		LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok },
		UIURL:     cfg.UIURL,
		Logger:    d.logger,
		Recorder:  d.metrics,
		Fence:     fence,
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
	d.recCfg = transitions.Config{
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
	}
	if d.rec, err = transitions.New(d.recCfg); err != nil {
		fmt.Fprintf(stderr, "modelgate: %v\n", err)
		return nil, exitUsage
	}
	d.router = &router{elector: d.elector, secret: []byte(cfg.WebhookSecret.Reveal()), logger: d.logger,
		client: &http.Client{Timeout: 5 * time.Second}}
	if d.elector == nil {
		d.router.set(d.rec)
	}
	d.logger.Info("modelgate starting", "version", buildVersion(), "tracking_uri", d.client.TrackingURI(), "policy", cfg.PolicyPath,
		"policy_file_digest", policy.Digest(), "gates", len(policy.Gates), "dry_run", cfg.DryRun, "once", once,
		"audit_experiment", cfg.AuditExperiment,
		"since", cfg.Since.Cutoff(start).Format(time.RFC3339), "poll_interval", cfg.PollInterval.String(),
		"leader_election", string(cfg.LeaderElection))
	// policy_digest is a gate's, as in modelgate.record, the report and the audit trail:
	// it changes only when that gate's definition does.
	for _, g := range policy.Gates {
		d.logger.Info("gate", "gate", g.Name, "models", strings.Join(g.Models, ","), "policy_digest", g.Digest())
	}
	return d, exitOK
}

// checkServer reads the MLflow release at start-up: one too old is refused (exit 2), one
// without webhooks has them off, one that does not answer yet is waited for as always.
func (d *daemon) checkServer(ctx context.Context, stderr io.Writer) int {
	info, err := detectServer(ctx, d.client, d.metrics.MLflowServer)
	switch {
	case errors.Is(err, errServerTooOld):
		fmt.Fprintf(stderr, "modelgate: %v\n", err)
		return exitUsage
	case err != nil:
		d.logger.Warn("could not read the MLflow server's release at start-up; going on (webhooks, if set, are registered as for 3.3+)", "error", err)
	default:
		d.logger.Info("MLflow server", "version", info.version)
		if !info.webhooks && d.cfg.WebhookURL != "" {
			d.logger.Warn("this MLflow has no registry webhooks (they came in 3.3): MODELGATE_WEBHOOK_URL is ignored, decisions follow the polling interval",
				"mlflow_version", info.version, "poll_interval", d.cfg.PollInterval.String())
		}
		if !info.loggedModels {
			d.logger.Info("this MLflow has no logged models (they came in 3.0): the evidence of every version is its run's metrics, params and tags",
				"mlflow_version", info.version)
		}
	}
	d.server = info
	return exitOK
}

// runOnce is `run --once`: one full pass, its notifications drained, then the exit code.
// With leader election it waits for the lease, makes its pass as the leader, and gives
// the lease back.
func (d *daemon) runOnce(ctx context.Context) int {
	notifyCtx, stopNotify := context.WithCancel(context.WithoutCancel(ctx))
	var g errgroup.Group
	g.Go(func() error { d.sender.Run(notifyCtx); return nil })
	var err error
	if d.elector == nil {
		err = d.rec.RunOnce(ctx)
	} else {
		electCtx, done := context.WithCancel(ctx)
		err = errors.New("stopped before this replica could lead")
		_ = d.elector.Run(electCtx, func(lead context.Context) {
			defer done()
			err = d.rec.RunOnce(lead)
			d.sender.Flush(lead) // its notifications go out while this replica still leads
		})
		done()
	}
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
func (d *daemon) serve(ctx context.Context, ln net.Listener, stderr io.Writer) int {
	if code := d.checkServer(ctx, stderr); code != exitOK {
		ln.Close()
		return code
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(d.registry, promhttp.HandlerOpts{Registry: d.registry}))
	mux.Handle("GET /healthz", liveHandler())
	health := &cachedHealth{next: d.client, ttl: 2 * time.Second, now: time.Now}
	staleAfter := 3*d.cfg.PollInterval + time.Minute
	var ready readiness = soloReadiness{passes: d.rec, staleAfter: staleAfter}
	if d.elector != nil {
		ready = haReadiness{elector: d.elector, router: d.router, staleAfter: staleAfter}
	}
	mux.Handle("GET /readyz", readyHandler(health, ready, time.Now, d.server.version))
	paths := "/metrics /healthz /readyz"
	var receiver *transitions.WebhookReceiver
	secret := d.cfg.WebhookSecret.Reveal()
	if secret != "" {
		var err error
		receiver, err = transitions.NewWebhookReceiver(transitions.WebhookOptions{
			Secret: []byte(secret), Nudger: d.router, Recorder: d.metrics, Logger: d.logger,
		})
		if err != nil {
			ln.Close()
			d.logger.Error("webhook receiver", "error", err)
			return exitUsage
		}
		mux.Handle("/webhooks/mlflow", receiver)
		paths += " /webhooks/mlflow"
	}
	// Every timeout set: a client that sends a byte at a time, or never reads the
	// answer, is cut off instead of holding a connection (three slow clients were still
	// held after 75 s with only ReadHeaderTimeout).
	srv := &http.Server{Handler: mux, ErrorLog: slog.NewLogLogger(d.logger.Handler(), slog.LevelWarn),
		ReadHeaderTimeout: d.limits.readHeader, ReadTimeout: d.limits.read, WriteTimeout: d.limits.write,
		IdleTimeout: d.limits.idle, MaxHeaderBytes: 16 << 10}

	// Notifications go out until the reconciler has stopped, then what is queued is
	// drained (bounded): stopping never cuts a decision's notification short.
	notifyCtx, stopNotify := context.WithCancel(context.WithoutCancel(ctx))
	defer stopNotify()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { d.sender.Run(notifyCtx); return nil })
	registerWebhook := receiver != nil && d.cfg.WebhookURL != "" && !d.cfg.DryRun && d.server.webhooks
	d.logger.Info("serving", "addr", ln.Addr().String(), "paths", paths)
	g.Go(func() error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("HTTP server on %s stopped: %w", ln.Addr(), err)
		}
		return nil
	})
	g.Go(func() error {
		// The work of the leader: the reconciler and the webhook's registration. Without
		// leader election this replica leads until it stops; with it, for each term it
		// wins, on a fresh reconciler (what it believed last term may be stale).
		lead := func(ctx context.Context, rec *transitions.Reconciler) {
			var work errgroup.Group
			if registerWebhook {
				work.Go(func() error {
					transitions.KeepWebhookRegistered(ctx, d.client, d.cfg.WebhookURL, []byte(secret), d.logger)
					return nil
				})
			}
			work.Go(func() error { return rec.Run(ctx) })
			_ = work.Wait()
		}
		if d.elector == nil {
			lead(gctx, d.rec)
		} else {
			_ = d.elector.Run(gctx, func(ctx context.Context) {
				rec, err := transitions.New(d.recCfg)
				if err != nil { // the same configuration built d.rec: cannot happen
					d.logger.Error("reconciler", "error", err)
					return
				}
				d.router.set(rec)
				defer d.router.set(nil)
				lead(ctx, rec)
				// What this term queued goes out before the lease is given back (the
				// fence still bounds each send by the lease).
				flush, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
				defer cancel()
				d.sender.Flush(flush)
			})
		}
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

// serverLimits are the HTTP server's timeouts (docs/runbook.md, "Limits").
type serverLimits struct {
	readHeader, read, write, idle time.Duration
}

// defaultLimits: a webhook delivery (at most 64 KiB) or a scrape takes well under these.
func defaultLimits() serverLimits {
	return serverLimits{readHeader: 5 * time.Second, read: 15 * time.Second, write: 30 * time.Second, idle: 60 * time.Second}
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
