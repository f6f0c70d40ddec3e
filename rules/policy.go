// Package rules is modelgate's policy engine: the policy file, the checks, the decision
// and the report. It is pure: it reads no files, makes no requests and never looks at the
// clock (time is passed in), so every rule can be tested at its edges.
//
// The flow is: Load a Policy; pick the Gate for a model (Policy.GateFor); Evaluate the
// version's Evidence to a Decision; for a version under review, Tally the vote tags; and
// render the Decision as a one-line Summary, a Markdown report and JSON.
package rules

import (
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"

	"cel.dev/cel-go/cel"
)

// Action is what a failed check (or missing evidence) does to a version.
type Action string

// Actions.
const (
	Reject Action = "reject"
	Review Action = "review"
)

// Kind names a kind of check.
type Kind string

// Check kinds.
const (
	KindThreshold Kind = "threshold" // metric within [min, max]
	KindGroup     Kind = "group"     // per-group metrics: gap and ratio between groups
	KindBaseline  Kind = "baseline"  // metric compared with a baseline version (MLflow MetricThreshold)
	KindTag       Kind = "tag"       // a tag equals a value
	KindExpr      Kind = "expr"      // a CEL expression
	KindLineage   Kind = "lineage"   // what the version was trained from: the code's commit, the datasets
)

// Check is one check of a gate. Which fields apply depends on Kind.
type Check struct {
	Name   string
	Kind   Kind
	OnFail Action
	// OnMissing, when set, is what missing evidence does to this check (else the gate's
	// on_missing). A tag check with it set treats an absent tag as missing rather than
	// failed.
	OnMissing Action

	// Metrics are the candidate names of the metric (threshold and baseline checks): the
	// first one with a finite value is used.
	Metrics []string
	// Min and Max are inclusive bounds (threshold checks).
	Min, Max *float64

	// Group checks: GroupPattern matches whole metric keys; its first capture group (or
	// the one named "group") names the group.
	GroupPattern *regexp.Regexp
	GroupMetric  string   // the pattern as written
	MaxGap       *float64 // max - min across groups
	MinRatio     *float64 // min / max across groups
	MinGroups    int

	// Baseline checks, with MLflow's MetricThreshold arithmetic.
	Baseline          BaselineRef
	GreaterIsBetter   bool
	Threshold         *float64
	MinAbsoluteChange *float64
	MinRelativeChange *float64

	// Tag checks: the model version's tag Tag (else the run's) must equal Equals.
	Tag    string
	Equals string

	// Expression checks.
	Expr    string
	program cel.Program

	// Lineage checks: the run names its code's git commit (mlflow.source.git.commit),
	// and logged at least Datasets dataset inputs (mlflow.log_input).
	GitCommit bool
	Datasets  int

	bound, ok string // see prepare
}

// BaselineRef names the version a baseline check compares with: an alias of the
// registered model, or the newest version in a stage.
type BaselineRef struct {
	Alias string
	Stage string // canonical: Staging or Production
}

// String renders the ref as written in the policy: "champion" or "stage:Production".
func (b BaselineRef) String() string {
	if b.Stage != "" {
		return "stage:" + b.Stage
	}
	return b.Alias
}

// IsZero reports whether no baseline is set.
func (b BaselineRef) IsZero() bool { return b.Alias == "" && b.Stage == "" }

// ReviewRequirement says when a version needs a person.
type ReviewRequirement string

// Review requirements.
const (
	ReviewOnFailure ReviewRequirement = "on_failure" // when a review check fails or evidence is missing
	ReviewAlways    ReviewRequirement = "always"     // every version that passes the reject checks
	ReviewNever     ReviewRequirement = "never"      // what would go to review is rejected
)

// ReviewPolicy is who may vote and how many votes a version needs.
type ReviewPolicy struct {
	Required     ReviewRequirement
	Approvers    []string
	MinApprovals int
	ExpiresAfter time.Duration // 0: never
	// Overriders may promote a version despite failed checks and rejections (the urgent
	// exception), with modelgate.override.<name> = reason.
	Overriders []string
	// RecertifyAfter: a promoted version whose approval is older than this needs fresh
	// approvals (status recertification_due; it keeps its alias). 0: never.
	RecertifyAfter time.Duration
	// Identity says whose votes count: asserted (the default: the name in the tag) or
	// verified (only votes the modelgate-auth MLflow app recorded as set by that user).
	Identity Identity
	// ForbidSelfApproval ignores an approval or override by the version's recorded
	// creator (needs Identity verified: only the plugin records the creator).
	ForbidSelfApproval bool
}

// Identity is how a vote's author is known.
type Identity string

// Identities.
const (
	IdentityAsserted Identity = "asserted" // the name in the tag, as MLflow OSS records no author
	IdentityVerified Identity = "verified" // recorded by the modelgate-auth MLflow app
)

// Promotion is where an approved version goes: an alias, or a stage.
type Promotion struct {
	Alias           string
	Stage           string // canonical: Staging or Production
	ArchiveExisting bool
	// Protect: a person's move of the alias (or stage) to a version modelgate did not
	// promote is undone.
	Protect bool
	// Rollout lists the stages an approved version passes before the target: each an
	// alias it holds for a soak, then checks on fresh evidence.
	Rollout []RolloutStage
}

// RolloutStage is one step of a staged rollout: the version holds Alias for Soak, then
// Checks are evaluated on the evidence as it is then (metrics an online-monitoring job
// logged meanwhile, say).
type RolloutStage struct {
	Alias  string
	Soak   time.Duration
	Checks []Check
}

// StageIndex returns the position of the rollout stage whose alias is alias, or -1.
func (p Promotion) StageIndex(alias string) int {
	for i, s := range p.Rollout {
		if s.Alias == alias {
			return i
		}
	}
	return -1
}

// Target renders the promotion as the modelgate.promoted_to tag does:
// "alias:champion", "stage:Production", or "" when the gate promotes nothing.
func (p Promotion) Target() string {
	switch {
	case p.Alias != "":
		return "alias:" + p.Alias
	case p.Stage != "":
		return "stage:" + p.Stage
	}
	return ""
}

// Gate is the policy for the models its globs match.
type Gate struct {
	Name      string
	Models    []string // globs (path.Match syntax) on the registered model name
	OnMissing Action
	Checks    []Check
	Review    ReviewPolicy
	Promote   Promotion
	digest    string
}

// Matches reports whether the gate's globs match a registered model name.
func (g *Gate) Matches(model string) bool {
	for _, glob := range g.Models {
		if ok, _ := path.Match(glob, model); ok {
			return true
		}
	}
	return false
}

// Digest identifies the gate's definition: the same for the same content, different
// when anything that affects a decision changes. It is what modelgate.policy_digest holds.
func (g *Gate) Digest() string { return g.digest }

// Baselines lists the distinct baseline versions the gate's checks compare with.
func (g *Gate) Baselines() []BaselineRef {
	var out []BaselineRef
	checks := slices.Clone(g.Checks)
	for _, st := range g.Promote.Rollout {
		checks = append(checks, st.Checks...)
	}
	for _, c := range checks {
		if c.Kind == KindBaseline && !slices.Contains(out, c.Baseline) {
			out = append(out, c.Baseline)
		}
	}
	return out
}

// CanRequestReview reports whether some version could end up waiting for a person.
func (g *Gate) CanRequestReview() bool {
	switch g.Review.Required {
	case ReviewNever:
		return false
	case ReviewAlways:
		return true
	}
	checks := slices.Clone(g.Checks)
	for _, st := range g.Promote.Rollout {
		checks = append(checks, st.Checks...)
	}
	if g.OnMissing == Review && len(checks) > 0 {
		return true
	}
	// A recertification asks the approvers again.
	return g.Review.RecertifyAfter > 0 || slices.ContainsFunc(checks, func(c Check) bool { return c.OnFail == Review })
}

// Event is something a notification can be sent for.
type Event string

// Events.
const (
	EventReviewRequested Event = "review_requested"
	EventRejected        Event = "rejected"
	EventPromoted        Event = "promoted"
	EventRolledBack      Event = "rolled_back"
	EventExpired         Event = "expired"
	EventSuperseded      Event = "superseded"
	EventOverridden      Event = "overridden"
	EventTampered        Event = "tampered"
	EventRecertDue       Event = "recertification_due"
	EventStaged          Event = "staged"
)

// allEvents lists every event, in the order they are documented.
var allEvents = []Event{EventReviewRequested, EventRejected, EventPromoted, EventRolledBack, EventExpired,
	EventSuperseded, EventOverridden, EventTampered, EventRecertDue, EventStaged}

// Notification is a webhook to call on events; its URL is read from the environment
// variable URLEnv, never from the policy file.
type Notification struct {
	URLEnv string
	Format string // slack or json
	Events []Event
}

// Wants reports whether the notification is sent for an event.
func (n Notification) Wants(e Event) bool { return slices.Contains(n.Events, e) }

// Policy is a loaded, validated policy file.
type Policy struct {
	Gates         []*Gate
	Notifications []Notification
	digest        string
}

// GateFor returns the first gate whose globs match the model, or nil: the model is not
// gated.
func (p *Policy) GateFor(model string) *Gate {
	for _, g := range p.Gates {
		if g.Matches(model) {
			return g
		}
	}
	return nil
}

// Digest identifies the whole policy (gates and notifications).
func (p *Policy) Digest() string { return p.digest }

// Describe summarises the policy for `modelgate check`: each gate with what it matches,
// checks, reviews and promotes, with the digests.
func (p *Policy) Describe() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d gate(s), %d notification(s); policy %s\n", len(p.Gates), len(p.Notifications), p.digest)
	for _, g := range p.Gates {
		fmt.Fprintf(&b, "\ngate %s (%s)\n  models: %s\n", g.Name, g.digest, strings.Join(g.Models, ", "))
		for _, c := range g.Checks {
			fmt.Fprintf(&b, "  check %s: %s %s %s, on_fail %s\n", c.Name, c.Kind, c.subject(), c.bound, c.OnFail)
		}
		fmt.Fprintf(&b, "  missing evidence: %s\n", g.OnMissing)
		switch {
		case g.Review.Required == ReviewNever:
			b.WriteString("  review: never (what would need review is rejected)\n")
		case len(g.Review.Approvers) > 0:
			fmt.Fprintf(&b, "  review: %s, %d approval(s) from %s", g.Review.Required, g.Review.MinApprovals, strings.Join(g.Review.Approvers, ", "))
			if g.Review.ExpiresAfter > 0 {
				fmt.Fprintf(&b, ", expires after %s", FormatDuration(g.Review.ExpiresAfter))
			}
			b.WriteString("\n")
		}
		if len(g.Review.Overriders) > 0 {
			fmt.Fprintf(&b, "  overriders: %s\n", strings.Join(g.Review.Overriders, ", "))
		}
		if g.Review.RecertifyAfter > 0 {
			fmt.Fprintf(&b, "  re-certification: approval needed again after %s\n", FormatDuration(g.Review.RecertifyAfter))
		}
		if g.Review.Identity == IdentityVerified {
			b.WriteString("  identity: verified (only votes the modelgate-auth MLflow app recorded count)")
			if g.Review.ForbidSelfApproval {
				b.WriteString("; the version's creator cannot approve or override it")
			}
			b.WriteString("\n")
		}
		for _, st := range g.Promote.Rollout {
			fmt.Fprintf(&b, "  rollout stage alias:%s: soak %s", st.Alias, FormatDuration(st.Soak))
			for _, c := range st.Checks {
				fmt.Fprintf(&b, "; check %s: %s %s %s, on_fail %s", c.Name, c.Kind, c.subject(), c.bound, c.OnFail)
			}
			b.WriteString("\n")
		}
		if t := g.Promote.Target(); t != "" {
			fmt.Fprintf(&b, "  promote: %s", t)
			if g.Promote.ArchiveExisting {
				b.WriteString(" (archiving the versions there)")
			}
			if g.Promote.Protect {
				b.WriteString(", protected (a move by hand is undone)")
			}
			b.WriteString("\n")
		} else {
			b.WriteString("  promote: nothing (approved versions are tagged approved)\n")
		}
	}
	for _, n := range p.Notifications {
		fmt.Fprintf(&b, "\nnotify %s (url from $%s) on %s\n", n.Format, n.URLEnv, joinEvents(n.Events))
	}
	return b.String()
}

// subject names what a check reads.
func (c *Check) subject() string {
	switch c.Kind {
	case KindThreshold:
		return strings.Join(c.Metrics, "|")
	case KindBaseline:
		return strings.Join(c.Metrics, "|") + " vs " + c.Baseline.String()
	case KindGroup:
		return c.GroupMetric
	case KindTag:
		return c.Tag
	case KindExpr:
		return clipText(c.Expr, 60)
	case KindLineage:
		return "of the run:"
	}
	return ""
}

// FormatDuration writes a policy duration as the policy file does: 72h rather than
// 72h0m0s, 90d rather than 2160h.
func FormatDuration(d time.Duration) string {
	if d >= 48*time.Hour && d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour)) // as the policy file writes days
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
