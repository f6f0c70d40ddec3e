package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/modelgate/modelgate/mlflow"
	"github.com/modelgate/modelgate/transitions"
)

// runEvaluate prints the plan the daemon would carry out for one version now (text, or
// JSON with --json): the decision, the votes, and every write and notification. It
// plans with the daemon's own Planner, reads from MLflow and writes nothing.
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
	client, err := newClient(cfg, logger, nil, nil)
	if err != nil {
		fmt.Fprintf(stderr, "modelgate: %v\n", err)
		return exitUsage
	}

	keys := cfg.keys()
	if len(keys.Current) == 0 {
		logger.Warn("MODELGATE_SIGNING_KEY is not set: records are read without checking their signatures, so the plan may differ from the daemon's")
	}
	pc := transitions.PlannerConfig{Reader: client, Policy: policy, Logger: logger, Since: cfg.Since.Cutoff(time.Now()), Keys: keys}
	if audit := newAudit(cfg, client, keys, logger, nil); audit != nil {
		pc.Audit = audit
	}
	planner, err := transitions.NewPlanner(pc)
	if err != nil {
		fmt.Fprintf(stderr, "modelgate evaluate: %v\n", err)
		return exitUsage
	}
	plan, err := planner.PlanVersion(ctx, model, version)
	if err != nil {
		fmt.Fprintf(stderr, "modelgate evaluate: %v\n", err)
		if mlflow.IsNotFound(err) {
			return exitUsage
		}
		return exitCode(err)
	}
	if *asJSON {
		b, err := json.MarshalIndent(plan, "", "  ")
		if err != nil {
			fmt.Fprintf(stderr, "modelgate evaluate: %v\n", err)
			return exitPolicy
		}
		fmt.Fprintf(stdout, "%s\n", b)
		return exitOK
	}
	fmt.Fprint(stdout, plan.Text())
	return exitOK
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
