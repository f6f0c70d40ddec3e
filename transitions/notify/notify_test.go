package notify

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jarcoal/httpmock"

	"github.com/modelgate/modelgate/rules"
	"github.com/modelgate/modelgate/transitions"
)

const hookURL = "https://hooks.example.com/services/T000/B000/SECRET"

// results counts notification outcomes by format and result.
type results struct {
	mu sync.Mutex
	n  map[string]int
}

func (r *results) Notification(format, result string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.n == nil {
		r.n = map[string]int{}
	}
	r.n[format+" "+result]++
}

func (r *results) get(key string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n[key]
}

// newNotifier builds a notifier posting to hookURL through its own mock transport.
func newNotifier(t *testing.T, format string, opts Options) (*Notifier, *httpmock.MockTransport, *results) {
	t.Helper()
	mock := httpmock.NewMockTransport()
	res := &results{}
	opts.LookupEnv = func(k string) (string, bool) { return hookURL, k == "HOOK" }
	opts.Transport = mock
	opts.Recorder = res
	opts.RetryWaitMin = or(opts.RetryWaitMin, 10*time.Millisecond)
	opts.RetryWaitMax = or(opts.RetryWaitMax, 20*time.Millisecond)
	n, err := New([]rules.Notification{{URLEnv: "HOOK", Format: format, Events: []rules.Event{rules.EventPromoted, rules.EventRejected}}}, opts)
	if err != nil {
		t.Fatal(err)
	}
	return n, mock, res
}

func notice(model string) transitions.Notice {
	return transitions.Notice{Event: rules.EventPromoted, Model: model, Version: "3", Gate: "credit-risk",
		Status: transitions.StatusPromoted, Summary: "approved by alice", By: "alice", At: time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)}
}

// sendAll queues notices, runs the notifier until they are out, and stops it.
func sendAll(n *Notifier, notices ...transitions.Notice) {
	for _, x := range notices {
		n.Notify(x)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // Run drains what is queued, then returns
	n.Run(ctx)
}

func TestRetriesUntilDelivered(t *testing.T) {
	n, mock, res := newNotifier(t, "json", Options{})
	calls := 0
	mock.RegisterResponder(http.MethodPost, hookURL, func(*http.Request) (*http.Response, error) {
		calls++
		if calls < 3 {
			return httpmock.NewStringResponse(http.StatusBadGateway, "busy"), nil
		}
		return httpmock.NewStringResponse(http.StatusOK, "ok"), nil
	})
	sent := 0
	x := notice("credit-scoring")
	x.Sent = func() { sent++ }
	sendAll(n, x)
	if calls != 3 || res.get("json sent") != 1 || res.get("json failed") != 0 || sent != 1 {
		t.Fatalf("%d calls, results %v, reported sent %d times; want 3 calls and one notification sent", calls, res.n, sent)
	}
}

func TestGivesUpAfterItsRetries(t *testing.T) {
	n, mock, res := newNotifier(t, "json", Options{Retries: 2})
	mock.RegisterResponder(http.MethodPost, hookURL, httpmock.NewStringResponder(http.StatusServiceUnavailable, "down"))
	x := notice("credit-scoring")
	x.Sent = func() { t.Error("a notice that failed was reported sent: it would never be sent again") }
	sendAll(n, x)
	if got := mock.GetTotalCallCount(); got != 3 || res.get("json failed") != 1 {
		t.Fatalf("%d calls, results %v; want 1 attempt + 2 retries, counted as failed", got, res.n)
	}
}

func TestRetryAfterIsHonoured(t *testing.T) {
	n, mock, res := newNotifier(t, "json", Options{})
	var times []time.Time
	mock.RegisterResponder(http.MethodPost, hookURL, func(*http.Request) (*http.Response, error) {
		times = append(times, time.Now())
		if len(times) == 1 {
			r := httpmock.NewStringResponse(http.StatusTooManyRequests, "slow down")
			r.Header.Set("Retry-After", "1")
			return r, nil
		}
		return httpmock.NewStringResponse(http.StatusOK, "ok"), nil
	})
	sendAll(n, notice("credit-scoring"))
	if len(times) != 2 || res.get("json sent") != 1 {
		t.Fatalf("%d calls, results %v", len(times), res.n)
	}
	// A lower bound only: the retry waits for Retry-After, not the 10ms backoff.
	if gap := times[1].Sub(times[0]); gap < time.Second {
		t.Fatalf("retried %s after a 429 with Retry-After: 1", gap)
	}
}

func TestFullQueueDropsAndCounts(t *testing.T) {
	n, mock, res := newNotifier(t, "slack", Options{QueueSize: 2})
	mock.RegisterResponder(http.MethodPost, hookURL, httpmock.NewStringResponder(http.StatusOK, "ok"))
	for range 5 { // nothing sends yet: two fit, three are dropped
		n.Notify(notice("credit-scoring"))
	}
	// An event no target wants is neither queued nor counted.
	n.Notify(transitions.Notice{Event: rules.EventExpired, Model: "credit-scoring", Version: "3"})
	if got := res.get("slack dropped"); got != 3 {
		t.Fatalf("%d dropped, want 3 (results %v)", got, res.n)
	}
	sendAll(n)
	if got := res.get("slack sent"); got != 2 || mock.GetTotalCallCount() != 2 {
		t.Fatalf("%d sent, %d calls; want the 2 queued ones", got, mock.GetTotalCallCount())
	}
}

func TestDrainSendsWhatIsQueuedAfterStop(t *testing.T) {
	n, mock, res := newNotifier(t, "json", Options{DrainTimeout: 10 * time.Second})
	release := make(chan struct{})
	mock.RegisterResponder(http.MethodPost, hookURL, func(*http.Request) (*http.Response, error) {
		<-release // the first notice is in flight when the stop comes
		return httpmock.NewStringResponse(http.StatusOK, "ok"), nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { n.Run(ctx); close(done) }()
	n.Notify(notice("a"))
	n.Notify(notice("b"))
	for mock.GetTotalCallCount() == 0 {
		time.Sleep(time.Millisecond) // paces a poll of a condition
	}
	cancel() // as --once does right after its pass
	close(release)
	<-done
	if got := res.get("json sent"); got != 2 {
		t.Fatalf("%d sent after stop, want both (results %v)", got, res.n)
	}
}

func TestDrainIsBounded(t *testing.T) {
	n, mock, res := newNotifier(t, "json", Options{DrainTimeout: 200 * time.Millisecond})
	mock.RegisterResponder(http.MethodPost, hookURL, func(r *http.Request) (*http.Response, error) {
		<-r.Context().Done() // a receiver that never answers
		return nil, r.Context().Err()
	})
	n.Notify(notice("a"))
	n.Notify(notice("b"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	done := make(chan struct{})
	go func() { n.Run(ctx); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatal("Run did not return after its drain timeout")
	}
	if res.get("json failed")+res.get("json dropped") != 2 {
		t.Fatalf("results %v: both notices must be counted as failed or dropped", res.n)
	}
}

func TestSlackEscapesUserStrings(t *testing.T) {
	n, mock, _ := newNotifier(t, "slack", Options{UIURL: "https://mlflow.example.com/"})
	var body []byte
	mock.RegisterResponder(http.MethodPost, hookURL, func(r *http.Request) (*http.Response, error) {
		body, _ = io.ReadAll(r.Body)
		return httpmock.NewStringResponse(http.StatusOK, "ok"), nil
	})
	x := notice("inj <!channel> <!here> & <http://evil|click>")
	x.Summary = "ok <!everyone>"
	x.By = "<@U123>"
	sendAll(n, x)
	var msg struct {
		Text   string `json:"text"`
		Blocks []struct {
			Text struct{ Text string } `json:"text"`
		} `json:"blocks"`
	}
	if err := json.Unmarshal(body, &msg); err != nil {
		t.Fatalf("%v: %s", err, body)
	}
	for where, text := range map[string]string{"text": msg.Text, "blocks": msg.Blocks[0].Text.Text} {
		for _, raw := range []string{"<!channel>", "<!here>", "<!everyone>", "<@U123>", "<http://evil|click>", " & "} {
			if strings.Contains(text, raw) {
				t.Errorf("%s carries %q unescaped: %s", where, raw, text)
			}
		}
		if !strings.Contains(text, "&lt;!channel&gt;") {
			t.Errorf("%s lost the model name: %s", where, text)
		}
	}
	if !strings.Contains(msg.Blocks[0].Text.Text, "<https://mlflow.example.com/#/models/inj%20%3C%21channel%3E") {
		t.Errorf("the deep link is not a link to the version: %s", msg.Blocks[0].Text.Text)
	}
}

func TestJSONNotice(t *testing.T) {
	n, mock, _ := newNotifier(t, "json", Options{UIURL: "https://mlflow.example.com"})
	var got JSONNotice
	mock.RegisterResponder(http.MethodPost, hookURL, func(r *http.Request) (*http.Response, error) {
		if err := json.NewDecoder(r.Body).Decode(&got); err != nil {
			return httpmock.NewStringResponse(http.StatusBadRequest, err.Error()), nil
		}
		return httpmock.NewStringResponse(http.StatusOK, "ok"), nil
	})
	sendAll(n, notice("credit-scoring"))
	want := JSONNotice{Event: rules.EventPromoted, Model: "credit-scoring", Version: "3", Gate: "credit-risk", Status: "promoted",
		Summary: "approved by alice", By: "alice", URL: "https://mlflow.example.com/#/models/credit-scoring/versions/3",
		Time: time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)}
	if got != want {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
}

func TestFailuresNeverShowTheURL(t *testing.T) {
	var logs strings.Builder
	n, mock, _ := newNotifier(t, "json", Options{Retries: 1, Logger: newTextLogger(&logs)})
	mock.RegisterResponder(http.MethodPost, hookURL, httpmock.NewErrorResponder(io.ErrUnexpectedEOF))
	sendAll(n, notice("credit-scoring"))
	if strings.Contains(logs.String(), "SECRET") || !strings.Contains(logs.String(), "url_env=HOOK") {
		t.Fatalf("the failure log must name the variable, never the URL:\n%s", logs.String())
	}
}

func newTextLogger(w io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }
