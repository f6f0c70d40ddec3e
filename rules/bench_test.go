package rules

import (
	"fmt"
	"strings"
	"testing"
)

// Benchmarks of evaluating a version against a 10-check gate. They report checks/s;
// the target for threshold checks is at least 1,000,000 per second per core
// (go test -bench . -cpu 1 ./rules). See docs/performance.md.

func benchGate(b *testing.B, checks string) *Gate {
	b.Helper()
	p, err := Load("bench.yaml", []byte("gates:\n  - name: g\n    models: [\"*\"]\n    on_missing: reject\n    checks:\n"+checks))
	if err != nil {
		b.Fatal(err)
	}
	return p.Gates[0]
}

func benchEvaluate(b *testing.B, g *Gate, ev *Evidence) {
	b.ReportAllocs()
	for b.Loop() {
		d := g.Evaluate(ev)
		if d.Outcome != Approved {
			b.Fatalf("outcome %s: %s", d.Outcome, d.Reason)
		}
	}
	b.ReportMetric(float64(b.N*len(g.Checks))/b.Elapsed().Seconds(), "checks/s")
}

func BenchmarkEvaluateThresholdGate(b *testing.B) {
	var checks strings.Builder
	metrics := map[string]float64{}
	for i := range 10 {
		fmt.Fprintf(&checks, "      - {name: c%d, metric: [m%d, alt%d], min: 0.5, max: 1}\n", i, i, i)
		metrics[fmt.Sprintf("m%d", i)] = 0.9
	}
	for i := range 40 { // a realistic run logs more metrics than the gate reads
		metrics[fmt.Sprintf("other_%d", i)] = float64(i)
	}
	benchEvaluate(b, benchGate(b, checks.String()), &Evidence{Model: "m", Version: "1", Metrics: metrics})
}

func BenchmarkEvaluateMixedGate(b *testing.B) {
	checks := `
      - {name: floor, metric: accuracy, min: 0.8}
      - {name: target, metric: [accuracy, accuracy_score], min: 0.9}
      - {name: parity, metric: demographic_parity_difference, max: 0.1}
      - {name: groups, group_metric: 'recall_sex_(.+)', max_gap: 0.1, min_ratio: 0.8}
      - {name: beats, metric: f1_score, baseline: champion, greater_is_better: true, min_relative_change: 0.01}
      - {name: scan, tag: security_scan, equals: passed}
      - {name: data, expr: 'double(params.n_rows) >= 10000.0 && metrics.auc >= 0.8'}
      - {name: auc, metric: auc, min: 0.7}
      - {name: loss, metric: log_loss, max: 0.5}
      - {name: recall, metric: recall_score, min: 0.6}
`
	ev := &Evidence{Model: "m", Version: "1",
		Metrics: map[string]float64{"accuracy": 0.95, "demographic_parity_difference": 0.02, "recall_sex_female": 0.8,
			"recall_sex_male": 0.85, "f1_score": 0.9, "auc": 0.9, "log_loss": 0.3, "recall_score": 0.8},
		Params:      map[string]string{"n_rows": "20000"},
		VersionTags: map[string]string{"security_scan": "passed"},
		Baselines:   map[BaselineRef]Baseline{{Alias: "champion"}: {Version: "3", Metrics: map[string]float64{"f1_score": 0.8}}},
	}
	benchEvaluate(b, benchGate(b, checks), ev)
}
