package mlflow

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// WebhookEvent is an entity/action pair a webhook subscribes to, in the REST API's enum
// names (MODEL_VERSION/CREATED); deliveries carry them in lower case.
type WebhookEvent struct {
	Entity string `json:"entity"`
	Action string `json:"action"`
}

// Webhook is an MLflow webhook (MLflow 3.3+, SQL stores only). The secret is never
// returned by the server.
type Webhook struct {
	ID          string         `json:"webhook_id"`
	Name        string         `json:"name"`
	Description string         `json:"description"`
	URL         string         `json:"url"`
	Events      []WebhookEvent `json:"events"`
	Status      string         `json:"status"`
}

// WebhookSpec is what CreateWebhook and UpdateWebhook send.
type WebhookSpec struct {
	Name        string         `json:"name"`
	Description string         `json:"description,omitempty"`
	URL         string         `json:"url"`
	Events      []WebhookEvent `json:"events"`
	Secret      string         `json:"secret,omitempty"`
	Status      string         `json:"status,omitempty"`
}

// ListWebhooks returns every webhook, following every page.
func (c *Client) ListWebhooks(ctx context.Context) ([]Webhook, error) {
	return collect(flatten(pageSeq(func(token string) ([]Webhook, string, error) {
		q := url.Values{"max_results": {"1000"}}
		if token != "" {
			q.Set("page_token", token)
		}
		var out struct {
			Webhooks      []Webhook `json:"webhooks"`
			NextPageToken string    `json:"next_page_token"`
		}
		if err := c.do(ctx, http.MethodGet, "webhooks", q, &out); err != nil {
			return nil, "", err
		}
		return out.Webhooks, out.NextPageToken, nil
	})))
}

// CreateWebhook creates a webhook.
func (c *Client) CreateWebhook(ctx context.Context, spec WebhookSpec) (Webhook, error) {
	var out struct {
		Webhook Webhook `json:"webhook"`
	}
	if err := c.do(ctx, http.MethodPost, "webhooks", spec, &out); err != nil {
		return Webhook{}, err
	}
	return out.Webhook, nil
}

// UpdateWebhook replaces a webhook's name, URL, events, secret and status.
func (c *Client) UpdateWebhook(ctx context.Context, id string, spec WebhookSpec) (Webhook, error) {
	var out struct {
		Webhook Webhook `json:"webhook"`
	}
	if err := c.do(ctx, http.MethodPatch, "webhooks/"+url.PathEscape(id), spec, &out); err != nil {
		return Webhook{}, err
	}
	return out.Webhook, nil
}

// Headers MLflow sets on a webhook delivery.
const (
	HeaderDeliveryID = "X-MLflow-Delivery-Id"
	HeaderTimestamp  = "X-MLflow-Timestamp"
	HeaderSignature  = "X-MLflow-Signature"
)

// Errors of VerifyDelivery.
var (
	ErrBadSignature   = errors.New("webhook signature does not match")
	ErrStaleDelivery  = errors.New("webhook timestamp outside the accepted window")
	ErrMissingHeaders = errors.New("webhook delivery without the X-MLflow-Delivery-Id, -Timestamp and -Signature headers")
)

// VerifyDelivery checks a delivery's signature: X-MLflow-Signature is "v1," followed by
// the base64 HMAC-SHA256, keyed with the webhook's secret, of
// "<delivery id>.<timestamp>.<raw body>". The comparison takes constant time. The
// timestamp (Unix seconds) must lie within window of now, either way.
func VerifyDelivery(secret []byte, h http.Header, body []byte, now time.Time, window time.Duration) (deliveryID string, err error) {
	if err := CheckDeliveryHeaders(h, now, window); err != nil {
		return "", err
	}
	id, ts, sig := h.Get(HeaderDeliveryID), h.Get(HeaderTimestamp), h.Get(HeaderSignature)
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(id))
	mac.Write([]byte{'.'})
	mac.Write([]byte(ts))
	mac.Write([]byte{'.'})
	mac.Write(body)
	want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	if !hmac.Equal([]byte(sig), []byte(want)) {
		return "", ErrBadSignature
	}
	return id, nil
}

// CheckDeliveryHeaders checks what can be checked of a delivery before its body is read:
// the three headers are there, the signature has MLflow's form, and the timestamp lies
// within window of now. A request that fails it is refused without reading its body.
func CheckDeliveryHeaders(h http.Header, now time.Time, window time.Duration) error {
	id, ts, sig := h.Get(HeaderDeliveryID), h.Get(HeaderTimestamp), h.Get(HeaderSignature)
	if id == "" || ts == "" || sig == "" || len(id) > 128 {
		return ErrMissingHeaders
	}
	if !strings.HasPrefix(sig, "v1,") || len(sig) > 128 {
		return ErrBadSignature
	}
	secs, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: %q is not Unix seconds", ErrStaleDelivery, clipHeader(ts))
	}
	if d := now.Sub(time.Unix(secs, 0)); d > window || d < -window {
		return fmt.Errorf("%w: %s off", ErrStaleDelivery, d.Round(time.Second))
	}
	return nil
}

func clipHeader(s string) string {
	if len(s) > 32 {
		return s[:32] + "…"
	}
	return s
}

// SignDelivery computes the X-MLflow-Signature of a delivery, as MLflow does.
func SignDelivery(secret []byte, deliveryID, timestamp string, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(deliveryID + "." + timestamp + "."))
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// Delivery is the body of a webhook delivery.
type Delivery struct {
	Entity    string          `json:"entity"` // e.g. model_version, model_version_tag, prompt_version
	Action    string          `json:"action"` // e.g. created, set, deleted
	Timestamp string          `json:"timestamp"`
	Data      json.RawMessage `json:"data"`
}

// DeliveryData is the part of a delivery's data that names a model version.
type DeliveryData struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Key     string `json:"key"` // tag events
}

// ParseDelivery decodes a delivery body; it must name an entity, an action and, for
// model version events, the model and version.
func ParseDelivery(body []byte) (Delivery, DeliveryData, error) {
	var d Delivery
	if err := json.Unmarshal(body, &d); err != nil {
		return d, DeliveryData{}, fmt.Errorf("webhook body is not JSON: %w", err)
	}
	if d.Entity == "" || d.Action == "" {
		return d, DeliveryData{}, errors.New("webhook body has no entity or action")
	}
	var data DeliveryData
	if len(d.Data) > 0 {
		if err := json.Unmarshal(d.Data, &data); err != nil {
			return d, DeliveryData{}, fmt.Errorf("webhook data: %w", err)
		}
	}
	if strings.HasPrefix(d.Entity, "model_version") && (data.Name == "" || data.Version == "") {
		return d, data, fmt.Errorf("webhook %s.%s names no model version", d.Entity, d.Action)
	}
	return d, data, nil
}
