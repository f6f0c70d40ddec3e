package main

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/modelgate/modelgate"

// TestPackageGraph holds the dependency direction of PRODUCT.md's layout: rules and
// metrics import no package of ours, mlflow none either (its test harness only mlflow),
// transitions only mlflow and rules and never cmd, the notifier only transitions and
// rules; and no test-only Kubernetes or Prometheus Operator package reaches the binary.
// It reads the real graph with `go list -deps`, so a forbidden import anywhere fails it.
func TestPackageGraph(t *testing.T) {
	allowed := map[string][]string{ // package -> packages of ours it may depend on
		"rules":                       {},
		"metrics":                     {},
		"mlflow":                      {},
		"mlflow/mlflowtest":           {"mlflow"},
		"transitions":                 {"mlflow", "rules"},
		"transitions/notify":          {"transitions", "mlflow", "rules"},
		"transitions/leader":          {},
		"transitions/leader/kubetest": {},
		"cmd/modelgate":               {"mlflow", "rules", "transitions", "transitions/notify", "transitions/leader", "metrics"},
		"scripts/bench":               {"mlflow", "mlflow/mlflowtest", "rules", "transitions"},
	}
	ours := listPackages(t, "./...")
	for _, pkg := range ours {
		rel := strings.TrimPrefix(strings.TrimPrefix(pkg, module), "/")
		want, ok := allowed[rel]
		if !ok {
			t.Errorf("package %s is not in the layout this test knows: add it with the packages it may import", rel)
			continue
		}
		for _, dep := range listPackages(t, "-deps", pkg) {
			switch {
			case dep == pkg:
			case strings.HasPrefix(dep, module+"/"):
				if d := strings.TrimPrefix(dep, module+"/"); !slices.Contains(want, d) {
					t.Errorf("%s depends on %s: allowed are %v", rel, d, want)
				}
			case strings.Contains(dep, "prometheus-operator"):
				t.Errorf("%s depends on %s: the Prometheus Operator types are for the chart tests (charts/go.mod) only", rel, dep)
			}
		}
	}
}

func listPackages(t *testing.T, args ...string) []string {
	t.Helper()
	cmd := exec.Command("go", append([]string{"list", "-f", "{{.ImportPath}}"}, args...)...)
	cmd.Dir = "../.."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list %v: %v", args, err)
	}
	return strings.Fields(string(out))
}
