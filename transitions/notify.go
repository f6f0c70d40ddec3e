package transitions

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/modelgate/modelgate/rules"
)

// Notice is something worth telling people about: a version put up for review,
// rejected, promoted, rolled back, or whose review expired.
type Notice struct {
	Event   rules.Event
	Model   string
	Version string
	Gate    string
	Status  Status
	Summary string
	By      string // "modelgate", or the reviewer who decided
	At      time.Time
}

// Notifier takes notices without blocking the caller.
type Notifier interface {
	Notify(Notice)
}

type nopNotifier struct{}

func (nopNotifier) Notify(Notice) {}

// NotificationRecorder counts notification outcomes: result is "sent", "failed" or
// "dropped" (the queue was full).
type NotificationRecorder interface {
	Notification(format, result string)
}

// webhookTarget is one notification of the policy with its URL resolved.
type webhookTarget struct {
	url    string // a secret (Slack webhook URLs are credentials): never logged
	urlEnv string
	format string
	events []rules.Event
}

// Webhooks posts notices to the URLs of the policy's notifications, from a queue served
// by one goroutine (Run), retrying failures with backoff. A full queue drops the notice
// and counts it: decisions never wait for a chat server.
type Webhooks struct {
	targets  []webhookTarget
	uiURL    string
	http     *retryablehttp.Client
	queue    chan Notice
	logger   *slog.Logger
	recorder NotificationRecorder
}

// WebhooksOptions configures NewWebhooks.
type WebhooksOptions struct {
	// LookupEnv reads the variables named by url_env (os.LookupEnv in the daemon).
	LookupEnv func(string) (string, bool)
	// UIURL is the base of deep links: <UIURL>/#/models/<name>/versions/<version>.
	UIURL    string
	Logger   *slog.Logger
	Recorder NotificationRecorder
	// Retries per notice (default 3), waiting between RetryWaitMin and RetryWaitMax.
	Retries                    int
	RetryWaitMin, RetryWaitMax time.Duration
	QueueSize                  int // default 256
}

// NewWebhooks resolves each notification's URL from its environment variable. A
// variable that is unset or not an http(s) URL is an error naming the variable.
func NewWebhooks(notifications []rules.Notification, opts WebhooksOptions) (*Webhooks, error) {
	w := &Webhooks{uiURL: strings.TrimRight(opts.UIURL, "/"), logger: opts.Logger, recorder: opts.Recorder}
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
			w.targets = append(w.targets, webhookTarget{url: raw, urlEnv: n.URLEnv, format: n.Format, events: n.Events})
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
	w.queue = make(chan Notice, size)
	w.http = &retryablehttp.Client{
		HTTPClient:   &http.Client{Timeout: 10 * time.Second},
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

// Notify queues a notice for every target that wants its event; it never blocks.
func (w *Webhooks) Notify(n Notice) {
	if len(w.targets) == 0 {
		return
	}
	select {
	case w.queue <- n:
	default:
		w.logger.Warn("notification dropped: queue full", "model", n.Model, "version", n.Version, "event", n.Event)
		for _, t := range w.targets {
			if t.wants(n.Event) {
				w.record(t.format, "dropped")
			}
		}
	}
}

func (t webhookTarget) wants(e rules.Event) bool {
	for _, x := range t.events {
		if x == e {
			return true
		}
	}
	return false
}

// Run sends queued notices until ctx ends, then gives what is left a few seconds.
func (w *Webhooks) Run(ctx context.Context) {
	for {
		select {
		case n := <-w.queue:
			w.send(ctx, n)
		case <-ctx.Done():
			drain, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			for {
				select {
				case n := <-w.queue:
					w.send(drain, n)
				default:
					return
				}
			}
		}
	}
}

func (w *Webhooks) send(ctx context.Context, n Notice) {
	for _, t := range w.targets {
		if !t.wants(n.Event) {
			continue
		}
		body, err := json.Marshal(w.payload(t.format, n))
		if err != nil {
			w.logger.Error("notification not encoded", "error", err)
			continue
		}
		err = w.post(ctx, t.url, body)
		result := "sent"
		if err != nil {
			result = "failed"
			// The URL is a credential: name the variable it came from instead.
			w.logger.Warn("notification failed", "url_env", t.urlEnv, "format", t.format, "model", n.Model, "version", n.Version, "event", n.Event, "error", err)
		} else {
			w.logger.Debug("notification sent", "url_env", t.urlEnv, "model", n.Model, "version", n.Version, "event", n.Event)
		}
		w.record(t.format, result)
	}
}

func (w *Webhooks) record(format, result string) {
	if w.recorder != nil {
		w.recorder.Notification(format, result)
	}
}

func (w *Webhooks) post(ctx context.Context, target string, body []byte) error {
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodPost, target, body)
	if err != nil {
		return redact(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "modelgate")
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
	Event   rules.Event `json:"event"`
	Model   string      `json:"model"`
	Version string      `json:"version"`
	Gate    string      `json:"gate"`
	Status  Status      `json:"status"`
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
}

func (w *Webhooks) payload(format string, n Notice) any {
	link := DeepLink(w.uiURL, n.Model, n.Version)
	if format == "slack" {
		head := fmt.Sprintf("%s version %s %s (gate %s, by %s)", n.Model, n.Version, eventVerb[n.Event], n.Gate, n.By)
		mrkdwn := fmt.Sprintf("*<%s|%s version %s>* %s (gate %s, by %s)\n>%s",
			slackEscape(link), slackEscape(n.Model), slackEscape(n.Version), eventVerb[n.Event], slackEscape(n.Gate), slackEscape(n.By), slackEscape(n.Summary))
		return map[string]any{
			"text": head,
			"blocks": []any{
				map[string]any{"type": "section", "text": map[string]string{"type": "mrkdwn", "text": mrkdwn}},
			},
		}
	}
	return JSONNotice{Event: n.Event, Model: n.Model, Version: n.Version, Gate: n.Gate, Status: n.Status,
		Summary: n.Summary, By: n.By, URL: link, Time: n.At.UTC()}
}

// slackEscape escapes the three characters Slack's mrkdwn treats as control characters.
func slackEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}
