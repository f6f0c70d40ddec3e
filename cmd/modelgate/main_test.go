package main

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"
)

// testSigningKey signs the records of the tests' daemons (32 bytes, hex).
const testSigningKey = "6d6f64656c676174652d74657374732d7369676e696e672d6b65792d30303030"

// keyed adds the test signing key to an environment that does not name one (a test
// that wants none sets MODELGATE_SIGNING_KEY= explicitly).
func keyed(env []string) []string {
	for _, kv := range env {
		if strings.HasPrefix(kv, "MODELGATE_SIGNING_KEY=") {
			return env
		}
	}
	return append(slices.Clip(env), "MODELGATE_SIGNING_KEY="+testSigningKey)
}

func runCmd(t *testing.T, env []string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, keyed(env), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func TestVersionCommand(t *testing.T) {
	code, out, _ := runCmd(t, nil, "version")
	if code != exitOK || !strings.HasPrefix(out, "modelgate ") || !strings.Contains(out, "go1.") {
		t.Fatalf("version: exit %d, output %q", code, out)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{nil, {"frobnicate"}} {
		code, _, errOut := runCmd(t, nil, args...)
		if code != exitUsage || !strings.Contains(errOut, "Usage:") {
			t.Errorf("%v: exit %d, stderr %q; want %d and the usage", args, code, errOut, exitUsage)
		}
	}
}
