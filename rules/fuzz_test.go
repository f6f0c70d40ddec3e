package rules

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
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

// FuzzTally feeds arbitrary vote tags and approver lists to the vote count: it never
// panics, is deterministic, counts only listed approvers (each once), never counts a
// rejection without a reason, and its outcome follows from what it counted. The report
// renders every tally within MLflow's limits.
func FuzzTally(f *testing.F) {
	f.Add("modelgate.approve.alice", "lgtm", "modelgate.reject.Bob", "leaks PII", "modelgate.approve.", "", "alice,bob", uint8(1), int16(10))
	f.Add("modelgate.approve.ALICE", "", "modelgate.approve.alice", "", "modelgate.reject.carol", " ", "Alice,carol", uint8(2), int16(80))
	f.Add("modelgate.approve. alice ", "x", "modelgate.status", "pending_review", "modelgate.reject.é", "non", "é, alice", uint8(0), int16(-5))
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2, k3, v3, approvers string, minApprovals uint8, hours int16) {
		var names []string
		for n := range strings.SplitSeq(approvers, ",") {
			if n = strings.TrimSpace(n); n != "" {
				names = append(names, n)
			}
		}
		g := &Gate{Name: "fuzz", Review: ReviewPolicy{
			Required: ReviewOnFailure, Approvers: names, MinApprovals: int(minApprovals), ExpiresAfter: 72 * time.Hour,
		}}
		tags := map[string]string{k1: v1, k2: v2, k3: v3}
		requested := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
		now := requested.Add(time.Duration(hours) * time.Hour)
		got := g.Tally(tags, requested, now)
		if again := g.Tally(tags, requested, now); !reflect.DeepEqual(got, again) {
			t.Fatalf("not deterministic: %+v then %+v", got, again)
		}

		listed := func(name string) bool {
			return slices.ContainsFunc(names, func(n string) bool { return strings.EqualFold(n, name) })
		}
		seen := map[string]bool{}
		counted := map[string]bool{}
		for _, v := range got.Approvals {
			if !IsVoteTag(v.Key) || !v.Approve || !listed(v.Name) || seen[v.Key] || counted[strings.ToLower(v.Name)] {
				t.Fatalf("approval %+v: not a listed approver's first approval tag (tags %q, approvers %q)", v, tags, names)
			}
			seen[v.Key], counted[strings.ToLower(v.Name)] = true, true
		}
		for _, ig := range got.Ignored {
			if !IsVoteTag(ig.Key) || seen[ig.Key] || ig.Reason == "" {
				t.Fatalf("ignored %+v: not a vote tag, counted twice, or no reason", ig)
			}
			seen[ig.Key] = true
		}
		if r := got.Rejection; r != nil {
			if !IsVoteTag(r.Key) || r.Approve || !listed(r.Name) || strings.TrimSpace(r.Comment) == "" || seen[r.Key] {
				t.Fatalf("rejection %+v: not a listed approver's rejection with a reason", r)
			}
		}

		var want ReviewOutcome
		switch {
		case got.Rejection != nil:
			want = ReviewRejected
		case len(got.Approvals) >= int(minApprovals):
			want = ReviewApproved
		case !now.Before(requested.Add(72 * time.Hour)):
			want = ReviewExpired
		default:
			want = ReviewPending
		}
		if got.Outcome != want {
			t.Fatalf("outcome %s, want %s from %+v", got.Outcome, want, got)
		}

		r := g.Report(Decision{Outcome: PendingReview}, "pending_review", now, &got)
		if s := r.Summary(); utf8.RuneCountInString(s) > 5000 {
			t.Fatalf("summary of %d characters", utf8.RuneCountInString(s))
		}
		if md := r.Markdown(5000); utf8.RuneCountInString(md) > 5000 {
			t.Fatalf("report section of %d characters", utf8.RuneCountInString(md))
		}
	})
}
