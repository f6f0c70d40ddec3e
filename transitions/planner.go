package transitions

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/modelgate/modelgate/mlflow"
	"github.com/modelgate/modelgate/rules"
)

// actorModelgate names modelgate as the one who decided, in logs, notifications and
// the audit trail.
const actorModelgate = "modelgate"

// PlanReader is what planning reads from MLflow. *mlflow.Client satisfies it.
type PlanReader interface {
	EvidenceReader
	GetModelVersion(ctx context.Context, name, version string) (mlflow.ModelVersion, error)
	// GetVoteRecords reads what the modelgate-auth MLflow app recorded for a version
	// (gates with review.identity: verified).
	GetVoteRecords(ctx context.Context, name, version string) (mlflow.VoteRecords, error)
	GetRegisteredModel(ctx context.Context, name string) (mlflow.RegisteredModel, error)
}

// AuditLog is the audit trail as planning reads it: the latest verified event of a
// version, the reference for its record. *Audit satisfies it.
type AuditLog interface {
	Latest(ctx context.Context, model, version string) (seq int64, record string, ok bool, err error)
	Missing(ctx context.Context, events []AuditEvent) ([]AuditEvent, error)
	Migrated(ctx context.Context) (bool, error)
}

// PlannerConfig configures a Planner. Reader and Policy are required.
type PlannerConfig struct {
	Reader PlanReader
	Policy *rules.Policy
	Logger *slog.Logger
	// Clock returns the current time (default time.Now).
	Clock func() time.Time
	// Since: versions created before it are not gated unless they carry
	// modelgate.reevaluate.
	Since time.Time
	// Keys sign and verify records; without a current key records are read unchecked.
	Keys Keys
	// Audit is the reference for records (nil: the audit trail is off).
	Audit AuditLog
}

// Planner computes plans: it reads a version's evidence and state and works out the
// decision and the writes, and writes nothing itself.
type Planner struct {
	reader PlanReader
	policy *rules.Policy
	logger *slog.Logger
	now    func() time.Time
	since  time.Time
	keys   Keys
	audit  AuditLog
}

// tally counts a version's votes. Under review.identity: verified it first reads what the
// modelgate-auth app recorded for the version (one request, made only when the version
// carries a vote tag).
func (p *Planner) tally(ctx context.Context, gate *rules.Gate, mv mlflow.ModelVersion, requested, now time.Time) (rules.Tally, error) {
	if gate.Review.Identity != rules.IdentityVerified || !hasVote(mv) {
		return gate.Tally(mv.Tags, requested, now), nil
	}
	recs, err := p.reader.GetVoteRecords(ctx, mv.Name, mv.Version)
	if err != nil {
		return rules.Tally{}, fmt.Errorf("read the vote records of %s/%s: %w", mv.Name, mv.Version, err)
	}
	att := &rules.Attestations{Votes: recs.Setters()}
	if recs.Creator != nil {
		att.Creator = recs.Creator.User
	}
	return gate.TallyAttested(mv.Tags, requested, now, att), nil
}

// hasVote reports whether a version carries a vote tag.
func hasVote(mv mlflow.ModelVersion) bool {
	for k := range mv.Tags {
		if rules.IsVoteKey(k) {
			return true
		}
	}
	return false
}

// hasTagPrefix reports whether a version carries a tag whose key starts with prefix.
func hasTagPrefix(mv mlflow.ModelVersion, prefix string) bool {
	for k := range mv.Tags {
		if strings.HasPrefix(k, prefix) {
			return true
		}
	}
	return false
}

// with returns the planner reading through r.
func (p *Planner) with(r PlanReader) *Planner {
	c := *p
	c.reader = r
	return &c
}

// NewPlanner builds a planner.
func NewPlanner(cfg PlannerConfig) (*Planner, error) {
	if cfg.Reader == nil {
		return nil, errors.New("transitions: a Reader is required")
	}
	if cfg.Policy == nil {
		return nil, errors.New("transitions: a Policy is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	return &Planner{reader: cfg.Reader, policy: cfg.Policy, logger: cfg.Logger, now: cfg.Clock, since: cfg.Since,
		keys: cfg.Keys, audit: cfg.Audit}, nil
}

// PlanVersion reads a version and plans it as the daemon's next full pass would: what
// `modelgate evaluate` prints.
func (p *Planner) PlanVersion(ctx context.Context, model, version string) (*Plan, error) {
	mv, err := p.reader.GetModelVersion(ctx, model, version)
	if err != nil {
		return nil, fmt.Errorf("read %s version %s: %w", model, version, err)
	}
	return p.Plan(ctx, mv, true)
}

// Plan works out what one version needs. full is set on a full scan (and by
// evaluate): an open review's evidence is read again even when no vote changed.
//
// It first checks the version's state: modelgate acts only on a record it can verify.
// A forged, replayed or hand-written state is restored from the audit trail's latest
// event (or, with none, the version is judged afresh); a record ahead of its status tag
// is an apply a crash interrupted, finished; v1 tags are migrated once.
func (p *Planner) Plan(ctx context.Context, mv mlflow.ModelVersion, full bool) (*Plan, error) {
	status := Status(mv.Tags[TagStatus])
	pl := &Plan{Model: mv.Name, Version: mv.Version, Action: ActionNone, From: status, Status: status, created: mv.Created()}
	if mv.IsPrompt() {
		pl.Skipped = "an MLflow prompt: modelgate never gates prompts"
		return pl, nil
	}
	st, err := p.check(ctx, mv)
	if err != nil {
		return nil, err
	}
	pl.checked = st.verdict != RecordMissing
	pl.badRecord = st.verdict == RecordBadSig || st.verdict == RecordMalformed
	if st.rec != nil {
		pl.Gate = st.rec.Gate
	}
	if st.renamed {
		defer p.resign(pl, mv, st)
	}
	switch {
	case st.migrate:
		return pl, p.migrate(pl, mv)
	case st.problem != "":
		return pl, p.tampered(ctx, pl, mv, st)
	case st.rec == nil && hasTag(mv, TagReevaluate):
		return pl, p.decideNew(ctx, pl, mv, nil, "evaluated on request (modelgate.reevaluate)")
	case st.rec == nil:
		if mv.Created().Before(p.since) {
			pl.Skipped = fmt.Sprintf("created %s, before MODELGATE_SINCE (%s): set modelgate.reevaluate to have it judged",
				mv.Created().Format(time.RFC3339), p.since.UTC().Format(time.RFC3339))
			return pl, nil
		}
		return pl, p.decideNew(ctx, pl, mv, nil, "")
	case st.unfinished:
		return pl, p.finishApply(ctx, pl, mv, st.rec)
	case st.auditBehind:
		p.catchUp(pl, mv, st.rec)
		return pl, nil
	}
	return pl, p.next(ctx, pl, mv, st.rec, full)
}

// next plans what a version in a verified state needs: a request it carries, the next
// step of its review, or a check that it still holds its target.
func (p *Planner) next(ctx context.Context, pl *Plan, mv mlflow.ModelVersion, rec *Record, full bool) error {
	gate := p.policy.GateFor(mv.Name)
	// Only an override tag can make the tally decide here; the review path counts the
	// votes itself (under identity verified, a read of their records: once per plan).
	var tally rules.Tally
	if gate != nil && hasTagPrefix(mv, rules.OverridePrefix) {
		var err error
		if tally, err = p.tally(ctx, gate, mv, rec.requested(), p.now()); err != nil {
			return err
		}
	}
	switch {
	case hasTag(mv, TagReevaluate):
		return p.reevaluate(ctx, pl, gate, mv, rec)
	case gate != nil && tally.Override != nil && !holdsTarget(rec.Status) && rec.OverriddenBy == "":
		return p.override(ctx, pl, gate, mv, rec, *tally.Override)
	case hasTag(mv, TagRollback) && holdsTarget(rec.Status):
		return p.rollback(ctx, pl, gate, mv, rec)
	case rec.Status == StatusPendingReview:
		return p.review(ctx, pl, gate, mv, rec, full)
	case holdsTarget(rec.Status) || rec.Status == StatusSuperseded:
		return p.holding(ctx, pl, gate, mv, rec, full)
	}
	return nil
}

// checked is what check found of a version's state.
type checked struct {
	rec     *Record // the record, when it verifies (or no key checks it)
	raw     string
	verdict Verdict
	// The audit trail's latest verified event of the version.
	auditSeq    int64
	auditRecord string
	auditKnown  bool
	problem     string // a tamper kind; "" when the state can be trusted
	unfinished  bool   // a record ahead of its status tag: an apply a crash cut short
	auditBehind bool   // a record whose audit events are missing
	migrate     bool   // decided under v1: migrate it
	renamed     bool   // signed under the model's former name: re-sign it
}

// Tamper kinds, the kind label of modelgate_tamper_detected_total.
const (
	TamperUnsigned      = "unsigned"       // a status or v1 tags without a record modelgate signed
	TamperBadSignature  = "bad_signature"  // a record that does not verify
	TamperReplayed      = "replayed"       // an older record of the version written back
	TamperStatusChanged = "status_changed" // a status tag that is not the record's
	TamperRecordRemoved = "record_removed" // a decided version's record and status removed
	TamperProtected     = "protected_move" // a protected alias or stage moved by hand
	TamperCopied        = "copied"         // a record of another model's version copied here
)

func (p *Planner) check(ctx context.Context, mv mlflow.ModelVersion) (checked, error) {
	st := checked{raw: mv.Tags[TagRecord]}
	rec, verdict := p.keys.Decode(mv.Name, mv.Version, st.raw)
	st.verdict = verdict
	if p.audit != nil {
		var err error
		if st.auditSeq, st.auditRecord, st.auditKnown, err = p.audit.Latest(ctx, mv.Name, mv.Version); err != nil {
			return st, fmt.Errorf("read the audit trail of %s/%s: %w", mv.Name, mv.Version, err)
		}
	}
	status := Status(mv.Tags[TagStatus])
	v1 := slices.ContainsFunc(v1Tags, func(k string) bool { return hasTag(mv, k) })
	if (verdict == RecordValid || verdict == RecordUnchecked) && rec.Model != mv.Name {
		// Signed for another model: the model was renamed (the old name is gone), or
		// the record was copied from another model's version.
		_, err := p.reader.GetRegisteredModel(ctx, rec.Model)
		switch {
		case mlflow.IsNotFound(err):
			st.renamed = true
			if p.audit != nil { // the trail knows the version under its former name
				if st.auditSeq, st.auditRecord, st.auditKnown, err = p.audit.Latest(ctx, rec.Model, mv.Version); err != nil {
					return st, fmt.Errorf("read the audit trail of %s/%s: %w", rec.Model, mv.Version, err)
				}
			}
		case err != nil:
			return st, fmt.Errorf("read model %s, named by the record of %s/%s: %w", rec.Model, mv.Name, mv.Version, err)
		default:
			st.problem = TamperCopied
			return st, nil
		}
	}
	switch verdict {
	case RecordValid, RecordUnchecked:
		st.rec = &rec
		switch {
		case st.auditKnown && rec.Seq < st.auditSeq:
			st.problem = TamperReplayed
		case status != rec.Status && status == rec.Prev && (!st.auditKnown || st.auditSeq < rec.Seq):
			st.unfinished = true
		case status != rec.Status:
			st.problem = TamperStatusChanged
		case v1:
			st.problem = TamperUnsigned // v1 tags written beside a v2 record
		case p.audit != nil && len(rec.Events) > 0 && (!st.auditKnown || st.auditSeq <= rec.Seq):
			// The record's events, all in the trail? (A refresh of an open review that
			// counted no vote has none: its record is ahead of the trail, harmlessly.)
			var probe Plan
			signed := mv
			signed.Name = rec.Model // a renamed model's events are under its former name
			p.announce(&probe, signed, rec, st.raw, mv.Tags[TagSummary])
			missing, err := p.audit.Missing(ctx, probe.Events)
			if err != nil {
				return st, fmt.Errorf("read the audit trail of %s/%s: %w", mv.Name, mv.Version, err)
			}
			st.auditBehind = len(missing) > 0
		}
	case RecordMissing:
		switch {
		case v1 && p.audit == nil:
			st.migrate = true // no reference: v1 tags are always migrated (see the threat model)
		case v1:
			migrated, err := p.audit.Migrated(ctx)
			if err != nil {
				return st, err
			}
			if migrated {
				st.problem = TamperUnsigned
			} else {
				st.migrate = true
			}
		case st.auditKnown:
			st.problem = TamperRecordRemoved
		case status != "":
			st.problem = TamperUnsigned
		}
	default:
		st.problem = TamperBadSignature
	}
	return st, nil
}

func hasTag(mv mlflow.ModelVersion, key string) bool {
	_, ok := mv.Tags[key]
	return ok
}

// gate returns the version's gate, or records on the plan that none matches.
func (p *Planner) gate(pl *Plan, model string) *rules.Gate {
	g := p.policy.GateFor(model)
	if g == nil {
		pl.Skipped = fmt.Sprintf("no gate of the policy matches model %q", model)
		return nil
	}
	pl.Gate = g.Name
	return g
}

// evaluate gathers evidence and decides.
func (p *Planner) evaluate(ctx context.Context, gate *rules.Gate, mv mlflow.ModelVersion) (rules.Decision, error) {
	ev, err := GatherEvidence(ctx, p.reader, gate, mv)
	if err != nil {
		return rules.Decision{}, err
	}
	return gate.Evaluate(ev), nil
}

// decideNew judges a version that has no decision modelgate can trust: a new version,
// one whose forged state has no signed predecessor, or one asked to be judged again.
// from is its current record, if any (the new one follows it); note heads the report.
func (p *Planner) decideNew(ctx context.Context, pl *Plan, mv mlflow.ModelVersion, from *Record, note string) error {
	pl.Action = ActionDecide
	gate := p.gate(pl, mv.Name)
	if gate == nil {
		return nil
	}
	d, err := p.evaluate(ctx, gate, mv)
	if err != nil {
		return err
	}
	pl.latency = from == nil
	var notes []string
	if note != "" {
		notes = append(notes, note)
	}
	return p.decide(ctx, pl, gate, mv, from, d, notes)
}

// decide plans a fresh decision by the checks (no votes yet, or votes just set aside).
func (p *Planner) decide(ctx context.Context, pl *Plan, gate *rules.Gate, mv mlflow.ModelVersion, from *Record, d rules.Decision, notes []string) error {
	switch d.Outcome {
	case rules.Rejected:
		p.commit(pl, gate, mv, from, change{status: StatusRejected, d: d, notes: notes, by: actorModelgate,
			events: []string{EventDecided}})
	case rules.PendingReview:
		// The tally of a review requested now: what every later pass shows until a vote
		// comes (votes already on the version included), so the report is written once.
		now := p.now()
		tally, err := p.tally(ctx, gate, mv, now, now)
		if err != nil {
			return err
		}
		p.commit(pl, gate, mv, from, change{status: StatusPendingReview, d: d, tally: &tally, notes: notes, by: actorModelgate,
			events: []string{EventReviewRequested}, requested: now})
	case rules.Approved:
		return p.promote(ctx, pl, gate, mv, from, d, nil, notes, actorModelgate, nil)
	}
	return nil
}

// change is what commit plans for a version: its new status and record fields, the
// report, the moves, the audit events.
type change struct {
	status    Status
	d         rules.Decision
	tally     *rules.Tally
	notes     []string
	by        string   // who decided, for the log line, notifications and the audit actor
	events    []string // audit events, as event or event:actor (actor defaults to by)
	requested time.Time
	moves     []Write
	quietly   bool // a report refresh: no decision metric or log line, no notification
	// Record fields beyond status and digests.
	promotedTo, previous, supersededBy, to string
	approvedBy                             []string
	rejectedBy, overriddenBy               string
	stage, stagedAt                        string
	// keep carries fields of the current record over (an open review's request time).
	keep bool
}

// commit plans a new state of a version in crash-safe order: the report section, the
// summary and the signed record (step Report), then the moves, then modelgate.status
// last; then the audit events and notifications. A crash before the status leaves the
// record ahead of it: the next pass finishes the apply from the record, and decides
// nothing twice.
func (p *Planner) commit(pl *Plan, gate *rules.Gate, mv mlflow.ModelVersion, from *Record, c change) {
	now := p.now().UTC()
	rec := Record{Status: c.status, Gate: gate.Name, At: stamp(now), Policy: c.d.PolicyDigest,
		Evidence: c.d.EvidenceDigest, Votes: votesFingerprint(mv.Tags), PromotedTo: c.promotedTo,
		PreviousVersion: c.previous, SupersededBy: c.supersededBy, To: c.to, ApprovedBy: c.approvedBy,
		RejectedBy: c.rejectedBy, OverriddenBy: c.overriddenBy, Stage: c.stage, StagedAt: c.stagedAt}
	if !c.requested.IsZero() {
		rec.Requested = stamp(c.requested)
	}
	if from != nil {
		rec.Seq, rec.Prev = from.Seq, from.Status
		if c.keep {
			rec.Requested, rec.At = from.Requested, from.At
		}
	}
	rec.Seq++
	for _, e := range c.events {
		if !strings.Contains(e, ":") {
			e += ":" + c.by
		}
		rec.Events = append(rec.Events, e)
	}
	notes := c.notes
	if n := staleVotesNote(mv.Tags); n != "" {
		notes = append(slices.Clip(notes), n)
	}
	decidedAt := now
	if c.keep && from != nil {
		decidedAt = from.time()
	}
	report := gate.Report(c.d, string(c.status), decidedAt, c.tally, notes...)
	pl.Report = &report
	pl.Gate = gate.Name
	pl.Status = c.status
	pl.Record = &rec
	summary := report.Summary()
	if desc, ok := p.description(mv, report); ok && desc != mv.Description {
		pl.add(Write{Step: StepReport, Op: OpDescription, Value: desc})
	}
	p.writeState(pl, mv, rec, summary, StepReport, StepStatus)
	for _, w := range c.moves {
		pl.add(w)
	}
	if c.quietly {
		return
	}
	pl.decision = true
	pl.by = c.by
}

// writeState plans the summary write of a version (at step at, with its report), then
// its record (the step after), then its status (at step statusAt), each only when it
// differs, and the audit events and notifications of the record. mv may be another
// version than the plan's (a former holder).
func (p *Planner) writeState(pl *Plan, mv mlflow.ModelVersion, rec Record, summary string, at, statusAt Step) {
	raw := p.keys.Encode(mv.Name, mv.Version, rec)
	if mv.Tags[TagSummary] != summary {
		pl.add(Write{Step: at, Op: OpSetTag, Version: mv.Version, Key: TagSummary, Value: summary})
	}
	if mv.Tags[TagRecord] != raw {
		pl.add(Write{Step: at + 1, Op: OpSetTag, Version: mv.Version, Key: TagRecord, Value: raw})
	}
	for _, k := range v1Tags {
		if hasTag(mv, k) {
			pl.add(Write{Step: StepCleanup, Op: OpDeleteTag, Version: mv.Version, Key: k})
		}
	}
	if mv.Tags[TagStatus] != string(rec.Status) {
		pl.add(Write{Step: statusAt, Op: OpSetTag, Version: mv.Version, Key: TagStatus, Value: string(rec.Status)})
	}
	p.announce(pl, mv, rec, raw, summary)
}

// announce plans the audit events of a record and the notifications they call for.
// Both are derived from the record alone (and the summary and vote tags), so that a
// pass finishing an interrupted apply writes exactly the events the first attempt would
// have: their ids match and none is written twice.
func (p *Planner) announce(pl *Plan, mv mlflow.ModelVersion, rec Record, raw, summary string) {
	at, _ := time.Parse(time.RFC3339, rec.At)
	for i, ev := range rec.Events {
		name, actor, _ := strings.Cut(ev, ":")
		reason := summary
		if name == EventVoteCounted || name == EventVoteSetAside {
			reason = voteComment(mv.Tags, actor)
		}
		e := AuditEvent{Event: name, Model: mv.Name, Version: mv.Version, Gate: rec.Gate, Status: rec.Status, Actor: actor,
			Target: rec.PromotedTo, FromVersion: rec.PreviousVersion, ToVersion: rec.To, Reason: reason,
			EvidenceDigest: rec.Evidence, PolicyDigest: rec.Policy, Seq: rec.Seq, At: at.Add(time.Duration(i) * time.Millisecond)}
		if name == EventSuperseded || name == EventRolledBack {
			e.FromVersion = mv.Version
		}
		e.Record = raw
		if n, ok := noticeFor(e, rec); ok {
			n.Summary = summary
			e.Notify = string(n.Event)
			pl.Notices = append(pl.Notices, n)
		}
		pl.Events = append(pl.Events, e)
	}
}

// voteComment finds the text of a vote by name among a version's vote tags (set aside or
// not).
func voteComment(tags map[string]string, name string) string {
	for _, k := range slices.Sorted(maps.Keys(tags)) {
		if strings.HasSuffix(strings.ToLower(k), "."+strings.ToLower(name)) && (rules.IsVoteTag(k) || strings.HasPrefix(k, StalePrefix)) {
			return strings.TrimSpace(tags[k])
		}
	}
	return ""
}

// noticeFor maps an audit event to the notification it calls for.
func noticeFor(e AuditEvent, rec Record) (Notice, bool) {
	var ev rules.Event
	switch {
	case e.Event == EventReviewRequested:
		ev = rules.EventReviewRequested
	case e.Event == EventDecided && rec.Status == StatusRejected:
		ev = rules.EventRejected
	case e.Event == EventPromoted:
		ev = rules.EventPromoted
	case e.Event == EventRolledBack:
		ev = rules.EventRolledBack
	case e.Event == EventExpired:
		ev = rules.EventExpired
	case e.Event == EventSuperseded:
		ev = rules.EventSuperseded
	case e.Event == EventOverridden:
		ev = rules.EventOverridden
	case e.Event == EventTampered:
		ev = rules.EventTampered
	case e.Event == EventRecertificationDue:
		ev = rules.EventRecertDue
	case e.Event == EventStaged:
		ev = rules.EventStaged
	default:
		return Notice{}, false
	}
	return Notice{ID: e.ID(), Event: ev, Model: e.Model, Version: e.Version, Gate: e.Gate, Status: e.Status, By: e.Actor, At: e.At}, true
}

// description returns the description with the report section replaced, within the
// length the MLflow column allows, keeping the user's text byte for byte. It is false
// when the user's text leaves no room for a report.
func (p *Planner) description(mv mlflow.ModelVersion, report rules.Report) (string, bool) {
	budget := reportBudget(mv.Description)
	if budget < 200 {
		p.logger.Warn("description too long for the report section; the summary tag still has the decision",
			"model", mv.Name, "version", mv.Version, "length", len(mv.Description))
		return "", false
	}
	return withReport(mv.Description, report.Markdown(budget)), true
}

// votesFingerprint identifies the version's vote tags, so a pass can tell without any
// request when new votes need the report refreshed.
func votesFingerprint(tags map[string]string) string {
	h := sha256.New()
	for _, k := range slices.Sorted(maps.Keys(tags)) {
		if rules.IsVoteTag(k) {
			fmt.Fprintf(h, "%q=%q\n", k, tags[k])
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// promote plans moving the gate's alias or stage to an approved version, unless a newer
// version holds it. The record names the previous holder before anything moves. The
// former holder is marked superseded in the same plan, once the move is made.
func (p *Planner) promote(ctx context.Context, pl *Plan, gate *rules.Gate, mv mlflow.ModelVersion, from *Record, d rules.Decision,
	tally *rules.Tally, notes []string, by string, events []string) error {
	target := gate.Promote
	approvedBy := approvers(tally)
	if tally == nil && from != nil {
		approvedBy = from.ApprovedBy // moving on from a rollout stage: the approval stands
	}
	if i := nextStage(gate, from); i >= 0 && !pl.overridden {
		return p.stage(ctx, pl, gate, mv, from, d, notes, by, events, approvedBy, i)
	}
	leaveStage := leaveStageMove(from)
	if target.Target() == "" {
		p.commit(pl, gate, mv, from, change{status: StatusApproved, d: d, tally: tally, notes: notes, by: by,
			events: append(events, EventDecided), approvedBy: approvedBy})
		return nil
	}
	pl.promotion = "alias"
	if target.Stage != "" {
		pl.promotion = "stage"
	}
	holder, err := holderOf(ctx, p.reader, mv.Name, target)
	if err != nil {
		return err
	}
	previous := holder.Version
	switch {
	case holder.Version == mv.Version:
		// Moved by an earlier attempt that stopped before the record.
		previous = ""
	case holder.Version != "" && mlflow.CompareVersions(holder.Version, mv.Version) > 0:
		notes = append(notes, fmt.Sprintf("approved but not promoted: %s is held by newer version %s", target.Target(), holder.Version))
		overriddenBy := ""
		if pl.overridden {
			overriddenBy = by
		}
		p.commit(pl, gate, mv, from, change{status: StatusApproved, d: d, tally: tally, notes: notes, by: by,
			events: append(events, EventDecided), approvedBy: approvedBy, overriddenBy: overriddenBy, moves: leaveStage})
		return nil
	}
	pl.promoted = true
	note := "promoted to " + target.Target()
	if previous != "" {
		note += fmt.Sprintf(" (previously version %s)", previous)
	}
	var moves []Write
	if holder.Version != mv.Version {
		moves = append(moves, moveTo(target, mv.Version))
		pl.log("promoted", "model", mv.Name, "version", mv.Version, "gate", gate.Name, "target", target.Target(), "previous_version", previous, "by", by)
	}
	moves = append(moves, leaveStage...)
	event, overriddenBy := EventPromoted, ""
	if pl.overridden {
		event, overriddenBy = EventOverridden, by
	}
	p.commit(pl, gate, mv, from, change{status: StatusPromoted, d: d, tally: tally, notes: append([]string{note}, notes...), by: by,
		events: append(events, event), moves: moves, promotedTo: target.Target(), previous: previous,
		approvedBy: approvedBy, overriddenBy: overriddenBy})
	if previous != "" {
		p.supersede(pl, gate, holder, mv.Version, actorModelgate)
	}
	return nil
}

// nextStage is the rollout stage an approved version goes to next: the first, or the one
// after the stage it comes from (it passed its checks, or its approvers approved it after
// they failed); -1 for the final target (no rollout, the last stage passed, or a stage the
// policy no longer has).
func nextStage(gate *rules.Gate, from *Record) int {
	rollout := gate.Promote.Rollout
	if len(rollout) == 0 {
		return -1
	}
	if from == nil || from.Stage == "" || (from.Status != StatusStaged && from.Status != StatusPendingReview) {
		return 0
	}
	i := gate.Promote.StageIndex(from.Stage)
	if i < 0 || i+1 >= len(rollout) {
		return -1
	}
	return i + 1
}

// leaveStageMove removes the alias of the rollout stage a version leaves.
func leaveStageMove(from *Record) []Write {
	if from == nil || from.Status != StatusStaged || from.Stage == "" {
		return nil
	}
	return []Write{{Step: StepMove, Op: OpDeleteAlias, Alias: from.Stage}}
}

// stage plans an approved version's entry into rollout stage i: it takes the stage's
// alias (the version there before is superseded), and its soak starts.
func (p *Planner) stage(ctx context.Context, pl *Plan, gate *rules.Gate, mv mlflow.ModelVersion, from *Record, d rules.Decision,
	notes []string, by string, events, approvedBy []string, i int) error {
	st := gate.Promote.Rollout[i]
	target := rules.Promotion{Alias: st.Alias}
	holder, err := holderOf(ctx, p.reader, mv.Name, target)
	if err != nil {
		return err
	}
	previous := holder.Version
	leave := leaveStageMove(from)
	switch {
	case holder.Version == mv.Version:
		previous = "" // moved by an earlier attempt that stopped before the record
	case holder.Version != "" && mlflow.CompareVersions(holder.Version, mv.Version) > 0:
		notes = append(notes, fmt.Sprintf("approved but not staged: %s is held by newer version %s", target.Target(), holder.Version))
		p.commit(pl, gate, mv, from, change{status: StatusApproved, d: d, notes: notes, by: by,
			events: append(events, EventDecided), approvedBy: approvedBy, moves: leave})
		return nil
	}
	pl.promoted = true
	now := p.now()
	note := fmt.Sprintf("staged: %s for %s (until %s), then %s", target.Target(), rules.FormatDuration(st.Soak), now.Add(st.Soak).UTC().Format("2006-01-02 15:04 UTC"), stageNext(gate, i))
	if previous != "" {
		note += fmt.Sprintf("; version %s held it before", previous)
	}
	var moves []Write
	if holder.Version != mv.Version {
		moves = append(moves, moveTo(target, mv.Version))
		pl.log("staged", "model", mv.Name, "version", mv.Version, "gate", gate.Name, "target", target.Target(), "soak", st.Soak.String(), "by", by)
	}
	moves = append(moves, leave...)
	d.PromoteTo = target.Target() // the report names the stage it is in
	p.commit(pl, gate, mv, from, change{status: StatusStaged, d: d, notes: append([]string{note}, notes...), by: by,
		events: append(events, EventStaged), moves: moves, promotedTo: target.Target(), previous: previous,
		approvedBy: approvedBy, stage: st.Alias, stagedAt: stamp(now)})
	if previous != "" {
		p.supersede(pl, gate, holder, mv.Version, actorModelgate)
	}
	return nil
}

// stageNext says where a version goes after stage i.
func stageNext(gate *rules.Gate, i int) string {
	checks := "its stage checks"
	if len(gate.Promote.Rollout[i].Checks) == 0 {
		checks = "on"
	}
	if i+1 < len(gate.Promote.Rollout) {
		return checks + " to alias:" + gate.Promote.Rollout[i+1].Alias
	}
	return checks + " to " + gate.Promote.Target()
}

// endSoak plans what a staged version does once its soak is over: its stage's checks run
// on the evidence as it is now (metrics logged during the soak are stage evidence); it
// passes on to the next stage or the target, or leaves the stage (its alias removed),
// rejected or waiting for the approvers.
func (p *Planner) endSoak(ctx context.Context, pl *Plan, gate *rules.Gate, mv mlflow.ModelVersion, rec *Record, i int) error {
	pl.Action = ActionDecide
	ev, err := GatherEvidence(ctx, p.reader, gate, mv)
	if err != nil {
		return err
	}
	st := gate.Promote.Rollout[i]
	sd := gate.EvaluateStage(i, ev)
	note := fmt.Sprintf("stage %s: held for %s from %s", st.Alias, rules.FormatDuration(st.Soak), rec.stagedAt().UTC().Format("2006-01-02 15:04 UTC"))
	switch sd.Outcome {
	case rules.Approved:
		// The approval and the evidence it was given on stand: the record keeps its digest.
		d := sd
		d.EvidenceDigest = rec.Evidence
		return p.promote(ctx, pl, gate, mv, rec, d, nil, []string{note + ", its checks passed"}, actorModelgate, nil)
	case rules.Rejected:
		p.commit(pl, gate, mv, rec, change{status: StatusRejected, d: sd, by: actorModelgate, events: []string{EventDecided},
			notes: []string{note + ", its checks rejected it: " + st.Alias + " removed from it"}, moves: leaveStageMove(rec),
			approvedBy: rec.ApprovedBy, stage: st.Alias, stagedAt: rec.StagedAt})
	default:
		now := p.now()
		tally, err := p.tally(ctx, gate, mv, now, now)
		if err != nil {
			return err
		}
		p.commit(pl, gate, mv, rec, change{status: StatusPendingReview, d: sd, tally: &tally, by: actorModelgate,
			events: []string{EventReviewRequested}, requested: now, moves: leaveStageMove(rec),
			notes: []string{note + ", its checks ask the approvers: " + st.Alias + " removed from it until they approve"},
			stage: st.Alias, stagedAt: rec.StagedAt})
	}
	return nil
}

// recertificationDue reports whether a version's approval needs renewing: promoted under
// a gate with review.recertify_after, longer ago than that; or already due.
func (p *Planner) recertificationDue(gate *rules.Gate, rec *Record) bool {
	if gate == nil || gate.Name != rec.Gate || gate.Review.RecertifyAfter <= 0 {
		return false
	}
	switch rec.Status {
	case StatusRecertificationDue:
		return true
	case StatusPromoted:
		return p.now().Sub(rec.time()) > gate.Review.RecertifyAfter
	}
	return false
}

// recertify plans the re-certification of a promoted version. When its approval falls
// due it keeps its target (nothing is demoted silently) and becomes
// recertification_due: the votes it was approved with are set aside, so a fresh
// modelgate.approve.<name> is told apart from the old one, and the approvers are asked.
// Enough fresh approvals make it promoted again, with the clock reset; a rejection is
// shown, and rolling it back is the reviewer's call (modelgate.rollback).
func (p *Planner) recertify(ctx context.Context, pl *Plan, gate *rules.Gate, mv mlflow.ModelVersion, rec *Record) error {
	pl.Action = ActionReview
	d, err := p.evaluate(ctx, gate, mv)
	if err != nil {
		return err
	}
	now := p.now()
	held := change{promotedTo: rec.PromotedTo, previous: rec.PreviousVersion, approvedBy: rec.ApprovedBy, overriddenBy: rec.OverriddenBy}
	if rec.Status == StatusPromoted {
		mv, events := setVotesAside(pl, mv, rec.Evidence)
		pl.setAside = events
		tally, err := p.tally(ctx, gate, mv, now, now)
		if err != nil {
			return err
		}
		c := held
		c.status, c.d, c.tally, c.by, c.requested = StatusRecertificationDue, d, &tally, actorModelgate, now
		c.events = append(events, EventRecertificationDue)
		c.notes = []string{fmt.Sprintf("re-certification due: approved %s, more than review.recertify_after (%s) ago; it keeps %s until its approvers decide",
			rec.time().UTC().Format("2006-01-02"), rules.FormatDuration(gate.Review.RecertifyAfter), rec.PromotedTo)}
		p.commit(pl, gate, mv, rec, c)
		pl.log("re-certification due", "model", mv.Name, "version", mv.Version, "gate", gate.Name, "target", rec.PromotedTo)
		return nil
	}
	tally, err := p.tally(ctx, gate, mv, rec.requested(), now)
	if err != nil {
		return err
	}
	counted := countedEvents(&tally, rec)
	c := held
	c.d, c.tally, c.by = d, &tally, actorModelgate
	switch tally.Outcome {
	case rules.ReviewApproved:
		by := voters(tally.Approvals)
		c.status, c.by, c.approvedBy = StatusPromoted, by, approvers(&tally)
		c.events = append(counted, EventRecertified)
		c.notes = []string{"re-certified by " + by + ": " + rec.PromotedTo + " kept"}
		c.quietly = false
		p.commit(pl, gate, mv, rec, c)
		pl.waited = now.Sub(rec.requested())
		return nil
	case rules.ReviewRejected:
		c.notes = []string{fmt.Sprintf("re-certification refused by %s: it still holds %s; roll it back with modelgate.rollback", tally.Rejection.Name, rec.PromotedTo)}
	}
	// Still open: refresh the report and record (votes so far); each vote is audited.
	c.status, c.keep, c.quietly, c.events = StatusRecertificationDue, true, true, counted
	p.commit(pl, gate, mv, rec, c)
	return nil
}

// judge decides a version again for its open review: by its rollout stage's checks when
// those sent it to review, else by the gate's.
func (p *Planner) judge(ctx context.Context, gate *rules.Gate, mv mlflow.ModelVersion, rec *Record) (rules.Decision, error) {
	if rec != nil && rec.Stage != "" {
		if i := gate.Promote.StageIndex(rec.Stage); i >= 0 {
			ev, err := GatherEvidence(ctx, p.reader, gate, mv)
			if err != nil {
				return rules.Decision{}, err
			}
			return gate.EvaluateStage(i, ev), nil
		}
	}
	return p.evaluate(ctx, gate, mv)
}

func approvers(t *rules.Tally) []string {
	if t == nil {
		return nil
	}
	var out []string
	for _, v := range t.Approvals {
		out = append(out, v.Name)
	}
	return out
}

// supersede plans marking the former holder of a target superseded, after the move:
// its status, record and report say by whom (a version, or "hand").
func (p *Planner) supersede(pl *Plan, gate *rules.Gate, former mlflow.ModelVersion, to, actor string) {
	rec, ok := p.trusted(former)
	if !ok || !holdsTarget(rec.Status) {
		return // not a version modelgate promoted (or its state is not trusted): its own pass sees to it
	}
	by := "version " + to
	if actor == ActorHand {
		by = "a person's change (seen by modelgate)"
	}
	note := fmt.Sprintf("superseded: %s now held by version %s, moved there by %s", rec.PromotedTo, to, by)
	if to == "" {
		note = fmt.Sprintf("superseded: %s was removed by a person (seen by modelgate)", rec.PromotedTo)
	}
	next := rec
	next.Prev, next.Status, next.Seq = rec.Status, StatusSuperseded, rec.Seq+1
	next.At = stamp(p.now())
	next.SupersededBy, next.To = to, to
	if actor == ActorHand {
		next.SupersededBy = ActorHand
	}
	next.Events = []string{EventSuperseded + ":" + actor}
	summary := restatedSummary(note, former.Tags[TagSummary])
	if desc, ok := restate(former.Description, string(StatusSuperseded), note); ok && desc != former.Description {
		pl.add(Write{Step: StepFollowReport, Op: OpDescription, Version: former.Version, Value: desc})
	}
	p.writeState(pl, former, next, summary, StepFollowReport, StepFollowStatus)
	pl.log("superseded", "model", former.Name, "version", former.Version, "gate", gate.Name, "target", rec.PromotedTo, "by", actor, "to", to)
}

// restate rewrites the headline of a version's report section for a new status and puts
// a note under it, keeping the rest (the checks as they were decided) as it is.
func restate(desc, status, note string) (string, bool) {
	content := reportContent(desc)
	if content == "" {
		return "", false
	}
	return withReport(desc, rules.Restate(content, status, note)), true
}

// restatedSummary puts a note in front of a summary in place of the notes earlier
// restatements put there, so restating again (after a crash, say) gives the same line.
func restatedSummary(note, summary string) string {
	for {
		first, rest, found := strings.Cut(summary, "; ")
		if !found || !restatement(first) {
			break
		}
		summary = rest
	}
	if summary == "" || restatement(summary) {
		return clipSummary(note)
	}
	return clipSummary(note + "; " + summary)
}

// restatement reports whether a summary item is a note of a restatement.
func restatement(item string) bool {
	for _, p := range []string{"superseded: ", "promoted again: ", "staged again: ", "TAMPERING DETECTED: ", "rolled back: "} {
		if strings.HasPrefix(item, p) {
			return true
		}
	}
	return strings.Contains(item, " was moved by hand to ") && strings.Contains(item, "promote.protect is on")
}

func clipSummary(s string) string {
	if r := []rune(s); len(r) > rules.MaxSummary {
		return string(r[:rules.MaxSummary-1]) + "…"
	}
	return s
}

// moveTo is the write that gives a promotion target to a version.
func moveTo(target rules.Promotion, version string) Write {
	if target.Alias != "" {
		return Write{Step: StepMove, Op: OpSetAlias, Alias: target.Alias, Version: version}
	}
	return Write{Step: StepMove, Op: OpTransitionStage, Version: version, Stage: target.Stage, ArchiveExisting: target.ArchiveExisting}
}

// holderOf returns the version that holds a promotion target now (with its tags), or a
// zero version when none does.
func holderOf(ctx context.Context, r EvidenceReader, model string, target rules.Promotion) (mlflow.ModelVersion, error) {
	if target.Alias != "" {
		v, err := r.GetModelVersionByAlias(ctx, model, target.Alias)
		if mlflow.IsNotFound(err) {
			return mlflow.ModelVersion{}, nil
		}
		if err != nil {
			return mlflow.ModelVersion{}, fmt.Errorf("find the holder of alias %s of %s: %w", target.Alias, model, err)
		}
		return v, nil
	}
	latest, err := r.GetLatestVersions(ctx, model, target.Stage)
	if err != nil {
		return mlflow.ModelVersion{}, fmt.Errorf("find the %s version of %s: %w", target.Stage, model, err)
	}
	if len(latest) == 0 {
		return mlflow.ModelVersion{}, nil
	}
	return latest[0], nil
}

// parseTarget reads alias:<name> or stage:<name>.
func parseTarget(t string) (rules.Promotion, bool) {
	kind, name, _ := strings.Cut(t, ":")
	switch {
	case kind == "alias" && name != "":
		return rules.Promotion{Alias: name}, true
	case kind == "stage" && name != "":
		return rules.Promotion{Stage: name}, true
	}
	return rules.Promotion{}, false
}

// review plans the next step of an open review. Votes are counted from the tags the
// search returned, so a review where nothing happened costs no request. Before acting
// on votes, and on every full scan, the evidence is read again: votes count only for the
// evidence they were cast on, and if it changed they are set aside and the version
// decided afresh.
func (p *Planner) review(ctx context.Context, pl *Plan, gate *rules.Gate, mv mlflow.ModelVersion, rec *Record, full bool) error {
	pl.Action = ActionReview
	if gate == nil {
		pl.Skipped = "waits for review, but no gate of the policy matches its model any more: set modelgate.reevaluate once the policy is right"
		if full {
			p.logger.Warn("version waits for review but no gate of the policy matches its model any more; set modelgate.reevaluate once the policy is right",
				"model", mv.Name, "version", mv.Version)
		}
		return nil
	}
	pl.Gate = gate.Name
	requested := rec.requested()
	now := p.now()
	tally, err := p.tally(ctx, gate, mv, requested, now)
	if err != nil {
		return err
	}
	policyChanged := rec.Policy != gate.Digest()
	votesChanged := rec.Votes != votesFingerprint(mv.Tags)
	unchanged := tally.Outcome == rules.ReviewPending && !policyChanged && !votesChanged
	if unchanged && !full {
		return nil
	}

	d, err := p.judge(ctx, gate, mv, rec)
	if err != nil {
		return err
	}
	if unchanged && d.EvidenceDigest == rec.Evidence {
		return nil // a full scan's look: nothing moved
	}
	if d.EvidenceDigest != rec.Evidence {
		mv, events := setVotesAside(pl, mv, rec.Evidence)
		pl.setAside = events
		return p.decideAfresh(ctx, pl, gate, mv, rec, d, events)
	}
	if d.Outcome != rules.PendingReview {
		// The gate no longer asks for a review of this evidence: its definition changed.
		return p.decide(ctx, pl, gate, mv, rec, d, nil)
	}

	counted := countedEvents(&tally, rec)
	switch tally.Outcome {
	case rules.ReviewApproved:
		pl.waited = now.Sub(requested)
		by := voters(tally.Approvals)
		return p.promote(ctx, pl, gate, mv, rec, d, &tally, []string{"approved by " + by}, by, counted)
	case rules.ReviewRejected:
		pl.waited = now.Sub(requested)
		p.commit(pl, gate, mv, rec, change{status: StatusRejected, d: d, tally: &tally, by: tally.Rejection.Name,
			events: append(counted, EventDecided), rejectedBy: tally.Rejection.Name, approvedBy: approvers(&tally)})
		return nil
	case rules.ReviewExpired:
		note := fmt.Sprintf("review expired after %s without enough approvals", gate.Review.ExpiresAfter)
		p.commit(pl, gate, mv, rec, change{status: StatusExpired, d: d, tally: &tally, notes: []string{note}, by: actorModelgate,
			events: append(counted, EventExpired), approvedBy: approvers(&tally)})
		return nil
	}
	// Still open: refresh the report and the record (votes so far, ignored votes, a
	// changed gate); each vote counted is an audit event.
	p.commit(pl, gate, mv, rec, change{status: StatusPendingReview, d: d, tally: &tally, by: actorModelgate, keep: true,
		quietly: true, events: counted, approvedBy: approvers(&tally)})
	return nil
}

// decideAfresh decides a version again after its evidence changed: its earlier votes are
// set aside (events), so the decision counts none of them.
func (p *Planner) decideAfresh(ctx context.Context, pl *Plan, gate *rules.Gate, mv mlflow.ModelVersion, rec *Record, d rules.Decision, events []string) error {
	if d.Outcome == rules.Approved {
		return p.promote(ctx, pl, gate, mv, rec, d, nil, nil, actorModelgate, events)
	}
	if err := p.decide(ctx, pl, gate, mv, rec, d, nil); err != nil {
		return err
	}
	if pl.Record != nil {
		pl.Record.Events = append(events, pl.Record.Events...)
		p.rewriteRecord(pl, mv)
	}
	return nil
}

// rewriteRecord re-plans the record write and audit events after the plan's record
// changed (events added).
func (p *Planner) rewriteRecord(pl *Plan, mv mlflow.ModelVersion) {
	raw := p.keys.Encode(mv.Name, mv.Version, *pl.Record)
	for i, w := range pl.Writes {
		if w.Op == OpSetTag && w.Key == TagRecord && w.Version == mv.Version {
			pl.Writes[i].Value = raw
		}
	}
	summary := mv.Tags[TagSummary]
	for _, w := range pl.Writes {
		if w.Op == OpSetTag && w.Key == TagSummary && w.Version == mv.Version {
			summary = w.Value
		}
	}
	events := slices.DeleteFunc(pl.Events, func(e AuditEvent) bool { return e.Version == mv.Version })
	notices := slices.DeleteFunc(pl.Notices, func(n Notice) bool { return n.Version == mv.Version })
	pl.Events, pl.Notices = events, notices
	p.announce(pl, mv, *pl.Record, raw, summary)
}

// countedEvents lists a vote_counted event for each approval or rejection the tally
// counts that the record had not counted yet.
func countedEvents(t *rules.Tally, rec *Record) []string {
	var out []string
	for _, v := range t.Approvals {
		if !slices.Contains(rec.ApprovedBy, v.Name) {
			out = append(out, EventVoteCounted+":"+v.Name)
		}
	}
	if t.Rejection != nil {
		out = append(out, EventVoteCounted+":"+t.Rejection.Name)
	}
	return out
}

func voters(vs []rules.Vote) string {
	names := make([]string, len(vs))
	for i, v := range vs {
		names[i] = v.Name
	}
	return strings.Join(names, ", ")
}

// StalePrefix starts the keys vote tags are moved to when the evidence they were cast on
// changes: modelgate.stale.<evidence digest>.approve.<name>. The reviewer's text is kept.
const StalePrefix = "modelgate.stale."

// staleVotesNote says which votes were set aside, read from the tags themselves so that
// every pass (an interrupted one included) writes the same report.
func staleVotesNote(tags map[string]string) string {
	var digests []string
	for k := range tags {
		if rest, ok := strings.CutPrefix(k, StalePrefix); ok {
			d, _, _ := strings.Cut(rest, ".")
			if !slices.Contains(digests, d) {
				digests = append(digests, d)
			}
		}
	}
	if len(digests) == 0 {
		return ""
	}
	slices.Sort(digests)
	return fmt.Sprintf("votes cast on earlier evidence (%s) were set aside, kept as %s<digest>.* tags: vote again on this evidence",
		strings.Join(digests, ", "), StalePrefix)
}

// setVotesAside plans moving every vote tag to a stale key (copy, then delete), so
// reviewers vote again on the new evidence and nothing they wrote is lost. It returns
// the version as it will be once the votes are moved, and a vote_set_aside event per
// vote.
func setVotesAside(pl *Plan, mv mlflow.ModelVersion, evidence string) (mlflow.ModelVersion, []string) {
	digest := strings.TrimPrefix(evidence, "sha256:")
	if digest == "" {
		digest = "unknown"
	}
	tags := maps.Clone(mv.Tags)
	var events []string
	for _, k := range slices.Sorted(maps.Keys(mv.Tags)) {
		if !rules.IsVoteTag(k) {
			continue
		}
		stale := staleKey(digest, k)
		pl.setTag(StepSetAside, stale, mv.Tags[k])
		pl.deleteTag(StepRemoveVotes, k)
		tags[stale] = mv.Tags[k]
		delete(tags, k)
	}
	// One event per vote set aside on this evidence, read from the stale keys, so that a
	// pass finishing an interrupted one lists the same events.
	prefix := StalePrefix + digest + "."
	for _, k := range slices.Sorted(maps.Keys(tags)) {
		if rest, ok := strings.CutPrefix(k, prefix); ok {
			_, name, _ := strings.Cut(rest, ".")
			events = append(events, EventVoteSetAside+":"+name)
		}
	}
	mv.Tags = tags
	return mv, events
}

// maxTagKey is MLflow's limit on a tag key.
const maxTagKey = 250

// staleKey is the key a vote tag is moved to: modelgate.stale.<digest>.<kind>.<name>. A
// name too long for MLflow's 250-character keys is replaced by a hash of it (cutting it
// could split a character, which MLflow refuses with 400, and could make two names one).
func staleKey(digest, voteKey string) string {
	key := StalePrefix + digest + "." + strings.TrimPrefix(voteKey, "modelgate.")
	if len(key) <= maxTagKey {
		return key
	}
	kind, name, _ := strings.Cut(strings.TrimPrefix(voteKey, "modelgate."), ".")
	h := sha256.Sum256([]byte(name))
	return StalePrefix + digest + "." + kind + ".sha256-" + hex.EncodeToString(h[:8])
}

// reevaluate plans modelgate.reevaluate: the checks are run again and the tag deleted
// once the new state is written. Changed evidence or a changed gate is judged afresh,
// earlier votes set aside; on the same evidence and gate, a person's rejection stands
// (only an override lifts it). A version holding its target is not re-judged
// (modelgate.rollback is how to take it back).
func (p *Planner) reevaluate(ctx context.Context, pl *Plan, gate *rules.Gate, mv mlflow.ModelVersion, rec *Record) error {
	pl.Action = ActionReevaluate
	defer pl.deleteTag(StepCleanup, TagReevaluate)
	switch {
	case holdsTarget(rec.Status):
		pl.Skipped = "re-evaluation of a version holding its target ignored: set modelgate.rollback to take it back"
		pl.log("re-evaluation of a promoted version ignored: set modelgate.rollback to take it back", "model", mv.Name, "version", mv.Version)
		return nil
	case gate == nil:
		pl.Skipped = fmt.Sprintf("re-evaluation asked, but no gate of the policy matches model %q", mv.Name)
		pl.log("re-evaluation asked for a model no gate matches", "model", mv.Name, "version", mv.Version)
		return nil
	}
	pl.Gate = gate.Name
	d, err := p.evaluate(ctx, gate, mv)
	if err != nil {
		return err
	}
	if rec.RejectedBy != "" && d.EvidenceDigest == rec.Evidence && gate.Digest() == rec.Policy {
		note := fmt.Sprintf("evaluated again on request (modelgate.reevaluate): the checks say %s, but the rejection by %s stands: the evidence and the gate are unchanged (only changed evidence, a changed gate or an override lifts it)",
			d.Outcome, rec.RejectedBy)
		p.commit(pl, gate, mv, rec, change{status: StatusRejected, d: d, notes: []string{note}, by: actorModelgate,
			events: []string{EventReevaluated}, rejectedBy: rec.RejectedBy, approvedBy: rec.ApprovedBy})
		return nil
	}
	mv, events := setVotesAside(pl, mv, rec.Evidence)
	events = append([]string{EventReevaluated}, events...)
	note := "evaluated again on request (modelgate.reevaluate)"
	if d.Outcome == rules.Approved {
		return p.promote(ctx, pl, gate, mv, rec, d, nil, []string{note}, actorModelgate, events)
	}
	if err := p.decide(ctx, pl, gate, mv, rec, d, []string{note}); err != nil {
		return err
	}
	pl.Record.Events = append(events, pl.Record.Events...)
	p.rewriteRecord(pl, mv)
	return nil
}

// override plans the urgent exception: an overrider's modelgate.override.<name> with a
// reason promotes the version despite failed checks and rejections, straight to the
// final target; loud in the report, the notification and the audit trail.
func (p *Planner) override(ctx context.Context, pl *Plan, gate *rules.Gate, mv mlflow.ModelVersion, rec *Record, o rules.Vote) error {
	pl.Action = ActionOverride
	pl.Gate = gate.Name
	d, err := p.evaluate(ctx, gate, mv)
	if err != nil {
		return err
	}
	tally, err := p.tally(ctx, gate, mv, rec.requested(), p.now())
	if err != nil {
		return err
	}
	note := fmt.Sprintf("OVERRIDDEN by %s: %s (checks and rejections below were overridden)", o.Name, clipReason(o.Comment))
	pl.overridden = true
	return p.promote(ctx, pl, gate, mv, rec, d, &tally, []string{note}, o.Name, nil)
}

// rollback plans modelgate.rollback on a version holding its target: the target goes
// back to the last version before it whose verified record shows it was promoted there
// and not rejected or rolled back since (the chain of previous_version, each link
// verified), or is removed when there is none. If the version no longer holds the
// target, a person moved it since: nothing is moved.
func (p *Planner) rollback(ctx context.Context, pl *Plan, gate *rules.Gate, mv mlflow.ModelVersion, rec *Record) error {
	pl.Action = ActionRollback
	target, ok := parseTarget(rec.PromotedTo)
	if !ok {
		return fmt.Errorf("cannot roll back %s/%s: its record names no target (%q)", mv.Name, mv.Version, rec.PromotedTo)
	}
	holder, err := holderOf(ctx, p.reader, mv.Name, target)
	if err != nil {
		return err
	}
	var note string
	var moves []Write
	var restored *mlflow.ModelVersion
	to := ""
	switch {
	case holder.Version == mv.Version:
		prev, why, err := p.lastGoodHolder(ctx, mv.Name, rec)
		if err != nil {
			return err
		}
		if prev != nil {
			to, restored = prev.Version, prev
			note = fmt.Sprintf("%s given back to version %s", rec.PromotedTo, prev.Version)
			if target.Alias != "" {
				moves = append(moves, Write{Step: StepMove, Op: OpSetAlias, Alias: target.Alias, Version: prev.Version})
			} else {
				moves = append(moves, Write{Step: StepMove, Op: OpTransitionStage, Version: prev.Version, Stage: target.Stage, ArchiveExisting: true})
			}
		} else {
			if target.Alias != "" {
				moves = append(moves, Write{Step: StepMove, Op: OpDeleteAlias, Alias: target.Alias})
			} else {
				moves = append(moves, Write{Step: StepMove, Op: OpTransitionStage, Stage: "Archived"})
			}
			note = fmt.Sprintf("%s removed: %s", rec.PromotedTo, why)
		}
	default:
		note = fmt.Sprintf("%s is now held by version %s, moved since the promotion: left as it is", rec.PromotedTo, cmpOr(holder.Version, "none"))
	}
	reason := clipReason(mv.Tags[TagRollback])
	note = "rolled back: " + reason + "; " + note
	pl.rolledBack = rec.PromotedTo
	pl.log("rolled back", "model", mv.Name, "version", mv.Version, "gate", rec.Gate, "target", rec.PromotedTo, "to", to, "reason", reason)
	if gate == nil || gate.Name != rec.Gate {
		gate = &rules.Gate{Name: rec.Gate} // the policy changed: the report is restated, not re-evaluated
		next := *rec
		next.Prev, next.Status, next.Seq, next.To = rec.Status, StatusRolledBack, rec.Seq+1, to
		next.At = stamp(p.now())
		next.Events = []string{EventRolledBack + ":" + ActorRollback}
		pl.Status, pl.Record = StatusRolledBack, &next
		if desc, ok := restate(mv.Description, string(StatusRolledBack), note); ok && desc != mv.Description {
			pl.add(Write{Step: StepReport, Op: OpDescription, Value: desc})
		}
		p.writeState(pl, mv, next, clipSummary(note), StepReport, StepStatus)
		for _, w := range moves {
			pl.add(w)
		}
	} else {
		d, err := p.evaluate(ctx, gate, mv)
		if err != nil {
			return err
		}
		p.commit(pl, gate, mv, rec, change{status: StatusRolledBack, d: d, notes: []string{note}, by: ActorRollback,
			events: []string{EventRolledBack}, moves: moves, promotedTo: rec.PromotedTo, previous: rec.PreviousVersion,
			to: to, approvedBy: rec.ApprovedBy, overriddenBy: rec.OverriddenBy})
	}
	if restored != nil {
		p.reinstate(pl, gate, *restored, mv.Version, "given back by the rollback of version "+mv.Version, ActorRollback)
	}
	return nil
}

// ActorRollback names a rollback request (MLflow records no author for the tag).
const ActorRollback = "rollback request"

// lastGoodHolder walks back the chain of previous holders from a record, each link's
// record verified: the first that was promoted to the same target and is not rejected
// or rolled back since. nil (with why) when there is none.
func (p *Planner) lastGoodHolder(ctx context.Context, model string, rec *Record) (*mlflow.ModelVersion, string, error) {
	seen := map[string]bool{}
	prev := rec.PreviousVersion
	for hops := 0; prev != "" && hops < 100 && !seen[prev]; hops++ {
		seen[prev] = true
		mv, err := p.reader.GetModelVersion(ctx, model, prev)
		if mlflow.IsNotFound(err) {
			return nil, fmt.Sprintf("version %s, which held it before, no longer exists", prev), nil
		}
		if err != nil {
			return nil, "", fmt.Errorf("read version %s of %s, which held %s before: %w", prev, model, rec.PromotedTo, err)
		}
		r, trusted := p.trusted(mv)
		if trusted && r.PromotedTo == rec.PromotedTo && (r.Status == StatusSuperseded || holdsTarget(r.Status)) {
			return &mv, "", nil
		}
		if !trusted {
			// An unverified link ends the walk: the chain cannot go on through it.
			return nil, fmt.Sprintf("version %s, which held it before, has no verified record", prev), nil
		}
		prev = r.PreviousVersion
	}
	return nil, "no version held it before this one", nil
}

// reinstate plans a version taking its target again (given back by a rollback, or moved
// back by hand): superseded → promoted, its report restated.
func (p *Planner) reinstate(pl *Plan, gate *rules.Gate, mv mlflow.ModelVersion, from, why, actor string) {
	rec, ok := p.trusted(mv)
	if !ok {
		return
	}
	note := fmt.Sprintf("promoted again: %s %s", rec.PromotedTo, why)
	status := StatusPromoted
	next := rec
	if rec.Stage != "" && rec.PromotedTo == "alias:"+rec.Stage {
		// Given a rollout stage's alias back: in the stage again, for a new soak.
		status, next.StagedAt = StatusStaged, stamp(p.now())
		note = fmt.Sprintf("staged again: %s %s; its soak starts over", rec.PromotedTo, why)
	}
	next.Prev, next.Status, next.Seq = rec.Status, status, rec.Seq+1
	next.At = stamp(p.now())
	next.SupersededBy, next.To = "", ""
	next.Events = []string{EventReinstated + ":" + actor}
	step, statusStep := StepFollowReport, StepFollowStatus
	if from == "" { // the plan's own version
		step, statusStep = StepReport, StepStatus
		pl.Status, pl.Record = status, &next
	}
	if desc, ok := restate(mv.Description, string(status), note); ok && desc != mv.Description {
		pl.add(Write{Step: step, Op: OpDescription, Version: mv.Version, Value: desc})
	}
	p.writeState(pl, mv, next, restatedSummary(note, mv.Tags[TagSummary]), step, statusStep)
}

// holding plans a check of a version that holds (or held) its target by its record: if
// a newer promotion took it, it is superseded; if a person moved it, it is superseded by
// hand, or, with promote.protect, the move is undone; if it holds it again (a person
// moved it back), it is promoted again.
func (p *Planner) holding(ctx context.Context, pl *Plan, gate *rules.Gate, mv mlflow.ModelVersion, rec *Record, full bool) error {
	target, ok := parseTarget(rec.PromotedTo)
	if !ok {
		return nil
	}
	// A staged version costs nothing until its soak ends (full scans still check it
	// holds its alias): the soak's start is in the signed record, so restarts keep it.
	stageIdx, soakOver := -1, false
	if rec.Status == StatusStaged && gate != nil && gate.Name == rec.Gate {
		if stageIdx = gate.Promote.StageIndex(rec.Stage); stageIdx >= 0 {
			soakOver = !p.now().Before(rec.stagedAt().Add(gate.Promote.Rollout[stageIdx].Soak))
		} else {
			soakOver = true // the stage left the policy: the version moves on
		}
	}
	due := p.recertificationDue(gate, rec)
	if rec.Status == StatusStaged && !soakOver && !full {
		return nil
	}
	if rec.Status == StatusRecertificationDue && !full && rec.Votes == votesFingerprint(mv.Tags) {
		return nil // no new vote since the last look
	}
	holder, err := holderOf(ctx, p.reader, mv.Name, target)
	if err != nil {
		return err
	}
	holds := holder.Version == mv.Version
	switch {
	case holds && rec.Status == StatusStaged && soakOver && stageIdx >= 0:
		return p.endSoak(ctx, pl, gate, mv, rec, stageIdx)
	case holds && rec.Status == StatusStaged && soakOver:
		return p.promote(ctx, pl, gate, mv, rec, rules.Decision{Model: mv.Name, Version: mv.Version, Gate: gate.Name,
			PolicyDigest: gate.Digest(), EvidenceDigest: rec.Evidence, Outcome: rules.Approved,
			Reason: "its stage " + rec.Stage + " is no longer in the policy"}, nil, nil, actorModelgate, nil)
	case holds && due:
		return p.recertify(ctx, pl, gate, mv, rec)
	case holds && holdsTarget(rec.Status), !holds && rec.Status == StatusSuperseded:
		return nil
	case holds: // superseded, and holds it again: given back by a rollback, or moved back by hand
		pl.Action = ActionHold
		why, actor := "moved back to it by a person (seen by modelgate)", ActorHand
		if rb, done, err := p.rolledBackTo(ctx, mv, rec); err != nil {
			return err
		} else if rb != "" && !done {
			return nil // the rollback's own apply is unfinished: it reinstates this version
		} else if rb != "" {
			why, actor = "given back by the rollback of version "+rb, ActorRollback
		}
		p.reinstate(pl, gateOr(gate, rec.Gate), mv, "", why, actor)
		return nil
	}
	pl.Action = ActionHold
	// Taken by a promotion of modelgate's: the holder's record says it took the target
	// from this version.
	// (Its status may not have landed yet: a crash between its move and its status.)
	hr, v := p.keys.Decode(holder.Name, holder.Version, holder.Tags[TagRecord])
	signed := (v == RecordValid || v == RecordUnchecked) && hr.Model == holder.Name &&
		(holder.Tags[TagStatus] == string(hr.Status) || holder.Tags[TagStatus] == string(hr.Prev))
	byModelgate := holder.Version != "" && signed && holdsTarget(hr.Status) && hr.PromotedTo == rec.PromotedTo &&
		hr.PreviousVersion == mv.Version
	switch {
	case byModelgate:
		p.supersede(pl, gateOr(gate, rec.Gate), mv, holder.Version, actorModelgate)
		pl.Status = StatusSuperseded
	case gate != nil && gate.Promote.Protect && gate.Promote.Target() == rec.PromotedTo:
		// A protected target moved by hand to a version modelgate did not promote: undo it.
		note := fmt.Sprintf("%s was moved by hand to %s, and promote.protect is on: moved back to version %s", rec.PromotedTo,
			cmpOr(holder.Version, "no version"), mv.Version)
		next := *rec
		next.Prev, next.Seq = rec.Status, rec.Seq+1
		next.At = stamp(p.now())
		next.To = holder.Version
		next.Events = []string{EventTampered + ":" + ActorHand}
		pl.Record, pl.tamper = &next, TamperProtected
		pl.add(moveTo(rules.Promotion{Alias: target.Alias, Stage: target.Stage, ArchiveExisting: true}, mv.Version))
		if desc, ok := restate(mv.Description, string(rec.Status), note); ok && desc != mv.Description {
			pl.add(Write{Step: StepReport, Op: OpDescription, Value: desc})
		}
		p.writeState(pl, mv, next, restatedSummary(note, mv.Tags[TagSummary]), StepReport, StepStatus)
		pl.log("protected target moved back", "model", mv.Name, "version", mv.Version, "target", rec.PromotedTo, "moved_to", holder.Version)
	default:
		p.supersede(pl, gateOr(gate, rec.Gate), mv, holder.Version, ActorHand)
		pl.Status = StatusSuperseded
	}
	return nil
}

// rolledBackTo finds whether the version that superseded mv rolled its target back to
// mv: it returns that version ("" if not) and whether its rollback is fully applied.
func (p *Planner) rolledBackTo(ctx context.Context, mv mlflow.ModelVersion, rec *Record) (string, bool, error) {
	if _, ok := mlflow.VersionNumber(rec.SupersededBy); !ok {
		return "", false, nil
	}
	by, err := p.reader.GetModelVersion(ctx, mv.Name, rec.SupersededBy)
	if mlflow.IsNotFound(err) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("read version %s of %s, which took %s: %w", rec.SupersededBy, mv.Name, rec.PromotedTo, err)
	}
	br, v := p.keys.Decode(by.Name, by.Version, by.Tags[TagRecord])
	if (v != RecordValid && v != RecordUnchecked) || br.Model != by.Name || br.Status != StatusRolledBack || br.To != mv.Version {
		return "", false, nil
	}
	return by.Version, by.Tags[TagStatus] == string(br.Status), nil
}

func gateOr(g *rules.Gate, name string) *rules.Gate {
	if g != nil && g.Name == name {
		return g
	}
	return &rules.Gate{Name: name}
}

// tampered plans the answer to a state modelgate did not write: the last signed state is
// restored when the audit trail knows it; otherwise the version is judged afresh as if
// new. Either way the detection is counted, logged, notified, audited and reported.
func (p *Planner) tampered(ctx context.Context, pl *Plan, mv mlflow.ModelVersion, st checked) error {
	pl.tamper = st.problem
	what := map[string]string{
		TamperUnsigned:      "a status or v1 tags without a record modelgate signed",
		TamperBadSignature:  "a modelgate.record that does not verify under the signing key",
		TamperReplayed:      "an older record of this version written back",
		TamperStatusChanged: fmt.Sprintf("modelgate.status set to %q, which is not the signed record's", mv.Tags[TagStatus]),
		TamperRecordRemoved: "the signed record removed",
		TamperCopied:        "a record of another model's version copied here",
	}[st.problem]
	pl.log("tampering detected", "model", mv.Name, "version", mv.Version, "kind", st.problem, "what", what)
	var last Record
	known := false
	if st.auditKnown {
		r, v := p.keys.Decode(mv.Name, mv.Version, st.auditRecord)
		known = v == RecordValid || v == RecordUnchecked
		last = r
	}
	if !known {
		// Nothing signed to go back to: judge afresh, ignoring what was written.
		var from *Record
		if st.auditKnown {
			from = &Record{Seq: st.auditSeq}
		}
		fresh := mv
		fresh.Tags = maps.Clone(mv.Tags)
		delete(fresh.Tags, TagStatus)
		if err := p.decideNew(ctx, pl, fresh, from, fmt.Sprintf("TAMPERING DETECTED: %s, ignored: judged afresh", what)); err != nil {
			return err
		}
		if pl.Record != nil {
			pl.Record.Events = append([]string{EventTampered + ":unknown"}, pl.Record.Events...)
			p.rewriteRecord(pl, mv)
		}
		pl.latency = false
		return nil
	}
	// Restore the last signed state, as a new record after it.
	next := last
	next.Prev, next.Seq = Status(mv.Tags[TagStatus]), max(st.auditSeq, recSeq(st.rec))+1
	next.At = stamp(p.now())
	next.Events = []string{EventTampered + ":unknown"}
	pl.Action, pl.Gate, pl.Status, pl.Record = ActionRestore, last.Gate, last.Status, &next
	note := fmt.Sprintf("TAMPERING DETECTED: %s, undone: restored the last signed state (%s, record %d)", what, last.Status, last.Seq)
	if desc, ok := restate(mv.Description, string(last.Status), note); ok && desc != mv.Description {
		pl.add(Write{Step: StepReport, Op: OpDescription, Value: desc})
	}
	p.writeState(pl, mv, next, restatedSummary(note, mv.Tags[TagSummary]), StepReport, StepStatus)
	return nil
}

// resign plans signing a renamed model's record under its new name, when the plan
// writes no new record itself.
func (p *Planner) resign(pl *Plan, mv mlflow.ModelVersion, st checked) {
	if pl.Record != nil || st.rec == nil {
		return
	}
	next := *st.rec
	next.Prev, next.Seq = st.rec.Status, st.rec.Seq+1
	next.At = stamp(p.now())
	next.Events = []string{EventRenamed + ":" + actorModelgate}
	pl.Record = &next
	p.writeState(pl, mv, next, mv.Tags[TagSummary], StepReport, StepStatus)
}

// trusted reads another version's record (a former or current holder, a link of the
// rollback chain): it must verify, be this model's, and match the status tag.
func (p *Planner) trusted(mv mlflow.ModelVersion) (Record, bool) { return p.keys.Of(mv) }

// stamp writes a record time: RFC 3339, UTC, to the millisecond (so that events a pass
// apart are ordered in the audit trail and the history).
func stamp(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z07:00") }

func recSeq(r *Record) int64 {
	if r == nil {
		return 0
	}
	return r.Seq
}

// finishApply plans what an interrupted apply left undone, from its record: the move it
// made (or not), the status, the audit events and notifications, the former holder.
func (p *Planner) finishApply(ctx context.Context, pl *Plan, mv mlflow.ModelVersion, rec *Record) error {
	pl.Action, pl.Status, pl.Record, pl.Gate = ActionFinish, rec.Status, rec, rec.Gate
	gate := gateOr(p.policy.GateFor(mv.Name), rec.Gate)
	switch rec.Status {
	case StatusPromoted, StatusStaged:
		target, ok := parseTarget(rec.PromotedTo)
		if !ok {
			break
		}
		holder, err := holderOf(ctx, p.reader, mv.Name, target)
		if err != nil {
			return err
		}
		if holder.Version != mv.Version && (holder.Version == "" || mlflow.CompareVersions(holder.Version, mv.Version) < 0) {
			if g := p.policy.GateFor(mv.Name); g != nil && g.Promote.Target() == rec.PromotedTo {
				target = g.Promote
			}
			pl.add(moveTo(target, mv.Version))
			pl.promotion, pl.promoted = kindOf(target), true
			if holder.Version != "" {
				p.supersede(pl, gate, holder, mv.Version, actorModelgate)
			}
		}
	case StatusRolledBack:
		target, ok := parseTarget(rec.PromotedTo)
		if !ok {
			break
		}
		holder, err := holderOf(ctx, p.reader, mv.Name, target)
		if err != nil {
			return err
		}
		if holder.Version == mv.Version {
			switch {
			case rec.To != "" && target.Alias != "":
				pl.add(Write{Step: StepMove, Op: OpSetAlias, Alias: target.Alias, Version: rec.To})
			case rec.To != "":
				pl.add(Write{Step: StepMove, Op: OpTransitionStage, Version: rec.To, Stage: target.Stage, ArchiveExisting: true})
			case target.Alias != "":
				pl.add(Write{Step: StepMove, Op: OpDeleteAlias, Alias: target.Alias})
			default:
				pl.add(Write{Step: StepMove, Op: OpTransitionStage, Stage: "Archived"})
			}
		}
		if rec.To != "" {
			if prev, err := p.reader.GetModelVersion(ctx, mv.Name, rec.To); err == nil {
				p.reinstate(pl, gate, prev, mv.Version, "given back by the rollback of version "+mv.Version, ActorRollback)
			} else if !mlflow.IsNotFound(err) {
				return err
			}
		}
	}
	if slices.ContainsFunc(rec.Events, func(e string) bool { return strings.HasPrefix(e, EventReevaluated) }) && hasTag(mv, TagReevaluate) {
		pl.deleteTag(StepCleanup, TagReevaluate)
	}
	pl.add(Write{Step: StepStatus, Op: OpSetTag, Key: TagStatus, Value: string(rec.Status)})
	p.announce(pl, mv, *rec, mv.Tags[TagRecord], mv.Tags[TagSummary])
	pl.decision, pl.by = true, actorOf(rec)
	return nil
}

func kindOf(t rules.Promotion) string {
	if t.Stage != "" {
		return "stage"
	}
	return "alias"
}

func actorOf(rec *Record) string {
	if len(rec.Events) == 0 {
		return actorModelgate
	}
	_, actor, _ := strings.Cut(rec.Events[len(rec.Events)-1], ":")
	return cmpOr(actor, actorModelgate)
}

// catchUp plans the audit events (and notifications) of a record whose writes are all
// in but whose events are not: a crash after the status, before the trail.
func (p *Planner) catchUp(pl *Plan, mv mlflow.ModelVersion, rec *Record) {
	pl.Action, pl.Record, pl.Gate = ActionFinish, rec, rec.Gate
	p.announce(pl, mv, *rec, mv.Tags[TagRecord], mv.Tags[TagSummary])
}

// migrate plans the one-time move of a version decided under v1 to a signed record: its
// v1 tags become the record and are removed; the decision itself is not taken again.
func (p *Planner) migrate(pl *Plan, mv mlflow.ModelVersion) error {
	pl.Action = ActionMigrate
	status := Status(mv.Tags[TagStatus])
	if !knownStatus(status) {
		pl.Skipped = fmt.Sprintf("decided under v1 with status %q, which v2 does not know: set modelgate.reevaluate", status)
		return nil
	}
	rec := Record{Seq: 1, Status: status, Gate: mv.Tags["modelgate.gate"], At: mv.Tags["modelgate.decided_at"],
		Policy: mv.Tags["modelgate.policy_digest"], Evidence: mv.Tags["modelgate.evidence_digest"],
		PromotedTo: mv.Tags["modelgate.promoted_to"], PreviousVersion: mv.Tags["modelgate.previous_version"],
		Votes: votesFingerprint(mv.Tags), Events: []string{EventMigrated + ":" + actorModelgate}}
	if _, err := time.Parse(time.RFC3339, rec.At); err != nil {
		rec.At = stamp(p.now())
	}
	if status == StatusPendingReview {
		rec.Requested = rec.At
	}
	pl.Gate, pl.Record = rec.Gate, &rec
	p.writeState(pl, mv, rec, mv.Tags[TagSummary], StepReport, StepStatus)
	return nil
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func clipReason(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if s == "" {
		return "no reason given"
	}
	if r := []rune(s); len(r) > 300 {
		return string(r[:299]) + "…"
	}
	return s
}
