// Package transitions applies modelgate's decisions to the MLflow registry: it watches
// for versions to judge, gathers their evidence, asks the rules package for a decision,
// then writes tags and the report, promotes, runs the review protocol and rollbacks,
// and sends notifications. Everything it needs to remember lives in the registry as
// modelgate.* tags, so it keeps no state of its own and survives restarts.
package transitions

// Tags modelgate writes on a gated version. None starts with "mlflow.", which the UI hides.
const (
	TagStatus          = "modelgate.status"
	TagGate            = "modelgate.gate"
	TagSummary         = "modelgate.summary"
	TagDecidedAt       = "modelgate.decided_at"
	TagPolicyDigest    = "modelgate.policy_digest"
	TagEvidenceDigest  = "modelgate.evidence_digest"
	TagPromotedTo      = "modelgate.promoted_to"
	TagPreviousVersion = "modelgate.previous_version"
)

// Tags a person sets to ask modelgate for something (votes are rules.ApprovePrefix and
// rules.RejectPrefix).
const (
	TagRollback   = "modelgate.rollback"
	TagReevaluate = "modelgate.reevaluate"
)

// Status is the value of modelgate.status.
type Status string

// Statuses.
const (
	StatusPendingReview Status = "pending_review"
	StatusApproved      Status = "approved"
	StatusRejected      Status = "rejected"
	StatusPromoted      Status = "promoted"
	StatusExpired       Status = "expired"
	StatusRolledBack    Status = "rolled_back"
)
