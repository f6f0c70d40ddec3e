package transitions

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/modelgate/modelgate/mlflow"
	"github.com/modelgate/modelgate/rules"
)

// actor names who took a decision, in logs and notifications.
const actorModelgate = "modelgate"

// parallelWrites bounds the writes for one version in flight at once.
const parallelWrites = 4

// handleVersion does what one version needs and returns the status it ends with ("" when
// nothing was decided) and its gate.
func (r *Reconciler) handleVersion(ctx context.Context, it *item) (Status, string, error) {
	mv := it.mv
	status := Status(mv.Tags[TagStatus])
	switch {
	case mv.IsPrompt():
		return "", "", nil // prompts live in the registry but are never gated
	case hasTag(mv, TagReevaluate):
		return r.reevaluate(ctx, mv)
	case status == StatusPromoted && hasTag(mv, TagRollback):
		return r.rollback(ctx, mv)
	case status == StatusPendingReview:
		return r.review(ctx, mv, it.full)
	case status == "":
		if mv.Created().Before(r.cfg.Since) {
			return "", "", nil
		}
		return r.decideNew(ctx, mv)
	case status == StatusApproved || status == StatusRejected || status == StatusPromoted ||
		status == StatusExpired || status == StatusRolledBack:
		return status, mv.Tags[TagGate], nil
	}
	if it.full {
		r.logger.Warn("unknown modelgate.status left as it is (set modelgate.reevaluate to have the version judged again)",
			"model", mv.Name, "version", mv.Version, "status", string(status))
	}
	return "", "", nil
}

func hasTag(mv mlflow.ModelVersion, key string) bool {
	_, ok := mv.Tags[key]
	return ok
}

// decideNew judges a version nobody has decided yet.
func (r *Reconciler) decideNew(ctx context.Context, mv mlflow.ModelVersion) (Status, string, error) {
	gate := r.policy.GateFor(mv.Name)
	if gate == nil {
		return "", "", nil
	}
	d, err := r.evaluate(ctx, gate, mv)
	if err != nil {
		return "", gate.Name, err
	}
	st, err := r.apply(ctx, gate, mv, d, nil, actorModelgate)
	if err == nil && st != "" {
		r.metrics.DecisionLatency(r.now().Sub(mv.Created()))
	}
	return st, gate.Name, err
}

// evaluate gathers evidence and decides, counting each check's result.
func (r *Reconciler) evaluate(ctx context.Context, gate *rules.Gate, mv mlflow.ModelVersion) (rules.Decision, error) {
	ev, err := GatherEvidence(ctx, r.reader, gate, mv)
	if err != nil {
		return rules.Decision{}, err
	}
	d := gate.Evaluate(ev)
	for _, c := range d.Checks {
		r.metrics.CheckResult(gate.Name, c.Name, string(c.Result))
	}
	return d, nil
}

// apply carries out a fresh decision (no votes yet, or votes just reset).
func (r *Reconciler) apply(ctx context.Context, gate *rules.Gate, mv mlflow.ModelVersion, d rules.Decision, notes []string, by string) (Status, error) {
	switch d.Outcome {
	case rules.Rejected:
		return StatusRejected, r.finish(ctx, gate, mv, d, outcome{status: StatusRejected, notes: notes, by: by, event: rules.EventRejected})
	case rules.PendingReview:
		return StatusPendingReview, r.finish(ctx, gate, mv, d, outcome{status: StatusPendingReview, notes: notes, by: by, event: rules.EventReviewRequested})
	case rules.Approved:
		return r.promote(ctx, gate, mv, d, nil, notes, by)
	}
	return "", nil
}

// outcome is what finish writes.
type outcome struct {
	status  Status
	tally   *rules.Tally
	notes   []string
	by      string
	event   rules.Event // "" sends nothing
	extra   map[string]string
	keepAt  bool // keep modelgate.decided_at (a review still open)
	quietly bool // a report refresh, not a decision: no log line as a decision, no metric
	// move, when set, runs after the report and tags are written and before the status:
	// the promotion itself.
	move func(ctx context.Context) error
}

// finish writes a decision in crash-safe order: the report section, then the
// informational tags, then modelgate.status last. A crash before the status leaves the
// version undecided (or in its previous state), and the next pass redoes the same writes
// with the same evidence: nothing is decided twice, no section is duplicated.
func (r *Reconciler) finish(ctx context.Context, gate *rules.Gate, mv mlflow.ModelVersion, d rules.Decision, o outcome) error {
	// Writes for one version are not cut short by shutdown.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.WriteTimeout)
	defer cancel()
	now := r.now().UTC()
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
	tags := map[string]string{
		TagGate:           gate.Name,
		TagSummary:        report.Summary(),
		TagDecidedAt:      decidedAt.Format(time.RFC3339),
		TagPolicyDigest:   d.PolicyDigest,
		TagEvidenceDigest: d.EvidenceDigest,
	}
	maps.Copy(tags, o.extra)
	// The report and the informational tags are independent of one another: write them
	// in parallel (MLflow has no batch call for version tags), then the status alone.
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(parallelWrites)
	g.Go(func() error { return r.writeReport(gctx, mv, report) })
	for _, k := range slices.Sorted(maps.Keys(tags)) {
		if mv.Tags[k] == tags[k] {
			continue
		}
		g.Go(func() error { return r.writer.SetModelVersionTag(gctx, mv.Name, mv.Version, k, tags[k]) })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	if o.move != nil {
		if err := o.move(ctx); err != nil {
			return err
		}
	}
	if mv.Tags[TagStatus] != string(o.status) {
		if err := r.writer.SetModelVersionTag(ctx, mv.Name, mv.Version, TagStatus, string(o.status)); err != nil {
			return err
		}
	}
	if o.quietly {
		return nil
	}
	if o.status != StatusRolledBack { // rollbacks have their own counter
		r.metrics.Decision(gate.Name, string(decisionOutcome(o.status)))
	}
	// The audit line: who decided what, on which evidence.
	r.logger.Info("decision", "model", mv.Name, "version", mv.Version, "gate", gate.Name, "status", string(o.status),
		"by", o.by, "evidence_digest", d.EvidenceDigest, "summary", tags[TagSummary])
	if o.event != "" {
		r.notify.Notify(Notice{Event: o.event, Model: mv.Name, Version: mv.Version, Gate: gate.Name,
			Status: o.status, Summary: tags[TagSummary], By: o.by, At: now})
	}
	return nil
}

// decisionOutcome maps a status to the outcome label of modelgate_decisions_total: a
// promotion is an approval.
func decisionOutcome(s Status) Status {
	if s == StatusPromoted {
		return StatusApproved
	}
	return s
}

// writeReport replaces the report section of the description, within the length the
// MLflow column allows, keeping the user's text byte for byte. The section carries a
// fingerprint of the vote tags it reports, so a pass can tell without any request when
// new votes need the report refreshed.
func (r *Reconciler) writeReport(ctx context.Context, mv mlflow.ModelVersion, report rules.Report) error {
	marker := votesMarker(mv.Tags)
	budget := reportBudget(mv.Description) - len(marker) - 1
	if budget < 200 {
		r.logger.Warn("description too long for the report section; the summary tag still has the decision",
			"model", mv.Name, "version", mv.Version, "length", len(mv.Description))
		return nil
	}
	desc := withReport(mv.Description, report.Markdown(budget)+"\n"+marker)
	if desc == mv.Description {
		return nil
	}
	_, err := r.writer.UpdateModelVersionDescription(ctx, mv.Name, mv.Version, desc)
	return err
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

// promote moves the gate's alias or stage to an approved version, unless a newer version
// holds it. It records the previous holder before moving anything, so a crash between
// the move and the status tag still knows where to roll back to.
func (r *Reconciler) promote(ctx context.Context, gate *rules.Gate, mv mlflow.ModelVersion, d rules.Decision, tally *rules.Tally, notes []string, by string) (Status, error) {
	p := gate.Promote
	if p.Target() == "" {
		return StatusApproved, r.finish(ctx, gate, mv, d, outcome{status: StatusApproved, tally: tally, notes: notes, by: by})
	}
	kind := "alias"
	if p.Stage != "" {
		kind = "stage"
	}
	holder, err := r.holder(ctx, mv.Name, p)
	if err != nil {
		r.metrics.Promotion(gate.Name, kind, "failed")
		return "", err
	}
	previous := holder
	switch {
	case holder == mv.Version:
		// Moved by an earlier attempt that stopped before the status tag.
		previous = mv.Tags[TagPreviousVersion]
	case holder != "" && mlflow.CompareVersions(holder, mv.Version) > 0:
		r.metrics.Promotion(gate.Name, kind, "skipped")
		notes = append(notes, fmt.Sprintf("approved but not promoted: %s is held by newer version %s", p.Target(), holder))
		return StatusApproved, r.finish(ctx, gate, mv, d, outcome{status: StatusApproved, tally: tally, notes: notes, by: by})
	}
	note := "promoted to " + p.Target()
	extra := map[string]string{TagPromotedTo: p.Target()}
	if previous != "" {
		note += fmt.Sprintf(" (previously version %s)", previous)
		extra[TagPreviousVersion] = previous
	}
	notes = append([]string{note}, notes...)
	// finish records the previous holder (with the other tags) before it moves the alias
	// or stage, and sets the status after: a crash in between still knows where to roll
	// back to, and leaves the version undecided.
	move := func(ctx context.Context) error {
		if holder == mv.Version {
			return nil
		}
		var err error
		if p.Alias != "" {
			err = r.writer.SetAlias(ctx, mv.Name, p.Alias, mv.Version)
		} else {
			_, err = r.writer.TransitionStage(ctx, mv.Name, mv.Version, p.Stage, p.ArchiveExisting)
		}
		if err != nil {
			return fmt.Errorf("promote %s/%s to %s: %w", mv.Name, mv.Version, p.Target(), err)
		}
		r.logger.Info("promoted", "model", mv.Name, "version", mv.Version, "gate", gate.Name, "target", p.Target(), "previous_version", previous, "by", by)
		return nil
	}
	err = r.finish(ctx, gate, mv, d, outcome{status: StatusPromoted, tally: tally, notes: notes, by: by, event: rules.EventPromoted, extra: extra, move: move})
	if err != nil {
		r.metrics.Promotion(gate.Name, kind, "failed")
		return "", err
	}
	r.metrics.Promotion(gate.Name, kind, "promoted")
	return StatusPromoted, nil
}

// holder returns the version that holds the promotion target now, or "".
func (r *Reconciler) holder(ctx context.Context, model string, p rules.Promotion) (string, error) {
	if p.Alias != "" {
		v, err := r.reader.GetModelVersionByAlias(ctx, model, p.Alias)
		if mlflow.IsNotFound(err) {
			return "", nil
		}
		if err != nil {
			return "", fmt.Errorf("find the holder of alias %s of %s: %w", p.Alias, model, err)
		}
		return v.Version, nil
	}
	latest, err := r.reader.GetLatestVersions(ctx, model, p.Stage)
	if err != nil {
		return "", fmt.Errorf("find the %s version of %s: %w", p.Stage, model, err)
	}
	if len(latest) == 0 {
		return "", nil
	}
	return latest[0].Version, nil
}

func withTag(tags mlflow.Tags, k, v string) mlflow.Tags {
	out := maps.Clone(tags)
	if out == nil {
		out = mlflow.Tags{}
	}
	out[k] = v
	return out
}

// review moves an open review on. Votes are counted from the tags the search returned,
// so a review where nothing happened costs no request. Before acting on votes, and on
// every full scan, the evidence is read again: votes count only for the evidence they
// were cast on, and if it changed they are set aside and the version decided afresh.
func (r *Reconciler) review(ctx context.Context, mv mlflow.ModelVersion, full bool) (Status, string, error) {
	gate := r.policy.GateFor(mv.Name)
	if gate == nil {
		if full {
			r.logger.Warn("version waits for review but no gate of the policy matches its model any more; set modelgate.reevaluate once the policy is right",
				"model", mv.Name, "version", mv.Version)
		}
		return StatusPendingReview, mv.Tags[TagGate], nil
	}
	requested, _ := time.Parse(time.RFC3339, mv.Tags[TagDecidedAt])
	tally := gate.Tally(mv.Tags, requested, r.now())
	policyChanged := mv.Tags[TagPolicyDigest] != gate.Digest()
	votesChanged := !strings.Contains(reportSection(mv.Description), votesMarker(mv.Tags))
	if tally.Outcome == rules.ReviewPending && !policyChanged && !votesChanged && !full {
		return StatusPendingReview, gate.Name, nil
	}

	d, err := r.evaluate(ctx, gate, mv)
	if err != nil {
		return StatusPendingReview, gate.Name, err
	}
	if d.EvidenceDigest != mv.Tags[TagEvidenceDigest] {
		if mv, err = r.setVotesAside(ctx, mv); err != nil {
			return StatusPendingReview, gate.Name, err
		}
		st, err := r.apply(ctx, gate, mv, d, nil, actorModelgate)
		return st, gate.Name, err
	}
	if d.Outcome != rules.PendingReview {
		// The gate no longer asks for a review of this evidence: its definition changed,
		// or an earlier pass was interrupted while carrying out a new decision.
		st, err := r.apply(ctx, gate, mv, d, nil, actorModelgate)
		return st, gate.Name, err
	}

	switch tally.Outcome {
	case rules.ReviewApproved:
		r.metrics.ReviewWait(r.now().Sub(requested))
		st, err := r.promote(ctx, gate, mv, d, &tally, []string{"approved by " + voters(tally.Approvals)}, voters(tally.Approvals))
		return st, gate.Name, err
	case rules.ReviewRejected:
		r.metrics.ReviewWait(r.now().Sub(requested))
		err := r.finish(ctx, gate, mv, d, outcome{status: StatusRejected, tally: &tally, by: tally.Rejection.Name, event: rules.EventRejected})
		return StatusRejected, gate.Name, err
	case rules.ReviewExpired:
		note := fmt.Sprintf("review expired after %s without enough approvals", gate.Review.ExpiresAfter)
		err := r.finish(ctx, gate, mv, d, outcome{status: StatusExpired, tally: &tally, notes: []string{note}, by: actorModelgate, event: rules.EventExpired})
		return StatusExpired, gate.Name, err
	}
	// Still open: refresh the report (votes so far, ignored votes, a changed gate).
	err = r.finish(ctx, gate, mv, d, outcome{status: StatusPendingReview, tally: &tally, by: actorModelgate, keepAt: true, quietly: true})
	return StatusPendingReview, gate.Name, err
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

// setVotesAside moves every vote tag to a stale key (copy, then delete), so reviewers
// vote again on the new evidence and nothing they wrote is lost.
func (r *Reconciler) setVotesAside(ctx context.Context, mv mlflow.ModelVersion) (mlflow.ModelVersion, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.WriteTimeout)
	defer cancel()
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
		if err := r.writer.SetModelVersionTag(ctx, mv.Name, mv.Version, stale, mv.Tags[k]); err != nil {
			return mv, err
		}
		if err := r.writer.DeleteModelVersionTag(ctx, mv.Name, mv.Version, k); err != nil {
			return mv, fmt.Errorf("set aside vote %s (deleting a tag needs MANAGE on the model): %w", k, err)
		}
		tags[stale] = mv.Tags[k]
		delete(tags, k)
	}
	mv.Tags = tags
	return mv, nil
}

// reevaluate handles modelgate.reevaluate: votes from an earlier review are set aside,
// the version is judged afresh, and the tag is deleted once the new decision is written.
// A promoted version is not re-judged (modelgate.rollback is how to take it back).
func (r *Reconciler) reevaluate(ctx context.Context, mv mlflow.ModelVersion) (Status, string, error) {
	status := Status(mv.Tags[TagStatus])
	gate := r.policy.GateFor(mv.Name)
	var st Status
	switch {
	case status == StatusPromoted:
		r.logger.Info("re-evaluation of a promoted version ignored: set modelgate.rollback to take it back", "model", mv.Name, "version", mv.Version)
		st = status
	case gate == nil:
		r.logger.Info("re-evaluation asked for a model no gate matches", "model", mv.Name, "version", mv.Version)
		st = status
	default:
		var err error
		if mv, err = r.setVotesAside(ctx, mv); err != nil {
			return status, gate.Name, err
		}
		d, err := r.evaluate(ctx, gate, mv)
		if err != nil {
			return status, gate.Name, err
		}
		if st, err = r.apply(ctx, gate, mv, d, []string{"evaluated again on request (modelgate.reevaluate)"}, actorModelgate); err != nil {
			return status, gate.Name, err
		}
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.WriteTimeout)
	defer cancel()
	if err := r.writer.DeleteModelVersionTag(wctx, mv.Name, mv.Version, TagReevaluate); err != nil {
		return st, mv.Tags[TagGate], fmt.Errorf("remove %s (deleting a tag needs MANAGE on the model): %w", TagReevaluate, err)
	}
	return st, mv.Tags[TagGate], nil
}

// rollback handles modelgate.rollback on a promoted version: the alias (or stage) goes
// back to modelgate.previous_version, or is removed when there was none. If the version
// no longer holds the target, a person moved it since: nothing is moved back.
func (r *Reconciler) rollback(ctx context.Context, mv mlflow.ModelVersion) (Status, string, error) {
	gateName := mv.Tags[TagGate]
	target, previous := mv.Tags[TagPromotedTo], mv.Tags[TagPreviousVersion]
	kind, name, _ := strings.Cut(target, ":")
	p := rules.Promotion{}
	switch kind {
	case "alias":
		p.Alias = name
	case "stage":
		p.Stage = name
	default:
		return StatusPromoted, gateName, fmt.Errorf("cannot roll back %s/%s: %s is %q, not alias:<name> or stage:<name>", mv.Name, mv.Version, TagPromotedTo, target)
	}
	holder, err := r.holder(ctx, mv.Name, p)
	if err != nil {
		return StatusPromoted, gateName, err
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.WriteTimeout)
	defer cancel()
	var note string
	switch {
	case holder == mv.Version && previous != "":
		if p.Alias != "" {
			err = r.writer.SetAlias(wctx, mv.Name, p.Alias, previous)
		} else {
			_, err = r.writer.TransitionStage(wctx, mv.Name, previous, p.Stage, true)
		}
		note = fmt.Sprintf("%s given back to version %s", target, previous)
		if mlflow.IsNotFound(err) {
			note = fmt.Sprintf("version %s, which held %s before, no longer exists: ", previous, target)
			previous = ""
			err = nil
		} else {
			break
		}
		fallthrough
	case holder == mv.Version:
		if p.Alias != "" {
			err = r.writer.DeleteAlias(wctx, mv.Name, p.Alias)
		} else {
			_, err = r.writer.TransitionStage(wctx, mv.Name, mv.Version, "Archived", false)
		}
		note += fmt.Sprintf("%s removed: no version to give it back to", target)
	case holder == previous && previous != "":
		note = fmt.Sprintf("%s given back to version %s", target, previous) // done by an interrupted attempt
	default:
		note = fmt.Sprintf("%s is now held by version %s, moved since the promotion: left as it is", target, cmpOr(holder, "none"))
	}
	if err != nil {
		return StatusPromoted, gateName, fmt.Errorf("roll back %s/%s: %w", mv.Name, mv.Version, err)
	}
	note = "rolled back: " + clipReason(mv.Tags[TagRollback]) + "; " + note
	gate := r.policy.GateFor(mv.Name)
	if gate == nil || gate.Name != gateName {
		// The policy changed: record the rollback without a fresh report.
		if err := r.writer.SetModelVersionTag(wctx, mv.Name, mv.Version, TagSummary, note); err != nil {
			return StatusPromoted, gateName, err
		}
		if err := r.writer.SetModelVersionTag(wctx, mv.Name, mv.Version, TagStatus, string(StatusRolledBack)); err != nil {
			return StatusPromoted, gateName, err
		}
	} else {
		d, err := r.evaluate(ctx, gate, mv)
		if err != nil {
			return StatusPromoted, gateName, err
		}
		if err := r.finish(ctx, gate, mv, d, outcome{status: StatusRolledBack, notes: []string{note}, by: TagRollback, event: rules.EventRolledBack}); err != nil {
			return StatusPromoted, gateName, err
		}
	}
	r.metrics.Rollback(gateName)
	r.logger.Info("rolled back", "model", mv.Name, "version", mv.Version, "gate", gateName, "target", target, "previous_version", previous, "reason", clipReason(mv.Tags[TagRollback]))
	return StatusRolledBack, gateName, nil
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
