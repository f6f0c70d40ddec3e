package mlflow

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jarcoal/httpmock"
)

// steppedClock is a clock the limiter tests move by hand.
type steppedClock struct{ t time.Time }

func (c *steppedClock) now() time.Time { return c.t }

// TestLimiterAdapts drives the limiter with answers of chosen speed: it holds its
// maximum while answers come as fast as before, cuts by a fifth when they slow down
// (once per interval, never below 1), halves on overload, and climbs back one request
// per limit's worth of fast answers.
func TestLimiterAdapts(t *testing.T) {
	const fast, slow = 10 * time.Millisecond, 50 * time.Millisecond
	type step struct {
		took       time.Duration
		overloaded bool
		advance    time.Duration // clock moved before the answer
		want       int
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"fast answers keep the maximum", []step{{fast, false, 0, 8}, {fast, false, 0, 8}, {fast, false, time.Second, 8}}},
		{"a slow answer cuts by a fifth", []step{{fast, false, 0, 8}, {slow, false, time.Second, 6}}},
		{"slow answers of one crowd cut once", []step{{fast, false, 0, 8}, {slow, false, time.Second, 6}, {slow, false, 0, 6}, {slow, false, 0, 6}}},
		{"slow answers over time cut down to 1", []step{{fast, false, 0, 8},
			{slow, false, time.Second, 6}, {slow, false, time.Second, 5}, {slow, false, time.Second, 4}, {slow, false, time.Second, 3},
			{slow, false, time.Second, 2}, {slow, false, time.Second, 2}, {slow, false, time.Second, 1}, {slow, false, time.Second, 1}}},
		{"overload halves", []step{{fast, true, time.Second, 4}, {fast, true, time.Second, 2}, {fast, true, time.Second, 1}, {fast, true, time.Second, 1}}},
		{"the first answer of an endpoint is never slow", []step{{slow, false, time.Second, 8}}},
		{"fast answers climb back", []step{{fast, true, time.Second, 4}, {fast, false, 0, 4}, {fast, false, 0, 4}, {fast, false, 0, 4}, {fast, false, 0, 4}, {fast, false, 0, 5}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := &steppedClock{t: time.Unix(1e9, 0)}
			var observed []int
			l := newLimiter(8, func(n int) { observed = append(observed, n) })
			l.now = clock.now
			for i, s := range tt.steps {
				if err := l.acquire(context.Background()); err != nil {
					t.Fatal(err)
				}
				clock.t = clock.t.Add(s.advance)
				l.release("runs/get", s.took, s.overloaded)
				if got := l.Limit(); got != s.want {
					t.Fatalf("step %d: limit %d, want %d", i, got, s.want)
				}
			}
			if last := observed[len(observed)-1]; last != l.Limit() {
				t.Errorf("observer last told %d, limit is %d", last, l.Limit())
			}
		})
	}
}

// TestLimiterHoldsRequestsBeyondTheLimit: with the limit reached, the next request waits
// for one to end; one whose context ends while waiting gives its place up.
func TestLimiterHoldsRequestsBeyondTheLimit(t *testing.T) {
	l := newLimiter(2, nil)
	ctx := context.Background()
	for range 2 {
		if err := l.acquire(ctx); err != nil {
			t.Fatal(err)
		}
	}
	cancelled, cancel := context.WithCancel(ctx)
	gaveUp := make(chan error)
	go func() { gaveUp <- l.acquire(cancelled) }()
	got := make(chan struct{})
	go func() {
		if err := l.acquire(ctx); err == nil {
			close(got)
		}
	}()
	cancel()
	if err := <-gaveUp; err == nil {
		t.Fatal("a waiting request whose context ended was let through")
	}
	select {
	case <-got:
		t.Fatal("a third request went through while two were in flight")
	case <-time.After(50 * time.Millisecond):
	}
	l.release("x", time.Millisecond, false)
	select {
	case <-got:
	case <-time.After(time.Minute):
		t.Fatal("the waiting request was not let through when one ended")
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.inflight != 2 || len(l.waiters) != 0 {
		t.Fatalf("inflight %d, waiters %d; want 2 and 0", l.inflight, len(l.waiters))
	}
}

// limitRecorder records the limits a client reports.
type limitRecorder struct {
	mu     sync.Mutex
	limits []int
}

func (r *limitRecorder) ObserveMLflowRequest(string, string, time.Duration) {}
func (r *limitRecorder) ObserveMLflowInflightLimit(n int) {
	r.mu.Lock()
	r.limits = append(r.limits, n)
	r.mu.Unlock()
}

// TestClientBacksOffOn429: a server answering 429 to a crowd of requests brings the
// client's limit down, and the requests still succeed once it answers again; the
// observer is told each new limit. Never more requests are in flight than the limit
// allowed when they started.
func TestClientBacksOffOn429(t *testing.T) {
	rec := &limitRecorder{}
	c, mt := mockClient(t, Options{MaxRetries: 5, MaxInFlight: 16, Observer: rec})
	var calls, inflight, peak atomic.Int32
	mt.RegisterResponder(http.MethodGet, mockURI+"/api/2.0/mlflow/model-versions/get", func(req *http.Request) (*http.Response, error) {
		n := inflight.Add(1)
		defer inflight.Add(-1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		time.Sleep(2 * time.Millisecond)
		if calls.Add(1) <= 20 {
			return httpmock.NewStringResponse(429, `{"error_code":"RESOURCE_EXHAUSTED","message":"slow down"}`), nil
		}
		return httpmock.NewStringResponse(200, versionJSON), nil
	})
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			if _, err := c.GetModelVersion(context.Background(), "m", "3"); err != nil {
				t.Errorf("GetModelVersion: %v", err)
			}
		})
	}
	wg.Wait()
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.limits) < 2 || rec.limits[0] != 16 || rec.limits[1] != 8 {
		t.Fatalf("limits reported %v, want 16 then 8 after the first 429s", rec.limits)
	}
	if p := peak.Load(); p > 16 {
		t.Fatalf("%d requests in flight at once, more than MaxInFlight 16", p)
	}
}
