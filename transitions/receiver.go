package transitions

import (
	"cmp"
	"context"
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

// WebhookRecorder counts deliveries by result: accepted, duplicate, ignored,
// bad_signature, stale, malformed, too_large.
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
	// MaxBody bounds a delivery's body (default 1 MiB; MLflow's are under 10 KB).
	MaxBody int64
	// Remember is how many delivery ids are kept to drop repeats (default 10,000).
	Remember int
}

// WebhookReceiver serves POST /webhooks/mlflow. It verifies each delivery's signature
// and timestamp, drops repeated deliveries, and for the events that matter tells the
// reconciler which version to look at: it never decides anything itself, so a webhook
// cannot bypass the policy. It answers 2xx once a delivery is accepted, 4xx for a bad
// signature or body, never 5xx for a bad request.
type WebhookReceiver struct {
	opts WebhookOptions
	seen *recentIDs
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
	if opts.MaxBody <= 0 {
		opts.MaxBody = 1 << 20
	}
	if opts.Remember <= 0 {
		opts.Remember = 10_000
	}
	return &WebhookReceiver{opts: opts, seen: newRecentIDs(opts.Remember)}, nil
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
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.opts.MaxBody))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		h.answer(w, http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("body larger than %d bytes", h.opts.MaxBody))
		return
	case err != nil:
		h.answer(w, http.StatusBadRequest, "malformed", "body could not be read")
		return
	}
	// Nothing of an unauthenticated request is parsed or trusted.
	id, err := mlflow.VerifyDelivery(h.opts.Secret, r.Header, body, h.opts.Clock(), h.opts.Window)
	switch {
	case errors.Is(err, mlflow.ErrStaleDelivery):
		h.opts.Logger.Warn("webhook delivery refused: timestamp outside the window", "error", err)
		h.answer(w, http.StatusBadRequest, "stale", "timestamp outside the accepted window")
		return
	case err != nil:
		h.opts.Logger.Warn("webhook delivery refused: bad signature (check MODELGATE_WEBHOOK_SECRET matches the webhook's secret in MLflow)", "error", err)
		h.answer(w, http.StatusUnauthorized, "bad_signature", "signature does not match")
		return
	}
	if !h.seen.add(id) {
		h.answer(w, http.StatusOK, "duplicate", "already received")
		return
	}
	d, data, err := mlflow.ParseDelivery(body)
	if err != nil {
		h.opts.Logger.Warn("webhook delivery refused: malformed body", "delivery_id", id, "error", err)
		h.answer(w, http.StatusBadRequest, "malformed", "malformed body")
		return
	}
	if !relevant(d, data) {
		h.answer(w, http.StatusOK, "ignored", "ignored")
		return
	}
	h.opts.Logger.Debug("webhook", "entity", d.Entity, "action", d.Action, "model", data.Name, "version", data.Version, "key", data.Key)
	h.opts.Nudger.Nudge(data.Name, data.Version)
	h.answer(w, http.StatusAccepted, "accepted", "accepted")
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
