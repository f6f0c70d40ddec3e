package transitions

import (
	"time"

	"github.com/modelgate/modelgate/rules"
)

// Recorder receives what the reconciler does, as events; package metrics turns them
// into Prometheus metrics. Label values are gate and check names from the policy and
// fixed words, never versions or user text.
type Recorder interface {
	// Decision counts a status written: approved, pending_review, rejected or expired.
	Decision(gate string, outcome Status)
	// CheckResult counts one check's result.
	CheckResult(gate, check string, result rules.Result)
	// Promotion counts an attempt to promote: target is "alias" or "stage"; result is
	// "promoted", "skipped" (a newer version holds the target) or "failed".
	Promotion(gate, target, result string)
	// Rollback counts a rollback carried out.
	Rollback(gate string)
	// ReviewsPending sets the number of versions waiting for review, per gate, as read
	// from the registry (gates without any are reported with 0).
	ReviewsPending(byGate map[string]int)
	// ReviewWait observes the time from the review request to a person's decision.
	ReviewWait(d time.Duration)
	// DecisionLatency observes the time from a version's creation to its first decision.
	DecisionLatency(d time.Duration)
	// Poll observes one reconcile pass; err is nil when MLflow could be read.
	Poll(d time.Duration, err error)
}

// nopRecorder records nothing.
type nopRecorder struct{}

func (nopRecorder) Decision(string, Status)                  {}
func (nopRecorder) CheckResult(string, string, rules.Result) {}
func (nopRecorder) Promotion(string, string, string)         {}
func (nopRecorder) Rollback(string)                          {}
func (nopRecorder) ReviewsPending(map[string]int)            {}
func (nopRecorder) ReviewWait(time.Duration)                 {}
func (nopRecorder) DecisionLatency(time.Duration)            {}
func (nopRecorder) Poll(time.Duration, error)                {}
