package rules

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestExamplePolicyLoads(t *testing.T) {
	for _, file := range []string{"../examples/modelgate.yaml", "testdata/product.yaml"} {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		p, err := Load(file, data)
		if err != nil {
			t.Fatalf("%s does not load:\n%v", file, err)
		}
		if len(p.Gates) == 0 || p.GateFor("credit-scoring") == nil {
			t.Fatalf("%s: no gate for credit-scoring", file)
		}
	}
}

// TestBrokenExamples loads every policy in examples/broken and compares the problems
// with the file's "# want: LINE:COL: text" comments: each want must be reported at that
// position with that text, and nothing else may be reported.
func TestBrokenExamples(t *testing.T) {
	files, err := filepath.Glob("../examples/broken/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no broken examples: %v", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			_, err = Load(file, data)
			var problems Problems
			if !errors.As(err, &problems) {
				t.Fatalf("Load: %v, want Problems", err)
			}
			var wants []string
			for _, line := range strings.Split(string(data), "\n") {
				if w, ok := strings.CutPrefix(line, "# want: "); ok {
					wants = append(wants, w)
				}
			}
			if len(wants) == 0 {
				t.Fatal("no # want: lines")
			}
			matched := make([]bool, len(problems))
			for _, w := range wants {
				found := false
				for i, p := range problems {
					pos := fmt.Sprintf("%d:%d: ", p.Line, p.Col)
					if !matched[i] && strings.HasPrefix(w, pos) && strings.Contains(p.Msg, strings.TrimPrefix(w, pos)) {
						matched[i], found = true, true
						break
					}
				}
				if !found {
					t.Errorf("missing problem %q", w)
				}
			}
			for i, p := range problems {
				if !matched[i] {
					t.Errorf("unexpected problem %s", p)
				}
			}
			if t.Failed() {
				t.Logf("all problems:\n%v", err)
			}
		})
	}
}
