package transitions

import "time"

// Recorder receives what the reconciler does, as events; package metrics turns them
// into Prometheus metrics. Label values are gate and check names from the policy and
// fixed words, never versions or user text.
type Recorder interface {
	// Decision counts a decision written: outcome is approved, pending_review,
	// rejected or expired (a promotion counts as approved).
	Decision(gate, outcome string)
	// CheckResult counts one check's result: pass, fail or missing.
	CheckResult(gate, check, result string)
	// Promotion counts an attempt to promote: target is "alias" or "stage"; result is
	// "promoted", "skipped" (a newer version holds the target) or "failed".
	Promotion(gate, target, result string)
	// Rollback counts a rollback carried out.
	Rollback(gate string)
	// ReviewsPending reports the open reviews of a gate, as read from the registry each
	// pass (called for every gate of the policy, with 0 when it has none): how many, and
	// when the oldest was requested.
	ReviewsPending(gate string, count int, oldest time.Time)
	// ReviewWait observes the time from the review request to a person's decision.
	ReviewWait(d time.Duration)
	// DecisionLatency observes the time from a version's creation to its first decision.
	DecisionLatency(d time.Duration)
	// Poll observes one reconcile pass; err is nil when MLflow could be read.
	Poll(d time.Duration, err error)
	// Tampering counts a detected forgery, replay or protected move, by kind.
	Tampering(gate, kind string)
	// Override counts an overrider's exception carried out.
	Override(gate string)
	// Halted says whether writes are halted because most records fail verification.
	Halted(halted bool)
	// Lifecycle reports, for a gate with a rollout or re-certification, the versions in
	// a rollout stage and those whose approval is due again, as read each pass.
	Lifecycle(gate string, staged, recertificationDue int)
}

// PendingReviews is the open reviews of one gate.
type PendingReviews struct {
	Count  int
	Oldest time.Time // when the oldest open review was requested; zero when Count is 0
}

// nopRecorder records nothing.
type nopRecorder struct{}

func (nopRecorder) Decision(string, string)               {}
func (nopRecorder) CheckResult(string, string, string)    {}
func (nopRecorder) Promotion(string, string, string)      {}
func (nopRecorder) Rollback(string)                       {}
func (nopRecorder) ReviewsPending(string, int, time.Time) {}
func (nopRecorder) ReviewWait(time.Duration)              {}
func (nopRecorder) DecisionLatency(time.Duration)         {}
func (nopRecorder) Poll(time.Duration, error)             {}
func (nopRecorder) Tampering(string, string)              {}
func (nopRecorder) Override(string)                       {}
func (nopRecorder) Halted(bool)                           {}
func (nopRecorder) Lifecycle(string, int, int)            {}
