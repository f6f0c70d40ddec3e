package transitions

import (
	"context"
	"fmt"

	"github.com/modelgate/modelgate/rules"

	"golang.org/x/sync/errgroup"
)

// parallelWrites bounds the writes of one step in flight at once (MLflow has no batch
// call for version tags).
const parallelWrites = 4

// Apply carries out a plan: its writes step by step (the writes of one step in
// parallel), then, once all have succeeded, its metrics, log lines and notifications.
// The writes are not cut short by shutdown (ctx's cancellation), only bounded by
// WriteTimeout, so a SIGTERM never leaves a version half-written. An error leaves the
// registry in a state the next pass plans to finish.
func (r *Reconciler) Apply(ctx context.Context, p *Plan) error {
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.WriteTimeout)
	defer cancel()
	for _, step := range p.steps() {
		g, gctx := errgroup.WithContext(wctx)
		g.SetLimit(parallelWrites)
		for _, w := range step {
			g.Go(func() error { return r.write(gctx, p, w) })
		}
		if err := g.Wait(); err != nil {
			if p.promotion != "" && p.promoted {
				r.metrics.Promotion(p.Gate, p.promotion, "failed")
			}
			return err
		}
	}
	// The audit trail comes after the registry: a crash in between leaves a record
	// whose events are missing, which the next pass writes (see Planner.catchUp).
	if r.audit != nil && len(p.Events) > 0 {
		if err := r.audit.Write(wctx, p.Events); err != nil {
			return err
		}
	}
	r.applied(p)
	return nil
}

// write makes one write of a plan.
func (r *Reconciler) write(ctx context.Context, p *Plan, w Write) error {
	var err error
	switch w.Op {
	case OpDescription:
		_, err = r.writer.UpdateModelVersionDescription(ctx, p.Model, w.Version, w.Value)
	case OpSetTag:
		err = r.writer.SetModelVersionTag(ctx, p.Model, w.Version, w.Key, w.Value)
	case OpDeleteTag:
		err = r.writer.DeleteModelVersionTag(ctx, p.Model, w.Version, w.Key)
		if err != nil {
			err = fmt.Errorf("%w (deleting a tag needs MANAGE on the model)", err)
		}
	case OpSetAlias:
		err = r.writer.SetAlias(ctx, p.Model, w.Alias, w.Version)
	case OpDeleteAlias:
		err = r.writer.DeleteAlias(ctx, p.Model, w.Alias)
	case OpTransitionStage:
		_, err = r.writer.TransitionStage(ctx, p.Model, w.Version, w.Stage, w.ArchiveExisting)
	default:
		err = fmt.Errorf("unknown write %q", w.Op)
	}
	if err != nil && w.Step == StepMove {
		return fmt.Errorf("%s of %s: %w", w, p.Model, err)
	}
	return err
}

// applied records what a plan did once its writes are in: metrics, log lines, the
// decision line (who decided what, on which evidence) and notifications.
func (r *Reconciler) applied(p *Plan) {
	for _, l := range p.logs {
		r.logger.Info(l.msg, l.args...)
	}
	if p.Report != nil && p.decision {
		for _, c := range p.Checks {
			r.metrics.CheckResult(p.Gate, c.Name, string(c.Result))
		}
	}
	if p.promotion != "" {
		result := "skipped"
		if p.promoted {
			result = "promoted"
		}
		r.metrics.Promotion(p.Gate, p.promotion, result)
	}
	if p.rolledBack != "" {
		r.metrics.Rollback(p.Gate)
	}
	if p.tamper != "" {
		r.metrics.Tampering(p.Gate, p.tamper)
		r.logger.Warn("tampering undone", "model", p.Model, "version", p.Version, "gate", p.Gate, "kind", p.tamper, "status", string(p.Status))
	}
	if p.overridden && p.promoted {
		r.metrics.Override(p.Gate)
	}
	if p.waited > 0 {
		r.metrics.ReviewWait(p.waited)
	}
	for _, n := range p.Notices {
		r.send(n)
	}
	if !p.decision {
		return
	}
	if p.latency {
		r.metrics.DecisionLatency(r.now().Sub(p.created))
	}
	if p.Status != StatusRolledBack { // rollbacks have their own counter
		r.metrics.Decision(p.Gate, string(decisionOutcome(p.Status)))
	}
	summary, digest := "", ""
	if p.Report != nil {
		summary, digest = p.Report.Summary(), p.EvidenceDigest
	}
	r.logger.Info("decision", "model", p.Model, "version", p.Version, "gate", p.Gate, "status", string(p.Status),
		"by", p.by, "evidence_digest", digest, "summary", summary)
}

// decisionOutcome maps a status to the outcome label of modelgate_decisions_total: a
// promotion is an approval.
func decisionOutcome(s Status) Status {
	if s == StatusPromoted {
		return StatusApproved
	}
	return s
}

// send queues a notice; with the audit trail on, the notice's event is noted as sent
// once the notifier delivered it (what is not noted is sent again after a restart or a
// failover: see Audit.Unsent).
func (r *Reconciler) send(n Notice) {
	if r.audit != nil {
		id := n.ID
		n.Sent = func() {
			ctx, cancel := context.WithTimeout(context.Background(), r.cfg.WriteTimeout)
			defer cancel()
			if err := r.audit.MarkNotified(ctx, id); err != nil {
				r.logger.Warn("notification sent but not noted as sent: it may be sent again after a restart", "event_id", id, "error", err)
			}
		}
	}
	r.notify.Notify(n)
}

// resendUnsent sends the notifications the audit trail holds as not sent: those a crash
// or a failover came between.
func (r *Reconciler) resendUnsent() {
	for _, e := range r.audit.Unsent() {
		r.logger.Info("sending a notification left unsent", "model", e.Model, "version", e.Version, "event", e.Notify, "event_id", e.ID())
		r.send(Notice{ID: e.ID(), Event: rules.Event(e.Notify), Model: e.Model, Version: e.Version, Gate: e.Gate,
			Status: e.Status, Summary: e.Reason, By: e.Actor, At: e.At})
	}
}
