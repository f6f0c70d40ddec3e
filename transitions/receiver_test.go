package transitions

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelgate/modelgate/mlflow"
)

var hookSecret = []byte("s3cret")

type nudges struct {
	mu   sync.Mutex
	list []string
}

func (n *nudges) Nudge(model, version string) {
	n.mu.Lock()
	n.list = append(n.list, model+"/"+version)
	n.mu.Unlock()
}

func (n *nudges) NudgeAlias(model, alias string) {
	n.mu.Lock()
	n.list = append(n.list, model+"@"+alias)
	n.mu.Unlock()
}

type results struct {
	mu   sync.Mutex
	list []string
}

func (r *results) WebhookDelivery(result string) {
	r.mu.Lock()
	r.list = append(r.list, result)
	r.mu.Unlock()
}

var fixedNow = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func receiver(t testing.TB) (*WebhookReceiver, *nudges, *results) {
	t.Helper()
	n, res := &nudges{}, &results{}
	h, err := NewWebhookReceiver(WebhookOptions{Secret: hookSecret, Nudger: n, Recorder: res, Clock: func() time.Time { return fixedNow }, MaxBody: 4096})
	if err != nil {
		t.Fatal(err)
	}
	return h, n, res
}

// delivery builds a request as MLflow sends it (mlflow/webhooks/delivery.py).
func delivery(id string, ts time.Time, body string, secret []byte) *http.Request {
	req := httptest.NewRequest(http.MethodPost, "/webhooks/mlflow", strings.NewReader(body))
	stamp := strconv.FormatInt(ts.Unix(), 10)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(mlflow.HeaderDeliveryID, id)
	req.Header.Set(mlflow.HeaderTimestamp, stamp)
	req.Header.Set(mlflow.HeaderSignature, mlflow.SignDelivery(secret, id, stamp, []byte(body)))
	return req
}

const created = `{"entity": "model_version", "action": "created", "timestamp": "2026-11-25T12:00:00.080217+00:00", "data": {"name": "credit", "version": "3", "source": "models:/m-1", "run_id": null, "tags": {}, "description": null}}`

func tagEvent(action, key string) string {
	return `{"entity": "model_version_tag", "action": "` + action + `", "timestamp": "2026-11-25T12:00:00+00:00", "data": {"name": "credit", "version": "3", "key": "` + key + `", "value": "x"}}`
}

func TestWebhookDeliveries(t *testing.T) {
	for _, tc := range []struct {
		name   string
		req    func() *http.Request
		code   int
		result string
		nudged bool
	}{
		{"a new version", func() *http.Request { return delivery("d1", fixedNow, created, hookSecret) }, 202, "accepted", true},
		{"a vote", func() *http.Request {
			return delivery("d2", fixedNow, tagEvent("set", "modelgate.approve.alice"), hookSecret)
		}, 202, "accepted", true},
		{"a vote withdrawn", func() *http.Request {
			return delivery("d3", fixedNow, tagEvent("deleted", "modelgate.approve.alice"), hookSecret)
		}, 202, "accepted", true},
		{"a rollback request", func() *http.Request { return delivery("d4", fixedNow, tagEvent("set", TagRollback), hookSecret) }, 202, "accepted", true},
		{"an evidence tag", func() *http.Request { return delivery("d5", fixedNow, tagEvent("set", "security_scan"), hookSecret) }, 202, "accepted", true},
		{"a tag modelgate wrote itself", func() *http.Request { return delivery("d6", fixedNow, tagEvent("set", TagStatus), hookSecret) }, 200, "ignored", false},
		{"a prompt version", func() *http.Request {
			return delivery("d7", fixedNow, `{"entity": "prompt_version", "action": "created", "timestamp": "t", "data": {"name": "p", "version": "1"}}`, hookSecret)
		}, 200, "ignored", false},
		{"an alias", func() *http.Request {
			return delivery("d8", fixedNow, `{"entity": "model_version_alias", "action": "created", "timestamp": "t", "data": {"name": "credit", "alias": "champion", "version": "3"}}`, hookSecret)
		}, 202, "accepted", true},
		{"a timestamp 4 minutes old (MLflow's retries)", func() *http.Request { return delivery("d9", fixedNow.Add(-4*time.Minute), created, hookSecret) }, 202, "accepted", true},
		{"the wrong secret", func() *http.Request { return delivery("e1", fixedNow, created, []byte("other")) }, 401, "bad_signature", false},
		{"a modified body", func() *http.Request {
			req := delivery("e2", fixedNow, created, hookSecret)
			req.Body = readCloser(strings.Replace(created, `"3"`, `"4"`, 1))
			return req
		}, 401, "bad_signature", false},
		{"a stale timestamp", func() *http.Request { return delivery("e3", fixedNow.Add(-6*time.Minute), created, hookSecret) }, 400, "stale", false},
		{"a timestamp from the future", func() *http.Request { return delivery("e4", fixedNow.Add(6*time.Minute), created, hookSecret) }, 400, "stale", false},
		{"no signature", func() *http.Request {
			req := delivery("e5", fixedNow, created, hookSecret)
			req.Header.Del(mlflow.HeaderSignature)
			return req
		}, 401, "bad_signature", false},
		{"an oversized body", func() *http.Request { return delivery("e6", fixedNow, created+strings.Repeat(" ", 5000), hookSecret) }, 413, "too_large", false},
		{"a signed body that is not JSON", func() *http.Request { return delivery("e7", fixedNow, "not json", hookSecret) }, 400, "malformed", false},
		{"a version event naming no version", func() *http.Request {
			return delivery("e8", fixedNow, `{"entity": "model_version", "action": "created", "data": {"name": "credit"}}`, hookSecret)
		}, 400, "malformed", false},
		{"GET", func() *http.Request { return httptest.NewRequest(http.MethodGet, "/webhooks/mlflow", nil) }, 405, "malformed", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, n, res := receiver(t)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, tc.req())
			if rec.Code != tc.code {
				t.Fatalf("status %d, want %d (%s)", rec.Code, tc.code, rec.Body)
			}
			if len(res.list) != 1 || res.list[0] != tc.result {
				t.Fatalf("recorded %v, want [%s]", res.list, tc.result)
			}
			if got := len(n.list) == 1; got != tc.nudged {
				t.Fatalf("nudged %v, want %v", n.list, tc.nudged)
			}
		})
	}
}

// countingBody counts the bytes read from it and can hold readers back.
type countingBody struct {
	read atomic.Int64
	hold chan struct{} // nil: no holding
	r    *strings.Reader
}

func (c *countingBody) Read(p []byte) (int, error) {
	if c.hold != nil {
		<-c.hold
	}
	n, err := c.r.Read(p)
	c.read.Add(int64(n))
	return n, err
}
func (c *countingBody) Close() error { return nil }

// TestUnsignedBodiesAreNotRead: a request without MLflow's signature headers, or with a
// stale timestamp, is refused before a byte of its body is read (300 connections of 1 MiB
// each took the RSS from 19 to 370 MB when bodies were read first).
func TestUnsignedBodiesAreNotRead(t *testing.T) {
	for _, tc := range []struct {
		name  string
		strip func(*http.Request)
		code  int
	}{
		{"no headers", func(r *http.Request) { r.Header = http.Header{} }, 401},
		{"a garbage signature", func(r *http.Request) { r.Header.Set(mlflow.HeaderSignature, "sha1=abc") }, 401},
		{"a stale timestamp", func(r *http.Request) { r.Header.Set(mlflow.HeaderTimestamp, "1000") }, 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, _, _ := receiver(t)
			req := delivery("x", fixedNow, created, hookSecret)
			body := &countingBody{r: strings.NewReader(strings.Repeat("x", 1<<20))}
			req.Body = body
			tc.strip(req)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tc.code || body.read.Load() != 0 {
				t.Fatalf("status %d, %d body bytes read; want %d and none", rec.Code, body.read.Load(), tc.code)
			}
		})
	}
}

// TestLargestRealDeliveryFits: a large real delivery, a new version with a 5,000-character
// description and eight tags at MLflow's limits (250-character keys, 5,000-character
// values), is under the default 64 KiB cap. (A version registered with more such tags is
// refused with 413; MLflow does not retry it, and the next poll finds the version.)
func TestLargestRealDeliveryFits(t *testing.T) {
	n, res := &nudges{}, &results{}
	h, err := NewWebhookReceiver(WebhookOptions{Secret: hookSecret, Nudger: n, Recorder: res, Clock: func() time.Time { return fixedNow }})
	if err != nil {
		t.Fatal(err)
	}
	tags := map[string]string{}
	for i := range 8 {
		tags[fmt.Sprintf("tag_%d_%s", i, strings.Repeat("k", 240))] = strings.Repeat("v", 5000)
	}
	data, _ := json.Marshal(map[string]any{"name": "credit", "version": "3", "source": "models:/m-1", "run_id": nil,
		"tags": tags, "description": strings.Repeat("d", 5000)})
	body := `{"entity": "model_version", "action": "created", "timestamp": "2026-11-25T12:00:00+00:00", "data": ` + string(data) + `}`
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, delivery("big", fixedNow, body, hookSecret))
	if rec.Code != 202 || len(n.list) != 1 {
		t.Fatalf("a %d-byte delivery: status %d (%s)", len(body), rec.Code, rec.Body)
	}
	t.Logf("the largest delivery is %d bytes", len(body))
}

// TestDeliveriesAreBounded: beyond MaxInFlight deliveries at once, the answer is 429 with
// Retry-After (MLflow retries it), not another goroutine holding a body.
func TestDeliveriesAreBounded(t *testing.T) {
	n, res := &nudges{}, &results{}
	h, err := NewWebhookReceiver(WebhookOptions{Secret: hookSecret, Nudger: n, Recorder: res, Clock: func() time.Time { return fixedNow }, MaxInFlight: 2})
	if err != nil {
		t.Fatal(err)
	}
	hold := make(chan struct{})
	var wg sync.WaitGroup
	var started []*countingBody
	for i := range 2 {
		req := delivery(fmt.Sprint("slow", i), fixedNow, created, hookSecret)
		body := &countingBody{r: strings.NewReader(created), hold: hold}
		req.Body = body
		started = append(started, body)
		wg.Add(1)
		go func() { defer wg.Done(); h.ServeHTTP(httptest.NewRecorder(), req) }()
	}
	// Wait until both hold a slot (they block reading their bodies).
	waitUntil(t, "the slow deliveries to start", func() bool { return len(h.inFlight) >= 2 })
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, delivery("third", fixedNow, created, hookSecret))
	if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("third delivery: %d %v, want 429 with Retry-After", rec.Code, rec.Header())
	}
	close(hold)
	wg.Wait()
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, delivery("fourth", fixedNow, created, hookSecret))
	if rec.Code != http.StatusAccepted {
		t.Fatalf("after the slow ones: %d", rec.Code)
	}
}

// TestRefusalLogsAreRateLimited: 3,000 bad signatures write a handful of warnings, not
// 3,000; the counter has every one.
func TestRefusalLogsAreRateLimited(t *testing.T) {
	var logs strings.Builder
	now := fixedNow
	n, res := &nudges{}, &results{}
	h, err := NewWebhookReceiver(WebhookOptions{Secret: hookSecret, Nudger: n, Recorder: res, Clock: func() time.Time { return now },
		Logger: slog.New(slog.NewTextHandler(&syncWriter{b: &logs}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3000 {
		if i == 1500 {
			now = now.Add(11 * time.Second) // one more warning per period, with the count since
		}
		h.ServeHTTP(httptest.NewRecorder(), delivery(fmt.Sprint("bad", i), now, created, []byte("wrong")))
	}
	if w := strings.Count(logs.String(), "level=WARN"); w != 2 || !strings.Contains(logs.String(), "refused_since_last_warning=1499") {
		t.Fatalf("%d warnings for 3,000 refusals:\n%s", w, logs.String())
	}
	if len(res.list) != 3000 {
		t.Fatalf("%d counted, want 3000", len(res.list))
	}
}

func readCloser(s string) *bodyReader { return &bodyReader{strings.NewReader(s)} }

type bodyReader struct{ *strings.Reader }

func (bodyReader) Close() error { return nil }

func TestReplayedDeliveryIsDropped(t *testing.T) {
	h, n, res := receiver(t)
	for range 3 { // MLflow's retries resend the very same request
		h.ServeHTTP(httptest.NewRecorder(), delivery("same-id", fixedNow, created, hookSecret))
	}
	if len(n.list) != 1 || strings.Join(res.list, ",") != "accepted,duplicate,duplicate" {
		t.Fatalf("nudges %v, results %v", n.list, res.list)
	}
}

func TestRecentIDsIsBounded(t *testing.T) {
	r := newRecentIDs(3)
	for _, id := range []string{"a", "b", "c", "d"} {
		if !r.add(id) {
			t.Fatalf("%s reported as seen", id)
		}
	}
	if len(r.ids) != 3 || !r.add("a") || r.add("d") {
		t.Fatalf("ids %v: the oldest must be forgotten, the newest kept", r.ids)
	}
}

func TestNudgesCoalesce(t *testing.T) {
	scenario(t, basePolicy, func(f *fixture) { nudgesCoalesce(f.t, f) }, countsRequests)
}

func nudgesCoalesce(t *testing.T, f *fixture) {
	rec := f.reconciler(f.client)
	v := f.create(good(f.model))
	before := f.reqs.snapshot()
	// A burst of events for one version: created, then tags.
	for range 5 {
		rec.Nudge(f.model, v.Version)
	}
	if err := rec.RunNudged(f.ctx); err != nil {
		t.Fatal(err)
	}
	after := f.reqs.snapshot()
	if n := after["model-versions/get"] - before["model-versions/get"]; n != 1 {
		t.Fatalf("%d reads of the version for 5 nudges, want 1", n)
	}
	f.wantStatus(v.Version, StatusPromoted)
	if after["model-versions/search"] != before["model-versions/search"] {
		t.Fatal("a nudged pass searched the registry")
	}
}

// FuzzWebhookHandler: whatever arrives, the receiver answers without panicking and never
// with a 5xx, and it nudges only for correctly signed deliveries.
func FuzzWebhookHandler(f *testing.F) {
	f.Add("d1", int64(0), created, true)
	f.Add("d2", int64(-400), created, true)
	f.Add("", int64(0), "{}", true)
	f.Add("d3", int64(0), `{"entity":"model_version","action":"created","data":{"name":"m","version":1}}`, true)
	f.Add("d4", int64(0), tagEvent("set", "modelgate.approve."), false)
	f.Fuzz(func(t *testing.T, id string, skew int64, body string, sign bool) {
		h, n, _ := receiver(t)
		secret := hookSecret
		if !sign {
			secret = []byte("wrong")
		}
		req := delivery(id, fixedNow.Add(time.Duration(skew)*time.Second), body, secret)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("status %d for %q", rec.Code, body)
		}
		if len(n.list) > 0 && (!sign || id == "") {
			t.Fatalf("nudged for an unsigned delivery")
		}
	})
}
