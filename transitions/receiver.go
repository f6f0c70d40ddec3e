package transitions

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/modelgate/modelgate/mlflow"
	"github.com/modelgate/modelgate/rules"
)

// Nudger is told which versions a webhook named (Reconciler satisfies it).
type Nudger interface {
	Nudge(model, version string)
}

// AliasNudger is told which alias a webhook said moved (Reconciler satisfies it): the
// version modelgate's records put there is looked at.
type AliasNudger interface {
	NudgeAlias(model, alias string)
}

// Relayer is a Nudger that passes nudges on to another replica (a follower forwarding
// to its leader) and can fail to: the delivery is then answered 503 with Retry-After, so
// that MLflow sends it again, instead of being lost.
type Relayer interface {
	RelayNudge(model, version string) error
	RelayAlias(model, alias string) error
}

// WebhookRecorder counts deliveries by result: accepted, duplicate, ignored,
// bad_signature, stale, malformed, too_large, busy, unavailable.
type WebhookRecorder interface {
	WebhookDelivery(result string)
}

// WebhookOptions configures NewWebhookReceiver.
type WebhookOptions struct {
	Secret   []byte // the webhook's secret (MODELGATE_WEBHOOK_SECRET)
	Nudger   Nudger
	Recorder WebhookRecorder // may be nil
	Logger   *slog.Logger
	Clock    func() time.Time
	// Window is how far a delivery's timestamp may be from now (default 5 minutes:
	// MLflow retries a failed delivery with the same timestamp for up to about 3).
	Window time.Duration
	// MaxBody bounds a delivery's body (default 64 KiB: MLflow's largest, a new version
	// with a 5,000-character description and its tags, is under 40 KiB).
	MaxBody int64
	// MaxInFlight bounds the deliveries handled at once (default 16); beyond it the
	// answer is 429, which MLflow retries.
	MaxInFlight int
	// Remember is how many delivery ids are kept to drop repeats (default 10,000).
	Remember int
	// LogEvery bounds the refusal warnings: at most one per kind per LogEvery (default
	// 10s), saying how many were refused since (the counter keeps the exact number).
	LogEvery time.Duration
}

// WebhookReceiver serves POST /webhooks/mlflow. It verifies each delivery's signature
// and timestamp, drops repeated deliveries, and for the events that matter tells the
// reconciler which version to look at: it never decides anything itself, so a webhook
// cannot bypass the policy. It answers 2xx once a delivery is accepted, 4xx for a bad
// signature or body, never 5xx for a bad request.
type WebhookReceiver struct {
	opts     WebhookOptions
	seen     *recentIDs
	inFlight chan struct{}
	refusals *logLimiter
}

// NewWebhookReceiver builds the receiver; the secret is required.
func NewWebhookReceiver(opts WebhookOptions) (*WebhookReceiver, error) {
	if len(opts.Secret) == 0 {
		return nil, errors.New("webhook receiver: a secret is required (MODELGATE_WEBHOOK_SECRET)")
	}
	if opts.Nudger == nil {
		return nil, errors.New("webhook receiver: a Nudger is required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	opts.Window = cmp.Or(opts.Window, 5*time.Minute)
	opts.MaxBody = cmp.Or(opts.MaxBody, 64<<10)
	opts.MaxInFlight = cmp.Or(opts.MaxInFlight, 16)
	opts.Remember = cmp.Or(opts.Remember, 10_000)
	opts.LogEvery = cmp.Or(opts.LogEvery, 10*time.Second)
	return &WebhookReceiver{opts: opts, seen: newRecentIDs(opts.Remember), inFlight: make(chan struct{}, opts.MaxInFlight),
		refusals: &logLimiter{every: opts.LogEvery, now: opts.Clock, last: map[string]time.Time{}, quiet: map[string]int{}}}, nil
}

// logLimiter lets one warning of each kind through per period and counts the rest.
type logLimiter struct {
	mu    sync.Mutex
	every time.Duration
	now   func() time.Time
	last  map[string]time.Time
	quiet map[string]int
}

// allow reports whether a warning of kind may be logged now, and how many were
// suppressed since the last one.
func (l *logLimiter) allow(kind string) (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if last, ok := l.last[kind]; ok && now.Sub(last) < l.every {
		l.quiet[kind]++
		return false, 0
	}
	l.last[kind] = now
	n := l.quiet[kind]
	l.quiet[kind] = 0
	return true, n
}

// refuse logs a refusal (rate-limited) and answers it.
func (h *WebhookReceiver) refuse(w http.ResponseWriter, code int, result, msg, why string, err error) {
	if ok, suppressed := h.refusals.allow(result); ok {
		args := []any{"result", result, "error", err}
		if suppressed > 0 {
			args = append(args, "refused_since_last_warning", suppressed)
		}
		h.opts.Logger.Warn("webhook delivery refused: "+why, args...)
	}
	h.answer(w, code, result, msg)
}

func (h *WebhookReceiver) record(result string) {
	if h.opts.Recorder != nil {
		h.opts.Recorder.WebhookDelivery(result)
	}
}

func (h *WebhookReceiver) answer(w http.ResponseWriter, code int, result, msg string) {
	h.record(result)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	_, _ = fmt.Fprintln(w, msg)
}

func (h *WebhookReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		h.answer(w, http.StatusMethodNotAllowed, "malformed", "POST only")
		return
	}
	// Nothing of an unauthenticated request is read beyond its headers: a request
	// without MLflow's signature headers, or with a timestamp outside the window, is
	// refused before its body (a flood of 1 MiB bodies took the RSS from 19 to 370 MB).
	switch err := mlflow.CheckDeliveryHeaders(r.Header, h.opts.Clock(), h.opts.Window); {
	case errors.Is(err, mlflow.ErrStaleDelivery):
		h.refuse(w, http.StatusBadRequest, "stale", "timestamp outside the accepted window", "timestamp outside the window", err)
		return
	case err != nil:
		h.refuse(w, http.StatusUnauthorized, "bad_signature", "signature missing or malformed", "no valid signature headers (check MODELGATE_WEBHOOK_SECRET matches the webhook's secret in MLflow)", err)
		return
	}
	if r.ContentLength > h.opts.MaxBody {
		h.refuse(w, http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("body larger than %d bytes", h.opts.MaxBody), "body too large", nil)
		return
	}
	select {
	case h.inFlight <- struct{}{}:
		defer func() { <-h.inFlight }()
	default:
		w.Header().Set("Retry-After", "1")
		h.refuse(w, http.StatusTooManyRequests, "busy", "too many deliveries at once; retry", "too many deliveries at once", nil)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.opts.MaxBody))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		h.refuse(w, http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("body larger than %d bytes", h.opts.MaxBody), "body too large", nil)
		return
	case err != nil:
		h.answer(w, http.StatusBadRequest, "malformed", "body could not be read")
		return
	}
	id, err := mlflow.VerifyDelivery(h.opts.Secret, r.Header, body, h.opts.Clock(), h.opts.Window)
	if err != nil {
		h.refuse(w, http.StatusUnauthorized, "bad_signature", "signature does not match", "bad signature (check MODELGATE_WEBHOOK_SECRET matches the webhook's secret in MLflow)", err)
		return
	}
	if !h.seen.add(id) {
		h.answer(w, http.StatusOK, "duplicate", "already received")
		return
	}
	d, data, err := mlflow.ParseDelivery(body)
	if err != nil {
		h.refuse(w, http.StatusBadRequest, "malformed", "malformed body", "malformed body", err)
		return
	}
	relay, relays := h.opts.Nudger.(Relayer)
	if alias, ok := aliasEvent(d); ok {
		if relays {
			if err := relay.RelayAlias(alias.Name, alias.Alias); err != nil {
				h.unavailable(w, id, err)
				return
			}
		} else if an, ok := h.opts.Nudger.(AliasNudger); ok {
			an.NudgeAlias(alias.Name, alias.Alias)
		}
		h.answer(w, http.StatusAccepted, "accepted", "accepted")
		return
	}
	if !relevant(d, data) {
		h.answer(w, http.StatusOK, "ignored", "ignored")
		return
	}
	h.opts.Logger.Debug("webhook", "entity", d.Entity, "action", d.Action, "model", data.Name, "version", data.Version, "key", data.Key)
	if relays {
		if err := relay.RelayNudge(data.Name, data.Version); err != nil {
			h.unavailable(w, id, err)
			return
		}
	} else {
		h.opts.Nudger.Nudge(data.Name, data.Version)
	}
	h.answer(w, http.StatusAccepted, "accepted", "accepted")
}

// unavailable answers a delivery that could not be passed on with 503 and Retry-After,
// and forgets its id, so that MLflow's retry of it is taken rather than dropped as a
// repeat.
func (h *WebhookReceiver) unavailable(w http.ResponseWriter, id string, err error) {
	h.seen.remove(id)
	w.Header().Set("Retry-After", "2")
	h.refuse(w, http.StatusServiceUnavailable, "unavailable", "no leader to pass the delivery to yet; retry", "delivery not passed on to the leader", err)
}

// aliasEvent reads an alias delivery (model_version_alias.created, also sent when the
// alias moves, and .deleted): a protected target may have been moved by hand.
func aliasEvent(d mlflow.Delivery) (struct{ Name, Alias string }, bool) {
	var a struct{ Name, Alias string }
	if d.Entity != "model_version_alias" || (d.Action != "created" && d.Action != "deleted") {
		return a, false
	}
	if json.Unmarshal(d.Data, &a) != nil || a.Name == "" || a.Alias == "" {
		return a, false
	}
	return a, true
}

// relevant says whether a delivery can change what modelgate should do: a new version, or
// a tag a person set or deleted (a vote, a request, evidence). Tags modelgate itself
// writes, prompts, and alias events are not. The prompt check here is only the first:
// the reconciler reads the version and skips prompts whatever the event says.
func relevant(d mlflow.Delivery, data mlflow.DeliveryData) bool {
	switch {
	case d.Entity == "model_version" && d.Action == "created":
		return true
	case d.Entity == "model_version_tag" && (d.Action == "set" || d.Action == "deleted"):
		return !ownTag(data.Key)
	}
	return false
}

// ownTag reports whether modelgate writes the tag itself (as opposed to the tags a
// person sets to talk to it).
func ownTag(key string) bool {
	switch key {
	case TagRollback, TagReevaluate:
		return false
	}
	if rules.IsVoteTag(key) || !strings.HasPrefix(key, rules.ReservedTagPrefix) {
		return false
	}
	return true
}

// recentIDs remembers the last n delivery ids, to drop deliveries MLflow repeats (its
// retries resend the same id). Memory is bounded: the oldest id is forgotten first.
type recentIDs struct {
	mu    sync.Mutex
	ids   map[string]bool
	order []string
	next  int
}

func newRecentIDs(n int) *recentIDs {
	return &recentIDs{ids: make(map[string]bool, n), order: make([]string, n)}
}

// add records id and reports whether it was new.
// remove forgets an id (its slot in the ring is reused later).
func (r *recentIDs) remove(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.ids, id)
}

func (r *recentIDs) add(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ids[id] {
		return false
	}
	if old := r.order[r.next]; old != "" {
		delete(r.ids, old)
	}
	r.order[r.next] = id
	r.next = (r.next + 1) % len(r.order)
	r.ids[id] = true
	return true
}

// WebhookName is the name modelgate registers its webhook under in MLflow.
const WebhookName = "modelgate"

// webhookEvents are the events modelgate subscribes to.
var webhookEvents = []mlflow.WebhookEvent{
	{Entity: "MODEL_VERSION", Action: "CREATED"},
	{Entity: "MODEL_VERSION_TAG", Action: "SET"},
	{Entity: "MODEL_VERSION_TAG", Action: "DELETED"},
}

// WebhookAPI is what registering the webhook needs from MLflow.
type WebhookAPI interface {
	ListWebhooks(ctx context.Context) ([]mlflow.Webhook, error)
	CreateWebhook(ctx context.Context, spec mlflow.WebhookSpec) (mlflow.Webhook, error)
	UpdateWebhook(ctx context.Context, id string, spec mlflow.WebhookSpec) (mlflow.Webhook, error)
}

// RegisterWebhook creates modelgate's webhook in MLflow, or updates it (URL, events,
// secret, active): the same call any number of times leaves one webhook.
func RegisterWebhook(ctx context.Context, api WebhookAPI, url string, secret []byte) (mlflow.Webhook, error) {
	spec := mlflow.WebhookSpec{
		Name:        WebhookName,
		Description: "modelgate: new model versions and tag changes, so decisions and votes take effect at once",
		URL:         url,
		Events:      webhookEvents,
		Secret:      string(secret),
		Status:      "ACTIVE",
	}
	hooks, err := api.ListWebhooks(ctx)
	if err != nil {
		return mlflow.Webhook{}, fmt.Errorf("list webhooks: %w", err)
	}
	for _, wh := range hooks {
		if wh.Name == WebhookName {
			updated, err := api.UpdateWebhook(ctx, wh.ID, spec)
			if err != nil {
				return mlflow.Webhook{}, fmt.Errorf("update webhook %s: %w", wh.ID, err)
			}
			return updated, nil
		}
	}
	created, err := api.CreateWebhook(ctx, spec)
	if err != nil {
		return mlflow.Webhook{}, fmt.Errorf("create webhook: %w", err)
	}
	return created, nil
}

// KeepWebhookRegistered registers the webhook, retrying with backoff (from 5 seconds to
// 5 minutes) while MLflow cannot be reached, until it succeeds or ctx ends. An error MLflow
// answers (a URL scheme it does not allow, a private address it refuses, a missing admin
// right) is logged with what to change, and retried at the slowest pace.
func KeepWebhookRegistered(ctx context.Context, api WebhookAPI, url string, secret []byte, logger *slog.Logger) {
	wait := 5 * time.Second
	for {
		wh, err := RegisterWebhook(ctx, api, url, secret)
		if err == nil {
			logger.Info("webhook registered in MLflow", "webhook_id", wh.ID, "name", wh.Name, "url", url)
			return
		}
		var me *mlflow.Error
		if errors.As(err, &me) {
			wait = 5 * time.Minute
			logger.Error("webhook not registered: MLflow refused it (MLflow needs MLFLOW_WEBHOOK_ALLOWED_SCHEMES to include the URL's scheme, MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS=true for a private address, and an admin user with basic auth); polling goes on",
				"url", url, "error", err)
		} else {
			logger.Warn("webhook not registered yet; will retry", "error", err, "retry_in", wait)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(wait*2, 5*time.Minute)
	}
}
