package rules

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// TestTallyVerified: under review.identity: verified only votes modelgate-auth recorded
// as set by the user they name count, and each is marked verified; with
// forbid_self_approval the creator's approval or override is ignored (a rejection
// still counts); under identity asserted the records change nothing.
func TestTallyVerified(t *testing.T) {
	verified := gateWith(t, "      - {name: acc, metric: accuracy, min: 0.9, on_fail: review}\n",
		"    review:\n      approvers: [alice, bob, carol_example.com]\n      overriders: [head]\n      identity: verified\n      forbid_self_approval: true\n")
	asserted := gateWith(t, "      - {name: acc, metric: accuracy, min: 0.9, on_fail: review}\n",
		"    review:\n      approvers: [alice, bob]\n")
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name      string
		gate      *Gate
		tags      map[string]string
		att       *Attestations
		outcome   ReviewOutcome
		approvals []string
		ignored   string // a reason among the ignored
	}{
		{"recorded vote counts, verified", verified, map[string]string{"modelgate.approve.alice": ""},
			&Attestations{Votes: map[string]string{"modelgate.approve.alice": "alice"}, Creator: "dave"}, ReviewApproved, []string{"alice"}, ""},
		{"an e-mail user votes under its mapped name", verified, map[string]string{"modelgate.approve.carol_example.com": ""},
			&Attestations{Votes: map[string]string{"modelgate.approve.carol_example.com": "carol@example.com"}}, ReviewApproved, []string{"carol_example.com"}, ""},
		{"no record: unverified", verified, map[string]string{"modelgate.approve.alice": ""},
			&Attestations{}, ReviewPending, nil, "unverified: modelgate-auth has no record of alice"},
		{"nothing read: unverified", verified, map[string]string{"modelgate.approve.alice": ""},
			nil, ReviewPending, nil, "unverified"},
		{"recorded as set by another user", verified, map[string]string{"modelgate.approve.bob": ""},
			&Attestations{Votes: map[string]string{"modelgate.approve.bob": "alice"}}, ReviewPending, nil, "recorded as set by alice, not bob"},
		{"the creator's own approval is ignored", verified, map[string]string{"modelgate.approve.bob": ""},
			&Attestations{Votes: map[string]string{"modelgate.approve.bob": "bob"}, Creator: "Bob"}, ReviewPending, nil, "bob created this version and cannot approve it (forbid_self_approval)"},
		{"the creator's override is ignored", verified, map[string]string{"modelgate.override.head": "urgent"},
			&Attestations{Votes: map[string]string{"modelgate.override.head": "head"}, Creator: "head"}, ReviewPending, nil, "cannot override it"},
		{"the creator's rejection counts", verified, map[string]string{"modelgate.reject.bob": "no"},
			&Attestations{Votes: map[string]string{"modelgate.reject.bob": "bob"}, Creator: "bob"}, ReviewRejected, nil, ""},
		{"asserted: records change nothing", asserted, map[string]string{"modelgate.approve.alice": ""},
			&Attestations{}, ReviewApproved, []string{"alice"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.gate.TallyAttested(tc.tags, now, now, tc.att)
			if got.Outcome != tc.outcome {
				t.Fatalf("outcome %s, want %s (%+v)", got.Outcome, tc.outcome, got)
			}
			var names []string
			for _, v := range got.Approvals {
				names = append(names, v.Name)
				if v.Verified != (tc.gate == verified) {
					t.Errorf("vote %s verified=%t", v.Name, v.Verified)
				}
			}
			if !slices.Equal(names, tc.approvals) {
				t.Errorf("approvals %v, want %v", names, tc.approvals)
			}
			if tc.ignored != "" && !slices.ContainsFunc(got.Ignored, func(iv IgnoredVote) bool { return strings.Contains(iv.Reason, tc.ignored) }) {
				t.Errorf("ignored %+v, want a reason with %q", got.Ignored, tc.ignored)
			}
		})
	}
}

func TestVerifiedVotesInTheReport(t *testing.T) {
	g := gateWith(t, "      - {name: acc, metric: accuracy, min: 0.9, on_fail: review}\n",
		"    review:\n      approvers: [alice, bob]\n      min_approvals: 2\n      identity: verified\n")
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	d := g.Evaluate(&Evidence{Model: "m", Version: "1", Metrics: map[string]float64{"accuracy": 0.85}})
	tally := g.TallyAttested(map[string]string{"modelgate.approve.alice": "", "modelgate.approve.bob": ""}, now, now,
		&Attestations{Votes: map[string]string{"modelgate.approve.alice": "alice"}})
	md := g.Report(d, "pending_review", now, &tally).Markdown(5000)
	for _, want := range []string{"**alice (✔ verified)** approved", "Votes are verified", "unverified: modelgate-auth has no record of bob"} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
}

func TestForbidSelfApprovalNeedsVerifiedIdentity(t *testing.T) {
	_, err := Load("p.yaml", []byte("gates:\n  - name: g\n    models: [\"*\"]\n    review:\n      approvers: [alice]\n      forbid_self_approval: true\n"))
	if err == nil || !strings.Contains(err.Error(), "review.forbid_self_approval needs review.identity: verified") {
		t.Fatalf("err = %v", err)
	}
	_, err = Load("p.yaml", []byte("gates:\n  - name: g\n    models: [\"*\"]\n    review:\n      approvers: [alice]\n      identity: proven\n"))
	if err == nil || !strings.Contains(err.Error(), `review.identity must be asserted or verified, got "proven"`) {
		t.Fatalf("err = %v", err)
	}
}
