package mlflow

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jarcoal/httpmock"
)

// These tests cover what a real MLflow server cannot be made to do on demand: 5xx and
// 429 bursts, garbage and truncated bodies, the text and HTML pages of proxies and the
// basic-auth layer. Everything else is tested against the real server in
// integration_test.go.

const mockURI = "http://mlflow.test"

func mockClient(t *testing.T, opts Options) (*Client, *httpmock.MockTransport) {
	t.Helper()
	mt := httpmock.NewMockTransport()
	opts.TrackingURI = mockURI
	opts.Transport = mt
	if opts.BackoffFactor == 0 {
		opts.BackoffFactor = time.Millisecond
	}
	if opts.BackoffJitter == 0 {
		opts.BackoffJitter = time.Millisecond
	}
	c, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return c, mt
}

const versionJSON = `{"model_version":{"name":"m","version":"3","creation_timestamp":1700000000000,"current_stage":"None","status":"READY"}}`

// sequence answers each call with the next responder, repeating the last one.
func sequence(calls *atomic.Int32, rs ...httpmock.Responder) httpmock.Responder {
	return func(req *http.Request) (*http.Response, error) {
		n := int(calls.Add(1)) - 1
		if n >= len(rs) {
			n = len(rs) - 1
		}
		return rs[n](req)
	}
}

func status(code int, body string, header ...string) httpmock.Responder {
	return func(*http.Request) (*http.Response, error) {
		r := httpmock.NewStringResponse(code, body)
		for i := 0; i+1 < len(header); i += 2 {
			r.Header.Set(header[i], header[i+1])
		}
		return r, nil
	}
}

func TestRetriesTransientStatusThenSucceeds(t *testing.T) {
	for _, code := range []int{408, 429, 500, 502, 503, 504} {
		t.Run(http.StatusText(code), func(t *testing.T) {
			c, mt := mockClient(t, Options{MaxRetries: 3})
			var calls atomic.Int32
			mt.RegisterResponder(http.MethodGet, mockURI+"/api/2.0/mlflow/model-versions/get",
				sequence(&calls, status(code, `{"error_code":"TEMPORARILY_UNAVAILABLE","message":"busy"}`), status(code, "oops"), status(200, versionJSON)))
			mv, err := c.GetModelVersion(context.Background(), "m", "3")
			if err != nil {
				t.Fatalf("GetModelVersion: %v", err)
			}
			if mv.Version != "3" || calls.Load() != 3 {
				t.Fatalf("got version %q after %d calls, want 3 after 3 calls", mv.Version, calls.Load())
			}
		})
	}
}

func TestRetryAfterIsHonoured(t *testing.T) {
	c, mt := mockClient(t, Options{MaxRetries: 2})
	var calls atomic.Int32
	mt.RegisterResponder(http.MethodGet, mockURI+"/api/2.0/mlflow/model-versions/get",
		sequence(&calls, status(429, `{"error_code":"REQUEST_LIMIT_EXCEEDED","message":"slow down"}`, "Retry-After", "1"), status(200, versionJSON)))
	start := time.Now()
	if _, err := c.GetModelVersion(context.Background(), "m", "3"); err != nil {
		t.Fatal(err)
	}
	// The backoff without Retry-After would be ~1ms; only the header explains a wait.
	if waited := time.Since(start); waited < time.Second {
		t.Fatalf("retried after %s, want at least the 1s of Retry-After", waited)
	}
}

func TestRetryAfterBeyondDeadlineGivesUpAtOnce(t *testing.T) {
	c, mt := mockClient(t, Options{MaxRetries: 5})
	var calls atomic.Int32
	mt.RegisterResponder(http.MethodGet, mockURI+"/api/2.0/mlflow/model-versions/get",
		sequence(&calls, status(503, "maintenance", "Retry-After", "3600")))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := c.GetModelVersion(ctx, "m", "3")
	var e *Error
	if !errors.As(err, &e) || e.StatusCode != 503 {
		t.Fatalf("err = %v, want the 503 as *Error", err)
	}
	if calls.Load() != 1 {
		t.Fatalf("%d calls, want 1: waiting an hour cannot fit in the deadline", calls.Load())
	}
}

func TestGivesUpAfterConfiguredRetries(t *testing.T) {
	c, mt := mockClient(t, Options{MaxRetries: 2})
	var calls atomic.Int32
	mt.RegisterResponder(http.MethodGet, mockURI+"/api/2.0/mlflow/model-versions/get",
		sequence(&calls, status(503, `{"error_code":"TEMPORARILY_UNAVAILABLE","message":"db locked"}`)))
	_, err := c.GetModelVersion(context.Background(), "m", "3")
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("err = %v, want *Error", err)
	}
	if e.StatusCode != 503 || e.Code != "TEMPORARILY_UNAVAILABLE" || !strings.Contains(e.Error(), "gave up after 3 attempts") {
		t.Fatalf("err = %v", err)
	}
	if calls.Load() != 3 {
		t.Fatalf("%d calls, want 1 + 2 retries", calls.Load())
	}
}

func TestNoRetryOnClientErrors(t *testing.T) {
	for _, tc := range []struct {
		code int
		body string
		is   error
	}{
		{400, `{"error_code":"INVALID_PARAMETER_VALUE","message":"bad version"}`, ErrInvalidParameter},
		{400, `{"error_code":"RESOURCE_ALREADY_EXISTS","message":"exists"}`, ErrAlreadyExists},
		{401, `{"error_code":"UNAUTHENTICATED","message":"who are you"}`, ErrUnauthenticated},
		{403, `{"error_code":"PERMISSION_DENIED","message":"no"}`, ErrPermissionDenied},
		{404, `{"error_code":"RESOURCE_DOES_NOT_EXIST","message":"Model Version (name=m, version=3) not found"}`, ErrNotFound},
		{409, `{"error_code":"RESOURCE_CONFLICT","message":"conflict"}`, nil},
		{501, `{"error_code":"NOT_IMPLEMENTED","message":"no"}`, nil},
	} {
		t.Run(tc.body, func(t *testing.T) {
			c, mt := mockClient(t, Options{MaxRetries: 3})
			var calls atomic.Int32
			mt.RegisterResponder(http.MethodGet, mockURI+"/api/2.0/mlflow/model-versions/get", sequence(&calls, status(tc.code, tc.body)))
			_, err := c.GetModelVersion(context.Background(), "m", "3")
			var e *Error
			if !errors.As(err, &e) || e.StatusCode != tc.code {
				t.Fatalf("err = %v, want *Error with status %d", err, tc.code)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Fatalf("errors.Is(%v, %v) = false", err, tc.is)
			}
			if calls.Load() != 1 {
				t.Fatalf("%d calls, want 1", calls.Load())
			}
		})
	}
}

func TestCancelStopsRetrying(t *testing.T) {
	c, mt := mockClient(t, Options{MaxRetries: 7, BackoffFactor: time.Minute})
	ctx, cancel := context.WithCancel(context.Background())
	var calls atomic.Int32
	mt.RegisterResponder(http.MethodGet, mockURI+"/api/2.0/mlflow/model-versions/get",
		func(*http.Request) (*http.Response, error) {
			if calls.Add(1) == 2 { // cancel while the client waits a minute before the third try
				time.AfterFunc(50*time.Millisecond, cancel)
			}
			return httpmock.NewStringResponse(503, "busy"), nil
		})
	done := make(chan error, 1)
	go func() { _, err := c.GetModelVersion(ctx, "m", "3"); done <- err }()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("GetModelVersion did not return after its context was cancelled")
	}
	if calls.Load() != 2 {
		t.Fatalf("%d calls, want 2", calls.Load())
	}
}

// TestRetryWarnings: each attempt that will be retried is one warning naming the endpoint;
// an attempt ended by its own context (shutdown, a failed sibling write) is not.
func TestRetryWarnings(t *testing.T) {
	cases := []struct {
		name      string
		responder func(cancel context.CancelFunc) httpmock.Responder
		warnings  int
	}{
		{"two 503s then success", func(context.CancelFunc) httpmock.Responder {
			var calls atomic.Int32
			return sequence(&calls, status(503, "busy"), status(503, "busy"), status(200, versionJSON))
		}, 2},
		{"reset then success", func(context.CancelFunc) httpmock.Responder {
			var calls atomic.Int32
			return sequence(&calls, httpmock.NewErrorResponder(errors.New("connection reset by peer")), status(200, versionJSON))
		}, 1},
		{"cancelled by the caller", func(cancel context.CancelFunc) httpmock.Responder {
			return func(*http.Request) (*http.Response, error) {
				cancel()
				return nil, context.Canceled
			}
		}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			c, mt := mockClient(t, Options{MaxRetries: 3, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			mt.RegisterResponder(http.MethodGet, mockURI+"/api/2.0/mlflow/model-versions/get", tc.responder(cancel))
			_, _ = c.GetModelVersion(ctx, "m", "3")
			if n := strings.Count(logs.String(), "level=WARN"); n != tc.warnings {
				t.Fatalf("%d warnings, want %d:\n%s", n, tc.warnings, logs.String())
			}
			if tc.warnings > 0 && !strings.Contains(logs.String(), "endpoint=model-versions/get") {
				t.Fatalf("warning does not name the endpoint:\n%s", logs.String())
			}
		})
	}
}

// brokenBody fails mid-read, as a connection reset while the body streams does.
type brokenBody struct{ r io.Reader }

func (b *brokenBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err == io.EOF {
		return n, io.ErrUnexpectedEOF
	}
	return n, err
}
func (b *brokenBody) Close() error { return nil }

func TestTruncatedBodyIsRetried(t *testing.T) {
	c, mt := mockClient(t, Options{MaxRetries: 2})
	var calls atomic.Int32
	truncated := func(*http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}},
			Body: &brokenBody{strings.NewReader(versionJSON[:30])}}, nil
	}
	mt.RegisterResponder(http.MethodGet, mockURI+"/api/2.0/mlflow/model-versions/get",
		sequence(&calls, truncated, status(200, versionJSON[:40]), status(200, versionJSON)))
	mv, err := c.GetModelVersion(context.Background(), "m", "3")
	if err != nil || mv.Version != "3" {
		t.Fatalf("got %+v, %v; want version 3", mv, err)
	}
	if calls.Load() != 3 {
		t.Fatalf("%d calls, want 3 (cut-off body, half a JSON document, then the whole one)", calls.Load())
	}
}

// An HTML page with status 200 (a proxy's login page, another service) is not MLflow's
// API: one attempt, no retries (the probe saw 247 s of them), and an error that says
// what came back and what to check.
func TestHTMLAnswerIsNotRetried(t *testing.T) {
	c, mt := mockClient(t, Options{MaxRetries: 7})
	mt.RegisterResponder(http.MethodGet, mockURI+"/api/2.0/mlflow/model-versions/get",
		status(200, "<!doctype html><html><head><title>Sign in - Corp SSO</title></head><body>...</body></html>", "Content-Type", "text/html"))
	_, err := c.GetModelVersion(context.Background(), "m", "3")
	var notAPI *NotMLflowError
	if !errors.As(err, &notAPI) || !errors.Is(err, ErrNotMLflow) || errors.Is(err, ErrUnreachable) {
		t.Fatalf("err = %v, want a NotMLflowError", err)
	}
	for _, want := range []string{"model-versions/get", "HTTP 200", "HTML page: Sign in - Corp SSO", "MLFLOW_TRACKING_URI"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("err %q does not say %q", err, want)
		}
	}
	if n := mt.GetTotalCallCount(); n != 1 {
		t.Fatalf("%d attempts, want 1", n)
	}
}

// A huge answer is cut off at maxBody as it streams in: the client neither reads nor keeps
// more than that (the probe's 400 MB answer took the RSS to 1 GB).
func TestHugeAnswerIsCutOff(t *testing.T) {
	c, mt := mockClient(t, Options{MaxRetries: 3})
	var served atomic.Int64
	mt.RegisterResponder(http.MethodGet, mockURI+"/api/2.0/mlflow/model-versions/search", func(*http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}},
			Body: io.NopCloser(&endlessVersions{served: &served})}, nil
	})
	_, _, err := c.SearchModelVersionsPage(context.Background(), SearchOptions{}, "")
	if !errors.Is(err, ErrNotMLflow) || !strings.Contains(err.Error(), "larger than 64 MiB") {
		t.Fatalf("err = %v, want the answer refused as too large", err)
	}
	if n := served.Load(); n > maxBody+maxErrorBody+1 {
		t.Fatalf("read %d MiB of the answer, want at most %d", n>>20, maxBody>>20)
	}
	if n := mt.GetTotalCallCount(); n != 1 {
		t.Fatalf("%d attempts: an answer too large is not retried", n)
	}
}

// endlessVersions is a search answer that never ends.
type endlessVersions struct {
	served *atomic.Int64
	sent   bool
}

func (e *endlessVersions) Read(p []byte) (int, error) {
	chunk := `{"name":"m","version":"1","description":"` + strings.Repeat("x", 4000) + `"},`
	if !e.sent {
		chunk = `{"model_versions":[` + chunk
		e.sent = true
	}
	n := copy(p, chunk)
	e.served.Add(int64(n))
	return n, nil
}

// A server that hands out a new page token forever is followed for MaxPages pages, not
// forever (the probe saw 684 requests in 30 s and a pass that never ended).
func TestEndlessPagingStops(t *testing.T) {
	c, mt := mockClient(t, Options{MaxRetries: 0})
	var calls atomic.Int64
	mt.RegisterResponder(http.MethodGet, mockURI+"/api/2.0/mlflow/model-versions/search", func(*http.Request) (*http.Response, error) {
		n := calls.Add(1)
		return httpmock.NewStringResponse(200, fmt.Sprintf(`{"model_versions":[{"name":"m","version":"%d"}],"next_page_token":"t%d"}`, n, n)), nil
	})
	_, err := c.SearchModelVersions(context.Background(), SearchOptions{})
	if !errors.Is(err, ErrTooManyPages) || calls.Load() != MaxPages {
		t.Fatalf("err = %v after %d requests, want ErrTooManyPages after %d", err, calls.Load(), MaxPages)
	}
}

func TestNonJSONErrorBodiesSayWhatToFix(t *testing.T) {
	for _, tc := range []struct {
		name   string
		code   int
		body   string
		ctype  string
		is     error
		expect string
	}{
		{"flask 404 page", 404, "<!doctype html>\n<html lang=en>\n<title>404 Not Found</title>\n<h1>Not Found</h1>", "text/html; charset=utf-8", ErrNotFound, "MLFLOW_TRACKING_URI"},
		{"basic-auth 401", 401, "You are not authenticated. Please see https://www.mlflow.org/docs/latest/auth/index.html#authenticating-to-mlflow on how to authenticate.", "text/plain", ErrUnauthenticated, "MLFLOW_TRACKING_USERNAME"},
		{"basic-auth 403", 403, "Permission denied", "text/plain", ErrPermissionDenied, "MANAGE"},
		{"host header check", 403, "Invalid Host header - possible DNS rebinding attack detected", "text/plain", nil, "--allowed-hosts"},
		{"artifacts-only 503", 503, "Endpoint disabled due to the mlflow server running with `--artifacts-only`.", "text/plain", nil, "artifacts-only"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, mt := mockClient(t, Options{MaxRetries: 0, Username: "bob", Password: "hunter2"})
			mt.RegisterResponder(http.MethodGet, mockURI+"/api/2.0/mlflow/model-versions/get", status(tc.code, tc.body, "Content-Type", tc.ctype))
			_, err := c.GetModelVersion(context.Background(), "m", "3")
			var e *Error
			if !errors.As(err, &e) || e.StatusCode != tc.code {
				t.Fatalf("err = %v, want *Error %d", err, tc.code)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("errors.Is(%v, %v) = false", err, tc.is)
			}
			if tc.name == "host header check" && errors.Is(err, ErrPermissionDenied) {
				t.Errorf("a Host-header rejection is not a missing permission: %v", err)
			}
			if !strings.Contains(err.Error(), tc.expect) {
				t.Errorf("err = %q, want it to mention %q", err, tc.expect)
			}
			if strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "<h1>") {
				t.Errorf("err = %q leaks the password or raw HTML", err)
			}
		})
	}
}

func TestAuthorizationHeader(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
		want string
	}{
		{"basic wins over token", Options{Username: "alice", Password: "pw", Token: "tok"}, "Basic YWxpY2U6cHc="},
		{"bearer token", Options{Token: "tok"}, "Bearer tok"},
		{"username without password uses token", Options{Username: "alice", Token: "tok"}, "Bearer tok"},
		{"nothing", Options{}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, mt := mockClient(t, tc.opts)
			var got string
			mt.RegisterResponder(http.MethodGet, mockURI+"/api/2.0/mlflow/model-versions/get", func(r *http.Request) (*http.Response, error) {
				got = r.Header.Get("Authorization")
				return httpmock.NewStringResponse(200, versionJSON), nil
			})
			if _, err := c.GetModelVersion(context.Background(), "m", "3"); err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("Authorization = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestUnreachableServer(t *testing.T) {
	c, mt := mockClient(t, Options{MaxRetries: 2})
	var calls atomic.Int32
	mt.RegisterResponder(http.MethodGet, mockURI+"/api/2.0/mlflow/model-versions/get", func(*http.Request) (*http.Response, error) {
		calls.Add(1)
		return nil, errors.New("connection refused")
	})
	_, err := c.GetModelVersion(context.Background(), "m", "3")
	if !errors.Is(err, ErrUnreachable) || calls.Load() != 3 {
		t.Fatalf("err = %v after %d calls, want ErrUnreachable after 3", err, calls.Load())
	}
}

type countingObserver struct {
	calls atomic.Int32
	last  atomic.Value
}

func (o *countingObserver) ObserveMLflowRequest(endpoint, code string, _ time.Duration) {
	o.calls.Add(1)
	o.last.Store(endpoint + " " + code)
}

func TestObserverSeesEveryAttempt(t *testing.T) {
	obs := &countingObserver{}
	c, mt := mockClient(t, Options{MaxRetries: 2, Observer: obs})
	var calls atomic.Int32
	mt.RegisterResponder(http.MethodGet, `=~^http://mlflow.test/api/2.0/mlflow/logged-models/`,
		sequence(&calls, status(502, "bad gateway"), status(200, `{"model":{"info":{"model_id":"m-1"}}}`)))
	if _, err := c.GetLoggedModel(context.Background(), "m-1"); err != nil {
		t.Fatal(err)
	}
	if obs.calls.Load() != 2 || obs.last.Load() != "logged-models/{id} 200" {
		t.Fatalf("observer saw %d calls, last %v; want 2, logged-models/{id} 200", obs.calls.Load(), obs.last.Load())
	}
}

func TestBackoffMirrorsPythonClient(t *testing.T) {
	b := backoff{factor: 2 * time.Second, jitter: time.Second, max: 120 * time.Second}
	for _, tc := range []struct {
		attempt  int
		min, max time.Duration
	}{
		{0, 0, 0}, // urllib3 retries the first failure at once
		{1, 4 * time.Second, 5 * time.Second},
		{2, 8 * time.Second, 9 * time.Second},
		{5, 64 * time.Second, 65 * time.Second},
		{6, 120 * time.Second, 120 * time.Second},
		{70, 120 * time.Second, 120 * time.Second}, // no overflow
	} {
		got := b.wait(0, 0, tc.attempt, nil)
		if got < tc.min || got > tc.max {
			t.Errorf("attempt %d: wait %s, want within [%s, %s]", tc.attempt, got, tc.min, tc.max)
		}
	}
	resp := &http.Response{StatusCode: 429, Header: http.Header{"Retry-After": {"7"}}}
	if got := b.wait(0, 0, 3, resp); got != 7*time.Second {
		t.Errorf("with Retry-After 7: wait %s", got)
	}
	resp = &http.Response{StatusCode: 503, Header: http.Header{"Retry-After": {time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)}}}
	if got := b.wait(0, 0, 1, resp); got < 59*time.Minute {
		t.Errorf("with an HTTP-date Retry-After an hour ahead: wait %s", got)
	}
}

func TestEndpointName(t *testing.T) {
	for path, want := range map[string]string{
		"model-versions/search":            "model-versions/search",
		"logged-models":                    "logged-models",
		"logged-models/m-abc":              "logged-models/{id}",
		"logged-models/search":             "logged-models/search",
		"logged-models/m-abc/params":       "logged-models/{id}/params",
		"webhooks":                         "webhooks",
		"webhooks/0b5e2c1c-9f6a-4d1e/test": "webhooks/{id}/test",
	} {
		if got := endpointName(path); got != want {
			t.Errorf("endpointName(%q) = %q, want %q", path, got, want)
		}
	}
}

func TestParseTrackingURI(t *testing.T) {
	for _, tc := range []struct {
		in, errPart string
	}{
		{"http://127.0.0.1:5000", ""},
		{"https://mlflow.example.com/prefix/", ""},
		{"", "required"},
		{"file:///tmp/mlruns", "scheme \"file\""},
		{"databricks", "scheme"},
		{"http://", "no host"},
		{"https://bob:s3cret@mlflow.example.com", "MLFLOW_TRACKING_USERNAME"},
		{"http://s3cret@mlflow.example.com", "https://***@mlflow.example.com"[5:]}, // a token as the user name
		{"http://bob:pa#s3cret@host", "not a valid URL"},                           // url.Parse's error would quote part of it
		{"http://bob:s3cret@host:port", "not a valid URL"},
		{"http://h/?x=1", "query"},
	} {
		_, err := ParseTrackingURI(tc.in)
		switch {
		case tc.errPart == "" && err != nil:
			t.Errorf("%q: %v", tc.in, err)
		case tc.errPart != "" && (err == nil || !strings.Contains(err.Error(), tc.errPart)):
			t.Errorf("%q: err = %v, want it to contain %q", tc.in, err, tc.errPart)
		case err != nil && (strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), "bob")):
			t.Errorf("%q: error leaks a credential: %v", tc.in, err)
		}
	}
}

func TestFloatDecoding(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want float64
	}{
		{`0.93`, 0.93},
		{`-2`, -2},
		{`"NaN"`, math.NaN()},
		{`"Infinity"`, math.Inf(1)},
		{`"-Infinity"`, math.Inf(-1)},
		// The SQL store clamps infinities to the largest double on write.
		{`1.7976931348623157e+308`, math.Inf(1)},
		{`-1.7976931348623157e+308`, math.Inf(-1)},
	} {
		var f Float
		if err := f.UnmarshalJSON([]byte(tc.in)); err != nil {
			t.Fatalf("%s: %v", tc.in, err)
		}
		got := float64(f)
		if got != tc.want && !(math.IsNaN(got) && math.IsNaN(tc.want)) {
			t.Errorf("%s: got %v, want %v", tc.in, got, tc.want)
		}
	}
	var f Float
	if err := f.UnmarshalJSON([]byte(`"high"`)); err == nil {
		t.Error(`"high" decoded without error`)
	}
}

func TestLatestMetrics(t *testing.T) {
	got := LatestMetrics([]Metric{
		{Key: "acc", Value: 0.5, Step: 0, Timestamp: 10},
		{Key: "acc", Value: 0.7, Step: 2, Timestamp: 5},
		{Key: "acc", Value: 0.6, Step: 1, Timestamp: 50},
		{Key: "loss", Value: 0.3, Step: 0, Timestamp: 1},
		{Key: "loss", Value: 0.2, Step: 0, Timestamp: 2},
	})
	if got["acc"] != 0.7 || got["loss"] != 0.2 || len(got) != 2 {
		t.Fatalf("LatestMetrics = %v, want acc 0.7 (highest step), loss 0.2 (latest timestamp)", got)
	}
}

func TestModelVersionHelpers(t *testing.T) {
	mv := ModelVersion{Version: "12", Source: "models:/m-0123abc", Tags: Tags{PromptTag: "true"}}
	if id := mv.LoggedModelID(); id != "m-0123abc" {
		t.Errorf("LoggedModelID = %q", id)
	}
	if n, ok := mv.Number(); !ok || n != 12 {
		t.Errorf("Number = %d, %v", n, ok)
	}
	if !mv.IsPrompt() {
		t.Error("IsPrompt = false")
	}
	for _, src := range []string{"s3://bucket/model", "runs:/abc/model", "models:/credit/3", ""} {
		if id := (ModelVersion{Source: src}).LoggedModelID(); id != "" {
			t.Errorf("LoggedModelID(%q) = %q, want empty", src, id)
		}
	}
	if CompareVersions("9", "10") >= 0 || CompareVersions("10", "10") != 0 || CompareVersions("x", "1") >= 0 {
		t.Error("CompareVersions does not order numerically")
	}
}

// syncLog is a log sink safe for the client's goroutines.
type syncLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *syncLog) Write(p []byte) (int, error) { l.mu.Lock(); defer l.mu.Unlock(); return l.b.Write(p) }
func (l *syncLog) String() string              { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// TestHangingServerIsReportedAtOnce: a server that accepts and never answers is reported
// within SlowRequest, long before its 120 s timeout and retries end the request (the
// probe saw a whole pass, 8 attempts of 120 s, with nothing logged).
func TestHangingServerIsReportedAtOnce(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	logs := &syncLog{}
	c, err := New(Options{TrackingURI: srv.URL, Timeout: 120 * time.Second, MaxRetries: 7, SlowRequest: 300 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _, _ = c.GetModelVersion(ctx, "m", "1") }()
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(logs.String(), "level=WARN") {
		if time.Now().After(deadline) {
			t.Fatal("no warning a minute into a hanging request")
		}
		time.Sleep(10 * time.Millisecond) // paces a poll of a condition
	}
	if out := logs.String(); !strings.Contains(out, "endpoint=model-versions/get") || !strings.Contains(out, "has not answered") {
		t.Fatalf("the warning does not say which request timed out:\n%s", out)
	}
}
