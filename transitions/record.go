package transitions

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/modelgate/modelgate/mlflow"
	"strings"
	"time"
)

// Record is the signed state of a gated version, the value of modelgate.record: one
// compact JSON object holding everything the decision rests on, with an HMAC-SHA256
// under the signing key over the model name, the version and every field. An editor of
// the registry can copy, blank or overwrite it, but not make a new one that verifies.
//
// Seq counts the version's records: each state modelgate writes has the next number, so
// an older record written back (a replay) is told apart from the current one by the
// audit trail, whose latest event for the version carries the current number.
type Record struct {
	V int `json:"v"`
	// Model is the registered model the record was signed for (with the version): a
	// record copied to another model does not verify as that model's.
	Model  string `json:"model"`
	Seq    int64  `json:"seq"`
	Status Status `json:"status"`
	// Prev is the status before this record's transition: a status tag still showing it
	// is an apply that stopped between writing the record and the status.
	Prev Status `json:"prev,omitempty"`
	// Events are the audit events of the transition, as event or event:actor, so that
	// a crash before they were written loses none.
	Events []string `json:"events,omitempty"`
	Gate   string   `json:"gate,omitempty"`
	// At is when this state was decided (RFC 3339, UTC); Requested when the open review
	// was requested.
	At        string `json:"decided_at"`
	Requested string `json:"requested,omitempty"`
	// Policy and Evidence are the gate and evidence digests the decision rests on.
	Policy   string `json:"policy,omitempty"`
	Evidence string `json:"evidence,omitempty"`
	// Votes is a fingerprint of the vote tags the record counted.
	Votes string `json:"votes,omitempty"`
	// PromotedTo is the target (alias:champion, stage:Production) and PreviousVersion the
	// version that held it before ("" for none).
	PromotedTo      string `json:"promoted_to,omitempty"`
	PreviousVersion string `json:"previous_version,omitempty"`
	// SupersededBy is the version that took the target, or "hand" for a person's move;
	// To is where it went (the version a person moved it to, or a rollback gave it back to).
	SupersededBy string   `json:"superseded_by,omitempty"`
	To           string   `json:"to,omitempty"`
	ApprovedBy   []string `json:"approved_by,omitempty"`
	// Stage is the rollout stage (its alias) the version is in, or whose checks sent it
	// to review or rejected it; StagedAt is when it entered the stage (its soak runs
	// from then, whatever restarts happen).
	Stage        string `json:"stage,omitempty"`
	StagedAt     string `json:"staged_at,omitempty"`
	RejectedBy   string `json:"rejected_by,omitempty"`
	OverriddenBy string `json:"overridden_by,omitempty"`
}

// recordVersion is the V of records this code writes.
const recordVersion = 2

// Keys are the signing keys: records and audit events are signed with Current and
// verified with Current or Previous (for a key rotation). Without Current, nothing is
// signed and signatures are not checked (a dry run or evaluate without the key).
type Keys struct {
	Current, Previous []byte
}

// MinKeyBytes is the shortest signing key accepted.
const MinKeyBytes = 32

// ParseKey reads a signing key written as hex, e.g. by `openssl rand -hex 32`.
func ParseKey(hexKey string) ([]byte, error) {
	k, err := hex.DecodeString(strings.TrimSpace(hexKey))
	if err != nil {
		return nil, errors.New("it is not hex: make one with `openssl rand -hex 32`")
	}
	if len(k) < MinKeyBytes {
		return nil, fmt.Errorf("it is %d bytes, at least %d are needed: make one with `openssl rand -hex 32`", len(k), MinKeyBytes)
	}
	return k, nil
}

// enabled reports whether signatures are made and checked.
func (k Keys) enabled() bool { return len(k.Current) > 0 }

func mac(key []byte, parts ...string) []byte {
	h := hmac.New(sha256.New, key)
	for _, p := range parts {
		fmt.Fprintf(h, "%d:%s\n", len(p), p)
	}
	return h.Sum(nil)
}

// sign returns the signature of parts under the current key.
func (k Keys) sign(parts ...string) string {
	return base64.RawURLEncoding.EncodeToString(mac(k.Current, parts...))
}

// verify checks a signature under the current key, then the previous one.
func (k Keys) verify(sig string, parts ...string) bool {
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil {
		return false
	}
	for _, key := range [][]byte{k.Current, k.Previous} {
		if len(key) > 0 && hmac.Equal(got, mac(key, parts...)) {
			return true
		}
	}
	return false
}

const sigField = `,"sig":"`

// Encode writes the record as the modelgate.record value, signed for model and version.
// The signature covers the exact bytes before it, the model's name among them.
func (k Keys) Encode(model, version string, r Record) string {
	r.V, r.Model = recordVersion, model
	b, _ := json.Marshal(r) // a struct of strings and numbers: never fails
	body := string(b[:len(b)-1])
	if !k.enabled() {
		return body + `}`
	}
	return body + sigField + k.sign("modelgate.record", model, version, body) + `"}`
}

// Verdict is what checking a modelgate.record value found.
type Verdict string

// Verdicts.
const (
	RecordValid     Verdict = "valid"
	RecordMissing   Verdict = "missing"       // no record tag, or an empty one
	RecordMalformed Verdict = "malformed"     // not a record
	RecordBadSig    Verdict = "bad_signature" // unsigned, or not signed by our key for this version
	RecordUnchecked Verdict = "unchecked"     // no key: read as it is
)

// Decode reads and verifies a modelgate.record value of a version. The signature is
// checked for the model the record names, which may differ from model when the model
// was renamed (or the record copied from another model: the caller tells the two apart).
func (k Keys) Decode(model, version, value string) (Record, Verdict) {
	if strings.TrimSpace(value) == "" {
		return Record{}, RecordMissing
	}
	var r Record
	dec := json.NewDecoder(strings.NewReader(value))
	if err := dec.Decode(&r); err != nil || r.V == 0 || r.Status == "" {
		return Record{}, RecordMalformed
	}
	if !k.enabled() {
		return r, RecordUnchecked
	}
	i := strings.LastIndex(value, sigField)
	if i < 0 || !strings.HasSuffix(value, `"}`) {
		return r, RecordBadSig
	}
	body, sig := value[:i], value[i+len(sigField):len(value)-2]
	if !k.verify(sig, "modelgate.record", cmpOr(r.Model, model), version, body) {
		return r, RecordBadSig
	}
	return r, RecordValid
}

// Of reads a version's record and reports whether it can be trusted as it stands: it
// verifies, it is this model's, and the status tag is its status.
func (k Keys) Of(mv mlflow.ModelVersion) (Record, bool) {
	rec, v := k.Decode(mv.Name, mv.Version, mv.Tags[TagRecord])
	return rec, (v == RecordValid || v == RecordUnchecked) && rec.Model == mv.Name && string(rec.Status) == mv.Tags[TagStatus]
}

// time returns At as a time (zero when unset or malformed).
func (r Record) time() time.Time {
	t, _ := time.Parse(time.RFC3339, r.At)
	return t
}

// stagedAt returns when the version entered its rollout stage.
func (r Record) stagedAt() time.Time {
	t, _ := time.Parse(time.RFC3339, r.StagedAt)
	return t
}

// requested returns when the open review was requested.
func (r Record) requested() time.Time {
	t, _ := time.Parse(time.RFC3339, r.Requested)
	return t
}

// compactJSON removes insignificant space, so a record read back compares equal.
func compactJSON(s string) string {
	var b bytes.Buffer
	if json.Compact(&b, []byte(s)) != nil {
		return s
	}
	return b.String()
}
