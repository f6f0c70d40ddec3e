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

// actorModelgate names modelgate as the one who decided, in logs and notifications.
const actorModelgate = "modelgate"

// PlanReader is what planning reads from MLflow. *mlflow.Client satisfies it.
type PlanReader interface {
	EvidenceReader
	GetModelVersion(ctx context.Context, name, version string) (mlflow.ModelVersion, error)
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
}

// Planner computes plans: it reads a version's evidence and state and works out the
// decision and the writes, and writes nothing itself.
type Planner struct {
	reader PlanReader
	policy *rules.Policy
	logger *slog.Logger
	now    func() time.Time
	since  time.Time
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
	return &Planner{reader: cfg.Reader, policy: cfg.Policy, logger: cfg.Logger, now: cfg.Clock, since: cfg.Since}, nil
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
func (p *Planner) Plan(ctx context.Context, mv mlflow.ModelVersion, full bool) (*Plan, error) {
	status := Status(mv.Tags[TagStatus])
	pl := &Plan{Model: mv.Name, Version: mv.Version, Gate: mv.Tags[TagGate], Action: ActionNone, From: status, Status: status, created: mv.Created()}
	switch {
	case mv.IsPrompt():
		pl.Skipped = "an MLflow prompt: modelgate never gates prompts"
		return pl, nil
	case hasTag(mv, TagReevaluate):
		return pl, p.reevaluate(ctx, pl, mv)
	case status == StatusPromoted && hasTag(mv, TagRollback):
		return pl, p.rollback(ctx, pl, mv)
	case status == StatusPendingReview:
		return pl, p.review(ctx, pl, mv, full)
	case status == "":
		if mv.Created().Before(p.since) {
			pl.Skipped = fmt.Sprintf("created %s, before MODELGATE_SINCE (%s): set modelgate.reevaluate to have it judged",
				mv.Created().Format(time.RFC3339), p.since.UTC().Format(time.RFC3339))
			return pl, nil
		}
		return pl, p.decideNew(ctx, pl, mv)
	case knownStatus(status):
		return pl, nil
	}
	pl.Skipped = fmt.Sprintf("modelgate.status %q is not one modelgate writes: left as it is (set modelgate.reevaluate to have the version judged again)", status)
	if full {
		p.logger.Warn("unknown modelgate.status left as it is (set modelgate.reevaluate to have the version judged again)",
			"model", mv.Name, "version", mv.Version, "status", string(status))
	}
	return pl, nil
}

func knownStatus(s Status) bool {
	switch s {
	case StatusApproved, StatusRejected, StatusPromoted, StatusExpired, StatusRolledBack, StatusPendingReview:
		return true
	}
	return false
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

// decideNew judges a version nobody has decided yet.
func (p *Planner) decideNew(ctx context.Context, pl *Plan, mv mlflow.ModelVersion) error {
	pl.Action = ActionDecide
	gate := p.gate(pl, mv.Name)
	if gate == nil {
		return nil
	}
	d, err := p.evaluate(ctx, gate, mv)
	if err != nil {
		return err
	}
	pl.latency = true
	return p.decide(ctx, pl, gate, mv, d, nil, actorModelgate)
}

// evaluate gathers evidence and decides.
func (p *Planner) evaluate(ctx context.Context, gate *rules.Gate, mv mlflow.ModelVersion) (rules.Decision, error) {
	ev, err := GatherEvidence(ctx, p.reader, gate, mv)
	if err != nil {
		return rules.Decision{}, err
	}
	return gate.Evaluate(ev), nil
}

// decide plans a fresh decision (no votes yet, or votes just set aside).
func (p *Planner) decide(ctx context.Context, pl *Plan, gate *rules.Gate, mv mlflow.ModelVersion, d rules.Decision, notes []string, by string) error {
	switch d.Outcome {
	case rules.Rejected:
		p.finish(pl, gate, mv, d, outcome{status: StatusRejected, notes: notes, by: by, event: rules.EventRejected})
	case rules.PendingReview:
		// The tally of a review requested now: what every later pass shows until a vote
		// comes (votes already on the version included), so the report is written once.
		now := p.now()
		tally := gate.Tally(mv.Tags, now, now)
		p.finish(pl, gate, mv, d, outcome{status: StatusPendingReview, tally: &tally, notes: notes, by: by, event: rules.EventReviewRequested})
	case rules.Approved:
		return p.promote(ctx, pl, gate, mv, d, nil, notes, by)
	}
	return nil
}

// outcome is what finish plans.
type outcome struct {
	status  Status
	tally   *rules.Tally
	notes   []string
	by      string
	event   rules.Event // "" sends nothing
	extra   map[string]string
	keepAt  bool // keep modelgate.decided_at (a review still open)
	quietly bool // a report refresh, not a decision: no decision metric or log line
	moves   []Write
}

// finish plans a decision's writes in crash-safe order: the report section, then the
// informational tags, then the moves, then modelgate.status last. A crash before the
// status leaves the version undecided (or in its previous state), and the next pass
// plans the same writes from the same evidence: nothing is decided twice, no section is
// duplicated.
func (p *Planner) finish(pl *Plan, gate *rules.Gate, mv mlflow.ModelVersion, d rules.Decision, o outcome) {
	now := p.now().UTC()
	decidedAt := now
	if o.keepAt {
		if t, err := time.Parse(time.RFC3339, mv.Tags[TagDecidedAt]); err == nil {
			decidedAt = t
		}
	}
	notes := o.notes
	if n := staleVotesNote(mv.Tags); n != "" {
		notes = append(slices.Clip(notes), n)
	}
	report := gate.Report(d, string(o.status), decidedAt, o.tally, notes...)
	pl.Report = &report
	pl.Gate = gate.Name
	pl.Status = o.status
	if desc, ok := p.description(mv, report); ok && desc != mv.Description {
		pl.add(Write{Step: StepReport, Op: OpDescription, Value: desc})
	}
	tags := map[string]string{
		TagGate:           gate.Name,
		TagSummary:        report.Summary(),
		TagDecidedAt:      decidedAt.Format(time.RFC3339),
		TagPolicyDigest:   d.PolicyDigest,
		TagEvidenceDigest: d.EvidenceDigest,
	}
	maps.Copy(tags, o.extra)
	for _, k := range slices.Sorted(maps.Keys(tags)) {
		if v, ok := mv.Tags[k]; !ok || v != tags[k] {
			pl.setTag(StepReport, k, tags[k])
		}
	}
	for _, w := range o.moves {
		pl.add(w)
	}
	if mv.Tags[TagStatus] != string(o.status) {
		pl.setTag(StepStatus, TagStatus, string(o.status))
	}
	if o.quietly {
		return
	}
	pl.decision = true
	pl.by = o.by
	if o.event != "" {
		pl.Notices = append(pl.Notices, Notice{Event: o.event, Model: mv.Name, Version: mv.Version, Gate: gate.Name,
			Status: o.status, Summary: tags[TagSummary], By: o.by, At: now})
	}
}

// description returns the description with the report section replaced, within the
// length the MLflow column allows, keeping the user's text byte for byte. The section
// carries a fingerprint of the vote tags it reports, so a pass can tell without any
// request when new votes need the report refreshed. It is false when the user's text
// leaves no room for a report.
func (p *Planner) description(mv mlflow.ModelVersion, report rules.Report) (string, bool) {
	marker := votesMarker(mv.Tags)
	budget := reportBudget(mv.Description) - len(marker) - 1
	if budget < 200 {
		p.logger.Warn("description too long for the report section; the summary tag still has the decision",
			"model", mv.Name, "version", mv.Version, "length", len(mv.Description))
		return "", false
	}
	return withReport(mv.Description, report.Markdown(budget)+"\n"+marker), true
}

// votesMarker is an HTML comment (invisible in the UI) holding a fingerprint of the
// version's vote tags.
func votesMarker(tags map[string]string) string {
	h := sha256.New()
	for _, k := range slices.Sorted(maps.Keys(tags)) {
		if rules.IsVoteTag(k) {
			fmt.Fprintf(h, "%q=%q\n", k, tags[k])
		}
	}
	return "<!-- modelgate:votes " + hex.EncodeToString(h.Sum(nil))[:16] + " -->"
}

// promote plans moving the gate's alias or stage to an approved version, unless a newer
// version holds it. The previous holder is recorded with the report, before the move, so
// a crash between the move and the status tag still knows where to roll back to.
func (p *Planner) promote(ctx context.Context, pl *Plan, gate *rules.Gate, mv mlflow.ModelVersion, d rules.Decision, tally *rules.Tally, notes []string, by string) error {
	target := gate.Promote
	if target.Target() == "" {
		p.finish(pl, gate, mv, d, outcome{status: StatusApproved, tally: tally, notes: notes, by: by})
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
	previous := holder
	switch {
	case holder == mv.Version:
		// Moved by an earlier attempt that stopped before the status tag.
		previous = mv.Tags[TagPreviousVersion]
	case holder != "" && mlflow.CompareVersions(holder, mv.Version) > 0:
		notes = append(notes, fmt.Sprintf("approved but not promoted: %s is held by newer version %s", target.Target(), holder))
		p.finish(pl, gate, mv, d, outcome{status: StatusApproved, tally: tally, notes: notes, by: by})
		return nil
	}
	pl.promoted = true
	note := "promoted to " + target.Target()
	extra := map[string]string{TagPromotedTo: target.Target()}
	if previous != "" {
		note += fmt.Sprintf(" (previously version %s)", previous)
		extra[TagPreviousVersion] = previous
	}
	var moves []Write
	if holder != mv.Version {
		moves = append(moves, moveTo(target, mv.Version))
		pl.log("promoted", "model", mv.Name, "version", mv.Version, "gate", gate.Name, "target", target.Target(), "previous_version", previous, "by", by)
	}
	p.finish(pl, gate, mv, d, outcome{status: StatusPromoted, tally: tally, notes: append([]string{note}, notes...), by: by,
		event: rules.EventPromoted, extra: extra, moves: moves})
	return nil
}

// moveTo is the write that gives a promotion target to a version.
func moveTo(target rules.Promotion, version string) Write {
	if target.Alias != "" {
		return Write{Step: StepMove, Op: OpSetAlias, Alias: target.Alias, Version: version}
	}
	return Write{Step: StepMove, Op: OpTransitionStage, Version: version, Stage: target.Stage, ArchiveExisting: target.ArchiveExisting}
}

// holderOf returns the version that holds a promotion target now, or "".
func holderOf(ctx context.Context, r EvidenceReader, model string, target rules.Promotion) (string, error) {
	if target.Alias != "" {
		v, err := r.GetModelVersionByAlias(ctx, model, target.Alias)
		if mlflow.IsNotFound(err) {
			return "", nil
		}
		if err != nil {
			return "", fmt.Errorf("find the holder of alias %s of %s: %w", target.Alias, model, err)
		}
		return v.Version, nil
	}
	latest, err := r.GetLatestVersions(ctx, model, target.Stage)
	if err != nil {
		return "", fmt.Errorf("find the %s version of %s: %w", target.Stage, model, err)
	}
	if len(latest) == 0 {
		return "", nil
	}
	return latest[0].Version, nil
}

// review plans the next step of an open review. Votes are counted from the tags the
// search returned, so a review where nothing happened costs no request. Before acting
// on votes, and on every full scan, the evidence is read again: votes count only for the
// evidence they were cast on, and if it changed they are set aside and the version
// decided afresh.
func (p *Planner) review(ctx context.Context, pl *Plan, mv mlflow.ModelVersion, full bool) error {
	pl.Action = ActionReview
	gate := p.policy.GateFor(mv.Name)
	if gate == nil {
		pl.Skipped = "waits for review, but no gate of the policy matches its model any more: set modelgate.reevaluate once the policy is right"
		if full {
			p.logger.Warn("version waits for review but no gate of the policy matches its model any more; set modelgate.reevaluate once the policy is right",
				"model", mv.Name, "version", mv.Version)
		}
		return nil
	}
	pl.Gate = gate.Name
	requested, _ := time.Parse(time.RFC3339, mv.Tags[TagDecidedAt])
	now := p.now()
	tally := gate.Tally(mv.Tags, requested, now)
	policyChanged := mv.Tags[TagPolicyDigest] != gate.Digest()
	votesChanged := !strings.Contains(reportSection(mv.Description), votesMarker(mv.Tags))
	if tally.Outcome == rules.ReviewPending && !policyChanged && !votesChanged && !full {
		return nil
	}

	d, err := p.evaluate(ctx, gate, mv)
	if err != nil {
		return err
	}
	if d.EvidenceDigest != mv.Tags[TagEvidenceDigest] {
		mv = setVotesAside(pl, mv)
		return p.decide(ctx, pl, gate, mv, d, nil, actorModelgate)
	}
	if d.Outcome != rules.PendingReview {
		// The gate no longer asks for a review of this evidence: its definition changed,
		// or an earlier pass was interrupted while carrying out a new decision.
		return p.decide(ctx, pl, gate, mv, d, nil, actorModelgate)
	}

	switch tally.Outcome {
	case rules.ReviewApproved:
		pl.waited = now.Sub(requested)
		return p.promote(ctx, pl, gate, mv, d, &tally, []string{"approved by " + voters(tally.Approvals)}, voters(tally.Approvals))
	case rules.ReviewRejected:
		pl.waited = now.Sub(requested)
		p.finish(pl, gate, mv, d, outcome{status: StatusRejected, tally: &tally, by: tally.Rejection.Name, event: rules.EventRejected})
		return nil
	case rules.ReviewExpired:
		note := fmt.Sprintf("review expired after %s without enough approvals", gate.Review.ExpiresAfter)
		p.finish(pl, gate, mv, d, outcome{status: StatusExpired, tally: &tally, notes: []string{note}, by: actorModelgate, event: rules.EventExpired})
		return nil
	}
	// Still open: refresh the report (votes so far, ignored votes, a changed gate).
	p.finish(pl, gate, mv, d, outcome{status: StatusPendingReview, tally: &tally, by: actorModelgate, keepAt: true, quietly: true})
	return nil
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
// the version as it will be once the votes are moved.
func setVotesAside(pl *Plan, mv mlflow.ModelVersion) mlflow.ModelVersion {
	digest := strings.TrimPrefix(mv.Tags[TagEvidenceDigest], "sha256:")
	if digest == "" {
		digest = "unknown"
	}
	tags := maps.Clone(mv.Tags)
	for _, k := range slices.Sorted(maps.Keys(mv.Tags)) {
		if !rules.IsVoteTag(k) {
			continue
		}
		stale := StalePrefix + digest + "." + strings.TrimPrefix(k, "modelgate.")
		if len(stale) > 250 { // MLflow's limit on tag keys
			stale = stale[:250]
		}
		pl.setTag(StepSetAside, stale, mv.Tags[k])
		pl.deleteTag(StepRemoveVotes, k)
		tags[stale] = mv.Tags[k]
		delete(tags, k)
	}
	mv.Tags = tags
	return mv
}

// reevaluate plans modelgate.reevaluate: votes from an earlier review are set aside,
// the version is judged afresh, and the tag is deleted once the new decision is written.
// A promoted version is not re-judged (modelgate.rollback is how to take it back).
func (p *Planner) reevaluate(ctx context.Context, pl *Plan, mv mlflow.ModelVersion) error {
	pl.Action = ActionReevaluate
	gate := p.policy.GateFor(mv.Name)
	switch {
	case pl.From == StatusPromoted:
		pl.Skipped = "re-evaluation of a promoted version ignored: set modelgate.rollback to take it back"
		pl.log("re-evaluation of a promoted version ignored: set modelgate.rollback to take it back", "model", mv.Name, "version", mv.Version)
	case gate == nil:
		pl.Skipped = fmt.Sprintf("re-evaluation asked, but no gate of the policy matches model %q", mv.Name)
		pl.log("re-evaluation asked for a model no gate matches", "model", mv.Name, "version", mv.Version)
	default:
		pl.Gate = gate.Name
		mv = setVotesAside(pl, mv)
		d, err := p.evaluate(ctx, gate, mv)
		if err != nil {
			return err
		}
		if err := p.decide(ctx, pl, gate, mv, d, []string{"evaluated again on request (modelgate.reevaluate)"}, actorModelgate); err != nil {
			return err
		}
	}
	pl.deleteTag(StepCleanup, TagReevaluate)
	return nil
}

// rollback plans modelgate.rollback on a promoted version: the alias (or stage) goes
// back to modelgate.previous_version, or is removed when there was none. If the version
// no longer holds the target, a person moved it since: nothing is moved back.
func (p *Planner) rollback(ctx context.Context, pl *Plan, mv mlflow.ModelVersion) error {
	pl.Action = ActionRollback
	target, previous := mv.Tags[TagPromotedTo], mv.Tags[TagPreviousVersion]
	kind, name, _ := strings.Cut(target, ":")
	var t rules.Promotion
	switch kind {
	case "alias":
		t.Alias = name
	case "stage":
		t.Stage = name
	default:
		return fmt.Errorf("cannot roll back %s/%s: %s is %q, not alias:<name> or stage:<name>", mv.Name, mv.Version, TagPromotedTo, target)
	}
	holder, err := holderOf(ctx, p.reader, mv.Name, t)
	if err != nil {
		return err
	}
	var note string
	var moves []Write
	switch {
	case holder == mv.Version && previous != "":
		if _, err := p.reader.GetModelVersion(ctx, mv.Name, previous); err == nil {
			note = fmt.Sprintf("%s given back to version %s", target, previous)
			if t.Alias != "" {
				moves = append(moves, Write{Step: StepMove, Op: OpSetAlias, Alias: t.Alias, Version: previous})
			} else {
				moves = append(moves, Write{Step: StepMove, Op: OpTransitionStage, Version: previous, Stage: t.Stage, ArchiveExisting: true})
			}
			break
		} else if !mlflow.IsNotFound(err) {
			return fmt.Errorf("read version %s of %s, which held %s before: %w", previous, mv.Name, target, err)
		}
		note = fmt.Sprintf("version %s, which held %s before, no longer exists: ", previous, target)
		previous = ""
		fallthrough
	case holder == mv.Version:
		if t.Alias != "" {
			moves = append(moves, Write{Step: StepMove, Op: OpDeleteAlias, Alias: t.Alias})
		} else {
			moves = append(moves, Write{Step: StepMove, Op: OpTransitionStage, Stage: "Archived"})
		}
		note += fmt.Sprintf("%s removed: no version to give it back to", target)
	case holder == previous && previous != "":
		note = fmt.Sprintf("%s given back to version %s", target, previous) // done by an interrupted attempt
	default:
		note = fmt.Sprintf("%s is now held by version %s, moved since the promotion: left as it is", target, cmpOr(holder, "none"))
	}
	reason := clipReason(mv.Tags[TagRollback])
	note = "rolled back: " + reason + "; " + note
	pl.rolledBack = target
	pl.log("rolled back", "model", mv.Name, "version", mv.Version, "gate", mv.Tags[TagGate], "target", target, "previous_version", previous, "reason", reason)
	gate := p.policy.GateFor(mv.Name)
	if gate == nil || gate.Name != mv.Tags[TagGate] {
		// The policy changed: record the rollback without a fresh report.
		for _, w := range moves {
			pl.add(w)
		}
		pl.setTag(StepReport, TagSummary, note)
		pl.setTag(StepStatus, TagStatus, string(StatusRolledBack))
		pl.Status = StatusRolledBack
		return nil
	}
	d, err := p.evaluate(ctx, gate, mv)
	if err != nil {
		return err
	}
	p.finish(pl, gate, mv, d, outcome{status: StatusRolledBack, notes: []string{note}, by: TagRollback, event: rules.EventRolledBack, moves: moves})
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
