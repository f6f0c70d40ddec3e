package rules

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// Vote tags a reviewer sets on a model version in the MLflow UI.
const (
	// ApprovePrefix + name = optional comment: an approval by name.
	ApprovePrefix = "modelgate.approve."
	// RejectPrefix + name = reason (required): a rejection by name.
	RejectPrefix = "modelgate.reject."
)

// Vote is one reviewer's vote, read from a tag.
type Vote struct {
	Name    string `json:"name"`    // the approver as the policy spells it
	Key     string `json:"key"`     // the tag it came from
	Approve bool   `json:"approve"` // false: a rejection
	Comment string `json:"comment,omitempty"`
}

// IgnoredVote is a vote tag that does not count, and why.
type IgnoredVote struct {
	Key    string `json:"key"`
	Reason string `json:"reason"`
}

// ReviewOutcome is where a review stands.
type ReviewOutcome string

// Review outcomes.
const (
	ReviewPending  ReviewOutcome = "pending"
	ReviewApproved ReviewOutcome = "approved"
	ReviewRejected ReviewOutcome = "rejected"
	ReviewExpired  ReviewOutcome = "expired"
)

// Tally is the state of a review: who approved, who rejected and why, which vote tags
// were ignored, and what is still needed.
type Tally struct {
	Outcome   ReviewOutcome `json:"outcome"`
	Approvals []Vote        `json:"approvals,omitempty"`
	// Rejection is the rejection that decided the review (the first by name when several
	// approvers rejected).
	Rejection *Vote         `json:"rejection,omitempty"`
	Ignored   []IgnoredVote `json:"ignored,omitempty"`
	Needed    int           `json:"needed"`
	ExpiresAt time.Time     `json:"expires_at,omitzero"`
}

// Tally counts the vote tags on a version under review. Only approvers on the gate's list
// count (names compare case-insensitively); other names, empty names and rejections
// without a reason are listed as ignored. Any counted rejection rejects; else
// min_approvals approvals approve; else, once expires_after has passed since
// requestedAt, the review has expired; else it is pending.
func (g *Gate) Tally(tags map[string]string, requestedAt, now time.Time) Tally {
	t := Tally{Outcome: ReviewPending, Needed: g.Review.MinApprovals}
	if g.Review.ExpiresAfter > 0 && !requestedAt.IsZero() {
		t.ExpiresAt = requestedAt.Add(g.Review.ExpiresAfter).UTC()
	}
	allowed := make(map[string]string, len(g.Review.Approvers))
	for _, a := range g.Review.Approvers {
		allowed[strings.ToLower(a)] = a
	}
	approvedBy := map[string]bool{}
	var rejections []Vote
	for _, key := range slices.Sorted(maps.Keys(tags)) {
		name, approve, isVote := voteKey(key)
		if !isVote {
			continue
		}
		value := strings.TrimSpace(tags[key])
		canonical, ok := allowed[strings.ToLower(name)]
		switch {
		case name == "":
			t.Ignored = append(t.Ignored, IgnoredVote{key, "the tag names no reviewer: use " + voteExample(approve)})
		case !ok:
			t.Ignored = append(t.Ignored, IgnoredVote{key, fmt.Sprintf("%s is not an approver of gate %s", name, g.Name)})
		case !approve && value == "":
			t.Ignored = append(t.Ignored, IgnoredVote{key, "a rejection needs a reason as the tag's value"})
		case !approve:
			rejections = append(rejections, Vote{Name: canonical, Key: key, Comment: value})
		case approvedBy[canonical]:
			t.Ignored = append(t.Ignored, IgnoredVote{key, canonical + " has already approved"})
		default:
			approvedBy[canonical] = true
			t.Approvals = append(t.Approvals, Vote{Name: canonical, Key: key, Approve: true, Comment: value})
		}
	}
	switch {
	case len(rejections) > 0:
		t.Outcome, t.Rejection = ReviewRejected, &rejections[0]
	case len(t.Approvals) >= t.Needed:
		t.Outcome = ReviewApproved
	case !t.ExpiresAt.IsZero() && !now.Before(t.ExpiresAt):
		t.Outcome = ReviewExpired
	}
	return t
}

// voteKey splits a vote tag key into the reviewer's name and whether it approves.
func voteKey(key string) (name string, approve, ok bool) {
	if n, found := strings.CutPrefix(key, ApprovePrefix); found {
		return strings.TrimSpace(n), true, true
	}
	if n, found := strings.CutPrefix(key, RejectPrefix); found {
		return strings.TrimSpace(n), false, true
	}
	return "", false, false
}

func voteExample(approve bool) string {
	if approve {
		return ApprovePrefix + "<your name>"
	}
	return RejectPrefix + "<your name>"
}

// IsVoteTag reports whether a tag key is a vote.
func IsVoteTag(key string) bool {
	_, _, ok := voteKey(key)
	return ok
}
