package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/modelgate/modelgate/mlflow"
	"github.com/modelgate/modelgate/transitions"
)

// Config is every environment variable modelgate reads. The MLFLOW_* names are those of
// the MLflow Python client, with the same meaning and defaults.
type Config struct {
	TrackingURI      string  `env:"MLFLOW_TRACKING_URI"`
	TrackingToken    Secret  `env:"MLFLOW_TRACKING_TOKEN"`
	TrackingUsername string  `env:"MLFLOW_TRACKING_USERNAME"`
	TrackingPassword Secret  `env:"MLFLOW_TRACKING_PASSWORD"`
	InsecureTLS      bool    `env:"MLFLOW_TRACKING_INSECURE_TLS"`
	ServerCertPath   string  `env:"MLFLOW_TRACKING_SERVER_CERT_PATH"`
	ClientCertPath   string  `env:"MLFLOW_TRACKING_CLIENT_CERT_PATH"`
	MaxRetries       int     `env:"MLFLOW_HTTP_REQUEST_MAX_RETRIES" envDefault:"7"`
	RequestTimeout   Seconds `env:"MLFLOW_HTTP_REQUEST_TIMEOUT" envDefault:"120"`
	BackoffFactor    Seconds `env:"MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR" envDefault:"2"`
	BackoffJitter    Seconds `env:"MLFLOW_HTTP_REQUEST_BACKOFF_JITTER" envDefault:"1"`

	PolicyPath    string        `env:"MODELGATE_POLICY" envDefault:"modelgate.yaml"`
	PollInterval  time.Duration `env:"MODELGATE_POLL_INTERVAL" envDefault:"30s"`
	ListenAddr    string        `env:"MODELGATE_LISTEN_ADDR" envDefault:":9464"`
	DryRun        bool          `env:"MODELGATE_DRY_RUN"`
	WebhookSecret Secret        `env:"MODELGATE_WEBHOOK_SECRET"`
	WebhookURL    string        `env:"MODELGATE_WEBHOOK_URL"`
	Since         Since         `env:"MODELGATE_SINCE" envDefault:"24h"`
	Concurrency   int           `env:"MODELGATE_CONCURRENCY" envDefault:"8"`
	LogLevel      LogLevel      `env:"MODELGATE_LOG_LEVEL" envDefault:"info"`
	LogFormat     LogFormat     `env:"MODELGATE_LOG_FORMAT" envDefault:"json"`
	UIURL         string        `env:"MODELGATE_UI_URL"`

	SigningKey         Secret `env:"MODELGATE_SIGNING_KEY"`
	SigningKeyPrevious Secret `env:"MODELGATE_SIGNING_KEY_PREVIOUS"`
	AuditExperiment    string `env:"MODELGATE_AUDIT_EXPERIMENT" envDefault:"modelgate-audit"`

	// High availability: leader election on a Kubernetes Lease.
	LeaderElection LeaderElection `env:"MODELGATE_LEADER_ELECTION" envDefault:"off"`
	LeaseName      string         `env:"MODELGATE_LEASE_NAME" envDefault:"modelgate"`
	LeaseNamespace string         `env:"MODELGATE_LEASE_NAMESPACE"`
	LeaseDuration  time.Duration  `env:"MODELGATE_LEASE_DURATION" envDefault:"15s"`
	PodName        string         `env:"POD_NAME"`
	PodNamespace   string         `env:"POD_NAMESPACE"`
	PodIP          string         `env:"POD_IP"`
	Kubeconfig     string         `env:"KUBECONFIG"`
	InCluster      string         `env:"KUBERNETES_SERVICE_HOST"`
}

// LeaderElection is MODELGATE_LEADER_ELECTION.
type LeaderElection string

// UnmarshalText accepts off or kubernetes.
func (l *LeaderElection) UnmarshalText(b []byte) error {
	switch v := strings.ToLower(strings.TrimSpace(string(b))); v {
	case "off", "", "false":
		*l = "off"
	case "kubernetes":
		*l = "kubernetes"
	default:
		return fmt.Errorf("%q is not a leader election mode: use off (one replica) or kubernetes (a Lease; run two replicas)", string(b))
	}
	return nil
}

// auditOff is the MODELGATE_AUDIT_EXPERIMENT value that turns the audit trail off.
const auditOff = "off"

// maxConcurrency bounds MODELGATE_CONCURRENCY: more parallel requests than this only
// queue up in front of a single MLflow server.
const maxConcurrency = 256

// loadConfig reads the configuration from environ (KEY=value strings) and validates it.
// Every problem is reported at once, each naming its variable; values of secrets are
// never part of a message.
func loadConfig(environ []string) (Config, error) {
	vars := envMap(environ)
	var cfg Config
	err := env.ParseWithOptions(&cfg, env.Options{
		Environment: vars,
		FuncMap: map[reflect.Type]env.ParserFunc{
			reflect.TypeFor[bool]():          parseBool,
			reflect.TypeFor[int]():           parseInt,
			reflect.TypeFor[time.Duration](): parseDuration,
		},
	})
	problems, failed := describeEnvErrors(err)
	for _, p := range cfg.validate() {
		// A variable that did not parse holds its zero value: say so once, not twice.
		name, _, _ := strings.Cut(p, ":")
		name, _, _ = strings.Cut(name, "=")
		if !failed[name] {
			problems = append(problems, p)
		}
	}
	if len(problems) > 0 {
		return cfg, &ConfigError{Problems: problems}
	}
	if cfg.UIURL == "" {
		cfg.UIURL = cfg.TrackingURI
	}
	return cfg, nil
}

// validate checks what the types alone cannot. MLFLOW_TRACKING_URI is checked by
// requireTrackingURI, because `modelgate check` works without it.
func (c Config) validate() []string {
	var p []string
	if c.TrackingURI != "" {
		if _, err := mlflow.ParseTrackingURI(c.TrackingURI); err != nil {
			p = append(p, err.Error())
		}
	}
	if c.MaxRetries < 0 {
		p = append(p, fmt.Sprintf("MLFLOW_HTTP_REQUEST_MAX_RETRIES=%d: must be 0 or more", c.MaxRetries))
	}
	if c.RequestTimeout <= 0 {
		p = append(p, "MLFLOW_HTTP_REQUEST_TIMEOUT: must be more than 0 seconds")
	}
	if c.InsecureTLS && c.ServerCertPath != "" {
		p = append(p, "MLFLOW_TRACKING_INSECURE_TLS and MLFLOW_TRACKING_SERVER_CERT_PATH are both set: use one (a CA bundle, or no verification)")
	}
	if (c.TrackingUsername == "") != (c.TrackingPassword == "") {
		p = append(p, "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD must be set together")
	}
	if c.PollInterval <= 0 {
		p = append(p, fmt.Sprintf("MODELGATE_POLL_INTERVAL=%s: must be more than 0, e.g. 30s", c.PollInterval))
	}
	if c.Concurrency < 1 || c.Concurrency > maxConcurrency {
		p = append(p, fmt.Sprintf("MODELGATE_CONCURRENCY=%d: must be between 1 and %d", c.Concurrency, maxConcurrency))
	}
	if _, port, err := net.SplitHostPort(c.ListenAddr); err != nil {
		p = append(p, fmt.Sprintf("MODELGATE_LISTEN_ADDR=%s: must be host:port or :port, e.g. :9464", c.ListenAddr))
	} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		p = append(p, fmt.Sprintf("MODELGATE_LISTEN_ADDR=%s: the port must be a number from 0 to 65535, e.g. :9464", c.ListenAddr))
	}
	if c.WebhookURL != "" {
		if u, err := url.Parse(c.WebhookURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			p = append(p, "MODELGATE_WEBHOOK_URL: must be the http(s) URL MLflow should call, e.g. https://modelgate.example.com/webhooks/mlflow (the value is not shown)")
		} else if u.User != nil {
			p = append(p, "MODELGATE_WEBHOOK_URL carries credentials: MLflow stores and logs webhook URLs, so they must not hold any; modelgate checks MODELGATE_WEBHOOK_SECRET's signature instead")
		} else if c.WebhookSecret == "" {
			p = append(p, "MODELGATE_WEBHOOK_URL is set but MODELGATE_WEBHOOK_SECRET is not: modelgate registers its webhook with a secret and refuses unsigned deliveries")
		}
	}
	for _, k := range []struct {
		name  string
		value Secret
	}{{"MODELGATE_SIGNING_KEY", c.SigningKey}, {"MODELGATE_SIGNING_KEY_PREVIOUS", c.SigningKeyPrevious}} {
		if k.value != "" {
			if _, err := transitions.ParseKey(k.value.Reveal()); err != nil {
				p = append(p, fmt.Sprintf("%s: %v", k.name, err))
			}
		}
	}
	if c.SigningKeyPrevious != "" && c.SigningKey == "" {
		p = append(p, "MODELGATE_SIGNING_KEY_PREVIOUS is set but MODELGATE_SIGNING_KEY is not: the previous key only verifies; set the new key in MODELGATE_SIGNING_KEY")
	}
	if c.LeaderElection == "kubernetes" {
		if c.LeaseDuration < 3*time.Second {
			p = append(p, fmt.Sprintf("MODELGATE_LEASE_DURATION=%s: must be at least 3s (default 15s); the leader renews every 2/15 of it", c.LeaseDuration))
		}
		if errs := validation.IsDNS1123Subdomain(c.LeaseName); len(errs) > 0 {
			p = append(p, fmt.Sprintf("MODELGATE_LEASE_NAME=%s: not a Kubernetes object name: %s", c.LeaseName, strings.Join(errs, "; ")))
		}
		if c.InCluster == "" && c.Kubeconfig == "" {
			p = append(p, "MODELGATE_LEADER_ELECTION=kubernetes outside a cluster needs KUBECONFIG (the path of a kubeconfig file); in a pod, the service account is used")
		}
	}
	if strings.TrimSpace(c.AuditExperiment) == "" {
		p = append(p, "MODELGATE_AUDIT_EXPERIMENT is empty: name the experiment of the audit trail (default modelgate-audit), or set it to off")
	}
	if c.UIURL != "" {
		if u, err := url.Parse(c.UIURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			p = append(p, "MODELGATE_UI_URL: must be an http:// or https:// URL, e.g. https://mlflow.example.com (the value is not shown)")
		} else if u.User != nil {
			p = append(p, "MODELGATE_UI_URL carries credentials: it is copied into every report and notification, so it must not hold any; give the UI's plain address")
		}
	}
	return p
}

// keys returns the signing keys (none when MODELGATE_SIGNING_KEY is unset).
func (c Config) keys() transitions.Keys {
	var k transitions.Keys
	k.Current, _ = transitions.ParseKey(c.SigningKey.Reveal())
	k.Previous, _ = transitions.ParseKey(c.SigningKeyPrevious.Reveal())
	return k
}

// requireSigningKey reports the problem when `run` (not a dry run) has no signing key.
func (c Config) requireSigningKey() error {
	if c.SigningKey == "" {
		return &ConfigError{Problems: []string{"MODELGATE_SIGNING_KEY is not set: modelgate signs every record it writes with it, so that an editor of the registry cannot forge one; make one with `openssl rand -hex 32` and keep it in a secret (the same key on every restart and replica)"}}
	}
	return nil
}

// requireTrackingURI reports the problem when MLFLOW_TRACKING_URI is missing.
func (c Config) requireTrackingURI() error {
	if c.TrackingURI == "" {
		return &ConfigError{Problems: []string{"MLFLOW_TRACKING_URI is not set: set it to the MLflow server's URL, e.g. http://127.0.0.1:5000"}}
	}
	return nil
}

// ConfigError lists every configuration problem found.
type ConfigError struct{ Problems []string }

func (e *ConfigError) Error() string {
	return "configuration: " + strings.Join(e.Problems, "; ")
}

// describeEnvErrors turns caarlos0/env's errors, which name Go struct fields, into
// messages that name the environment variable, and returns the variables that failed.
func describeEnvErrors(err error) ([]string, map[string]bool) {
	failed := map[string]bool{}
	if err == nil {
		return nil, failed
	}
	var agg env.AggregateError
	errs := []error{err}
	if errors.As(err, &agg) {
		errs = agg.Errors
	}
	out := make([]string, 0, len(errs))
	for _, e := range errs {
		var pe env.ParseError
		if errors.As(e, &pe) {
			name := envName(pe.Name)
			failed[name] = true
			out = append(out, fmt.Sprintf("%s: %v", name, pe.Err))
			continue
		}
		out = append(out, e.Error())
	}
	return out, failed
}

func envName(field string) string {
	f, ok := reflect.TypeFor[Config]().FieldByName(field)
	if !ok {
		return field
	}
	name, _, _ := strings.Cut(f.Tag.Get("env"), ",")
	return name
}

func parseBool(s string) (any, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true", "1":
		return true, nil
	case "false", "0", "":
		return false, nil
	}
	return nil, fmt.Errorf("%q is not a boolean: use true or false", s)
}

func parseInt(s string) (any, error) {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("%q is not a whole number", s)
	}
	return n, nil
}

func parseDuration(s string) (any, error) {
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("%q is not a duration: use a number with a unit, e.g. 30s, 5m or 1h", s)
	}
	return d, nil
}

// Secret holds a credential. It prints as [redacted] in every format and log, so a
// Config can be logged or wrapped into an error without leaking it.
type Secret string

func (s Secret) String() string { return redacted(s) }

// GoString keeps %#v from printing the value.
func (s Secret) GoString() string { return redacted(s) }

// LogValue keeps slog from printing the value.
func (s Secret) LogValue() slog.Value { return slog.StringValue(redacted(s)) }

// MarshalJSON keeps encoding/json (and slog's JSON handler) from printing the value.
func (s Secret) MarshalJSON() ([]byte, error) { return json.Marshal(redacted(s)) }

// Reveal returns the secret itself, for the one place that must send it.
func (s Secret) Reveal() string { return string(s) }

func redacted(s Secret) string {
	if s == "" {
		return ""
	}
	return "[redacted]"
}

// Seconds is a duration written as a number of seconds, as the MLflow Python client
// reads MLFLOW_HTTP_REQUEST_TIMEOUT; a Go duration such as 90s is accepted too.
type Seconds time.Duration

// UnmarshalText parses "120", "0.5" or "2m".
func (s *Seconds) UnmarshalText(b []byte) error {
	text := strings.TrimSpace(string(b))
	if f, err := strconv.ParseFloat(text, 64); err == nil {
		if f < 0 {
			return fmt.Errorf("%q is negative: use a number of seconds", text)
		}
		*s = Seconds(f * float64(time.Second))
		return nil
	}
	d, err := time.ParseDuration(text)
	if err != nil || d < 0 {
		return fmt.Errorf("%q is not a number of seconds (e.g. 120) or a duration (e.g. 2m)", text)
	}
	*s = Seconds(d)
	return nil
}

// Duration returns the value as a time.Duration.
func (s Seconds) Duration() time.Duration { return time.Duration(s) }

// Since is MODELGATE_SINCE: an RFC 3339 time, or a duration back from start-up.
type Since struct {
	At  time.Time     // set for an absolute time
	Ago time.Duration // set for a duration
}

// UnmarshalText parses "2026-01-02T15:04:05Z" or "24h".
func (s *Since) UnmarshalText(b []byte) error {
	text := strings.TrimSpace(string(b))
	if t, err := time.Parse(time.RFC3339, text); err == nil {
		*s = Since{At: t.UTC()}
		return nil
	}
	d, err := time.ParseDuration(text)
	if err != nil || d < 0 {
		return fmt.Errorf("%q is neither an RFC 3339 time (e.g. 2026-01-02T15:04:05Z) nor a duration back from start-up (e.g. 24h)", text)
	}
	*s = Since{Ago: d}
	return nil
}

// Cutoff returns the creation time before which versions are not gated.
func (s Since) Cutoff(start time.Time) time.Time {
	if !s.At.IsZero() {
		return s.At
	}
	return start.Add(-s.Ago).UTC()
}

// LogLevel is MODELGATE_LOG_LEVEL.
type LogLevel slog.Level

// UnmarshalText accepts debug, info, warn or error.
func (l *LogLevel) UnmarshalText(b []byte) error {
	switch strings.ToLower(strings.TrimSpace(string(b))) {
	case "debug":
		*l = LogLevel(slog.LevelDebug)
	case "info", "":
		*l = LogLevel(slog.LevelInfo)
	case "warn", "warning":
		*l = LogLevel(slog.LevelWarn)
	case "error":
		*l = LogLevel(slog.LevelError)
	default:
		return fmt.Errorf("%q is not a log level: use debug, info, warn or error", string(b))
	}
	return nil
}

// LogFormat is MODELGATE_LOG_FORMAT.
type LogFormat string

// UnmarshalText accepts json or text.
func (f *LogFormat) UnmarshalText(b []byte) error {
	switch v := strings.ToLower(strings.TrimSpace(string(b))); v {
	case "json", "text":
		*f = LogFormat(v)
	default:
		return fmt.Errorf("%q is not a log format: use json or text", string(b))
	}
	return nil
}
