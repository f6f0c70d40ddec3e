package rules

import (
	"fmt"
	"strings"
	"testing"
)

// TestPolicySize: a policy file over 1 MiB is refused with a message that says so (the
// probe's 200,000 gates took 437 s and 1.28 GB to check); a large legitimate policy
// still loads, and shadowing is found across several earlier gates.
func TestPolicySize(t *testing.T) {
	var b strings.Builder
	b.WriteString("gates:\n")
	for i := 0; b.Len() <= MaxPolicyBytes; i++ {
		fmt.Fprintf(&b, "  - {name: g%d, models: [\"m%d-*\"], on_missing: reject}\n", i, i)
	}
	_, err := Load("big.yaml", []byte(b.String()))
	if err == nil || !strings.Contains(err.Error(), "big.yaml:1:1: the policy file is") || !strings.Contains(err.Error(), "1 MiB") {
		t.Fatalf("err = %v", err)
	}

	b.Reset()
	b.WriteString("gates:\n")
	for i := range 5000 {
		fmt.Fprintf(&b, "  - {name: g%d, models: [\"m%d-*\"], on_missing: reject}\n", i, i)
	}
	p, err := Load("many.yaml", []byte(b.String()))
	if err != nil || len(p.Gates) != 5000 {
		t.Fatalf("5,000 gates: %v", err)
	}
}

func TestShadowedGates(t *testing.T) {
	for _, tc := range []struct {
		name, gates, problem string
	}{
		{"the same glob", `[{name: a, models: ["credit-*"]}, {name: b, models: ["credit-*"]}]`, `gate "b" can never match: gate "a" comes first`},
		{"a star first", `[{name: all, models: ["*"]}, {name: b, models: ["credit-*"]}]`, `gate "b" can never match: gate "all" comes first`},
		{"globs spread over earlier gates", `[{name: a, models: ["x-*"]}, {name: b, models: ["y-*"]}, {name: c, models: ["x-*", "y-*"]}]`, `gate "c" can never match`},
		{"a glob no earlier gate has", `[{name: a, models: ["x-*"]}, {name: c, models: ["x-*", "z-*"]}]`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load("p.yaml", []byte("gates: "+strings.ReplaceAll(tc.gates, "]}", "], on_missing: reject}")+"\n"))
			switch {
			case tc.problem == "" && err != nil:
				t.Fatalf("err = %v", err)
			case tc.problem != "" && (err == nil || !strings.Contains(err.Error(), tc.problem)):
				t.Fatalf("err = %v, want %q", err, tc.problem)
			}
		})
	}
}
