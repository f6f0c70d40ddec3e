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
	want := "accuracy-floor ok; accuracy-target: accuracy 0.93 < 0.95 (review); parity ok; recall-by-group ok; beats-champion ok; security-scan ok; enough-data ok"
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
		"❌ rejected: security-scan\n### ❌ Rejected: 2 checks did not pass\n",
		"| ❌ **fail → review**" + pad + " | accuracy-target" + pad + " | accuracy 0.93 &lt; 0.95" + pad + " | ≥ 0.95 |",
		`tag security\_scan is "pass\|ed &lt;b&gt;", want "passed"`, // user text cannot break the table or inject HTML
		"`modelgate.approve.mallory` (mallory is not an approver of gate credit-risk).",
		"`modelgate.reevaluate`",
		"gate credit-risk · decided 2026-11-25 09:30 UTC · evidence\\_digest " + d.EvidenceDigest + " · policy\\_digest " + d.PolicyDigest,
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}

	pending := g.Report(g.Evaluate(productEvidence()), "pending_review", time.Date(2026, 11, 25, 9, 30, 0, 0, time.UTC), nil).Markdown(5000)
	for _, want := range []string{"**Review: 0 of 1 approval(s)**", "**alice** `modelgate.approve.alice` · **bob** `modelgate.approve.bob` · **carol** `modelgate.approve.carol`",
		"`modelgate.reject.<your name>` = the reason", "**reload this page**"} {
		if !strings.Contains(pending, want) {
			t.Errorf("pending report lacks %q:\n%s", want, pending)
		}
	}
	// Who has voted is named; the next step is offered only to the others.
	tally = g.Tally(map[string]string{"modelgate.approve.bob": "ok"}, time.Date(2026, 11, 25, 9, 30, 0, 0, time.UTC), time.Now())
	g.Review.MinApprovals = 2
	voted := g.Report(g.Evaluate(productEvidence()), "pending_review", time.Date(2026, 11, 25, 9, 30, 0, 0, time.UTC), &tally).Markdown(5000)
	if !strings.Contains(voted, "**Review: 1 of 2 approval(s)**") || !strings.Contains(voted, "**bob** approved (“ok”)") || strings.Contains(voted, "modelgate.approve.bob") {
		t.Errorf("report after bob's vote:\n%s", voted)
	}
}

func TestStateLine(t *testing.T) {
	g := productGate(t)
	at := time.Date(2026, 11, 25, 9, 30, 0, 0, time.UTC)
	review := g.Evaluate(productEvidence())
	ev := productEvidence()
	ev.Metrics["recall_sex_female"] = 0.5
	ev.Metrics["accuracy"] = 0.5
	rejected := g.Evaluate(ev)
	long := productEvidence()
	long.Model = "m"
	for _, tc := range []struct {
		name string
		r    Report
		want string
	}{
		{"pending", g.Report(review, "pending_review", at, nil), "⏳ review: accuracy-target"},
		{"rejected by checks", g.Report(rejected, "rejected", at, nil), "❌ rejected: accuracy-floor +1"},
		{"rejected by a person", g.Report(review, "rejected", at, &Tally{Rejection: &Vote{Name: "carol"}}), "❌ rejected by carol"},
		{"promoted", g.Report(g.Evaluate(productEvidence()), "promoted", at, nil), "✅ promoted: champion"},
		{"superseded", g.Report(review, "superseded", at, nil), "⏹ superseded"},
		{"expired", g.Report(review, "expired", at, nil), "⌛ review expired"},
		{"a long check name is cut", Report{Decision: Decision{Checks: []CheckResult{{Name: strings.Repeat("x", 40), Result: Fail, Action: Review}}}, Status: "pending_review"},
			"⏳ review: " + strings.Repeat("x", 18) + "…"},
	} {
		got := tc.r.StateLine()
		if got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
		if n := utf8.RuneCountInString(got); n > StateLineMax || !IsStateLine(got) || strings.Contains(got, "\n") {
			t.Errorf("%s: %q is %d characters or not a state line", tc.name, got, n)
		}
		if !strings.HasPrefix(tc.r.Markdown(5000), got+"\n### ") {
			t.Errorf("%s: the report does not open with its state line and a headline:\n%s", tc.name, tc.r.Markdown(5000))
		}
	}
	if IsStateLine("Trained on Q3 data.") || IsStateLine("✅done") {
		t.Error("user text taken for a state line")
	}
}

func TestRestate(t *testing.T) {
	g := productGate(t)
	promoted := g.Report(g.Evaluate(productEvidence()), "promoted", time.Date(2026, 11, 25, 9, 30, 0, 0, time.UTC), nil).Markdown(5000)
	got := Restate(promoted, "superseded", "alias:champion is now held by version 8")
	if !strings.HasPrefix(got, "⏹ superseded\n### ⏹ Superseded\n\n> alias:champion is now held by version 8\n") {
		t.Fatalf("restated:\n%s", got)
	}
	if strings.Contains(got, "modelgate.rollback") || !strings.Contains(got, "| beats-champion") || !strings.Contains(got, "<sub>gate credit-risk") {
		t.Fatalf("restated report keeps the old next step, or lost the checks or footer:\n%s", got)
	}
	if again := Restate(got, "superseded", "alias:champion is now held by version 8"); again != got {
		t.Fatalf("restating twice differs:\n%s\n---\n%s", got, again)
	}
	old := "#### modelgate: promoted\n\nGate **credit-risk** on 2026-11-25 09:30 UTC: every check passed.\n\n| Check |\n| --- |\n| floor |\n"
	if got := Restate(old, "superseded", "moved"); !strings.HasPrefix(got, "⏹ superseded\n### ⏹ Superseded\n\n> moved\n\nGate **credit-risk**") {
		t.Fatalf("a section written before the state line:\n%s", got)
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
