package transitions

import (
	"time"

	"github.com/modelgate/modelgate/rules"
)

// Notice is something worth telling people about: a version put up for review,
// rejected, promoted, rolled back, or whose review expired.
type Notice struct {
	// ID is the audit event's id: the same for the same event of the same record, so a
	// receiver (or a new leader) can tell a repeat from a new notice.
	ID      string      `json:"id"`
	Event   rules.Event `json:"event"`
	Model   string      `json:"model"`
	Version string      `json:"version"`
	Gate    string      `json:"gate"`
	Status  Status      `json:"status"`
	Summary string      `json:"summary"`
	By      string      `json:"by"` // "modelgate", or the reviewer who decided
	At      time.Time   `json:"time"`
	// Sent, when set, is called by the notifier once the notice went out to every target
	// that wants it: the audit trail then notes it as sent.
	Sent func() `json:"-"`
}

// Notifier takes notices without blocking the caller (package notify sends them).
type Notifier interface {
	Notify(Notice)
}

type nopNotifier struct{}

func (nopNotifier) Notify(Notice) {}
