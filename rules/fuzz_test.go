package rules

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// FuzzLoad feeds arbitrary bytes to the policy loader: it returns a policy or problems,
// never panics, and every problem has a position. A policy that loads evaluates empty
// evidence without panicking too. The seed corpus is every example policy plus
// testdata/fuzz/FuzzLoad.
func FuzzLoad(f *testing.F) {
	files, _ := filepath.Glob("../examples/*.yaml")
	broken, _ := filepath.Glob("../examples/broken/*.yaml")
	for _, file := range append(append(files, broken...), "testdata/product.yaml") {
		if data, err := os.ReadFile(file); err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte("gates: [{name: a, models: ['*'], on_missing: reject, checks: [{name: e, expr: 'true'}]}]"))
	f.Add([]byte("gates: &a [*a]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Load("fuzz.yaml", data)
		if err != nil {
			if ps, ok := err.(Problems); ok {
				for _, pr := range ps {
					if pr.Line < 1 || pr.Col < 1 || pr.Msg == "" {
						t.Fatalf("problem without position or message: %+v", pr)
					}
				}
			}
			return
		}
		for _, g := range p.Gates {
			d := g.Evaluate(&Evidence{Model: "m", Version: "1"})
			_ = g.Report(d, string(d.Outcome), time.Time{}, nil).Markdown(5000)
		}
	})
}
