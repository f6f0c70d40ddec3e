package mlflow

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
)

// VoteRecords are what the modelgate-auth MLflow app (mlflow/modelgate-auth) recorded for
// one model version: each vote tag set or deleted, by whom, in order, and who created
// the version. Only the app's hooks write them, after MLflow accepted the change.
type VoteRecords struct {
	Votes   []VoteRecord `json:"votes"`
	Creator *VoteCreator `json:"creator,omitempty"`
}

// VoteCreator is the user who created a version.
type VoteCreator struct {
	User      string `json:"user"`
	Timestamp int64  `json:"timestamp"`
}

// VoteRecord is one vote tag set or deleted by the logged-in user.
type VoteRecord struct {
	Key       string `json:"key"`
	User      string `json:"user"`
	Action    string `json:"action"` // set | delete
	Value     string `json:"value"`
	Timestamp int64  `json:"timestamp"`
}

// VoteRecordsPath is the app's read-only endpoint.
const VoteRecordsPath = "/api/2.0/modelgate/votes"

// ErrNoVoteRecords says the server does not run the modelgate-auth app.
var ErrNoVoteRecords = errors.New("the MLflow server does not serve vote records: review.identity: verified needs it started with `mlflow server --app-name modelgate-auth` (README: Verified votes)")

// GetVoteRecords reads a version's vote records from the modelgate-auth app.
func (c *Client) GetVoteRecords(ctx context.Context, name, version string) (VoteRecords, error) {
	var out VoteRecords
	err := c.do(ctx, http.MethodGet, VoteRecordsPath, url.Values{"name": {name}, "version": {version}}, &out)
	var e *Error
	if errors.As(err, &e) && e.StatusCode == http.StatusNotFound {
		return out, fmt.Errorf("%w (%v)", ErrNoVoteRecords, err)
	}
	return out, err
}

// Setters returns, for each vote tag still set, the user who set it last.
func (r VoteRecords) Setters() map[string]string {
	out := map[string]string{}
	for _, v := range r.Votes {
		switch v.Action {
		case "set":
			out[v.Key] = v.User
		case "delete":
			delete(out, v.Key)
		}
	}
	return out
}
