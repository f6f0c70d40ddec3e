package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/modelgate/modelgate/metrics"
	"github.com/modelgate/modelgate/transitions"
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
	cfg, err := loadConfig(environ)
	if err == nil {
		err = cfg.requireTrackingURI()
	}
	if err != nil {
		fmt.Fprintf(stderr, "modelgate: %v\n", err)
		return exitUsage
	}
	cfg.DryRun = cfg.DryRun || *dryRun
	policy, err := loadPolicy(cfg.PolicyPath)
	if err != nil {
		return printPolicyError(stdout, stderr, err)
	}
	logger := newLogger(cfg, stderr)
	m := metrics.New(buildVersion())
	m.InitPolicy(policy)
	client, err := newClient(cfg, logger, m)
	if err != nil {
		fmt.Fprintf(stderr, "modelgate: %v\n", err)
		return exitUsage
	}
	env := envMap(environ)
	webhooks, err := transitions.NewWebhooks(policy.Notifications, transitions.WebhooksOptions{
		LookupEnv: func(k string) (string, bool) { v, ok := env[k]; return v, ok },
		UIURL:     cfg.UIURL,
		Logger:    logger,
		Recorder:  m,
	})
	if err != nil {
		fmt.Fprintf(stderr, "modelgate: %v\n", err)
		return exitUsage
	}
	var writer transitions.Writer = client
	var notifier transitions.Notifier = webhooks
	if cfg.DryRun {
		writer = transitions.DryRun{Logger: logger}
		notifier = dryRunNotifier{logger: logger}
	}
	start := time.Now()
	rec, err := transitions.New(transitions.Config{
		Reader:       client,
		Writer:       writer,
		Policy:       policy,
		Logger:       logger,
		Metrics:      m,
		Notifier:     notifier,
		Concurrency:  cfg.Concurrency,
		Since:        cfg.Since.Cutoff(start),
		PollInterval: cfg.PollInterval,
	})
	if err != nil {
		fmt.Fprintf(stderr, "modelgate: %v\n", err)
		return exitUsage
	}
	logger.Info("modelgate starting", "version", buildVersion(), "tracking_uri", client.TrackingURI(), "policy", cfg.PolicyPath,
		"policy_digest", policy.Digest(), "gates", len(policy.Gates), "dry_run", cfg.DryRun, "once", *once,
		"since", cfg.Since.Cutoff(start).Format(time.RFC3339), "poll_interval", cfg.PollInterval.String())

	var wg sync.WaitGroup
	notifyCtx, stopNotify := context.WithCancel(context.WithoutCancel(ctx))
	wg.Add(1)
	go func() { defer wg.Done(); webhooks.Run(notifyCtx) }()
	defer func() { stopNotify(); wg.Wait() }()

	if *once {
		if err := rec.RunOnce(ctx); err != nil {
			logger.Error("reconcile pass failed", "error", err)
			return exitCode(err)
		}
		return exitOK
	}

	// Listen before anything reaches MLflow: a port in use is a configuration error.
	ln, err := net.Listen("tcp", cfg.ListenAddr)
	if err != nil {
		fmt.Fprintf(stderr, "modelgate: MODELGATE_LISTEN_ADDR=%s: %v\n", cfg.ListenAddr, err)
		return exitUsage
	}
	defer ln.Close()
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	mux.Handle("GET /healthz", transitions.LiveHandler())
	mux.Handle("GET /readyz", rec.ReadyHandler(client, 3*cfg.PollInterval+time.Minute))
	paths := "/metrics /healthz /readyz"
	if secret := cfg.WebhookSecret.Reveal(); secret != "" {
		receiver, err := transitions.NewWebhookReceiver(transitions.WebhookOptions{
			Secret: []byte(secret), Nudger: rec, Recorder: m, Logger: logger,
		})
		if err != nil {
			fmt.Fprintf(stderr, "modelgate: %v\n", err)
			return exitUsage
		}
		mux.Handle("/webhooks/mlflow", receiver)
		paths += " /webhooks/mlflow"
		if cfg.WebhookURL != "" && !cfg.DryRun {
			wg.Add(1)
			go func() {
				defer wg.Done()
				transitions.KeepWebhookRegistered(ctx, client, cfg.WebhookURL, []byte(secret), logger)
			}()
		}
	}
	srv := &http.Server{Addr: cfg.ListenAddr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	logger.Info("serving", "addr", ln.Addr().String(), "paths", paths)
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("HTTP server stopped", "error", err)
		}
	}()

	_ = rec.Run(ctx)
	logger.Info("shutting down")
	shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdown)
	return exitOK
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
