package main

import (
	"context"
	"fmt"
	"net/http"
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

// readyHandler serves /readyz: ready when MLflow answers its health check now and a
// pass has read MLflow successfully within staleAfter; 503 with the reason otherwise,
// MLflow first, since it is the usual cause.
func readyHandler(passes passTracker, mlflow healthChecker, staleAfter time.Duration, now func() time.Time) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		ctx, cancel := context.WithTimeout(req.Context(), 2*time.Second)
		defer cancel()
		if err := mlflow.Health(ctx); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = fmt.Fprintf(w, "not ready: MLflow does not answer its health check: %v\n", err)
			return
		}
		if err := passes.Halted(); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = fmt.Fprintf(w, "not ready: writes halted: %v\n", err)
			return
		}
		last := passes.LastSuccess()
		switch age := now().Sub(last); {
		case last.IsZero():
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = fmt.Fprintln(w, "not ready: no reconcile pass has completed yet")
			return
		case age > staleAfter:
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = fmt.Fprintf(w, "not ready: last successful pass %s ago (more than %s)\n", age.Round(time.Second), staleAfter)
			return
		}
		_, _ = fmt.Fprintln(w, "ok")
	})
}
