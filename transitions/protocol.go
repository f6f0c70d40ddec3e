// Package transitions applies modelgate's decisions to the MLflow registry: it watches
// for versions to judge, gathers their evidence, asks the rules package for a decision,
// plans the writes (tags, the report, promotions, rollbacks) and applies them, runs the
// review protocol, keeps the audit trail and sends notifications. Everything it needs to
// remember lives in the registry, as modelgate.* tags signed under the signing key, and
// in the audit experiment, so it keeps no state of its own and survives restarts.
package transitions

import "slices"

// Tags modelgate writes on a gated version: three, so that MLflow's Tags table stays
// readable. None starts with "mlflow.", which the UI hides.
const (
	TagStatus  = "modelgate.status"
	TagSummary = "modelgate.summary"
	TagRecord  = "modelgate.record" // the signed Record
)

// v1Tags are the tags modelgate v1 wrote beside modelgate.status; a v2 start migrates the
// versions carrying them into a signed record and removes them.
var v1Tags = []string{
	"modelgate.gate", "modelgate.decided_at", "modelgate.policy_digest",
	"modelgate.evidence_digest", "modelgate.promoted_to", "modelgate.previous_version",
}

// Tags a person sets to ask modelgate for something (votes are rules.ApprovePrefix,
// rules.RejectPrefix and rules.OverridePrefix).
const (
	TagRollback   = "modelgate.rollback"
	TagReevaluate = "modelgate.reevaluate"
)

// Status is the value of modelgate.status.
type Status string

// Statuses.
const (
	StatusPendingReview      Status = "pending_review"
	StatusApproved           Status = "approved"
	StatusRejected           Status = "rejected"
	StatusStaged             Status = "staged"
	StatusPromoted           Status = "promoted"
	StatusSuperseded         Status = "superseded"
	StatusRecertificationDue Status = "recertification_due"
	StatusExpired            Status = "expired"
	StatusRolledBack         Status = "rolled_back"
)

var statuses = []Status{StatusPendingReview, StatusApproved, StatusRejected, StatusStaged, StatusPromoted,
	StatusSuperseded, StatusRecertificationDue, StatusExpired, StatusRolledBack}

func knownStatus(s Status) bool { return slices.Contains(statuses, s) }

// holdsTarget reports whether a version with this status holds its promotion target
// (an alias or stage) by modelgate's record.
func holdsTarget(s Status) bool {
	return s == StatusPromoted || s == StatusStaged || s == StatusRecertificationDue
}
