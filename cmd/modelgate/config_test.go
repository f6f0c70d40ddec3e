package main

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
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
	})
	if err != nil {
		t.Fatal(err)
	}
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("config", "cfg", cfg, "token", cfg.TrackingToken)
	slog.New(slog.NewTextHandler(&logged, nil)).Info("config", "password", cfg.TrackingPassword)
	out := fmt.Sprintf("%v %+v %#v %s %q", cfg, cfg, cfg, cfg.WebhookSecret, cfg.TrackingPassword) + logged.String()
	for _, secret := range []string{"tok-123", "pw-456", "whs-789"} {
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
