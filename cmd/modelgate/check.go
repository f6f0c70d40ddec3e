package main

import (
	"flag"
	"fmt"
	"io"
)

// runCheck validates a policy file: every problem as FILE:LINE:COL: message and exit 1,
// or a summary of the gates and exit 0. It needs no MLflow.
func runCheck(args, environ []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("f", "", "policy file (default $MODELGATE_POLICY, else modelgate.yaml)")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "modelgate check: unexpected argument %q (use -f FILE)\n", fs.Arg(0))
		return exitUsage
	}
	path := *file
	if path == "" {
		cfg, err := loadConfig(environ)
		if err != nil {
			fmt.Fprintf(stderr, "modelgate: %v\n", err)
			return exitUsage
		}
		path = cfg.PolicyPath
	}
	p, err := loadPolicy(path)
	if err != nil {
		return printPolicyError(stdout, stderr, err)
	}
	fmt.Fprintf(stdout, "%s: OK, %s", path, p.Describe())
	return exitOK
}
