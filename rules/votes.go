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
	// Verified: the modelgate-auth MLflow app recorded that the user it names set it
	// (gates with review.identity: verified count no other vote).
	Verified bool `json:"verified,omitempty"`
}

// Attestations are what the modelgate-auth MLflow app recorded for one version: the user
// who last set each vote tag still set (a deleted one is absent), and the user who
// created the version ("" when not recorded).
type Attestations struct {
	Votes   map[string]string `json:"votes,omitempty"`
	Creator string            `json:"creator,omitempty"`
}

// VoteName is the name a user votes under, as the modelgate-auth app maps it: every
// character but letters, digits, '_', '.' and '-' (an e-mail's '@', say, which MLflow does
// not allow in a tag key) becomes '_'.
func VoteName(user string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '.', r == '-':
			return r
		}
		return '_'
	}, user)
}

// IgnoredVote is a vote tag that does not count, and why.
type IgnoredVote struct {
	Key    string `json:"key"`
	Reason string `json:"reason"`
	// Unrecorded: ignored because modelgate-auth has no record of it yet (it may be
	// written a moment after the tag: the version is looked at again).
	Unrecorded bool `json:"unrecorded,omitempty"`
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
	return g.TallyAttested(tags, requestedAt, now, nil)
}

// TallyAttested is Tally with what the modelgate-auth app recorded for the version (nil:
// nothing was read). Under review.identity: verified, a vote counts only when a record
// says the user it names set it, else it is listed as unverified; with
// forbid_self_approval, an approval or override by the version's recorded creator is
// listed as ignored. Under identity asserted, att changes nothing.
func (g *Gate) TallyAttested(tags map[string]string, requestedAt, now time.Time, att *Attestations) Tally {
	t := Tally{Outcome: ReviewPending, Needed: g.Review.MinApprovals}
	verified := g.Review.Identity == IdentityVerified
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
		setBy := ""
		if att != nil {
			setBy = att.Votes[key]
		}
		switch {
		case name == "":
			t.Ignored = append(t.Ignored, IgnoredVote{Key: key, Reason: "the tag names no reviewer: use " + voteExample(kind)})
		case !ok:
			t.Ignored = append(t.Ignored, IgnoredVote{Key: key, Reason: fmt.Sprintf("%s is not %s of gate %s", name, role, g.Name)})
		case verified && setBy == "":
			t.Ignored = append(t.Ignored, IgnoredVote{Key: key, Unrecorded: true,
				Reason: "unverified: modelgate-auth has no record of " + name + " setting it (a tag written around MLflow's API, or just set: it is looked at again)"})
		case verified && !strings.EqualFold(VoteName(setBy), name):
			t.Ignored = append(t.Ignored, IgnoredVote{Key: key, Reason: "unverified: recorded as set by " + setBy + ", not " + name})
		case verified && g.Review.ForbidSelfApproval && kind != VoteReject && att.Creator != "" && strings.EqualFold(VoteName(att.Creator), name):
			t.Ignored = append(t.Ignored, IgnoredVote{Key: key, Reason: name + " created this version and cannot " + string(kind) + " it (forbid_self_approval)"})
		case kind == VoteOverride && value == "":
			t.Ignored = append(t.Ignored, IgnoredVote{Key: key, Reason: "an override needs the reason as the tag's value"})
		case kind == VoteOverride:
			overrides = append(overrides, Vote{Name: canonical, Key: key, Kind: kind, Comment: value, Verified: verified})
		case kind == VoteReject:
			if value == "" {
				value = noReason
			}
			rejections = append(rejections, Vote{Name: canonical, Key: key, Kind: kind, Comment: value, Verified: verified})
		case approvedBy[canonical]:
			t.Ignored = append(t.Ignored, IgnoredVote{Key: key, Reason: canonical + " has already approved"})
		default:
			approvedBy[canonical] = true
			t.Approvals = append(t.Approvals, Vote{Name: canonical, Key: key, Kind: kind, Approve: true, Comment: value, Verified: verified})
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

// Unrecorded lists the vote tags ignored for want of a modelgate-auth record.
func (t *Tally) Unrecorded() []string {
	if t == nil {
		return nil
	}
	var keys []string
	for _, iv := range t.Ignored {
		if iv.Unrecorded {
			keys = append(keys, iv.Key)
		}
	}
	return keys
}

// names maps lower-cased names to their spelling in the policy.
func names(list []string) map[string]string {
	m := make(map[string]string, len(list))
	for _, a := range list {
		m[strings.ToLower(a)] = a
	}
	return m
}

// IsVoteKey reports whether a tag key is a vote: modelgate.approve|reject|override.<name>.
func IsVoteKey(key string) bool {
	_, _, ok := voteKey(key)
	return ok
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
