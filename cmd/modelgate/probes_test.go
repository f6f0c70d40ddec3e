package main

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

type fakePasses struct {
	last   time.Time
	halted error
}

func (f fakePasses) LastSuccess() time.Time { return f.last }
func (f fakePasses) Halted() error          { return f.halted }

type fakeHealth struct{ err error }

func (f fakeHealth) Health(context.Context) error { return f.err }

func TestReadyz(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	recent := fakePasses{last: now.Add(-time.Minute)}
	for _, tc := range []struct {
		name   string
		passes fakePasses
		health error
		code   int
		body   string
	}{
		{"ready", recent, nil, 200, "ok"},
		{"MLflow down names MLflow first", fakePasses{}, errors.New("mlflow health: MLflow unreachable: connection refused"), 503, "not ready: MLflow does not answer its health check: mlflow health: MLflow unreachable"},
		{"writes halted", fakePasses{last: now, halted: errors.New("most modelgate.record tags fail verification (5 of 6)")}, nil, 503, "not ready: writes halted: most modelgate.record tags fail verification"},
		{"no pass yet", fakePasses{}, nil, 503, "not ready: no reconcile pass has completed yet"},
		{"last pass too old", fakePasses{last: now.Add(-10 * time.Minute)}, nil, 503, "not ready: last successful pass 10m0s ago (more than 5m0s)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			readyHandler(tc.passes, fakeHealth{tc.health}, 5*time.Minute, func() time.Time { return now }).
				ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
			body, _ := io.ReadAll(rec.Body)
			if rec.Code != tc.code || !strings.HasPrefix(string(body), tc.body) {
				t.Fatalf("%d %q, want %d %q", rec.Code, body, tc.code, tc.body)
			}
		})
	}
}
