package mlflow

import (
	"context"
	"net/http"
	"sync"
	"time"
)

// limiter adapts how many requests a Client keeps in flight to what the server
// sustains, between 1 and a maximum (MODELGATE_CONCURRENCY): additive increase while
// answers come as fast as before, multiplicative decrease when they slow down or the
// server says it is overloaded. This is TCP's AIMD, as Netflix's concurrency-limits
// applies it to RPCs.
//
// "As fast as before" is per endpoint: each keeps the fastest time it answered in
// recently (its floor, which drifts up slowly so that a server that became slower for
// good is not held to its old best). An answer slower than four times the floor means
// requests queue in the server (a single-worker MLflow, SQLite's write lock): the limit is
// cut by a fifth. Four, not two: a server with several workers answers a crowd of
// requests twice as slowly as a lone one while it still serves them all in parallel
// (measured: 2x held the 4-worker backfill to fewer requests in flight than the server
// sustains, 16% slower than the bare requests). A 429, 503 or 504, or no answer at all,
// halves it. Cuts come at most once per floor-time, so that a burst of slow answers to
// the same crowd of requests counts once.
type limiter struct {
	max      int
	observe  func(limit int) // may be nil
	mu       sync.Mutex
	limit    float64
	inflight int
	waiters  []chan struct{}
	floors   map[string]time.Duration
	lastCut  time.Time
	now      func() time.Time
}

const (
	slowFactor     = 4.0  // an answer this many times its endpoint's floor is slow
	slowCut        = 0.8  // the limit after a slow answer, as a fraction
	overloadCut    = 0.5  // after a 429, 503, 504 or no answer
	floorDrift     = 1.01 // each answer raises its endpoint's floor by 1%, unless faster
	minCutInterval = 50 * time.Millisecond
)

func newLimiter(max int, observe func(int)) *limiter {
	l := &limiter{max: max, limit: float64(max), observe: observe, floors: map[string]time.Duration{}, now: time.Now}
	if observe != nil {
		observe(max)
	}
	return l
}

// acquire waits for room for one more request, or for ctx to end.
func (l *limiter) acquire(ctx context.Context) error {
	l.mu.Lock()
	if l.inflight < l.current() {
		l.inflight++
		l.mu.Unlock()
		return nil
	}
	ready := make(chan struct{})
	l.waiters = append(l.waiters, ready)
	l.mu.Unlock()
	select {
	case <-ready:
		return nil // release handed its slot over
	case <-ctx.Done():
		l.mu.Lock()
		defer l.mu.Unlock()
		for i, w := range l.waiters {
			if w == ready {
				l.waiters = append(l.waiters[:i], l.waiters[i+1:]...)
				return ctx.Err()
			}
		}
		// Handed a slot just as ctx ended: give it back.
		l.inflight--
		l.wake()
		return ctx.Err()
	}
}

// current is the limit as a number of requests. Callers hold mu.
func (l *limiter) current() int { return max(1, int(l.limit)) }

// wake hands free slots to waiters, oldest first. Callers hold mu.
func (l *limiter) wake() {
	for len(l.waiters) > 0 && l.inflight < l.current() {
		l.inflight++
		close(l.waiters[0])
		l.waiters = l.waiters[1:]
	}
}

// release ends a request: how long it took, and whether the server said it is
// overloaded (or did not answer).
func (l *limiter) release(endpoint string, took time.Duration, overloaded bool) {
	l.mu.Lock()
	before := l.current()
	l.inflight--
	floor, known := l.floors[endpoint]
	switch {
	case overloaded:
		l.cut(overloadCut, floor)
	case known && float64(took) > slowFactor*float64(floor):
		l.cut(slowCut, floor)
	default:
		l.limit = min(float64(l.max), l.limit+1/l.limit)
	}
	if !overloaded {
		if !known || took < floor {
			l.floors[endpoint] = took
		} else {
			l.floors[endpoint] = time.Duration(float64(floor) * floorDrift)
		}
	}
	after := l.current()
	l.wake()
	l.mu.Unlock()
	if after != before && l.observe != nil {
		l.observe(after)
	}
}

// cut lowers the limit by a factor, once per interval. Callers hold mu.
func (l *limiter) cut(factor float64, floor time.Duration) {
	now := l.now()
	if now.Sub(l.lastCut) < max(minCutInterval, floor) {
		return
	}
	l.lastCut = now
	l.limit = max(1, l.limit*factor)
}

// Limit reports the current limit.
func (l *limiter) Limit() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.current()
}

// limited is the transport that holds each attempt to the limiter.
type limited struct {
	next http.RoundTripper
	lim  *limiter
}

func (t limited) RoundTrip(req *http.Request) (*http.Response, error) {
	if err := t.lim.acquire(req.Context()); err != nil {
		return nil, err
	}
	name, _ := req.Context().Value(endpointKey{}).(string)
	start := time.Now()
	resp, err := t.next.RoundTrip(req)
	overloaded := req.Context().Err() == nil && (err != nil ||
		resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable || resp.StatusCode == http.StatusGatewayTimeout)
	t.lim.release(name, time.Since(start), overloaded)
	return resp, err
}
