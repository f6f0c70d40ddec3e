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
	// RejectPrefix + name = reason: a rejection by name (counted with or without a
	// reason; a missing one is shown as such).
	RejectPrefix = "modelgate.reject."
	// OverridePrefix + name = reason (required): an override by name, one of the gate's
	// overriders, which promotes despite failed checks and rejections.
	OverridePrefix = "modelgate.override."
)

// noReason is how a rejection without a reason is shown.
const noReason = "(no reason given)"

// VoteKind says what a vote asks for.
type VoteKind string

// Vote kinds.
const (
	VoteApprove  VoteKind = "approve"
	VoteReject   VoteKind = "reject"
	VoteOverride VoteKind = "override"
)

// Vote is one reviewer's vote, read from a tag.
type Vote struct {
	Name    string   `json:"name"` // the approver (or overrider) as the policy spells it
	Key     string   `json:"key"`  // the tag it came from
	Kind    VoteKind `json:"kind"`
	Approve bool     `json:"approve"` // Kind == VoteApprove
	Comment string   `json:"comment,omitempty"`
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
	Rejection *Vote `json:"rejection,omitempty"`
	// Override is an override by one of the gate's overriders, with its reason (the first
	// by name when several overrode); it wins over everything else.
	Override  *Vote         `json:"override,omitempty"`
	Ignored   []IgnoredVote `json:"ignored,omitempty"`
	Needed    int           `json:"needed"`
	ExpiresAt time.Time     `json:"expires_at,omitzero"`
}

// Tally counts the vote tags on a version under review. Only approvers on the gate's list
// count (names compare case-insensitively); other names and empty names are listed as
// ignored. Any counted rejection rejects, with or without a reason; else min_approvals
// approvals approve; else, once expires_after has passed since requestedAt, the review
// has expired; else it is pending. Overrides from the gate's overriders, with a reason,
// are reported in Override whatever the outcome (the caller decides what they do).
func (g *Gate) Tally(tags map[string]string, requestedAt, now time.Time) Tally {
	t := Tally{Outcome: ReviewPending, Needed: g.Review.MinApprovals}
	if g.Review.ExpiresAfter > 0 && !requestedAt.IsZero() {
		t.ExpiresAt = requestedAt.Add(g.Review.ExpiresAfter).UTC()
	}
	approvers := names(g.Review.Approvers)
	overriders := names(g.Review.Overriders)
	approvedBy := map[string]bool{}
	var rejections, overrides []Vote
	for _, key := range slices.Sorted(maps.Keys(tags)) {
		name, kind, isVote := voteKey(key)
		if !isVote {
			continue
		}
		value := strings.TrimSpace(tags[key])
		list, role := approvers, "an approver"
		if kind == VoteOverride {
			list, role = overriders, "an overrider"
		}
		canonical, ok := list[strings.ToLower(name)]
		switch {
		case name == "":
			t.Ignored = append(t.Ignored, IgnoredVote{key, "the tag names no reviewer: use " + voteExample(kind)})
		case !ok:
			t.Ignored = append(t.Ignored, IgnoredVote{key, fmt.Sprintf("%s is not %s of gate %s", name, role, g.Name)})
		case kind == VoteOverride && value == "":
			t.Ignored = append(t.Ignored, IgnoredVote{key, "an override needs the reason as the tag's value"})
		case kind == VoteOverride:
			overrides = append(overrides, Vote{Name: canonical, Key: key, Kind: kind, Comment: value})
		case kind == VoteReject:
			if value == "" {
				value = noReason
			}
			rejections = append(rejections, Vote{Name: canonical, Key: key, Kind: kind, Comment: value})
		case approvedBy[canonical]:
			t.Ignored = append(t.Ignored, IgnoredVote{key, canonical + " has already approved"})
		default:
			approvedBy[canonical] = true
			t.Approvals = append(t.Approvals, Vote{Name: canonical, Key: key, Kind: kind, Approve: true, Comment: value})
		}
	}
	if len(overrides) > 0 {
		t.Override = &overrides[0]
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

// names maps lower-cased names to their spelling in the policy.
func names(list []string) map[string]string {
	m := make(map[string]string, len(list))
	for _, a := range list {
		m[strings.ToLower(a)] = a
	}
	return m
}

// voteKey splits a vote tag key into the reviewer's name and the kind of vote.
func voteKey(key string) (name string, kind VoteKind, ok bool) {
	for _, p := range []struct {
		prefix string
		kind   VoteKind
	}{{ApprovePrefix, VoteApprove}, {RejectPrefix, VoteReject}, {OverridePrefix, VoteOverride}} {
		if n, found := strings.CutPrefix(key, p.prefix); found {
			return strings.TrimSpace(n), p.kind, true
		}
	}
	return "", "", false
}

func voteExample(kind VoteKind) string {
	return ReservedTagPrefix + string(kind) + ".<your name>"
}

// IsVoteTag reports whether a tag key is a vote (an approval, a rejection or an
// override).
func IsVoteTag(key string) bool {
	_, _, ok := voteKey(key)
	return ok
}
