package rules

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
)

// gateWith loads a one-gate policy whose checks are the given YAML list items.
func gateWith(t *testing.T, checks string, extra ...string) *Gate {
	t.Helper()
	review := "    review:\n      approvers: [alice, bob]\n"
	if strings.Contains(strings.Join(extra, ""), "review:") {
		review = ""
	}
	src := "gates:\n  - name: g\n    models: [\"*\"]\n    on_missing: review\n" + review +
		strings.Join(extra, "") + "    checks:\n" + checks
	p, err := Load("test.yaml", []byte(src))
	if err != nil {
		t.Fatalf("policy does not load:\n%s\n%v", src, err)
	}
	return p.Gates[0]
}

func evidence(metrics map[string]float64) *Evidence {
	return &Evidence{Model: "m", Version: "2", Metrics: metrics}
}

var (
	nan  = math.NaN()
	inf  = math.Inf(1)
	ninf = math.Inf(-1)
)

func TestThresholdCheck(t *testing.T) {
	g := gateWith(t, `
      - name: acc
        metric: [accuracy, accuracy_score]
        min: 0.9
        max: 0.99
        on_fail: reject
`)
	for _, tc := range []struct {
		name    string
		metrics map[string]float64
		want    Result
		msg     string
	}{
		{"at min (inclusive)", map[string]float64{"accuracy": 0.9}, Pass, "acc ok"},
		{"at max (inclusive)", map[string]float64{"accuracy": 0.99}, Pass, "acc ok"},
		{"just below min", map[string]float64{"accuracy": math.Nextafter(0.9, 0)}, Fail, "accuracy 0.8999999999999999 < 0.9"},
		{"well below min, shown short", map[string]float64{"accuracy": 0.7733598409542743}, Fail, "accuracy 0.7734 < 0.9"},
		{"just above max", map[string]float64{"accuracy": math.Nextafter(0.99, 1)}, Fail, "> 0.99"},
		{"second name used when first absent", map[string]float64{"accuracy_score": 0.95}, Pass, "acc ok"},
		{"first present wins", map[string]float64{"accuracy": 0.5, "accuracy_score": 0.95}, Fail, "accuracy 0.5 < 0.9"},
		{"NaN falls through to the next name", map[string]float64{"accuracy": nan, "accuracy_score": 0.95}, Pass, "acc ok"},
		{"absent", map[string]float64{"auc": 0.9}, Missing, "accuracy missing (accuracy absent, accuracy_score absent)"},
		{"NaN", map[string]float64{"accuracy": nan}, Missing, "accuracy is NaN"},
		{"+Inf", map[string]float64{"accuracy": inf}, Missing, "accuracy is +Inf"},
		{"-Inf", map[string]float64{"accuracy": ninf}, Missing, "accuracy is -Inf"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := g.Evaluate(evidence(tc.metrics))
			r := d.Checks[0]
			if r.Result != tc.want || !strings.Contains(r.Message, tc.msg) {
				t.Fatalf("got %s %q, want %s containing %q", r.Result, r.Message, tc.want, tc.msg)
			}
		})
	}
}

func TestGroupCheck(t *testing.T) {
	g := gateWith(t, `
      - name: recall-by-group
        group_metric: 'recall_sex_(.+)'
        max_gap: 0.05
        min_ratio: 0.8
        min_groups: 2
        on_fail: reject
`)
	for _, tc := range []struct {
		name    string
		metrics map[string]float64
		want    Result
		msg     string
	}{
		{"within both bounds", map[string]float64{"recall_sex_female": 0.80, "recall_sex_male": 0.84}, Pass, "ok"},
		{"gap at the bound", map[string]float64{"recall_sex_female": 0.5, "recall_sex_male": 0.55}, Pass, "ok"},
		{"gap over", map[string]float64{"recall_sex_female": 0.78, "recall_sex_male": 0.86}, Fail, "gap 0.08 > 0.05 (lowest female 0.78, highest male 0.86)"},
		{"gap just over shows every digit", map[string]float64{"recall_sex_female": 0.5, "recall_sex_male": 0.5500001}, Fail, "gap 0.05000009999999999 > 0.05"},
		{"ratio at the bound (0.08/0.1 is 0.7999999999999999)", map[string]float64{"recall_sex_female": 0.08, "recall_sex_male": 0.1}, Pass, "ok"},
		{"ratio under, gap fine", map[string]float64{"recall_sex_female": 0.03, "recall_sex_male": 0.05}, Fail, "ratio 0.6 < 0.8"},
		{"equal values", map[string]float64{"recall_sex_female": 0.7, "recall_sex_male": 0.7, "recall_sex_other": 0.7}, Pass, "ok"},
		{"all zero is parity", map[string]float64{"recall_sex_female": 0, "recall_sex_male": 0}, Pass, "ok"},
		{"one group only", map[string]float64{"recall_sex_female": 0.8}, Missing, "1 group(s) match"},
		{"no group", map[string]float64{"recall": 0.8}, Missing, "0 group(s) match"},
		{"a NaN group", map[string]float64{"recall_sex_female": nan, "recall_sex_male": 0.8}, Missing, "recall_sex_female is NaN"},
		{"the regex matches whole keys only", map[string]float64{"val_recall_sex_female": 0.1, "recall_sex_female": 0.8, "recall_sex_male": 0.8}, Pass, "ok"},
		{"negative values make the ratio undefined", map[string]float64{"recall_sex_female": -0.01, "recall_sex_male": 0.01}, Missing, "ratio undefined"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := g.Evaluate(evidence(tc.metrics)).Checks[0]
			if r.Result != tc.want || !strings.Contains(r.Message, tc.msg) {
				t.Fatalf("got %s %q, want %s containing %q", r.Result, r.Message, tc.want, tc.msg)
			}
		})
	}
	named := gateWith(t, `
      - name: by-race
        group_metric: '(?P<metric>selection_rate)_race_(?P<group>\w+)'
        min_ratio: 0.8
`)
	r := named.Evaluate(evidence(map[string]float64{"selection_rate_race_a": 0.5, "selection_rate_race_b": 0.45})).Checks[0]
	if r.Result != Pass || r.Values["a"] != 0.5 || r.Values["b"] != 0.45 {
		t.Fatalf("named group capture: %+v", r)
	}
}

func TestBaselineCheckFollowsMetricThreshold(t *testing.T) {
	champion := BaselineRef{Alias: "champion"}
	withBaseline := func(cand float64, base *float64) *Evidence {
		ev := evidence(map[string]float64{"f1": cand})
		if base != nil {
			ev.Baselines = map[BaselineRef]Baseline{champion: {Version: "3", Metrics: map[string]float64{"f1": *base}}}
		}
		return ev
	}
	f := func(v float64) *float64 { return &v }
	for _, tc := range []struct {
		name       string
		check      string
		cand       float64
		base       *float64
		want       Result
		msgContent string
	}{
		{"relative change met", "min_relative_change: 0.1", 0.9, f(0.8), Pass, "ok"},
		{"relative change missed", "min_relative_change: 0.1", 0.879, f(0.8), Fail, "f1 0.879 vs champion v3 0.8: change +9.875%, needs 10% or more"},
		// MLflow computes (0.88-0.8)/0.8 = 0.09999999999999995 and fails it; so do we,
		// and the message shows why instead of a rounded +10%.
		{"relative change missed by float rounding, as in MLflow", "min_relative_change: 0.1", 0.88, f(0.8), Fail, "change +9.999999999999995%, needs 10% or more"},
		{"absolute change at the edge", "min_absolute_change: 0.01", 0.91, f(0.9), Pass, "ok"},
		// 0.1 + 0.2 is 0.30000000000000004 in floats: MLflow fails 0.3.
		{"absolute change missed by float rounding, as in MLflow", "min_absolute_change: 0.2", 0.3, f(0.1), Fail, "f1 0.3 vs champion v3 0.1: below champion + 0.2 (= 0.30000000000000004)"},
		{"zero absolute change: equal is enough", "min_absolute_change: 0.0", 0.8, f(0.8), Pass, "ok"},
		{"zero baseline falls back to 1e-10", "min_relative_change: 0.5", 1e-11, f(0), Fail, "does not improve on a baseline of 0"},
		{"zero baseline beaten", "min_relative_change: 0.5", 1e-9, f(0), Pass, "ok"},
		{"negative baseline: divide by its magnitude", "min_relative_change: 0.1", -0.8, f(-1), Pass, "ok"},
		{"negative baseline, worse candidate", "min_relative_change: 0.1", -1.05, f(-1), Fail, "change -5%"},
		{"no baseline version passes", "min_relative_change: 0.1", 0.5, nil, Pass, "ok (no baseline)"},
		{"threshold still applies without a baseline", "threshold: 0.6\n        min_relative_change: 0.1", 0.5, nil, Fail, "f1 0.5 < 0.6"},
		{"baseline without the metric is missing", "min_relative_change: 0.1", 0.5, f(nan), Missing, "baseline champion v3 has no usable f1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := gateWith(t, `
      - name: beats
        metric: f1
        baseline: champion
        greater_is_better: true
        `+tc.check+`
        on_fail: review
`)
			r := g.Evaluate(withBaseline(tc.cand, tc.base)).Checks[0]
			if r.Result != tc.want || !strings.Contains(r.Message, tc.msgContent) {
				t.Fatalf("got %s %q, want %s containing %q", r.Result, r.Message, tc.want, tc.msgContent)
			}
		})
	}

	lower := gateWith(t, `
      - name: lower-loss
        metric: log_loss
        baseline: stage:production
        greater_is_better: false
        min_relative_change: 0.05
        min_absolute_change: 0.01
`)
	prod := BaselineRef{Stage: "Production"}
	if got := lower.Baselines(); len(got) != 1 || got[0] != prod {
		t.Fatalf("Baselines() = %v", got)
	}
	for cand, want := range map[float64]Result{0.5: Pass, 0.57: Pass, 0.58: Fail, 0.6: Fail, 0.7: Fail} {
		ev := &Evidence{Metrics: map[string]float64{"log_loss": cand}, Baselines: map[BaselineRef]Baseline{prod: {Version: "7", Metrics: map[string]float64{"log_loss": 0.6}}}}
		if r := lower.Evaluate(ev).Checks[0]; r.Result != want {
			t.Errorf("log_loss %v vs 0.6: %s %q, want %s", cand, r.Result, r.Message, want)
		}
	}
}

func TestTagCheck(t *testing.T) {
	g := gateWith(t, `
      - name: scan
        tag: security_scan
        equals: passed
        on_fail: reject
`)
	lenient := gateWith(t, `
      - name: scan
        tag: security_scan
        equals: passed
        on_fail: reject
        on_missing: review
`, "    review: {approvers: [alice]}\n")
	for _, tc := range []struct {
		name         string
		gate         *Gate
		version, run map[string]string
		want         Result
		action       Action
		observed     string
	}{
		{"version tag", g, map[string]string{"security_scan": "passed"}, nil, Pass, "", `"passed" (version tag)`},
		{"run tag", g, nil, map[string]string{"security_scan": "passed"}, Pass, "", `"passed" (run tag)`},
		{"both, the same", g, map[string]string{"security_scan": "passed"}, map[string]string{"security_scan": "passed"}, Pass, "", `"passed" (version tag)`},
		// A version tag set by hand must not beat what the training run recorded.
		{"version says passed, run says failed", g, map[string]string{"security_scan": "passed"}, map[string]string{"security_scan": "failed"}, Fail, Reject, `version "passed", run "failed"`},
		{"version says failed, run says passed", g, map[string]string{"security_scan": "failed"}, map[string]string{"security_scan": "passed"}, Fail, Reject, `version "failed", run "passed"`},
		{"wrong value", g, map[string]string{"security_scan": "Passed"}, nil, Fail, Reject, `"Passed" (version tag)`},
		// An unscanned model is not a scanned one: the check's on_fail applies.
		{"absent", g, map[string]string{"other": "x"}, nil, Fail, Reject, "absent"},
		{"absent, with the check's own on_missing", lenient, nil, nil, Missing, Review, "absent"},
		{"a modelgate tag is never evidence", g, map[string]string{"modelgate.status": "passed"}, nil, Fail, Reject, "absent"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.gate.Evaluate(&Evidence{VersionTags: tc.version, RunTags: tc.run}).Checks[0]
			if r.Result != tc.want || r.Action != tc.action || r.Observed != tc.observed {
				t.Fatalf("got %s → %s, observed %q (%q); want %s → %s, observed %q", r.Result, r.Action, r.Observed, r.Message, tc.want, tc.action, tc.observed)
			}
		})
	}
}

func TestExprCheck(t *testing.T) {
	g := gateWith(t, `
      - name: enough-data
        expr: 'metrics.auc >= 0.8 && double(params.n_rows) >= 10000.0 && tags.team == "risk"'
        on_fail: review
`)
	for _, tc := range []struct {
		name string
		ev   *Evidence
		want Result
		msg  string
	}{
		{"true", &Evidence{Metrics: map[string]float64{"auc": 0.8}, Params: map[string]string{"n_rows": "10000"}, RunTags: map[string]string{"team": "risk"}}, Pass, "ok"},
		{"false", &Evidence{Metrics: map[string]float64{"auc": 0.79}, Params: map[string]string{"n_rows": "10000"}, RunTags: map[string]string{"team": "risk"}}, Fail, "expression is false"},
		// An expression that errors fails (PRODUCT.md v2), with the error as the reason.
		{"missing key", &Evidence{Metrics: map[string]float64{"auc": 0.9}, RunTags: map[string]string{"team": "risk"}}, Fail, "no such key: n_rows"},
		{"NaN metric is absent", &Evidence{Metrics: map[string]float64{"auc": nan}, Params: map[string]string{"n_rows": "10000"}, RunTags: map[string]string{"team": "risk"}}, Fail, "no such key: auc"},
		{"wrong type at run time", &Evidence{Metrics: map[string]float64{"auc": 0.9}, Params: map[string]string{"n_rows": "many"}, RunTags: map[string]string{"team": "risk"}}, Fail, "enough-data:"},
		{"modelgate tags are not evidence", &Evidence{Metrics: map[string]float64{"auc": 0.9}, Params: map[string]string{"n_rows": "10000"}, VersionTags: map[string]string{"modelgate.team": "risk"}}, Fail, "no such key: team"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := g.Evaluate(tc.ev).Checks[0]
			if r.Result != tc.want || !strings.Contains(r.Message, tc.msg) {
				t.Fatalf("got %s %q, want %s containing %q", r.Result, r.Message, tc.want, tc.msg)
			}
		})
	}
}

// TestExprCostIsEstimated: an expression whose cost can exceed the limit is refused when
// the policy loads, with the reason; one within it gives the same answer on every run
// (the probe saw a reject check over 8,000 metrics answer pending_review 9 times and
// rejected once in 10).
func TestExprCostIsEstimated(t *testing.T) {
	_, err := Load("p.yaml", []byte(`
gates:
  - name: g
    models: ["*"]
    on_missing: reject
    checks:
      - name: expensive
        expr: 'metrics.all(k, metrics.all(j, metrics[k] + metrics[j] > -1.0))'
`))
	if err == nil || !strings.Contains(err.Error(), "p.yaml:8:15") || !strings.Contains(err.Error(), "its cost can reach") {
		t.Fatalf("err = %v, want the nested comprehension refused with its position", err)
	}

	g := gateWith(t, `
      - name: no-leaks
        expr: "!metrics.exists(k, k.startsWith('leak_'))"
        on_fail: reject
`)
	metrics := map[string]float64{}
	for i := range 8000 {
		metrics[fmt.Sprintf("per_segment_metric_%05d", i)] = float64(i)
	}
	metrics["leak_customer_id"] = 1
	for range 10 {
		r := g.Evaluate(evidence(metrics)).Checks[0]
		if r.Result != Fail || r.Action != Reject {
			t.Fatalf("got %s → %s %q, want fail → reject on every run", r.Result, r.Action, r.Message)
		}
	}
	delete(metrics, "leak_customer_id")
	if r := g.Evaluate(evidence(metrics)).Checks[0]; r.Result != Pass {
		t.Fatalf("without a leak: %s %q", r.Result, r.Message)
	}
}

func TestDecision(t *testing.T) {
	const checks = `    checks:
      - name: floor
        metric: accuracy
        min: 0.8
        on_fail: reject
      - name: target
        metric: accuracy
        min: 0.9
        on_fail: review
`
	const approvers = "    review:\n      approvers: [alice]\n"
	for _, tc := range []struct {
		name     string
		gate     string
		metrics  map[string]float64
		outcome  Outcome
		inReason string
	}{
		{"all pass", approvers, map[string]float64{"accuracy": 0.95}, Approved, "every check passed"},
		{"review check fails", approvers, map[string]float64{"accuracy": 0.85}, PendingReview, "accuracy 0.85 < 0.9"},
		{"reject check fails", approvers, map[string]float64{"accuracy": 0.7}, Rejected, "accuracy 0.7 < 0.8"},
		{"reject wins over review", approvers, map[string]float64{"accuracy": 0.5}, Rejected, "accuracy 0.5 < 0.8"},
		{"missing with on_missing review", approvers, map[string]float64{}, PendingReview, "accuracy missing"},
		{"missing with on_missing reject", "    on_missing: reject\n" + approvers, map[string]float64{}, Rejected, "accuracy missing"},
		{"review always", "    review:\n      required: always\n      approvers: [alice]\n", map[string]float64{"accuracy": 0.95}, PendingReview, "review.required: always"},
		{"review never turns review into reject", "    review:\n      required: never\n", map[string]float64{"accuracy": 0.85}, Rejected, "review.required: never"},
		{"review never still approves", "    review:\n      required: never\n", map[string]float64{"accuracy": 0.95}, Approved, "every check passed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Load("t.yaml", []byte("gates:\n  - name: g\n    models: [\"m\"]\n"+tc.gate+checks))
			if err != nil {
				t.Fatal(err)
			}
			d := p.Evaluate(&Evidence{Model: "m", Version: "1", Metrics: tc.metrics})
			if d.Outcome != tc.outcome || !strings.Contains(d.Reason, tc.inReason) {
				t.Fatalf("outcome %s (%s), want %s containing %q", d.Outcome, d.Reason, tc.outcome, tc.inReason)
			}
		})
	}
}

func TestGateSelection(t *testing.T) {
	p, err := Load("t.yaml", []byte(`
gates:
  - name: credit-eu
    models: ["credit-eu-*"]
    on_missing: reject
  - name: credit
    models: ["credit-*", "loans"]
    on_missing: reject
`))
	if err != nil {
		t.Fatal(err)
	}
	for model, want := range map[string]string{"credit-eu-1": "credit-eu", "credit-us": "credit", "loans": "credit", "fraud": ""} {
		got := ""
		if g := p.GateFor(model); g != nil {
			got = g.Name
		}
		if got != want {
			t.Errorf("GateFor(%q) = %q, want %q", model, got, want)
		}
	}
	d := p.Evaluate(&Evidence{Model: "fraud", Version: "1"})
	if d.Outcome != NotGated || !strings.Contains(d.Reason, "no gate matches") {
		t.Fatalf("ungated model: %+v", d)
	}
}

func TestEvidenceDigest(t *testing.T) {
	g := gateWith(t, `
      - name: acc
        metric: accuracy
        min: 0.9
      - name: fair
        group_metric: 'recall_(.+)'
        max_gap: 0.1
      - name: scan
        tag: scan
        equals: ok
`)
	base := func() *Evidence {
		return &Evidence{
			Metrics:     map[string]float64{"accuracy": 0.95, "recall_a": 0.8, "recall_b": 0.85, "unrelated": 1},
			VersionTags: map[string]string{"scan": "ok", "note": "x"},
		}
	}
	d0 := g.Evaluate(base()).EvidenceDigest
	for i := range 20 { // map order must not matter
		if d := g.Evaluate(base()).EvidenceDigest; d != d0 {
			t.Fatalf("run %d: digest %s != %s", i, d, d0)
		}
	}
	same := base()
	same.Metrics["unrelated"] = 2
	same.VersionTags["note"] = "y"
	same.VersionTags["modelgate.approve.alice"] = "lgtm"
	if d := g.Evaluate(same).EvidenceDigest; d != d0 {
		t.Errorf("evidence no check reads changed the digest")
	}
	for name, change := range map[string]func(*Evidence){
		"metric":       func(e *Evidence) { e.Metrics["accuracy"] = 0.96 },
		"group metric": func(e *Evidence) { e.Metrics["recall_c"] = 0.8 },
		"tag":          func(e *Evidence) { e.VersionTags["scan"] = "failed" },
	} {
		ev := base()
		change(ev)
		if d := g.Evaluate(ev).EvidenceDigest; d == d0 {
			t.Errorf("changing the %s kept the digest", name)
		}
	}
	if !strings.HasPrefix(d0, "sha256:") || len(d0) != len("sha256:")+16 {
		t.Errorf("digest %q", d0)
	}
}

func TestPolicyDigest(t *testing.T) {
	load := func(src string) *Policy {
		p, err := Load("t.yaml", []byte(src))
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	const a = "gates:\n  - name: g\n    models: [m]\n    on_missing: reject\n    checks:\n      - {name: c, metric: x, min: 0.5}\n"
	const aReformatted = "# comment\ngates:\n- models: [\"m\"]\n  name: g\n  on_missing: reject\n  checks: [{min: 0.50, name: c, metric: x}]\n"
	const b = "gates:\n  - name: g\n    models: [m]\n    on_missing: reject\n    checks:\n      - {name: c, metric: x, min: 0.6}\n"
	if load(a).Gates[0].Digest() != load(aReformatted).Gates[0].Digest() || load(a).Digest() != load(aReformatted).Digest() {
		t.Error("the same policy written differently has another digest")
	}
	if load(a).Gates[0].Digest() == load(b).Gates[0].Digest() {
		t.Error("changing a bound kept the gate digest")
	}
}

func TestLineage(t *testing.T) {
	p, err := Load("lineage.yaml", []byte(`
gates:
  - name: g
    models: ["*"]
    checks:
      - {name: reproducible, lineage: {git_commit: true, datasets: 2}, on_fail: review}
      - {name: soft, lineage: {git_commit: true}, on_fail: reject, on_missing: review}
    review: {approvers: [alice]}
`))
	if err != nil {
		t.Fatal(err)
	}
	g := p.GateFor("m")
	two := []Dataset{{Name: "train-q3", Digest: "2981c147", Context: "training"}, {Name: "eval-q3", Digest: "77aa01f2", Context: "evaluation"}}
	for _, tc := range []struct {
		name     string
		commit   string
		datasets []Dataset
		result   Result
		observed string
		message  string
	}{
		{"present", "4f2c9e1d0b7a", two, Pass, "commit 4f2c9e1d0b7a; datasets train-q3 (2981c147), eval-q3 (77aa01f2)", "reproducible ok"},
		{"absent", "", nil, Fail, "no git commit; no datasets", "the run has no mlflow.source.git.commit tag; 0 dataset input(s) logged, 2 needed"},
		{"partial", "4f2c9e1d0b7a", two[:1], Fail, "commit 4f2c9e1d0b7a; datasets train-q3 (2981c147)", "1 dataset input(s) logged, 2 needed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev := &Evidence{Model: "m", Version: "1", RunTags: map[string]string{}, Datasets: tc.datasets}
			if tc.commit != "" {
				ev.RunTags[GitCommitTag] = tc.commit
			}
			d := g.Evaluate(ev)
			c := d.Checks[0]
			if c.Result != tc.result || c.Observed != tc.observed || !strings.Contains(c.Message, tc.message) {
				t.Fatalf("got %s %q %q", c.Result, c.Observed, c.Message)
			}
			// A lineage check with on_missing set treats what is absent as missing.
			if soft := d.Checks[1]; tc.commit == "" && (soft.Result != Missing || soft.Action != Review) {
				t.Errorf("soft check: %s → %s", soft.Result, soft.Action)
			}
		})
	}
	// The datasets are evidence: another digest is another decision.
	a := g.Evaluate(&Evidence{Model: "m", Version: "1", RunTags: map[string]string{GitCommitTag: "x"}, Datasets: two})
	changed := slices.Clone(two)
	changed[0].Digest = "ffffffff"
	b := g.Evaluate(&Evidence{Model: "m", Version: "1", RunTags: map[string]string{GitCommitTag: "x"}, Datasets: changed})
	if a.EvidenceDigest == b.EvidenceDigest {
		t.Error("a dataset with another digest did not change the evidence digest")
	}
	for _, bad := range []string{"lineage: {}", "lineage: {datasets: -1}", "lineage: {git_commit: maybe}", "lineage: {commit: true}"} {
		_, err := Load("bad.yaml", []byte("gates:\n  - name: g\n    models: [\"*\"]\n    checks:\n      - {name: c, "+bad+"}\n"))
		if err == nil || !strings.Contains(err.Error(), "lineage") {
			t.Errorf("%s: %v", bad, err)
		}
	}
}
