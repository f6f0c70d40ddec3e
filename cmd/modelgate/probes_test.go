package main

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
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
			readyHandler(fakeHealth{tc.health}, soloReadiness{tc.passes, 5 * time.Minute}, func() time.Time { return now }, "").
				ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
			body, _ := io.ReadAll(rec.Body)
			if rec.Code != tc.code || !strings.HasPrefix(string(body), tc.body) {
				t.Fatalf("%d %q, want %d %q", rec.Code, body, tc.code, tc.body)
			}
		})
	}
}

type countingHealth struct{ n atomic.Int64 }

func (c *countingHealth) Health(context.Context) error { c.n.Add(1); return nil }

// TestReadyzAsksMLflowOncePerTTL: 500 calls of the unauthenticated /readyz make one
// health request to MLflow, not 500.
func TestReadyzAsksMLflowOncePerTTL(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	inner := &countingHealth{}
	health := &cachedHealth{next: inner, ttl: 2 * time.Second, now: func() time.Time { return now }}
	h := readyHandler(health, soloReadiness{fakePasses{last: now}, time.Minute}, func() time.Time { return now }, "")
	for range 500 {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/readyz", nil))
	}
	if n := inner.n.Load(); n != 1 {
		t.Fatalf("%d health requests for 500 /readyz calls", n)
	}
	now = now.Add(3 * time.Second)
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/readyz", nil))
	if n := inner.n.Load(); n != 2 {
		t.Fatalf("%d health requests after the TTL, want 2", n)
	}
}

// TestSlowClientsAreCutOff: a client that sends its request a byte at a time is
// disconnected by the server's timeouts (three such clients were held for over 75 s).
func TestSlowClientsAreCutOff(t *testing.T) {
	logs := &syncBuffer{}
	d, code := newDaemon(keyed([]string{"MLFLOW_TRACKING_URI=http://127.0.0.1:1", "MODELGATE_POLICY=../../examples/modelgate.yaml",
		"SLACK_WEBHOOK_URL=http://127.0.0.1:1/x", "MODELGATE_WEBHOOK_SECRET=s", "MLFLOW_HTTP_REQUEST_MAX_RETRIES=0"}), false, false, io.Discard, logs)
	if d == nil {
		t.Fatalf("exit %d: %s", code, logs)
	}
	d.limits = serverLimits{readHeader: 300 * time.Millisecond, read: 600 * time.Millisecond, write: time.Second, idle: time.Second}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() { done <- d.serve(ctx, ln, io.Discard) }()
	defer func() { cancel(); <-done }()

	for _, tc := range []struct{ at, req string }{
		{"", "POST /webhooks/mlflow HTTP/1.1\r\nHost: x\r\nX-Trickle: " + strings.Repeat("a", 200)},             // headers never end
		{"POST /webhooks/mlflow HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n", strings.Repeat("b", 200)}, // nor does the body
	} {
		conn, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Write([]byte(tc.at)); err != nil {
			t.Fatal(err)
		}
		req := tc.req
		closed := make(chan struct{})
		go func() { _, _ = io.Copy(io.Discard, conn); close(closed) }() // returns when the server hangs up
		start := time.Now()
	trickle:
		for i := 0; i < len(req); i++ {
			select {
			case <-closed:
				break trickle
			case <-time.After(100 * time.Millisecond):
				if _, err := conn.Write([]byte{req[i]}); err != nil {
					break trickle
				}
			}
		}
		select {
		case <-closed:
			t.Logf("cut off after %s", time.Since(start).Round(10*time.Millisecond))
		case <-time.After(time.Minute):
			t.Fatalf("a client sending a byte every 100ms was still connected after a minute: %q", tc.at+req[:20])
		}
		conn.Close()
	}
}
