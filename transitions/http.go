package transitions

import (
	"context"
	"fmt"
	"net/http"
	"time"
)

// HealthChecker asks MLflow whether it is up (*mlflow.Client.Health).
type HealthChecker interface {
	Health(ctx context.Context) error
}

// LiveHandler serves /healthz: the process is alive and serving HTTP.
func LiveHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = fmt.Fprintln(w, "ok")
	})
}

// ReadyHandler serves /readyz: ready when a pass has read MLflow successfully within
// staleAfter and MLflow answers its health check now; 503 with the reason otherwise.
func (r *Reconciler) ReadyHandler(mlflow HealthChecker, staleAfter time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		last := r.LastSuccess()
		switch age := r.now().Sub(last); {
		case last.IsZero():
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = fmt.Fprintln(w, "not ready: no reconcile pass has completed yet")
			return
		case age > staleAfter:
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = fmt.Fprintf(w, "not ready: last successful pass %s ago (more than %s)\n", age.Round(time.Second), staleAfter)
			return
		}
		ctx, cancel := context.WithTimeout(req.Context(), 2*time.Second)
		defer cancel()
		if err := mlflow.Health(ctx); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = fmt.Fprintf(w, "not ready: MLflow does not answer: %v\n", err)
			return
		}
		_, _ = fmt.Fprintln(w, "ok")
	})
}
