package rules

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func productGate(t *testing.T) *Gate {
	t.Helper()
	data, err := os.ReadFile("testdata/product.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p, err := Load("product.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	return p.GateFor("credit-risk-model")
}

// productEvidence passes every check of PRODUCT.md's example policy except
// accuracy-target (0.93 < 0.95, review).
func productEvidence() *Evidence {
	return &Evidence{
		Model: "credit-risk-model", Version: "7",
		Metrics: map[string]float64{
			"accuracy": 0.93, "demographic_parity_difference": 0.04,
			"recall_sex_female": 0.80, "recall_sex_male": 0.83,
			"f1_score": 0.90, "auc": 0.86,
		},
		Params:      map[string]string{"n_rows": "25000"},
		VersionTags: map[string]string{"security_scan": "passed"},
		Baselines:   map[BaselineRef]Baseline{{Alias: "champion"}: {Version: "6", Metrics: map[string]float64{"f1_score": 0.85}}},
	}
}

func TestProductExampleDecidesAsDescribed(t *testing.T) {
	g := productGate(t)
	d := g.Evaluate(productEvidence())
	if d.Outcome != PendingReview {
		t.Fatalf("outcome %s: %s", d.Outcome, d.Reason)
	}
	r := g.Report(d, "pending_review", time.Date(2026, 11, 25, 9, 30, 0, 0, time.UTC), nil)
	want := "accuracy-floor ok; accuracy 0.93 < 0.95 (review); parity ok; recall-by-group ok; beats-champion ok; security-scan ok; enough-data ok"
	if got := r.Summary(); got != want {
		t.Fatalf("summary\n got %q\nwant %q", got, want)
	}
}

func TestMarkdownReport(t *testing.T) {
	g := productGate(t)
	ev := productEvidence()
	ev.VersionTags["security_scan"] = "pass|ed <b>"
	d := g.Evaluate(ev)
	tally := g.Tally(map[string]string{"modelgate.approve.mallory": "me too"}, time.Date(2026, 11, 25, 9, 30, 0, 0, time.UTC), time.Now())
	md := g.Report(d, "rejected", time.Date(2026, 11, 25, 9, 30, 0, 0, time.UTC), &tally).Markdown(5000)
	for _, want := range []string{
		"#### modelgate: rejected",
		"Gate **credit-risk** on 2026-11-25 09:30 UTC",
		"| accuracy-target | threshold | accuracy 0.93 | ≥ 0.95 | ❌ fail → review |",
		`"pass\|ed &lt;b&gt;" (version tag)`, // user text cannot break the table or inject HTML
		"`modelgate.approve.mallory` (mallory is not an approver of gate credit-risk)",
		"`modelgate.reevaluate`",
		d.EvidenceDigest,
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}

	pending := g.Report(g.Evaluate(productEvidence()), "pending_review", time.Date(2026, 11, 25, 9, 30, 0, 0, time.UTC), nil).Markdown(5000)
	for _, want := range []string{"**Review:** 0 of 1 approval(s); approvers: alice, bob, carol.", "`modelgate.approve.alice` = optional comment", "`modelgate.reject.alice` = the reason (required)"} {
		if !strings.Contains(pending, want) {
			t.Errorf("pending report lacks %q:\n%s", want, pending)
		}
	}
}

func TestMarkdownFitsTheLimit(t *testing.T) {
	g := productGate(t)
	r := g.Report(g.Evaluate(productEvidence()), "pending_review", time.Now(), nil)
	full := r.Markdown(100000)
	for _, limit := range []int{len(full), 1200, 700, 200} {
		md := r.Markdown(limit)
		if n := utf8.RuneCountInString(md); n > limit {
			t.Errorf("Markdown(%d) is %d characters", limit, n)
		}
		if limit >= 700 && !strings.Contains(md, "modelgate.approve.alice") {
			t.Errorf("Markdown(%d) dropped the voting instructions:\n%s", limit, md)
		}
		if limit == 1200 && !strings.Contains(md, "accuracy-target") {
			t.Errorf("Markdown(1200) dropped the failing check:\n%s", md)
		}
	}
}

func TestSummaryTruncatesCleanly(t *testing.T) {
	var checks []CheckResult
	for range 200 {
		checks = append(checks, CheckResult{Result: Fail, Action: Review, Message: strings.Repeat("x", 40)})
	}
	r := Report{Decision: Decision{Checks: checks}}
	s := r.Summary()
	if n := utf8.RuneCountInString(s); n > MaxSummary {
		t.Fatalf("summary is %d characters", n)
	}
	if !strings.HasSuffix(s, "more)") || strings.Contains(s, "x;") {
		t.Fatalf("summary not cut at an item boundary: ...%s", s[len(s)-60:])
	}
	long := Report{Decision: Decision{Reason: strings.Repeat("é", 6000)}}
	if n := utf8.RuneCountInString(long.Summary()); n > MaxSummary {
		t.Fatalf("single long item: %d characters", n)
	}
}

func TestJSONReport(t *testing.T) {
	g := productGate(t)
	ev := productEvidence()
	ev.Metrics["accuracy"] = nan
	r := g.Report(g.Evaluate(ev), "pending_review", time.Date(2026, 11, 25, 9, 30, 0, 0, time.UTC), nil)
	b, err := r.JSON()
	if err != nil {
		t.Fatal(err)
	}
	var back struct {
		Outcome string `json:"outcome"`
		Checks  []struct {
			Name, Result, Action, Message string
		} `json:"checks"`
		EvidenceDigest string `json:"evidence_digest"`
	}
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	if back.Outcome != "pending_review" || len(back.Checks) != 7 || back.Checks[0].Result != "missing" || back.EvidenceDigest == "" {
		t.Fatalf("%s", b)
	}
}
