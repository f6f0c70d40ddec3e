package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/modelgate/modelgate/mlflow"
	"github.com/modelgate/modelgate/rules"
	"github.com/modelgate/modelgate/transitions"
)

// newLogger builds the process logger from MODELGATE_LOG_LEVEL and MODELGATE_LOG_FORMAT.
func newLogger(cfg Config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: slog.Level(cfg.LogLevel)}
	if cfg.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// newClient builds the MLflow client from the MLFLOW_* settings. fence, when not nil,
// guards every write (leader election).
func newClient(cfg Config, logger *slog.Logger, observer mlflow.Observer, fence func(context.Context) (context.Context, context.CancelFunc, error)) (*mlflow.Client, error) {
	return mlflow.New(mlflow.Options{
		TrackingURI:    cfg.TrackingURI,
		Token:          cfg.TrackingToken.Reveal(),
		Username:       cfg.TrackingUsername,
		Password:       cfg.TrackingPassword.Reveal(),
		InsecureTLS:    cfg.InsecureTLS,
		ServerCertPath: cfg.ServerCertPath,
		ClientCertPath: cfg.ClientCertPath,
		MaxRetries:     cfg.MaxRetries,
		Timeout:        cfg.RequestTimeout.Duration(),
		BackoffFactor:  cfg.BackoffFactor.Duration(),
		BackoffJitter:  cfg.BackoffJitter.Duration(),
		UserAgent:      "modelgate/" + buildVersion(),
		Logger:         logger,
		Observer:       observer,
		Fence:          fence,
		MaxInFlight:    cfg.Concurrency,
	})
}

// newAudit builds the audit trail, or nil when MODELGATE_AUDIT_EXPERIMENT is off.
func newAudit(cfg Config, client *mlflow.Client, keys transitions.Keys, logger *slog.Logger, rec transitions.AuditRecorder) *transitions.Audit {
	if strings.EqualFold(strings.TrimSpace(cfg.AuditExperiment), auditOff) {
		return nil
	}
	return transitions.NewAudit(transitions.AuditOptions{Store: client, Experiment: cfg.AuditExperiment, Keys: keys,
		Logger: logger, Recorder: rec, DryRun: cfg.DryRun})
}

// errPolicyUnreadable wraps a policy file that cannot be read: a configuration error
// (exit 2), where a file that reads but does not validate is a policy error (exit 1).
var errPolicyUnreadable = errors.New("policy file unreadable")

// loadPolicy reads and validates the policy file.
func loadPolicy(path string) (*rules.Policy, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w: set MODELGATE_POLICY (or -f) to the policy file's path", errPolicyUnreadable, err)
	}
	defer f.Close()
	// Read one byte past the limit, so that Load can say the file is too large without
	// reading all of a huge one.
	data, err := io.ReadAll(io.LimitReader(f, rules.MaxPolicyBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w: set MODELGATE_POLICY (or -f) to the policy file's path", errPolicyUnreadable, path, err)
	}
	return rules.Load(path, data)
}

// printPolicyError writes policy problems one per line (FILE:LINE:COL: message) to
// stdout, or any other error to stderr, and returns the exit code for it.
func printPolicyError(stdout, stderr io.Writer, err error) int {
	var problems rules.Problems
	if errors.As(err, &problems) {
		for _, p := range problems {
			fmt.Fprintln(stdout, p)
		}
		return exitPolicy
	}
	fmt.Fprintf(stderr, "modelgate: %v\n", err)
	if errors.Is(err, errPolicyUnreadable) {
		return exitUsage
	}
	return exitPolicy
}
