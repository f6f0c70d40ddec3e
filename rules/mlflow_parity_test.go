package rules

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os/exec"
	"testing"

	"github.com/modelgate/modelgate/mlflow/mlflowtest"
)

// parityScript runs MLflow's own MetricThreshold validation on each case read from stdin
// and prints whether it passed.
const parityScript = `
import json, sys
from mlflow.models import MetricThreshold
from mlflow.models.evaluation.validation import _validate, ModelValidationFailedException
out = []
for c in json.load(sys.stdin):
    rel = c["min_rel"]
    th = MetricThreshold(threshold=c["threshold"], min_absolute_change=c["min_abs"],
                         min_relative_change=None if rel is None else float(rel), greater_is_better=c["gib"])
    try:
        _validate({"m": th}, {"m": c["cand"]}, {"m": c["base"]})
        out.append(True)
    except ModelValidationFailedException:
        out.append(False)
json.dump(out, sys.stdout)
`

type parityCase struct {
	Cand      float64  `json:"cand"`
	Base      float64  `json:"base"`
	Threshold *float64 `json:"threshold"`
	MinAbs    *float64 `json:"min_abs"`
	MinRel    *float64 `json:"min_rel"`
	GIB       bool     `json:"gib"`
}

// TestBaselineArithmeticMatchesMLflow compares the baseline check with MLflow's
// MetricThreshold, run by the MLflow Python package itself, on a few thousand cases
// chosen around the edges: equal values, zero and negative baselines, values one ulp
// apart, and decimals whose float sums are not what they look like.
func TestBaselineArithmeticMatchesMLflow(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the MLflow Python package: skipped with -short")
	}
	py, err := mlflowtest.Python()
	if err != nil {
		mlflowtest.Unavailable(t, err)
	}
	pool := []float64{0, 0.1, 0.2, 0.3, 0.5, 0.7, 0.8, 0.88, 0.9, 0.91, 1, -1, -0.8, -0.9, 1e-11, 1e-10, 1e-9, 42}
	for _, v := range pool[:len(pool):len(pool)] {
		pool = append(pool, math.Nextafter(v, math.Inf(1)), math.Nextafter(v, math.Inf(-1)))
	}
	rng := rand.New(rand.NewPCG(1, 2))
	pick := func() float64 {
		if rng.IntN(4) == 0 {
			return math.Round((rng.Float64()*2-1)*1000) / 1000
		}
		return pool[rng.IntN(len(pool))]
	}
	opt := func(vals ...float64) *float64 {
		i := rng.IntN(len(vals) + 1)
		if i == len(vals) {
			return nil
		}
		return &vals[i]
	}
	var cases []parityCase
	for len(cases) < 3000 {
		c := parityCase{Cand: pick(), Base: pick(), GIB: rng.IntN(2) == 0,
			Threshold: opt(0.5, 0.8, -0.5),
			MinAbs:    opt(0.01, 0.1, 0.2, 1e-10), // MLflow requires min_absolute_change > 0
			MinRel:    opt(0, 0.01, 0.1, 0.5, 1),
		}
		if c.Threshold == nil && c.MinAbs == nil && c.MinRel == nil {
			continue
		}
		cases = append(cases, c)
	}

	in, _ := json.Marshal(cases)
	cmd := exec.Command(py, "-c", parityScript)
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("MLflow's validation: %v\n%s", err, stderr.String())
	}
	var want []bool
	if err := json.Unmarshal(out, &want); err != nil || len(want) != len(cases) {
		t.Fatalf("MLflow printed %d results (%v), want %d", len(want), err, len(cases))
	}

	champion := BaselineRef{Alias: "champion"}
	mismatches := 0
	for i, c := range cases {
		chk := Check{Name: "b", Kind: KindBaseline, Metrics: []string{"m"}, Baseline: champion, GreaterIsBetter: c.GIB,
			Threshold: c.Threshold, MinAbsoluteChange: c.MinAbs, MinRelativeChange: c.MinRel}
		ev := &Evidence{Metrics: map[string]float64{"m": c.Cand},
			Baselines: map[BaselineRef]Baseline{champion: {Version: "1", Metrics: map[string]float64{"m": c.Base}}}}
		r := chk.run(ev)
		if got := r.Result == Pass; got != want[i] {
			mismatches++
			if mismatches <= 10 {
				t.Errorf("case %s: modelgate %s (%s), MLflow pass=%v", describeCase(c), r.Result, r.Message, want[i])
			}
		}
	}
	if mismatches > 0 {
		t.Fatalf("%d of %d cases differ from MLflow", mismatches, len(cases))
	}
}

func describeCase(c parityCase) string {
	p := func(f *float64) string {
		if f == nil {
			return "-"
		}
		return fmt.Sprint(*f)
	}
	return fmt.Sprintf("cand=%v base=%v threshold=%s min_abs=%s min_rel=%s greater_is_better=%v", c.Cand, c.Base, p(c.Threshold), p(c.MinAbs), p(c.MinRel), c.GIB)
}
