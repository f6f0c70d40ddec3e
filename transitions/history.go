package transitions

import (
	"cmp"
	"slices"
	"time"
)

// Tenure is one stretch of time during which a version held a target (an alias or a
// stage) of a model, as the audit trail tells it: who or what moved it there, why, and on
// which evidence.
type Tenure struct {
	Target  string    `json:"target"`
	Version string    `json:"version"` // "" while nothing held the target
	From    time.Time `json:"from"`
	Until   time.Time `json:"until,omitzero"` // zero: holds it still
	// How it got there: promoted, override, rollback, hand (a person's move, seen by
	// modelgate), protect (a person's move undone), migrated (decided under v1).
	How            string   `json:"how"`
	By             string   `json:"by"`
	Reason         string   `json:"reason,omitempty"`
	EvidenceDigest string   `json:"evidence_digest,omitempty"`
	PolicyDigest   string   `json:"policy_digest,omitempty"`
	Events         []string `json:"event_ids"`
}

// History builds the timeline of each target from audit events (verified ones only;
// the caller reports the others), oldest first.
func History(events []AuditEvent) map[string][]Tenure {
	events = slices.DeleteFunc(slices.Clone(events), func(e AuditEvent) bool { return !e.Verified })
	slices.SortStableFunc(events, func(a, b AuditEvent) int { return cmp.Or(a.At.Compare(b.At), cmp.Compare(a.Seq, b.Seq)) })
	out := map[string][]Tenure{}
	move := func(e AuditEvent, version, how string) {
		if e.Target == "" {
			return
		}
		list := out[e.Target]
		if n := len(list); n > 0 {
			last := &list[n-1]
			if last.Version == version {
				last.Events = append(last.Events, e.ID())
				return // the same holder (a rollback and the reinstatement it caused)
			}
			last.Until = e.At
		}
		out[e.Target] = append(list, Tenure{Target: e.Target, Version: version, From: e.At, How: how, By: e.Actor,
			Reason: e.Reason, EvidenceDigest: e.EvidenceDigest, PolicyDigest: e.PolicyDigest, Events: []string{e.ID()}})
	}
	for _, e := range events {
		switch e.Event {
		case EventPromoted:
			move(e, e.Version, "promoted")
		case EventOverridden:
			move(e, e.Version, "override")
		case EventRolledBack:
			move(e, e.ToVersion, "rollback")
		case EventReinstated:
			how := "rollback"
			if e.Actor == ActorHand {
				how = "hand"
			}
			move(e, e.Version, how)
		case EventSuperseded:
			if e.Actor == ActorHand {
				move(e, e.ToVersion, "hand")
			}
		case EventTampered:
			if e.ToVersion != "" { // a protected target moved back
				move(e, e.Version, "protect")
			}
		case EventMigrated:
			if holdsTarget(e.Status) {
				move(e, e.Version, "migrated")
			}
		}
	}
	return out
}

// At returns the tenure of a timeline that covers t, and false when nothing held the
// target then.
func At(timeline []Tenure, t time.Time) (Tenure, bool) {
	for _, x := range timeline {
		if !t.Before(x.From) && (x.Until.IsZero() || t.Before(x.Until)) {
			return x, x.Version != ""
		}
	}
	return Tenure{}, false
}
