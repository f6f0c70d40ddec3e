package main

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// liveHandler serves /healthz: the process is alive and serving HTTP.
func liveHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = fmt.Fprintln(w, "ok")
	})
}

// healthChecker asks MLflow whether it is up (*mlflow.Client.Health).
type healthChecker interface {
	Health(ctx context.Context) error
}

// passTracker says when the last reconcile pass that could read MLflow ended, and
// whether writes are halted (*transitions.Reconciler).
type passTracker interface {
	LastSuccess() time.Time
	Halted() error
}

// cachedHealth answers MLflow's health for ttl after asking it once: /readyz is
// unauthenticated, and 500 calls made 500 requests to MLflow before.
type cachedHealth struct {
	next healthChecker
	ttl  time.Duration
	now  func() time.Time

	mu    sync.Mutex
	at    time.Time
	err   error
	valid bool
}

func (c *cachedHealth) Health(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock() // callers wait for the one check in flight rather than start their own
	if c.valid && c.now().Sub(c.at) < c.ttl {
		return c.err
	}
	c.err = c.next.Health(ctx)
	c.at, c.valid = c.now(), true
	return c.err
}

// readyHandler serves /readyz: ready when MLflow answers its health check now and the
// replica's own readiness holds (a recent pass, no halt; for a follower, the Kubernetes
// API answering); 503 with the reason otherwise, MLflow first, since it is the usual
// cause.
//
// Ready, it names the MLflow release it talks to ("ok: MLflow 3.18.0"), when known.
func readyHandler(mlflow healthChecker, r readiness, now func() time.Time, server string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		ctx, cancel := context.WithTimeout(req.Context(), 2*time.Second)
		defer cancel()
		if err := mlflow.Health(ctx); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = fmt.Fprintf(w, "not ready: MLflow does not answer its health check: %v\n", err)
			return
		}
		if err := r.ready(now()); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = fmt.Fprintf(w, "not ready: %v\n", err)
			return
		}
		if server != "" {
			_, _ = fmt.Fprintf(w, "ok: MLflow %s\n", server)
			return
		}
		_, _ = fmt.Fprintln(w, "ok")
	})
}
