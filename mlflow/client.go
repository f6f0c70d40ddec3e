// Package mlflow is a client for the MLflow model registry and tracking REST API
// (/api/2.0/mlflow/...), written against the behaviour of a real MLflow 3 server.
//
// Every call takes a context and stops when it is cancelled. Transient failures (408,
// 429, 500, 502, 503, 504 and connection errors) are retried with the Python client's
// exponential backoff, honouring Retry-After; other errors come back as *Error, which
// matches ErrNotFound, ErrAlreadyExists, ErrPermissionDenied and ErrUnauthenticated with
// errors.Is.
package mlflow

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-retryablehttp"
)

// Defaults of the MLflow Python client (mlflow/environment_variables.py), which
// modelgate mirrors so that one set of MLFLOW_HTTP_REQUEST_* settings means the same
// thing to both.
const (
	DefaultMaxRetries    = 7
	DefaultTimeout       = 120 * time.Second
	DefaultBackoffFactor = 2 * time.Second
	DefaultBackoffJitter = 1 * time.Second
	DefaultMaxBackoff    = 120 * time.Second // urllib3's Retry.DEFAULT_BACKOFF_MAX
)

// maxBody bounds a response body. The largest answer modelgate asks for, a search page
// of 1,000 versions with 5,000-character descriptions and tags, is about 20 MB; a server
// (or something posing as one) that sends more is cut off there, not read into memory.
const maxBody = 64 << 20

// maxErrorBody bounds what is read of an error answer (MLflow's are a few hundred bytes).
const maxErrorBody = 64 << 10

// Observer receives one call per HTTP attempt (retries included). endpoint is a fixed
// name such as "model-versions/search"; code is the HTTP status or "error" when no
// response arrived.
type Observer interface {
	ObserveMLflowRequest(endpoint, code string, d time.Duration)
}

// LimitObserver is an Observer that is also told the limit of requests in flight each
// time it changes (Options.MaxInFlight).
type LimitObserver interface {
	ObserveMLflowInflightLimit(limit int)
}

// Options configures a Client. Zero durations take the defaults above; MaxRetries is used
// as given (0 means no retry).
type Options struct {
	// TrackingURI is the server's base URL, e.g. https://mlflow.example.com.
	TrackingURI string
	// Token is sent as a Bearer token unless Username and Password are both set, in
	// which case Basic auth is used, as the Python client does.
	Token    string
	Username string
	Password string
	// InsecureTLS skips certificate verification; ServerCertPath is a CA bundle (PEM);
	// ClientCertPath is a PEM file holding the client certificate and its key.
	InsecureTLS    bool
	ServerCertPath string
	ClientCertPath string

	MaxRetries    int
	Timeout       time.Duration // per attempt
	BackoffFactor time.Duration
	BackoffJitter time.Duration
	MaxBackoff    time.Duration

	UserAgent string
	Logger    *slog.Logger
	Observer  Observer
	// SlowRequest is how long an attempt may go unanswered before a warning says so
	// (default 10s), long before a 120 s timeout and its retries end it: a hanging server
	// shows in the log at once.
	SlowRequest time.Duration
	// Transport replaces the HTTP transport (tests); the TLS options do not apply to it.
	Transport http.RoundTripper
	// MaxInFlight, when positive, bounds the requests in flight at once; within it the
	// client adapts the number to what the server sustains (see limiter). 0: no bound.
	MaxInFlight int
	// Fence, when set, is asked before every request that writes (everything but GET and
	// runs/search): it returns the context the request and its retries must end within,
	// or an error that refuses the write (a replica that is not the leader).
	Fence func(ctx context.Context) (context.Context, context.CancelFunc, error)
}

// Client talks to one MLflow server. It is safe for concurrent use.
type Client struct {
	base      *url.URL
	http      *retryablehttp.Client
	auth      string // Authorization header value; never logged
	userAgent string
	logger    *slog.Logger
	fence     func(ctx context.Context) (context.Context, context.CancelFunc, error)
	limiter   *limiter // nil without MaxInFlight
}

// InflightLimit is how many requests the client lets be in flight at once now: the
// adaptive limit, or 0 without MaxInFlight.
func (c *Client) InflightLimit() int {
	if c.limiter == nil {
		return 0
	}
	return c.limiter.Limit()
}

// New builds a client. It fails on a malformed URI or unreadable certificate files; it
// does not contact the server.
func New(opts Options) (*Client, error) {
	base, err := ParseTrackingURI(opts.TrackingURI)
	if err != nil {
		return nil, err
	}
	if opts.InsecureTLS && opts.ServerCertPath != "" {
		return nil, errors.New("MLFLOW_TRACKING_INSECURE_TLS and MLFLOW_TRACKING_SERVER_CERT_PATH cannot both be set: choose one")
	}
	if opts.MaxRetries < 0 {
		return nil, fmt.Errorf("max retries must not be negative, got %d", opts.MaxRetries)
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	transport := opts.Transport
	if transport == nil {
		t, err := newTransport(opts)
		if err != nil {
			return nil, err
		}
		transport = t
	}
	transport = instrumented{next: transport, observer: opts.Observer, logger: logger, slow: orDefault(opts.SlowRequest, 10*time.Second)}
	var lim *limiter
	if opts.MaxInFlight > 0 {
		var observe func(int)
		if o, ok := opts.Observer.(LimitObserver); ok {
			observe = o.ObserveMLflowInflightLimit
		}
		lim = newLimiter(opts.MaxInFlight, observe)
		transport = limited{next: transport, lim: lim}
	}
	timeout := orDefault(opts.Timeout, DefaultTimeout)
	b := backoff{
		factor: orDefault(opts.BackoffFactor, DefaultBackoffFactor),
		jitter: orDefault(opts.BackoffJitter, DefaultBackoffJitter),
		max:    orDefault(opts.MaxBackoff, DefaultMaxBackoff),
	}
	rc := &retryablehttp.Client{
		HTTPClient:   &http.Client{Transport: transport, Timeout: timeout},
		Logger:       retryLogger{logger},
		RetryMax:     opts.MaxRetries,
		RetryWaitMax: b.max,
		CheckRetry:   warnOnRetry(logger),
		Backoff:      b.wait,
		ErrorHandler: giveUp,
	}
	c := &Client{base: base, http: rc, userAgent: opts.UserAgent, logger: logger, fence: opts.Fence, limiter: lim}
	switch {
	case opts.Username != "" && opts.Password != "":
		c.auth = "Basic " + basicAuth(opts.Username, opts.Password)
	case opts.Token != "":
		c.auth = "Bearer " + opts.Token
	}
	if c.userAgent == "" {
		c.userAgent = "modelgate"
	}
	return c, nil
}

func basicAuth(user, password string) string {
	return base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
}

// TrackingURI returns the server's base URL.
func (c *Client) TrackingURI() string { return c.base.String() }

// BaseURL returns a copy of the server's base URL.
func (c *Client) BaseURL() *url.URL { u := *c.base; return &u }

// ParseTrackingURI checks an MLFLOW_TRACKING_URI value: an http(s) URL with a host and
// no credentials, query or fragment. Errors never repeat a password.
func ParseTrackingURI(raw string) (*url.URL, error) {
	if raw == "" {
		return nil, errors.New("MLFLOW_TRACKING_URI is required: set it to the MLflow server's URL, e.g. http://127.0.0.1:5000")
	}
	u, err := url.Parse(raw)
	if err != nil {
		// url.Parse's errors quote the value, which may hold a password or a token.
		return nil, errors.New("MLFLOW_TRACKING_URI is not a valid URL (its value is not shown: it may hold credentials): use the server's base URL, e.g. https://mlflow.example.com, and put credentials in MLFLOW_TRACKING_USERNAME/PASSWORD or MLFLOW_TRACKING_TOKEN")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("MLFLOW_TRACKING_URI must be an http:// or https:// URL of an MLflow server, got scheme %q (file and database URIs are not supported)", u.Scheme)
	}
	if u.Host == "" {
		return nil, errors.New("MLFLOW_TRACKING_URI has no host: use a URL such as http://127.0.0.1:5000")
	}
	if u.User != nil {
		// Not even the user name is echoed: it is often a token.
		return nil, fmt.Errorf("MLFLOW_TRACKING_URI %s carries credentials: move them to MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN)", WithoutCredentials(u))
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, errors.New("MLFLOW_TRACKING_URI must not have a query or fragment: use the server's base URL")
	}
	u.Path = strings.TrimRight(u.Path, "/")
	return u, nil
}

// WithoutCredentials renders a URL with its user information, if any, replaced by
// "***": neither a password nor a user name (often a token) is shown.
func WithoutCredentials(u *url.URL) string {
	c := *u
	c.User = nil
	if u.User == nil {
		return c.String()
	}
	return strings.Replace(c.String(), "://", "://***@", 1)
}

func newTransport(opts Options) (http.RoundTripper, error) {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 32
	tlsConf := &tls.Config{MinVersion: tls.VersionTLS12}
	if opts.InsecureTLS {
		tlsConf.InsecureSkipVerify = true //nolint:gosec // asked for with MLFLOW_TRACKING_INSECURE_TLS
	}
	if opts.ServerCertPath != "" {
		pem, err := os.ReadFile(opts.ServerCertPath)
		if err != nil {
			return nil, fmt.Errorf("MLFLOW_TRACKING_SERVER_CERT_PATH: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("MLFLOW_TRACKING_SERVER_CERT_PATH: %s holds no PEM certificate", opts.ServerCertPath)
		}
		tlsConf.RootCAs = pool
	}
	if opts.ClientCertPath != "" {
		pem, err := os.ReadFile(opts.ClientCertPath)
		if err != nil {
			return nil, fmt.Errorf("MLFLOW_TRACKING_CLIENT_CERT_PATH: %w", err)
		}
		cert, err := tls.X509KeyPair(pem, pem)
		if err != nil {
			return nil, fmt.Errorf("MLFLOW_TRACKING_CLIENT_CERT_PATH: %s must hold a PEM certificate and its private key: %w", opts.ClientCertPath, err)
		}
		tlsConf.Certificates = []tls.Certificate{cert}
	}
	t.TLSClientConfig = tlsConf
	return t, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// apiPrefix is where every REST endpoint lives. /ajax-api/ serves the same handlers for
// the UI; clients use /api/.
const apiPrefix = "/api/2.0/mlflow/"

type endpointKey struct{}

// do calls one endpoint. For GET, in must be url.Values (or nil) and is sent as the query
// string; for every other method in is encoded as the JSON body (MLflow parses DELETE
// parameters from the body too). out, when not nil, receives the decoded JSON response.
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	name := endpointName(path)
	if c.fence != nil && method != http.MethodGet && path != "runs/search" {
		fenced, cancel, err := c.fence(ctx)
		if err != nil {
			return fmt.Errorf("mlflow %s %s: %w", method, name, err)
		}
		defer cancel()
		ctx = fenced
	}
	u := *c.base
	u.Path = c.base.Path + apiPrefix + path
	if strings.HasPrefix(path, "/") { // an endpoint outside MLflow's own API (a server plugin's)
		u.Path = c.base.Path + path
	}
	var body []byte
	if method == http.MethodGet {
		if q, ok := in.(url.Values); ok {
			u.RawQuery = q.Encode()
		}
	} else if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return fmt.Errorf("mlflow %s %s: encode request: %w", method, name, err)
		}
	}
	var rawBody any
	if body != nil {
		rawBody = body
	}
	ctx = context.WithValue(ctx, endpointKey{}, name)
	req, err := retryablehttp.NewRequestWithContext(ctx, method, u.String(), rawBody)
	if err != nil {
		return fmt.Errorf("mlflow %s %s: %w", method, name, err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.auth != "" {
		req.Header.Set("Authorization", c.auth)
	}

	// The body is read inside the retry loop, so a response cut off mid-body counts as a
	// failed attempt and is retried like a 503. A 2xx answer is decoded as it streams in,
	// into a fresh value per attempt; one that is not JSON at all (an HTML page: a proxy's
	// login page, the UI) is not MLflow's API, and retrying will not change that.
	var read *http.Response
	var payload []byte
	var decoded reflect.Value
	req.SetResponseHandler(func(resp *http.Response) error {
		if resp.StatusCode/100 != 2 || out == nil {
			b, err := readBody(resp, maxErrorBody)
			if err != nil {
				return fmt.Errorf("read response: %w", err)
			}
			read, payload = resp, b
			return nil
		}
		v, err := decodeBody(resp, out)
		if err != nil {
			return err
		}
		read, decoded = resp, v
		return nil
	})

	resp, err := c.http.Do(req)
	if resp != nil && resp != read {
		// The final attempt was a retryable status whose body nobody read yet.
		payload, _ = readBody(resp, maxErrorBody)
	}
	var g *gaveUp
	var notAPI *NotMLflowError
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("mlflow %s %s: %w", method, name, ctx.Err())
	case errors.As(err, &notAPI):
		notAPI.Method, notAPI.Endpoint = method, name
		return notAPI
	case resp != nil && resp.StatusCode/100 != 2:
		e := decodeError(method, name, resp.StatusCode, resp.Header, payload)
		if errors.As(err, &g) && g.attempts > 1 {
			e.Message = fmt.Sprintf("%s (gave up after %d attempts)", e.Message, g.attempts)
		}
		return e
	case err != nil && resp != nil:
		return fmt.Errorf("mlflow %s %s: bad response: %w", method, name, err)
	case err != nil:
		return fmt.Errorf("mlflow %s %s: %w: %w", method, name, ErrUnreachable, err)
	}
	if out != nil && decoded.IsValid() {
		reflect.ValueOf(out).Elem().Set(decoded.Elem())
	}
	return nil
}

// decodeBody decodes a 2xx answer as it streams in, into a new value of out's type, and
// within maxBody. A body that does not start like JSON is a NotMLflowError; one that
// breaks off or is malformed is an error the retry loop retries.
func decodeBody(resp *http.Response, out any) (reflect.Value, error) {
	defer resp.Body.Close()
	limited := &io.LimitedReader{R: resp.Body, N: maxBody + 1}
	br := bufio.NewReader(limited)
	first, err := firstByte(br)
	if err != nil {
		return reflect.Value{}, fmt.Errorf("read response: %w", err)
	}
	if first != '{' && first != '[' {
		head, _ := br.Peek(4096)
		return reflect.Value{}, &NotMLflowError{StatusCode: resp.StatusCode, Message: textMessage(resp.Header, head)}
	}
	v := reflect.New(reflect.TypeOf(out).Elem())
	if err := json.NewDecoder(br).Decode(v.Interface()); err != nil {
		if limited.N <= 0 {
			return reflect.Value{}, &NotMLflowError{StatusCode: resp.StatusCode, Message: fmt.Sprintf("an answer larger than %d MiB", maxBody>>20)}
		}
		return reflect.Value{}, fmt.Errorf("decode response: %w", err)
	}
	return v, nil
}

// firstByte returns the first byte that is not white space.
func firstByte(br *bufio.Reader) (byte, error) {
	for {
		b, err := br.ReadByte()
		if err != nil {
			return 0, err
		}
		if b != ' ' && b != '\n' && b != '\r' && b != '\t' {
			return b, br.UnreadByte()
		}
	}
}

// NotMLflowError is an answer that is not MLflow's REST API: an HTML page, text, an
// answer too large to be one. Retrying does not help; MLFLOW_TRACKING_URI likely points
// at something else (a proxy's login page, a load balancer, the UI of another service).
type NotMLflowError struct {
	Method, Endpoint string
	StatusCode       int
	Message          string // what came back, summarised
}

func (e *NotMLflowError) Error() string {
	return fmt.Sprintf("mlflow %s %s: HTTP %d with %s, not MLflow's API: check that MLFLOW_TRACKING_URI is the MLflow server's base URL",
		e.Method, e.Endpoint, e.StatusCode, cmpOrStr(e.Message, "an empty body"))
}

// Is makes a NotMLflowError match ErrNotMLflow.
func (e *NotMLflowError) Is(target error) bool { return target == ErrNotMLflow }

// ErrNotMLflow matches answers that are not MLflow's API.
var ErrNotMLflow = errors.New("not MLflow's API")

func cmpOrStr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// ErrUnreachable wraps failures where no HTTP response came back in the end:
// connection refused, DNS, TLS, timeouts, bodies cut off on every attempt.
var ErrUnreachable = errors.New("MLflow unreachable")

// readBody reads at most limit bytes of a body (what is beyond is dropped).
func readBody(resp *http.Response, limit int64) ([]byte, error) {
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit))
	if err != nil {
		return nil, err
	}
	return b, nil
}

// endpointName turns a path into the fixed endpoint name used in errors and metrics;
// ids in the path (logged models, webhooks) are replaced so the set stays small.
func endpointName(path string) string {
	for _, p := range []string{"logged-models/", "webhooks/"} {
		rest, ok := strings.CutPrefix(path, p)
		if !ok || rest == "" || rest == "search" {
			continue
		}
		_, action, found := strings.Cut(rest, "/")
		if found {
			return p + "{id}/" + action
		}
		return p + "{id}"
	}
	return path
}

// retryableStatus lists the statuses the Python client retries
// (mlflow/utils/request_utils.py: _TRANSIENT_FAILURE_RESPONSE_CODES).
func retryableStatus(code int) bool {
	switch code {
	case http.StatusRequestTimeout, http.StatusTooManyRequests, http.StatusInternalServerError,
		http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// checkRetry decides whether an attempt is retried: never once the context is done;
// connection and body-read errors yes, except certificate and URL errors that a retry
// cannot fix; retryable statuses yes, unless Retry-After points past the deadline.
func checkRetry(ctx context.Context, resp *http.Response, err error) (bool, error) {
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	if errors.Is(err, ErrNotMLflow) {
		return false, err // another kind of server: asking again gets the same page
	}
	if err != nil {
		retry, perm := retryablehttp.ErrorPropagatedRetryPolicy(ctx, nil, err)
		if !retry {
			return false, perm
		}
		return true, err
	}
	if !retryableStatus(resp.StatusCode) {
		return false, nil
	}
	if wait, ok := retryAfter(resp); ok {
		if dl, has := ctx.Deadline(); has && time.Until(dl) < wait {
			return false, fmt.Errorf("HTTP %d with Retry-After %s, beyond the deadline", resp.StatusCode, wait)
		}
	}
	return true, fmt.Errorf("HTTP %d", resp.StatusCode)
}

// retryAfter reads Retry-After on the statuses urllib3 honours it for (429, 503).
func retryAfter(resp *http.Response) (time.Duration, bool) {
	if resp == nil || (resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode != http.StatusServiceUnavailable) {
		return 0, false
	}
	h := strings.TrimSpace(resp.Header.Get("Retry-After"))
	if h == "" {
		return 0, false
	}
	if s, err := strconv.ParseFloat(h, 64); err == nil {
		if s < 0 {
			return 0, false
		}
		return time.Duration(s * float64(time.Second)), true
	}
	if t, err := http.ParseTime(h); err == nil {
		return max(time.Until(t), 0), true
	}
	return 0, false
}

// backoff mirrors urllib3's Retry.get_backoff_time as the MLflow Python client
// configures it: no wait before the first retry, then factor·2^n plus a random jitter,
// capped at max. A Retry-After header overrides it.
type backoff struct {
	factor, jitter, max time.Duration
}

func (b backoff) wait(_, _ time.Duration, attempt int, resp *http.Response) time.Duration {
	if d, ok := retryAfter(resp); ok {
		return d
	}
	if attempt == 0 {
		return 0
	}
	d := b.factor << attempt
	if d <= 0 || d > b.max { // d <= 0: the shift overflowed
		d = b.max
	}
	if b.jitter > 0 {
		d += rand.N(b.jitter)
	}
	return min(d, b.max)
}

// gaveUp records how many attempts were made before the retry loop stopped.
type gaveUp struct {
	attempts int
	err      error
}

func (g *gaveUp) Error() string {
	return fmt.Sprintf("giving up after %d attempt(s): %v", g.attempts, g.err)
}
func (g *gaveUp) Unwrap() error { return g.err }

// giveUp keeps the last response (so its error body can be decoded) and counts attempts.
func giveUp(resp *http.Response, err error, attempts int) (*http.Response, error) {
	if err == nil {
		return resp, nil
	}
	return resp, &gaveUp{attempts: attempts, err: err}
}

// instrumented reports every attempt to the Observer, and warns about an attempt that
// goes unanswered for longer than slow.
type instrumented struct {
	next     http.RoundTripper
	observer Observer // may be nil
	logger   *slog.Logger
	slow     time.Duration
}

func (t instrumented) RoundTrip(req *http.Request) (*http.Response, error) {
	start := time.Now()
	name, _ := req.Context().Value(endpointKey{}).(string)
	if name == "" {
		name = "other"
	}
	watch := time.AfterFunc(t.slow, func() {
		t.logger.Warn("MLflow has not answered a request yet; still waiting (MLFLOW_HTTP_REQUEST_TIMEOUT bounds it)",
			"endpoint", name, "waited", t.slow.String())
	})
	resp, err := t.next.RoundTrip(req)
	watch.Stop()
	code := "error"
	if err == nil {
		code = strconv.Itoa(resp.StatusCode)
	}
	if t.observer != nil {
		t.observer.ObserveMLflowRequest(name, code, time.Since(start))
	}
	return resp, err
}

// warnOnRetry wraps checkRetry with a warning for each attempt that failed and will be
// retried. Attempts ended by their own context (shutdown, a sibling write that failed)
// are not failures of MLflow and stay quiet.
func warnOnRetry(logger *slog.Logger) retryablehttp.CheckRetry {
	return func(ctx context.Context, resp *http.Response, err error) (bool, error) {
		retry, why := checkRetry(ctx, resp, err)
		if retry {
			endpoint, _ := ctx.Value(endpointKey{}).(string)
			logger.Warn("mlflow request attempt failed; retrying", "endpoint", endpoint, "error", why)
		}
		return retry, why
	}
}

// retryLogger routes go-retryablehttp's messages to slog at debug level (its default
// logger writes every request to stderr). Failed attempts are warned about by
// warnOnRetry, which knows whether they will be retried.
type retryLogger struct{ l *slog.Logger }

func (r retryLogger) Error(msg string, kv ...any) { r.l.Debug(msg, kv...) }
func (r retryLogger) Info(msg string, kv ...any)  { r.l.Debug(msg, kv...) }
func (r retryLogger) Debug(msg string, kv ...any) { r.l.Debug(msg, kv...) }
func (r retryLogger) Warn(msg string, kv ...any)  { r.l.Warn(msg, kv...) }

// Health asks the server's /health endpoint, once and without retries, whether it is up.
func (c *Client) Health(ctx context.Context) error {
	u := *c.base
	u.Path = c.base.Path + "/health"
	ctx = context.WithValue(ctx, endpointKey{}, "health")
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return fmt.Errorf("mlflow health: %w", err)
	}
	req.Header.Set("User-Agent", c.userAgent)
	if c.auth != "" {
		req.Header.Set("Authorization", c.auth)
	}
	resp, err := c.http.HTTPClient.Do(req)
	if err != nil {
		return fmt.Errorf("mlflow health: %w: %w", ErrUnreachable, err)
	}
	b, err := readBody(resp, maxErrorBody)
	if err != nil {
		return fmt.Errorf("mlflow health: %w: %w", ErrUnreachable, err)
	}
	if resp.StatusCode != http.StatusOK || !bytes.HasPrefix(bytes.TrimSpace(b), []byte("OK")) {
		return decodeError(http.MethodGet, "health", resp.StatusCode, resp.Header, b)
	}
	return nil
}

// ServerVersion reads the server's release from its /version endpoint, e.g. "3.18.0".
func (c *Client) ServerVersion(ctx context.Context) (string, error) {
	u := *c.base
	u.Path = c.base.Path + "/version"
	ctx = context.WithValue(ctx, endpointKey{}, "version")
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return "", fmt.Errorf("mlflow version: %w", err)
	}
	req.Header.Set("User-Agent", c.userAgent)
	if c.auth != "" {
		req.Header.Set("Authorization", c.auth)
	}
	resp, err := c.http.HTTPClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("mlflow version: %w: %w", ErrUnreachable, err)
	}
	b, err := readBody(resp, maxErrorBody)
	if err != nil {
		return "", fmt.Errorf("mlflow version: %w: %w", ErrUnreachable, err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", decodeError(http.MethodGet, "version", resp.StatusCode, resp.Header, b)
	}
	v := strings.TrimSpace(string(b))
	if _, ok := ParseServerVersion(v); !ok {
		return "", fmt.Errorf("mlflow version: /version answered %q, not a release number: is %s an MLflow server?", clip(v), WithoutCredentials(c.base))
	}
	return v, nil
}

// ServerRelease is an MLflow release's major and minor number.
type ServerRelease struct{ Major, Minor int }

// AtLeast reports whether r is major.minor or later.
func (r ServerRelease) AtLeast(major, minor int) bool {
	return r.Major > major || (r.Major == major && r.Minor >= minor)
}

// ParseServerVersion reads "3.18.0" (or "2.22.5", "3.19.0.dev0") as its major and minor.
func ParseServerVersion(v string) (ServerRelease, bool) {
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return ServerRelease{}, false
	}
	major, err1 := strconv.Atoi(parts[0])
	minor, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil || major < 0 || minor < 0 {
		return ServerRelease{}, false
	}
	return ServerRelease{major, minor}, true
}
