package transitions

import (
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/modelgate/modelgate/rules"
)

// Plan is everything the daemon will do for one version, computed before anything is
// written: the decision and tally (in Report), the ordered writes, and the notifications.
// The reconciler applies it, `modelgate evaluate` prints it and a dry run logs it; all
// three get it from the same Planner, so there is one copy of the decision logic.
//
// This is external-dns' plan.Calculate → ApplyChanges shape: planning reads MLflow but
// never writes; applying writes exactly what the plan lists and nothing else.
type Plan struct {
	Model   string `json:"model"`
	Version string `json:"version"`
	Gate    string `json:"gate,omitempty"`
	// Action says what the version needed: decide (a new version), review (an open
	// review), reevaluate, rollback, or none.
	Action Action `json:"action"`
	// From is modelgate.status before the plan; Status after it is applied.
	From   Status `json:"from,omitempty"`
	Status Status `json:"status,omitempty"`
	// Skipped says why a version is left alone (a prompt, created before
	// MODELGATE_SINCE, no gate matches, an unknown status); empty otherwise.
	Skipped string `json:"skipped,omitempty"`
	// Report is the decision, the checks and the review, as the report section and the
	// summary show them; nil when the plan evaluated nothing.
	*rules.Report
	// Writes, in order: writes with the same Step are independent of one another and may
	// run in parallel; a step starts when the one before it has fully succeeded.
	Writes []Write `json:"writes"`
	// Record is the signed record the plan writes (nil when it writes none).
	Record *Record `json:"record,omitempty"`
	// Events are the audit events written once every write has succeeded; Notices go out
	// after them.
	Events  []AuditEvent `json:"audit_events,omitempty"`
	Notices []Notice     `json:"notifications,omitempty"`

	// What applying the plan is counted and logged as.
	decision   bool          // a decision (not a report refresh): decisions_total, the decision log line
	latency    bool          // the version's first decision: decision_latency_seconds
	created    time.Time     // when the version was created
	by         string        // who decided: modelgate, approvers, a rejecting reviewer
	waited     time.Duration // review request → a person's decision, when one decided
	promotion  string        // "alias" or "stage" when the plan tries to promote
	promoted   bool          // ... and moves it (false: skipped, a newer version holds it)
	rolledBack string        // the target given back, when the plan is a rollback
	overridden bool          // an overrider's exception
	tamper     string        // the kind of tampering the plan undoes
	setAside   []string      // vote_set_aside events
	checked    bool          // the version carried a record, checked
	badRecord  bool          // ... that did not verify
	logs       []logLine     // lines logged once the writes have succeeded
}

// Action names why a version was planned.
type Action string

// Actions.
const (
	ActionNone       Action = "none"
	ActionDecide     Action = "decide"
	ActionReview     Action = "review"
	ActionReevaluate Action = "reevaluate"
	ActionRollback   Action = "rollback"
	ActionOverride   Action = "override"
	ActionHold       Action = "hold"    // a version that held its target: superseded, moved back, or undone
	ActionRestore    Action = "restore" // a forged or replayed state replaced by the last signed one
	ActionFinish     Action = "finish"  // an apply a crash interrupted, finished from its record
	ActionMigrate    Action = "migrate" // a v1-decided version given a signed record
)

type logLine struct {
	msg  string
	args []any
}

// Op is a kind of write.
type Op string

// Ops: one per Writer method.
const (
	OpDescription     Op = "update_description"
	OpSetTag          Op = "set_tag"
	OpDeleteTag       Op = "delete_tag"
	OpSetAlias        Op = "set_alias"
	OpDeleteAlias     Op = "delete_alias"
	OpTransitionStage Op = "transition_stage"
)

// Write is one change to MLflow. Version is the version written to (tags, description,
// stage) or pointed at (an alias).
type Write struct {
	Step            Step   `json:"step"`
	Op              Op     `json:"op"`
	Version         string `json:"version,omitempty"`
	Key             string `json:"key,omitempty"`
	Value           string `json:"value,omitempty"`
	Alias           string `json:"alias,omitempty"`
	Stage           string `json:"stage,omitempty"`
	ArchiveExisting bool   `json:"archive_existing,omitempty"`
}

// Step orders a plan's writes so that a crash between any two leaves the registry in a
// state the next pass finishes: the report and summary first, then the signed record,
// then the promotion, then modelgate.status last. A version whose status is not yet its
// record's is an apply that stopped: the next pass finishes it from the record (the move,
// the status, the audit events), and decides nothing twice.
type Step int

// Steps, in the order they run.
const (
	StepSetAside     Step = iota + 1 // copy vote tags to their stale keys
	StepRemoveVotes                  // then delete the originals (nothing a reviewer wrote is lost)
	StepReport                       // the report section and the summary
	StepRecord                       // the signed record (ahead of the status until it lands)
	StepMove                         // the alias or stage
	StepStatus                       // modelgate.status: the commit point
	StepFollowReport                 // the former holder's report and summary
	StepFollowRecord                 // ... its record
	StepFollowStatus                 // ... and its status
	StepCleanup                      // the request tag that asked for this (modelgate.reevaluate), v1 tags
)

func (s Step) String() string {
	switch s {
	case StepSetAside:
		return "set votes aside"
	case StepRemoveVotes:
		return "remove set-aside votes"
	case StepReport:
		return "report"
	case StepRecord:
		return "record"
	case StepMove:
		return "move"
	case StepStatus:
		return "status"
	case StepFollowReport:
		return "former holder's report"
	case StepFollowRecord:
		return "former holder's record"
	case StepFollowStatus:
		return "former holder's status"
	case StepCleanup:
		return "cleanup"
	}
	return fmt.Sprintf("step %d", int(s))
}

func (p *Plan) add(w Write) {
	if w.Version == "" && w.Op != OpSetAlias && w.Op != OpDeleteAlias {
		w.Version = p.Version
	}
	p.Writes = append(p.Writes, w)
}

func (p *Plan) setTag(step Step, key, value string) {
	p.add(Write{Step: step, Op: OpSetTag, Key: key, Value: value})
}

func (p *Plan) deleteTag(step Step, key string) {
	p.add(Write{Step: step, Op: OpDeleteTag, Key: key})
}

func (p *Plan) log(msg string, args ...any) {
	p.logs = append(p.logs, logLine{msg, args})
}

// steps returns the plan's writes grouped by step, in order.
func (p *Plan) steps() [][]Write {
	var out [][]Write
	ws := slices.Clone(p.Writes)
	slices.SortStableFunc(ws, func(a, b Write) int { return int(a.Step) - int(b.Step) })
	for i := 0; i < len(ws); {
		j := i
		for j < len(ws) && ws[j].Step == ws[i].Step {
			j++
		}
		out = append(out, ws[i:j])
		i = j
	}
	return out
}

// String describes a write for people: logs, dry runs and `modelgate evaluate`.
func (w Write) String() string {
	switch w.Op {
	case OpDescription:
		return fmt.Sprintf("update the description of version %s (report section; %d characters in all)", w.Version, utf8.RuneCountInString(w.Value))
	case OpSetTag:
		return fmt.Sprintf("set tag %s = %s on version %s", w.Key, quoteClip(w.Value, 120), w.Version)
	case OpDeleteTag:
		return fmt.Sprintf("delete tag %s of version %s", w.Key, w.Version)
	case OpSetAlias:
		return fmt.Sprintf("point alias %s at version %s", w.Alias, w.Version)
	case OpDeleteAlias:
		return fmt.Sprintf("delete alias %s", w.Alias)
	case OpTransitionStage:
		s := fmt.Sprintf("move version %s to stage %s", w.Version, w.Stage)
		if w.ArchiveExisting {
			s += ", archiving the versions there"
		}
		return s
	}
	return string(w.Op)
}

func quoteClip(s string, n int) string {
	if r := []rune(s); len(r) > n {
		s = string(r[:n-1]) + "…"
	}
	return fmt.Sprintf("%q", s)
}

// Text renders the plan for a terminal: the report, then what would be written and sent.
func (p *Plan) Text() string {
	var b strings.Builder
	switch {
	case p.Skipped != "":
		fmt.Fprintf(&b, "%s version %s: not gated\n  %s\n", p.Model, p.Version, p.Skipped)
	case p.Report != nil:
		b.WriteString(p.Report.Text())
	default:
		fmt.Fprintf(&b, "%s version %s: %s (gate %s)\n", p.Model, p.Version, p.Status, p.Gate)
	}
	if len(p.Writes) == 0 {
		b.WriteString("\nnothing to write: the registry already says this\n")
	} else {
		b.WriteString("\nwould write, in order:\n")
		for i, w := range p.Writes {
			fmt.Fprintf(&b, "  %d. %s\n", i+1, w)
		}
	}
	for _, e := range p.Events {
		fmt.Fprintf(&b, "would audit: %s of version %s by %s (seq %d)\n", e.Event, e.Version, e.Actor, e.Seq)
	}
	for _, n := range p.Notices {
		fmt.Fprintf(&b, "would notify: %s\n", n.Event)
	}
	return b.String()
}
