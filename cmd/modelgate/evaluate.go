package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/modelgate/modelgate/mlflow"
	"github.com/modelgate/modelgate/rules"
	"github.com/modelgate/modelgate/transitions"
)

// runEvaluate evaluates one version against the policy and prints the report (text, or
// JSON with --json). It reads from MLflow and writes nothing.
func runEvaluate(ctx context.Context, args, environ []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("evaluate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print the report as JSON")
	file := fs.String("f", "", "policy file (default $MODELGATE_POLICY, else modelgate.yaml)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return exitUsage
	}
	if len(pos) != 2 {
		fmt.Fprintln(stderr, "usage: modelgate evaluate MODEL VERSION [--json] [-f FILE]")
		return exitUsage
	}
	model, version := pos[0], pos[1]
	if _, ok := mlflow.VersionNumber(version); !ok {
		fmt.Fprintf(stderr, "modelgate evaluate: version %q is not a version number such as 3\n", version)
		return exitUsage
	}

	cfg, err := loadConfig(environ)
	if err == nil {
		err = cfg.requireTrackingURI()
	}
	if err != nil {
		fmt.Fprintf(stderr, "modelgate: %v\n", err)
		return exitUsage
	}
	if *file != "" {
		cfg.PolicyPath = *file
	}
	policy, err := loadPolicy(cfg.PolicyPath)
	if err != nil {
		return printPolicyError(stdout, stderr, err)
	}
	logger := newLogger(cfg, stderr)
	client, err := newClient(cfg, logger, nil)
	if err != nil {
		fmt.Fprintf(stderr, "modelgate: %v\n", err)
		return exitUsage
	}

	report, err := evaluateVersion(ctx, client, policy, model, version)
	if err != nil {
		fmt.Fprintf(stderr, "modelgate evaluate: %v\n", err)
		if mlflow.IsNotFound(err) {
			return exitUsage
		}
		return exitCode(err)
	}
	if *asJSON {
		b, err := report.JSON()
		if err != nil {
			fmt.Fprintf(stderr, "modelgate evaluate: %v\n", err)
			return exitPolicy
		}
		fmt.Fprintf(stdout, "%s\n", b)
		return exitOK
	}
	fmt.Fprint(stdout, report.Text())
	return exitOK
}

// evaluateVersion reads a version and its evidence, and decides it as the daemon would,
// including the votes already cast when the decision is a review.
func evaluateVersion(ctx context.Context, client *mlflow.Client, policy *rules.Policy, model, version string) (rules.Report, error) {
	mv, err := client.GetModelVersion(ctx, model, version)
	if err != nil {
		return rules.Report{}, fmt.Errorf("read %s version %s: %w", model, version, err)
	}
	now := time.Now().UTC()
	if mv.IsPrompt() {
		d := rules.Decision{Model: model, Version: version, Outcome: rules.NotGated, Reason: "this is an MLflow prompt: modelgate never gates prompts"}
		return rules.Report{Decision: d, Status: string(d.Outcome), DecidedAt: now}, nil
	}
	gate := policy.GateFor(model)
	if gate == nil {
		d := policy.Evaluate(&rules.Evidence{Model: model, Version: version})
		return rules.Report{Decision: d, Status: string(d.Outcome), DecidedAt: now}, nil
	}
	ev, err := transitions.GatherEvidence(ctx, client, gate, mv)
	if err != nil {
		return rules.Report{}, err
	}
	d := gate.Evaluate(ev)
	var notes []string
	if st := mv.Tags[transitions.TagStatus]; st != "" {
		notes = append(notes, fmt.Sprintf("registry status: %s (%s)", st, mv.Tags[transitions.TagSummary]))
	}
	var tally *rules.Tally
	if d.Outcome == rules.PendingReview {
		requested, _ := time.Parse(time.RFC3339, mv.Tags[transitions.TagDecidedAt])
		t := gate.Tally(mv.Tags, requested, now)
		tally = &t
	}
	return gate.Report(d, string(d.Outcome), now, tally, notes...), nil
}

// parseInterspersed parses flags that may come before, between or after positional
// arguments, and returns the positional ones.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}
