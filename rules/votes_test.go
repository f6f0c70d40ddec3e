package rules

import (
	"strings"
	"testing"
	"time"
)

func TestTally(t *testing.T) {
	g := gateWith(t, "      - {name: acc, metric: accuracy, min: 0.9, on_fail: review}\n",
		"    review:\n      approvers: [alice, Bob, carol]\n      min_approvals: 2\n      expires_after: 72h\n")
	requested := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	before := requested.Add(71 * time.Hour)
	after := requested.Add(72 * time.Hour)
	for _, tc := range []struct {
		name      string
		tags      map[string]string
		now       time.Time
		outcome   ReviewOutcome
		approvals []string
		ignored   []string
		rejector  string
	}{
		{"no votes", map[string]string{"modelgate.status": "pending_review"}, before, ReviewPending, nil, nil, ""},
		{"one of two", map[string]string{"modelgate.approve.alice": ""}, before, ReviewPending, []string{"alice"}, nil, ""},
		{"two of two", map[string]string{"modelgate.approve.alice": "lgtm", "modelgate.approve.carol": ""}, before, ReviewApproved, []string{"alice", "carol"}, nil, ""},
		{"names compare case-insensitively", map[string]string{"modelgate.approve.alice": "", "modelgate.approve.bob": ""}, before, ReviewApproved, []string{"alice", "Bob"}, nil, ""},
		{"the same person twice counts once", map[string]string{"modelgate.approve.alice": "", "modelgate.approve.ALICE": ""}, before, ReviewPending, []string{"alice"}, []string{"modelgate.approve.alice"}, ""},
		{"unlisted names are ignored", map[string]string{"modelgate.approve.mallory": "", "modelgate.approve.alice": ""}, before, ReviewPending, []string{"alice"}, []string{"modelgate.approve.mallory"}, ""},
		{"an empty name is ignored", map[string]string{"modelgate.approve.": "", "modelgate.reject. ": "no"}, before, ReviewPending, nil, []string{"modelgate.approve.", "modelgate.reject. "}, ""},
		{"a rejection rejects", map[string]string{"modelgate.approve.alice": "", "modelgate.approve.carol": "", "modelgate.reject.bob": "leaks PII"}, before, ReviewRejected, []string{"alice", "carol"}, nil, "Bob"},
		{"a rejection without a reason rejects", map[string]string{"modelgate.reject.bob": "  ", "modelgate.approve.alice": "", "modelgate.approve.carol": ""}, before, ReviewRejected, []string{"alice", "carol"}, nil, "Bob"},
		{"a rejection by an outsider is ignored", map[string]string{"modelgate.reject.mallory": "no"}, before, ReviewPending, nil, []string{"modelgate.reject.mallory"}, ""},
		{"expired", map[string]string{"modelgate.approve.alice": ""}, after, ReviewExpired, []string{"alice"}, nil, ""},
		{"enough votes win over expiry", map[string]string{"modelgate.approve.alice": "", "modelgate.approve.carol": ""}, after, ReviewApproved, []string{"alice", "carol"}, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := g.Tally(tc.tags, requested, tc.now)
			if got.Outcome != tc.outcome {
				t.Fatalf("outcome %s, want %s (%+v)", got.Outcome, tc.outcome, got)
			}
			var names []string
			for _, v := range got.Approvals {
				names = append(names, v.Name)
			}
			if strings.Join(names, ",") != strings.Join(tc.approvals, ",") {
				t.Errorf("approvals %v, want %v", names, tc.approvals)
			}
			var keys []string
			for _, iv := range got.Ignored {
				keys = append(keys, iv.Key)
				if iv.Reason == "" {
					t.Errorf("ignored %s without a reason", iv.Key)
				}
			}
			if strings.Join(keys, ",") != strings.Join(tc.ignored, ",") {
				t.Errorf("ignored %v, want %v", keys, tc.ignored)
			}
			if tc.rejector != "" && (got.Rejection == nil || got.Rejection.Name != tc.rejector || got.Rejection.Comment == "") {
				t.Errorf("rejection %+v, want by %s with the reason", got.Rejection, tc.rejector)
			}
			if !got.ExpiresAt.Equal(requested.Add(72 * time.Hour)) {
				t.Errorf("expires at %s", got.ExpiresAt)
			}
		})
	}
}

func TestOverride(t *testing.T) {
	g := gateWith(t, "      - {name: acc, metric: accuracy, min: 0.9, on_fail: review}\n",
		"    review:\n      approvers: [alice]\n      overriders: [head-of-risk]\n")
	for _, tc := range []struct {
		name     string
		tags     map[string]string
		override string
		ignored  string
	}{
		{"an overrider with a reason", map[string]string{"modelgate.override.head-of-risk": "fraud spike: ship the fix"}, "head-of-risk", ""},
		{"names compare case-insensitively", map[string]string{"modelgate.override.Head-Of-Risk": "urgent"}, "head-of-risk", ""},
		{"an override needs a reason", map[string]string{"modelgate.override.head-of-risk": " "}, "", "an override needs the reason"},
		{"an approver is not an overrider", map[string]string{"modelgate.override.alice": "urgent"}, "", "alice is not an overrider"},
		{"an overrider's approval is not an approval", map[string]string{"modelgate.approve.head-of-risk": ""}, "", "head-of-risk is not an approver"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := g.Tally(tc.tags, time.Now(), time.Now())
			switch {
			case tc.override != "" && (got.Override == nil || got.Override.Name != tc.override || got.Override.Kind != VoteOverride):
				t.Fatalf("override %+v, want by %s", got.Override, tc.override)
			case tc.override == "" && got.Override != nil:
				t.Fatalf("override %+v counted", got.Override)
			case tc.ignored != "" && (len(got.Ignored) != 1 || !strings.Contains(got.Ignored[0].Reason, tc.ignored)):
				t.Fatalf("ignored %+v, want one saying %q", got.Ignored, tc.ignored)
			}
			if got.Outcome != ReviewPending {
				t.Fatalf("outcome %s: an override is not an approval", got.Outcome)
			}
		})
	}
}

func TestTallyWithoutExpiry(t *testing.T) {
	g := gateWith(t, "      - {name: acc, metric: accuracy, min: 0.9, on_fail: review}\n")
	got := g.Tally(nil, time.Unix(0, 0), time.Now().Add(1000*time.Hour))
	if got.Outcome != ReviewPending || !got.ExpiresAt.IsZero() || got.Needed != 1 {
		t.Fatalf("%+v", got)
	}
}
