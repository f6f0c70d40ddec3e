package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestConfigDefaults(t *testing.T) {
	cfg, err := loadConfig([]string{"MLFLOW_TRACKING_URI=http://127.0.0.1:5000"})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		name      string
		got, want any
	}{
		{"MLFLOW_HTTP_REQUEST_MAX_RETRIES", cfg.MaxRetries, 7},
		{"MLFLOW_HTTP_REQUEST_TIMEOUT", cfg.RequestTimeout.Duration(), 120 * time.Second},
		{"MODELGATE_POLICY", cfg.PolicyPath, "modelgate.yaml"},
		{"MODELGATE_POLL_INTERVAL", cfg.PollInterval, 30 * time.Second},
		{"MODELGATE_LISTEN_ADDR", cfg.ListenAddr, ":9464"},
		{"MODELGATE_DRY_RUN", cfg.DryRun, false},
		{"MODELGATE_SINCE", cfg.Since.Cutoff(start), start.Add(-24 * time.Hour)},
		{"MODELGATE_CONCURRENCY", cfg.Concurrency, 8},
		{"MODELGATE_LOG_LEVEL", slog.Level(cfg.LogLevel), slog.LevelInfo},
		{"MODELGATE_LOG_FORMAT", cfg.LogFormat, LogFormat("json")},
		{"MODELGATE_UI_URL", cfg.UIURL, "http://127.0.0.1:5000"},
	} {
		if c.got != c.want {
			t.Errorf("%s default = %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestConfigValues(t *testing.T) {
	cfg, err := loadConfig([]string{
		"MLFLOW_TRACKING_URI=https://mlflow.example.com",
		"MLFLOW_TRACKING_USERNAME=gate", "MLFLOW_TRACKING_PASSWORD=pw",
		"MLFLOW_HTTP_REQUEST_TIMEOUT=2.5", "MLFLOW_HTTP_REQUEST_MAX_RETRIES=0",
		"MODELGATE_SINCE=2026-01-02T15:04:05+01:00", "MODELGATE_DRY_RUN=TRUE",
		"MODELGATE_LOG_LEVEL=Debug", "MODELGATE_LOG_FORMAT=text", "MODELGATE_UI_URL=https://ui.example.com",
	})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.RequestTimeout.Duration() != 2500*time.Millisecond || cfg.MaxRetries != 0 || !cfg.DryRun ||
		!cfg.Since.At.Equal(time.Date(2026, 1, 2, 14, 4, 5, 0, time.UTC)) || slog.Level(cfg.LogLevel) != slog.LevelDebug ||
		cfg.LogFormat != "text" || cfg.UIURL != "https://ui.example.com" {
		t.Fatalf("config %+v", cfg)
	}
}

func TestConfigErrorsNameTheVariable(t *testing.T) {
	for _, tc := range []struct {
		env  string
		want string
	}{
		{"MLFLOW_TRACKING_URI=ftp://x", "MLFLOW_TRACKING_URI"},
		{"MLFLOW_TRACKING_INSECURE_TLS=maybe", "MLFLOW_TRACKING_INSECURE_TLS"},
		{"MLFLOW_HTTP_REQUEST_MAX_RETRIES=many", "MLFLOW_HTTP_REQUEST_MAX_RETRIES"},
		{"MLFLOW_HTTP_REQUEST_MAX_RETRIES=-1", "MLFLOW_HTTP_REQUEST_MAX_RETRIES"},
		{"MLFLOW_HTTP_REQUEST_TIMEOUT=soon", "MLFLOW_HTTP_REQUEST_TIMEOUT"},
		{"MLFLOW_HTTP_REQUEST_TIMEOUT=0", "MLFLOW_HTTP_REQUEST_TIMEOUT"},
		{"MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR=x", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"},
		{"MLFLOW_TRACKING_USERNAME=alice", "MLFLOW_TRACKING_PASSWORD"},
		{"MODELGATE_POLL_INTERVAL=30", "MODELGATE_POLL_INTERVAL"},
		{"MODELGATE_POLL_INTERVAL=-5s", "MODELGATE_POLL_INTERVAL"},
		{"MODELGATE_DRY_RUN=sure", "MODELGATE_DRY_RUN"},
		{"MODELGATE_SINCE=yesterday", "MODELGATE_SINCE"},
		{"MODELGATE_CONCURRENCY=0", "MODELGATE_CONCURRENCY"},
		{"MODELGATE_CONCURRENCY=eight", "MODELGATE_CONCURRENCY"},
		{"MODELGATE_LOG_LEVEL=verbose", "MODELGATE_LOG_LEVEL"},
		{"MODELGATE_LOG_FORMAT=xml", "MODELGATE_LOG_FORMAT"},
		{"MODELGATE_UI_URL=not a url", "MODELGATE_UI_URL"},
		{"MODELGATE_SIGNING_KEY=hunter2", "MODELGATE_SIGNING_KEY: it is not hex: make one with `openssl rand -hex 32`"},
		{"MODELGATE_SIGNING_KEY=00112233", "MODELGATE_SIGNING_KEY: it is 4 bytes, at least 32 are needed"},
		{"MODELGATE_SIGNING_KEY_PREVIOUS=" + testSigningKey, "MODELGATE_SIGNING_KEY_PREVIOUS is set but MODELGATE_SIGNING_KEY is not"},
		{"MODELGATE_AUDIT_EXPERIMENT= ", "MODELGATE_AUDIT_EXPERIMENT is empty"},
	} {
		t.Run(tc.env, func(t *testing.T) {
			_, err := loadConfig([]string{"MLFLOW_TRACKING_URI=http://127.0.0.1:5000", tc.env})
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v, want *ConfigError", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %q, want it to name %s", err, tc.want)
			}
			if exitCode(err) != exitUsage {
				t.Fatalf("exit code %d, want %d", exitCode(err), exitUsage)
			}
		})
	}
}

func TestConfigReportsEveryProblemAtOnce(t *testing.T) {
	_, err := loadConfig([]string{"MODELGATE_POLL_INTERVAL=x", "MODELGATE_CONCURRENCY=0", "MODELGATE_LOG_FORMAT=xml"})
	var ce *ConfigError
	if !errors.As(err, &ce) || len(ce.Problems) != 3 {
		t.Fatalf("err = %v, want three problems", err)
	}
}

func TestSecretsNeverPrint(t *testing.T) {
	cfg, err := loadConfig([]string{
		"MLFLOW_TRACKING_URI=http://127.0.0.1:5000", "MLFLOW_TRACKING_TOKEN=tok-123",
		"MLFLOW_TRACKING_USERNAME=gate", "MLFLOW_TRACKING_PASSWORD=pw-456", "MODELGATE_WEBHOOK_SECRET=whs-789",
		"MODELGATE_SIGNING_KEY=" + testSigningKey,
	})
	if err != nil {
		t.Fatal(err)
	}
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("config", "cfg", cfg, "token", cfg.TrackingToken)
	slog.New(slog.NewTextHandler(&logged, nil)).Info("config", "password", cfg.TrackingPassword)
	out := fmt.Sprintf("%v %+v %#v %s %q %v", cfg, cfg, cfg, cfg.WebhookSecret, cfg.TrackingPassword, cfg.SigningKey) + logged.String()
	for _, secret := range []string{"tok-123", "pw-456", "whs-789", testSigningKey} {
		if strings.Contains(out, secret) {
			t.Fatalf("secret %q printed: %s", secret, out)
		}
	}
	if cfg.TrackingToken.Reveal() != "tok-123" {
		t.Fatal("Reveal lost the value")
	}
}

func TestTrackingURIRequiredOnlyWhereUsed(t *testing.T) {
	cfg, err := loadConfig(nil)
	if err != nil {
		t.Fatalf("config without MLFLOW_TRACKING_URI: %v (check needs no server)", err)
	}
	if err := cfg.requireTrackingURI(); err == nil || !strings.Contains(err.Error(), "MLFLOW_TRACKING_URI") {
		t.Fatalf("requireTrackingURI = %v", err)
	}
}

// TestBadConfigurationTouchesNoMLflow: every way start-up can be misconfigured ends
// with a message naming the thing to fix and exit 2 (1 for a policy that fails
// `check`), before a single request reaches MLflow.
func TestBadConfigurationTouchesNoMLflow(t *testing.T) {
	var requests atomic.Int64
	mlflowSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		http.Error(w, "modelgate should not have called", http.StatusTeapot)
	}))
	defer mlflowSrv.Close()
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()

	for _, tc := range []struct {
		env  string
		code int
		want string
	}{
		{"MLFLOW_TRACKING_URI=", exitUsage, "MLFLOW_TRACKING_URI is not set"},
		{"MLFLOW_TRACKING_URI=ftp://mlflow:5000", exitUsage, "MLFLOW_TRACKING_URI"},
		{"MLFLOW_TRACKING_URI=databricks", exitUsage, "MLFLOW_TRACKING_URI"},
		{"MLFLOW_TRACKING_USERNAME=gate", exitUsage, "MLFLOW_TRACKING_PASSWORD"},
		{"MLFLOW_TRACKING_PASSWORD=pw-secret-1", exitUsage, "MLFLOW_TRACKING_USERNAME"},
		{"MLFLOW_TRACKING_INSECURE_TLS=maybe", exitUsage, "MLFLOW_TRACKING_INSECURE_TLS"},
		{"MLFLOW_TRACKING_SERVER_CERT_PATH=" + filepath.Join(dir, "missing.pem"), exitUsage, "MLFLOW_TRACKING_SERVER_CERT_PATH"},
		{"MLFLOW_TRACKING_SERVER_CERT_PATH=" + notPEM, exitUsage, "holds no PEM certificate"},
		{"MLFLOW_TRACKING_CLIENT_CERT_PATH=" + notPEM, exitUsage, "MLFLOW_TRACKING_CLIENT_CERT_PATH"},
		{"MLFLOW_HTTP_REQUEST_MAX_RETRIES=-1", exitUsage, "MLFLOW_HTTP_REQUEST_MAX_RETRIES"},
		{"MLFLOW_HTTP_REQUEST_TIMEOUT=0", exitUsage, "MLFLOW_HTTP_REQUEST_TIMEOUT"},
		{"MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR=fast", exitUsage, "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"},
		{"MLFLOW_HTTP_REQUEST_BACKOFF_JITTER=-1", exitUsage, "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER"},
		{"MODELGATE_POLICY=" + filepath.Join(dir, "missing.yaml"), exitUsage, "set MODELGATE_POLICY"},
		{"MODELGATE_POLICY=" + dir, exitUsage, "is a directory"},
		{"MODELGATE_POLICY=../../examples/broken/bounds.yaml", exitPolicy, "bounds.yaml:7:9"},
		{"MODELGATE_POLICY=../../examples/broken/unknown-field.yaml", exitPolicy, "unknown-field.yaml:"},
		{"MODELGATE_POLL_INTERVAL=30", exitUsage, "MODELGATE_POLL_INTERVAL"},
		{"MODELGATE_LISTEN_ADDR=9464", exitUsage, "MODELGATE_LISTEN_ADDR"},
		{"MODELGATE_LISTEN_ADDR=:99999", exitUsage, "MODELGATE_LISTEN_ADDR"},
		{"MODELGATE_LISTEN_ADDR=" + busy.Addr().String(), exitUsage, "address already in use"},
		{"MODELGATE_DRY_RUN=sure", exitUsage, "MODELGATE_DRY_RUN"},
		{"MODELGATE_WEBHOOK_URL=http://modelgate:9464/webhooks/mlflow", exitUsage, "MODELGATE_WEBHOOK_SECRET is not"},
		{"MODELGATE_WEBHOOK_URL=modelgate:9464", exitUsage, "MODELGATE_WEBHOOK_URL"},
		{"MODELGATE_SINCE=yesterday", exitUsage, "MODELGATE_SINCE"},
		{"MODELGATE_CONCURRENCY=0", exitUsage, "MODELGATE_CONCURRENCY"},
		{"MODELGATE_CONCURRENCY=100000", exitUsage, "MODELGATE_CONCURRENCY"},
		{"MODELGATE_LOG_LEVEL=verbose", exitUsage, "MODELGATE_LOG_LEVEL"},
		{"MODELGATE_LOG_FORMAT=xml", exitUsage, "MODELGATE_LOG_FORMAT"},
		{"MODELGATE_UI_URL=mlflow.example.com", exitUsage, "MODELGATE_UI_URL"},
		{"MODELGATE_UI_URL=https://admin:pw-secret-1@mlflow.example.com", exitUsage, "MODELGATE_UI_URL carries credentials"},
		{"MODELGATE_WEBHOOK_URL=https://pw-secret-1@modelgate:9464/webhooks/mlflow", exitUsage, "MODELGATE_WEBHOOK_URL carries credentials"},
		{"MLFLOW_TRACKING_URI=http://user:pw-secret-1#x@mlflow:5000", exitUsage, "MLFLOW_TRACKING_URI"},
		{"MLFLOW_TRACKING_URI=ftp://pw-secret-1@mlflow:5000", exitUsage, "MLFLOW_TRACKING_URI"},
		{"SLACK_WEBHOOK_URL=", exitUsage, "SLACK_WEBHOOK_URL is not set"},
	} {
		t.Run(tc.env, func(t *testing.T) {
			env := []string{
				"MLFLOW_TRACKING_URI=" + mlflowSrv.URL,
				"MODELGATE_POLICY=../../examples/modelgate.yaml",
				"MODELGATE_LISTEN_ADDR=127.0.0.1:0",
				"SLACK_WEBHOOK_URL=http://127.0.0.1:1/unused",
			}
			if strings.HasSuffix(tc.env, "=") { // an empty value is the variable unset
				name := strings.TrimSuffix(tc.env, "=")
				env = slices.DeleteFunc(env, func(kv string) bool { return strings.HasPrefix(kv, name+"=") })
			} else {
				env = append(env, tc.env)
			}
			// A case that wrongly starts would run until cancelled: bound it.
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			var stdout, stderr bytes.Buffer
			code := run(ctx, []string{"run"}, keyed(env), &stdout, &stderr)
			out := stdout.String() + stderr.String()
			if code != tc.code || !strings.Contains(out, tc.want) {
				t.Errorf("exit %d, output %q; want exit %d mentioning %q", code, out, tc.code, tc.want)
			}
			if strings.Contains(out, "pw-secret-1") {
				t.Errorf("the password is printed: %q", out)
			}
			if n := requests.Load(); n != 0 {
				t.Fatalf("%d requests reached MLflow before start-up refused", n)
			}
		})
	}
}

// TestRunNeedsASigningKey: `run` refuses to start without MODELGATE_SIGNING_KEY and says
// how to make one; a dry run starts without it.
func TestRunNeedsASigningKey(t *testing.T) {
	env := []string{"MLFLOW_TRACKING_URI=http://127.0.0.1:1", "MODELGATE_POLICY=../../examples/modelgate.yaml", "SLACK_WEBHOOK_URL=http://x",
		"MODELGATE_SIGNING_KEY=", "MLFLOW_HTTP_REQUEST_MAX_RETRIES=0"}
	code, _, errOut := runCmd(t, env, "run", "--once")
	if code != exitUsage || !strings.Contains(errOut, "MODELGATE_SIGNING_KEY is not set") || !strings.Contains(errOut, "openssl rand -hex 32") {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	code, _, errOut = runCmd(t, env, "run", "--once", "--dry-run")
	if code != exitUpstream || !strings.Contains(errOut, "without checking their signatures") {
		t.Fatalf("dry run without a key: exit %d (want 3: MLflow is down, not the key): %s", code, errOut)
	}
}
