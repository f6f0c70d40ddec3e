// Package notify sends modelgate's notifications (Slack and JSON webhooks) to the URLs
// the policy's notifications name. It is the outgoing side; the MLflow webhook receiver
// (deliveries coming in) is transitions.WebhookReceiver.
package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/modelgate/modelgate/rules"
	"github.com/modelgate/modelgate/transitions"
)

// Recorder counts notification outcomes: result is "sent", "failed" or "dropped" (the
// queue was full).
type Recorder interface {
	Notification(format, result string)
}

// target is one notification of the policy with its URL resolved.
type target struct {
	url    string // a secret (Slack webhook URLs are credentials): never logged
	urlEnv string
	format string
	events []rules.Event
}

// Notifier posts notices to the URLs of the policy's notifications, from a queue served
// by one goroutine (Run), retrying failures with backoff. A full queue drops the notice
// and counts it: decisions never wait for a chat server. It implements
// transitions.Notifier.
type Notifier struct {
	targets  []target
	uiURL    string
	http     *retryablehttp.Client
	queue    chan transitions.Notice
	logger   *slog.Logger
	recorder Recorder
	drain    time.Duration
	fence    func(ctx context.Context) (context.Context, context.CancelFunc, error)
	pending  atomic.Int64 // notices queued or being sent
}

// Options configures New.
type Options struct {
	// LookupEnv reads the variables named by url_env (os.LookupEnv in the daemon).
	LookupEnv func(string) (string, bool)
	// UIURL is the base of deep links: <UIURL>/#/models/<name>/versions/<version>.
	UIURL    string
	Logger   *slog.Logger
	Recorder Recorder
	// Retries per notice (default 3), waiting between RetryWaitMin and RetryWaitMax.
	Retries                    int
	RetryWaitMin, RetryWaitMax time.Duration
	QueueSize                  int // default 256
	// DrainTimeout is how long Run goes on sending, once its context ends, for the
	// notices queued or in flight (default 5s).
	DrainTimeout time.Duration
	// Transport replaces the HTTP transport (tests).
	Transport http.RoundTripper
	// Fence, when set, is asked before each notice: a replica that is not the leader
	// sends nothing (the notice stays unsent in the audit trail's outbox, and the leader
	// sends it), and a send must end within the context it returns.
	Fence func(ctx context.Context) (context.Context, context.CancelFunc, error)
}

// New resolves each notification's URL from its environment variable. A variable that
// is unset or not an http(s) URL is an error naming the variable.
func New(notifications []rules.Notification, opts Options) (*Notifier, error) {
	w := &Notifier{uiURL: strings.TrimRight(opts.UIURL, "/"), logger: opts.Logger, recorder: opts.Recorder, fence: opts.Fence}
	var problems []string
	for _, n := range notifications {
		raw, ok := opts.LookupEnv(n.URLEnv)
		u, err := url.Parse(raw)
		switch {
		case !ok || raw == "":
			problems = append(problems, fmt.Sprintf("%s is not set: the policy's %s notification reads its URL from it", n.URLEnv, n.Format))
		case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
			problems = append(problems, fmt.Sprintf("%s is not an http(s) URL", n.URLEnv))
		default:
			w.targets = append(w.targets, target{url: raw, urlEnv: n.URLEnv, format: n.Format, events: n.Events})
		}
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("notifications: %s", strings.Join(problems, "; "))
	}
	if w.logger == nil {
		w.logger = slog.New(slog.DiscardHandler)
	}
	retries := opts.Retries
	if retries == 0 {
		retries = 3
	}
	size := opts.QueueSize
	if size == 0 {
		size = 256
	}
	w.queue = make(chan transitions.Notice, size)
	w.drain = or(opts.DrainTimeout, 5*time.Second)
	w.http = &retryablehttp.Client{
		HTTPClient:   &http.Client{Timeout: 10 * time.Second, Transport: opts.Transport},
		RetryMax:     retries,
		RetryWaitMin: or(opts.RetryWaitMin, time.Second),
		RetryWaitMax: or(opts.RetryWaitMax, 30*time.Second),
		CheckRetry:   retryablehttp.DefaultRetryPolicy,
		Backoff:      retryablehttp.DefaultBackoff, // honours Retry-After on 429 and 503
		ErrorHandler: retryablehttp.PassthroughErrorHandler,
	}
	return w, nil
}

func or(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// Notify queues a notice for every target that wants its event; it never blocks. A
// notice no target wants is done at once.
func (w *Notifier) Notify(n transitions.Notice) {
	if !slices.ContainsFunc(w.targets, func(t target) bool { return t.wants(n.Event) }) {
		if n.Sent != nil {
			n.Sent()
		}
		return
	}
	w.pending.Add(1)
	select {
	case w.queue <- n:
	default:
		w.pending.Add(-1)
		w.dropped(n, "queue full")
	}
}

// Flush waits until every notice queued so far has been sent (or given up), or ctx ends.
func (w *Notifier) Flush(ctx context.Context) {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for w.pending.Load() > 0 {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// dropped logs and counts a notice that is not sent.
func (w *Notifier) dropped(n transitions.Notice, why string) {
	w.logger.Warn("notification dropped: "+why, "model", n.Model, "version", n.Version, "event", n.Event)
	for _, t := range w.targets {
		if t.wants(n.Event) {
			w.record(t.format, "dropped")
		}
	}
}

func (t target) wants(e rules.Event) bool {
	for _, x := range t.events {
		if x == e {
			return true
		}
	}
	return false
}

// Run sends queued notices until ctx ends; then it sends what is queued and finishes
// what is in flight, for at most DrainTimeout, and returns. A send is never cut short by
// ctx itself: `modelgate run --once` stops right after its decisions, and their
// notifications must still go out.
func (w *Notifier) Run(ctx context.Context) {
	sendCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stop := context.AfterFunc(ctx, func() {
		t := time.AfterFunc(w.drain, cancel)
		<-sendCtx.Done()
		t.Stop()
	})
	defer stop()
	for {
		select {
		case n := <-w.queue:
			w.send(sendCtx, n)
			w.pending.Add(-1)
			continue
		case <-ctx.Done():
		}
		for { // draining: what is queued, until the deadline
			select {
			case n := <-w.queue:
				if sendCtx.Err() != nil {
					w.dropped(n, "shutting down")
					w.pending.Add(-1)
					continue
				}
				w.send(sendCtx, n)
				w.pending.Add(-1)
			default:
				return
			}
		}
	}
}

// send posts a notice to every target that wants it, and reports it sent when all took it.
func (w *Notifier) send(ctx context.Context, n transitions.Notice) {
	if w.fence != nil {
		fenced, cancel, err := w.fence(ctx)
		if err != nil {
			w.logger.Info("notification left to the leader", "model", n.Model, "version", n.Version, "event", n.Event, "reason", err)
			return // not Sent: the audit trail keeps it unsent, and the leader sends it
		}
		defer cancel()
		ctx = fenced
	}
	delivered := true
	defer func() {
		if delivered && n.Sent != nil {
			n.Sent()
		}
	}()
	for _, t := range w.targets {
		if !t.wants(n.Event) {
			continue
		}
		body, err := json.Marshal(w.payload(t.format, n))
		if err != nil {
			w.logger.Error("notification not encoded", "error", err)
			delivered = false
			continue
		}
		err = w.post(ctx, t.url, n.ID, body)
		result := "sent"
		if err != nil {
			result, delivered = "failed", false
			// The URL is a credential: name the variable it came from instead.
			w.logger.Warn("notification failed", "url_env", t.urlEnv, "format", t.format, "model", n.Model, "version", n.Version, "event", n.Event, "error", err)
		} else {
			w.logger.Debug("notification sent", "url_env", t.urlEnv, "model", n.Model, "version", n.Version, "event", n.Event)
		}
		w.record(t.format, result)
	}
}

func (w *Notifier) record(format, result string) {
	if w.recorder != nil {
		w.recorder.Notification(format, result)
	}
}

func (w *Notifier) post(ctx context.Context, target, id string, body []byte) error {
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodPost, target, body)
	if err != nil {
		return redact(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "modelgate")
	if id != "" {
		// The same for the same event, a repeat after a crash or a failover included:
		// a receiver that keeps the keys it has seen drops the repeat.
		req.Header.Set("Idempotency-Key", id)
	}
	resp, err := w.http.Do(req)
	if err != nil {
		return redact(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return nil
}

// redact drops the URL from a transport error.
func redact(err error) error {
	var ue *url.Error
	for e := err; e != nil; {
		if u, ok := e.(*url.Error); ok {
			ue = u
			break
		}
		u, ok := e.(interface{ Unwrap() error })
		if !ok {
			break
		}
		e = u.Unwrap()
	}
	if ue != nil {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}

// DeepLink is the MLflow UI page of a model version.
func DeepLink(uiURL, model, version string) string {
	return strings.TrimRight(uiURL, "/") + "/#/models/" + url.PathEscape(model) + "/versions/" + url.PathEscape(version)
}

// JSONNotice is the body of a json-format notification.
type JSONNotice struct {
	// ID is the same for the same event (a repeat after a crash or a failover carries
	// the id it had): receivers drop a repeat by it.
	ID      string      `json:"id"`
	Event   rules.Event `json:"event"`
	Model   string      `json:"model"`
	Version string      `json:"version"`
	Gate    string      `json:"gate"`
	Status  string      `json:"status"`
	Summary string      `json:"summary"`
	By      string      `json:"by"`
	URL     string      `json:"url"`
	Time    time.Time   `json:"time"`
}

var eventVerb = map[rules.Event]string{
	rules.EventReviewRequested: "is waiting for review",
	rules.EventRejected:        "was rejected",
	rules.EventPromoted:        "was promoted",
	rules.EventRolledBack:      "was rolled back",
	rules.EventExpired:         "review expired",
	rules.EventSuperseded:      "no longer holds its target (superseded)",
	rules.EventOverridden:      "was promoted by an override",
	rules.EventTampered:        "had its modelgate state tampered with (restored)",
	rules.EventRecertDue:       "needs its approval renewed (re-certification due)",
	rules.EventStaged:          "entered a rollout stage",
}

func (w *Notifier) payload(format string, n transitions.Notice) any {
	link := DeepLink(w.uiURL, n.Model, n.Version)
	if format == "slack" {
		// Both text and blocks are mrkdwn: user strings are escaped in each, or a model
		// named "<!channel>" would ping a whole channel.
		head := fmt.Sprintf("%s version %s %s (gate %s, by %s)", slackEscape(n.Model), slackEscape(n.Version), eventVerb[n.Event], slackEscape(n.Gate), slackEscape(n.By))
		mrkdwn := fmt.Sprintf("*<%s|%s version %s>* %s (gate %s, by %s)\n>%s",
			slackEscape(link), slackEscape(n.Model), slackEscape(n.Version), eventVerb[n.Event], slackEscape(n.Gate), slackEscape(n.By), slackEscape(n.Summary))
		return map[string]any{
			"text": head,
			"blocks": []any{
				map[string]any{"type": "section", "text": map[string]string{"type": "mrkdwn", "text": mrkdwn}},
			},
		}
	}
	return JSONNotice{ID: n.ID, Event: n.Event, Model: n.Model, Version: n.Version, Gate: n.Gate, Status: string(n.Status),
		Summary: n.Summary, By: n.By, URL: link, Time: n.At.UTC()}
}

// slackEscape escapes the three characters Slack's mrkdwn treats as control characters.
func slackEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}
