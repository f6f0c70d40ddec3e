package transitions

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/modelgate/modelgate/mlflow"
)

// Audit events: one MLflow run each in the audit experiment.
const (
	EventDecided            = "decided"             // the checks decided: rejected, or approved without a promotion
	EventReviewRequested    = "review_requested"    // put up for review
	EventVoteCounted        = "vote_counted"        // an approval or rejection counted
	EventVoteSetAside       = "vote_set_aside"      // a vote cast on earlier evidence, set aside
	EventPromoted           = "promoted"            // took its alias or stage
	EventSuperseded         = "superseded"          // lost its alias or stage (to a newer promotion, or by hand)
	EventRolledBack         = "rolled_back"         // gave its alias or stage back
	EventExpired            = "expired"             // review expired
	EventOverridden         = "overridden"          // promoted by an overrider despite failed checks
	EventTampered           = "tampered"            // a forged or replayed state, detected and undone
	EventReevaluated        = "reevaluated"         // judged again on request
	EventMigrated           = "migrated"            // a v1-decided version given a signed record
	EventReinstated         = "reinstated"          // took its target again (given back by a rollback, or moved back by hand)
	EventRenamed            = "renamed"             // its record signed again under the model's new name
	EventRecertificationDue = "recertification_due" // its approval is older than recertify_after
	EventStaged             = "staged"              // took a rollout stage's alias
	EventRecertified        = "recertified"         // approved again after its re-certification fell due
)

// Tags of an audit run. The run's name is "<model>/<version> <event>" and its start
// time the event's time.
const (
	auditEvent    = "modelgate.event"
	auditModel    = "modelgate.model"
	auditVersion  = "modelgate.version"
	auditGate     = "modelgate.gate"
	auditStatus   = "modelgate.status"
	auditActor    = "modelgate.actor"
	auditTarget   = "modelgate.target"
	auditFrom     = "modelgate.from_version"
	auditTo       = "modelgate.to_version"
	auditReason   = "modelgate.reason"
	auditEvidence = "modelgate.evidence_digest"
	auditPolicy   = "modelgate.policy_digest"
	auditID       = "modelgate.event_id"
	auditSeq      = "modelgate.seq"
	auditRecord   = "modelgate.record"
	auditSig      = "modelgate.sig"
	// auditNotify names the notification the event calls for; auditNotified is set on
	// the run once it went out. The audit trail is the notifications' outbox: what a crash
	// or a failover left unsent is sent by the next process (the only tag outside the
	// signature, since it is set afterwards).
	auditNotify   = "modelgate.notify"
	auditNotified = "modelgate.notified"
)

// ActorHand names a person whose change modelgate saw afterwards (MLflow records no
// author for an alias move).
const ActorHand = "hand"

// maxAuditReason bounds the reason kept in an audit run (MLflow run tag values hold
// 5,000 characters on every store).
const maxAuditReason = 4000

// AuditEvent is one event of the audit trail.
type AuditEvent struct {
	Event          string    `json:"event"`
	Model          string    `json:"model"`
	Version        string    `json:"version"`
	Gate           string    `json:"gate,omitempty"`
	Status         Status    `json:"status,omitempty"`
	Actor          string    `json:"actor"`
	Target         string    `json:"target,omitempty"`
	FromVersion    string    `json:"from_version,omitempty"`
	ToVersion      string    `json:"to_version,omitempty"`
	Reason         string    `json:"reason,omitempty"`
	EvidenceDigest string    `json:"evidence_digest,omitempty"`
	PolicyDigest   string    `json:"policy_digest,omitempty"`
	Seq            int64     `json:"seq"`
	At             time.Time `json:"time"`
	// Record is the version's signed record after the event: what a later pass restores
	// when the registry's copy is forged or replayed.
	Record string `json:"-"`
	// Notify is the notification the event calls for ("" for none).
	Notify string `json:"notify,omitempty"`
	// Verified says the run's signature checked out (events read back); Notified that
	// its notification went out.
	Verified bool `json:"verified"`
	Notified bool `json:"-"`
	runID    string
}

// ID is the event's deterministic id: the same event of the same record always gets
// the same id, so a restart never writes it twice.
func (e AuditEvent) ID() string {
	h := sha256.Sum256([]byte(strings.Join([]string{e.Model, e.Version, strconv.FormatInt(e.Seq, 10), e.Event, e.Actor}, "\x00")))
	return hex.EncodeToString(h[:12])
}

// tags renders the event as the tags of its run, signed.
func (e AuditEvent) tags(keys Keys) mlflow.Tags {
	t := mlflow.Tags{
		auditEvent: e.Event, auditModel: e.Model, auditVersion: e.Version, auditActor: e.Actor,
		auditID: e.ID(), auditSeq: strconv.FormatInt(e.Seq, 10),
	}
	for k, v := range map[string]string{auditGate: e.Gate, auditStatus: string(e.Status), auditTarget: e.Target,
		auditFrom: e.FromVersion, auditTo: e.ToVersion, auditReason: clipRunes(e.Reason, maxAuditReason),
		auditEvidence: e.EvidenceDigest, auditPolicy: e.PolicyDigest, auditRecord: e.Record, auditNotify: e.Notify} {
		if v != "" {
			t[k] = v
		}
	}
	if keys.enabled() {
		t[auditSig] = keys.sign(auditSigned(t, e.At)...)
	}
	return t
}

// auditSigned lists what an audit run's signature covers: every modelgate.* tag but
// the signature, and the run's start time.
func auditSigned(t mlflow.Tags, at time.Time) []string {
	parts := []string{"modelgate.audit", strconv.FormatInt(at.UnixMilli(), 10)}
	for _, k := range slices.Sorted(maps.Keys(t)) {
		if k != auditSig && k != auditNotified && strings.HasPrefix(k, "modelgate.") {
			parts = append(parts, k+"="+t[k])
		}
	}
	return parts
}

// auditEventOf reads an audit run back and checks its signature.
func auditEventOf(run mlflow.Run, keys Keys) (AuditEvent, bool) {
	t := run.Data.Tags
	if t[auditEvent] == "" || t[auditModel] == "" || t[auditVersion] == "" {
		return AuditEvent{}, false
	}
	seq, _ := strconv.ParseInt(t[auditSeq], 10, 64)
	at := time.UnixMilli(run.Info.StartTime).UTC()
	e := AuditEvent{Event: t[auditEvent], Model: t[auditModel], Version: t[auditVersion], Gate: t[auditGate],
		Status: Status(t[auditStatus]), Actor: t[auditActor], Target: t[auditTarget], FromVersion: t[auditFrom],
		ToVersion: t[auditTo], Reason: t[auditReason], EvidenceDigest: t[auditEvidence], PolicyDigest: t[auditPolicy],
		Seq: seq, At: at, Record: t[auditRecord], Notify: t[auditNotify], Notified: t[auditNotified] != "", runID: run.Info.RunID}
	e.Verified = !keys.enabled() || (t[auditID] == e.ID() && keys.verify(t[auditSig], auditSigned(t, at)...))
	return e, true
}

// AuditStore is what the audit trail needs from MLflow. *mlflow.Client satisfies it.
type AuditStore interface {
	ExperimentByName(ctx context.Context, name string) (mlflow.Experiment, error)
	CreateExperiment(ctx context.Context, name string) (string, error)
	SetExperimentTag(ctx context.Context, experimentID, key, value string) error
	StartRun(ctx context.Context, spec mlflow.RunSpec) (mlflow.Run, error)
	FinishRun(ctx context.Context, runID string) error
	SetRunTag(ctx context.Context, runID, key, value string) error
	RunPages(ctx context.Context, opts mlflow.SearchRunsOptions) iter.Seq2[[]mlflow.Run, error]
}

// AuditRecorder counts audit writes: result is "written", "existing" (written before,
// skipped) or "failed".
type AuditRecorder interface {
	AuditEvent(event, result string)
}

// AuditOptions configures an Audit.
type AuditOptions struct {
	Store      AuditStore
	Experiment string // MODELGATE_AUDIT_EXPERIMENT
	Keys       Keys
	Logger     *slog.Logger
	Recorder   AuditRecorder // may be nil
	// DryRun logs the events it would write and writes none (nor creates the experiment).
	DryRun bool
}

// Audit is the audit trail: one run per event in an MLflow experiment, signed. It is
// also the reference for a version's current record: the latest verified event of each
// version carries that version's record and sequence number. The daemon loads the whole
// trail once (Load) and keeps its index up to date with what it writes; evaluate and
// history read the runs of one version or model.
type Audit struct {
	opts AuditOptions

	mu           sync.Mutex
	experimentID string
	loaded       bool
	migrated     bool
	latest       map[versionKey]*auditHead
	unsent       map[string]AuditEvent // events whose notification has not gone out, by id
}

// auditHead is what the index keeps of a version: its latest verified event's seq and
// record, and the ids of the events written with that seq.
type auditHead struct {
	seq    int64
	record string
	ids    map[string]bool
}

// NewAudit builds the audit trail.
func NewAudit(opts AuditOptions) *Audit {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Audit{opts: opts, latest: map[versionKey]*auditHead{}, unsent: map[string]AuditEvent{}}
}

// Experiment returns the experiment's name.
func (a *Audit) Experiment() string { return a.opts.Experiment }

// ErrNoAuditTrail is returned when the audit experiment does not exist.
var ErrNoAuditTrail = errors.New("no audit trail")

// experiment finds the audit experiment, creating it when create is set.
func (a *Audit) experiment(ctx context.Context, create bool) (string, error) {
	a.mu.Lock()
	id := a.experimentID
	a.mu.Unlock()
	if id != "" {
		return id, nil
	}
	exp, err := a.opts.Store.ExperimentByName(ctx, a.opts.Experiment)
	switch {
	case err == nil:
		id = exp.ExperimentID
	case mlflow.IsNotFound(err) && create && !a.opts.DryRun:
		id, err = a.opts.Store.CreateExperiment(ctx, a.opts.Experiment)
		if mlflow.IsAlreadyExists(err) { // another replica was quicker
			return a.experiment(ctx, false)
		}
		if err != nil {
			return "", fmt.Errorf("create the audit experiment %s: %w", a.opts.Experiment, err)
		}
		a.opts.Logger.Info("audit experiment created", "experiment", a.opts.Experiment, "experiment_id", id)
	case mlflow.IsNotFound(err):
		return "", fmt.Errorf("%w: experiment %s does not exist", ErrNoAuditTrail, a.opts.Experiment)
	default:
		return "", fmt.Errorf("read the audit experiment %s: %w", a.opts.Experiment, err)
	}
	a.mu.Lock()
	a.experimentID = id
	a.mu.Unlock()
	return id, nil
}

// Load reads the whole trail into the index (the daemon, at start-up and on becoming
// leader): afterwards Latest answers without a request. Runs whose signature fails are
// logged and left out: they are nobody's reference.
func (a *Audit) Load(ctx context.Context) error {
	id, err := a.experiment(ctx, true)
	if errors.Is(err, ErrNoAuditTrail) { // a dry run before the first real one
		a.mu.Lock()
		a.loaded = true
		a.mu.Unlock()
		return nil
	}
	if err != nil {
		return err
	}
	index := map[versionKey]*auditHead{}
	unsent := map[string]AuditEvent{}
	forged := 0
	for page, err := range a.opts.Store.RunPages(ctx, mlflow.SearchRunsOptions{ExperimentIDs: []string{id}, PageSize: 1000}) {
		if err != nil {
			return fmt.Errorf("read the audit trail %s: %w", a.opts.Experiment, err)
		}
		for _, run := range page {
			e, ok := auditEventOf(run, a.opts.Keys)
			if !ok {
				continue
			}
			if !e.Verified {
				forged++
				continue
			}
			note(index, e)
			if e.Notify != "" && !e.Notified {
				unsent[e.ID()] = e
			}
		}
	}
	if forged > 0 {
		a.opts.Logger.Warn("audit runs whose signature does not verify were ignored: edited or invented by hand",
			"experiment", a.opts.Experiment, "runs", forged)
	}
	a.mu.Lock()
	a.latest, a.unsent, a.loaded = index, unsent, true
	a.mu.Unlock()
	return nil
}

// Unsent returns the events whose notification has not gone out (a crash or a failover
// came between the event and its notification), oldest first.
func (a *Audit) Unsent() []AuditEvent {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := slices.Collect(maps.Values(a.unsent))
	slices.SortFunc(out, func(x, y AuditEvent) int { return x.At.Compare(y.At) })
	return out
}

// MarkNotified notes on an event's run that its notification went out.
func (a *Audit) MarkNotified(ctx context.Context, id string) error {
	a.mu.Lock()
	e, ok := a.unsent[id]
	a.mu.Unlock()
	if !ok || a.opts.DryRun {
		return nil
	}
	if err := a.opts.Store.SetRunTag(ctx, e.runID, auditNotified, "true"); err != nil {
		return fmt.Errorf("note the notification of audit event %s as sent: %w", id, err)
	}
	a.mu.Lock()
	delete(a.unsent, id)
	a.mu.Unlock()
	return nil
}

// Missing returns the events of a list the trail does not hold yet.
func (a *Audit) Missing(ctx context.Context, events []AuditEvent) ([]AuditEvent, error) {
	a.mu.Lock()
	loaded := a.loaded
	a.mu.Unlock()
	if !loaded && len(events) > 0 {
		held, err := a.Events(ctx, events[0].Model, events[0].Version)
		if err != nil && !errors.Is(err, ErrNoAuditTrail) {
			return nil, err
		}
		ids := map[string]bool{}
		for _, e := range held {
			if e.Verified {
				ids[e.ID()] = true
			}
		}
		return slices.DeleteFunc(slices.Clone(events), func(e AuditEvent) bool { return ids[e.ID()] }), nil
	}
	return slices.DeleteFunc(slices.Clone(events), a.has), nil
}

func note(index map[versionKey]*auditHead, e AuditEvent) {
	k := versionKey{e.Model, e.Version}
	h := index[k]
	switch {
	case h == nil || e.Seq > h.seq:
		h = &auditHead{seq: e.Seq, ids: map[string]bool{}}
		index[k] = h
	case e.Seq < h.seq:
		return
	}
	h.ids[e.ID()] = true
	if e.Record != "" {
		h.record = e.Record
	}
}

// Latest returns the sequence number and record of a version's latest verified event,
// and false when the trail has none for it.
func (a *Audit) Latest(ctx context.Context, model, version string) (int64, string, bool, error) {
	a.mu.Lock()
	loaded := a.loaded
	h := a.latest[versionKey{model, version}]
	a.mu.Unlock()
	if !loaded {
		events, err := a.Events(ctx, model, version)
		if err != nil && !errors.Is(err, ErrNoAuditTrail) {
			return 0, "", false, err
		}
		index := map[versionKey]*auditHead{}
		for _, e := range events {
			if e.Verified {
				note(index, e)
			}
		}
		h = index[versionKey{model, version}]
	}
	if h == nil {
		return 0, "", false, nil
	}
	return h.seq, h.record, true, nil
}

// isLoaded reports whether Load has read the trail.
func (a *Audit) isLoaded() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.loaded
}

// migratedTag, on the audit experiment, says that every version decided under v1 has
// been migrated: v1 tags appearing afterwards are tampering.
const migratedTag = "modelgate.v1_migrated_at"

// Migrated reports whether the v1 migration is done.
func (a *Audit) Migrated(ctx context.Context) (bool, error) {
	a.mu.Lock()
	done := a.migrated
	a.mu.Unlock()
	if done {
		return true, nil
	}
	exp, err := a.opts.Store.ExperimentByName(ctx, a.opts.Experiment)
	if mlflow.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read the audit experiment %s: %w", a.opts.Experiment, err)
	}
	done = exp.Tags[migratedTag] != ""
	a.mu.Lock()
	a.migrated = done
	a.mu.Unlock()
	return done, nil
}

// MarkMigrated notes that no version carries v1 tags any more.
func (a *Audit) MarkMigrated(ctx context.Context) error {
	if done, err := a.Migrated(ctx); err != nil || done || a.opts.DryRun {
		return err
	}
	id, err := a.experiment(ctx, true)
	if err != nil {
		return err
	}
	if err := a.opts.Store.SetExperimentTag(ctx, id, migratedTag, time.Now().UTC().Format(time.RFC3339)); err != nil {
		return err
	}
	a.mu.Lock()
	a.migrated = true
	a.mu.Unlock()
	return nil
}

// has reports whether the index holds an event already.
func (a *Audit) has(e AuditEvent) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	h := a.latest[versionKey{e.Model, e.Version}]
	return h != nil && (h.seq > e.Seq || (h.seq == e.Seq && h.ids[e.ID()]))
}

// Write writes events, each one run, skipping those already written (by id).
func (a *Audit) Write(ctx context.Context, events []AuditEvent) error {
	for _, e := range events {
		if a.has(e) {
			a.record(e.Event, "existing")
			continue
		}
		if a.opts.DryRun {
			a.opts.Logger.Info("dry-run: would write audit event", "event", e.Event, "model", e.Model, "version", e.Version,
				"actor", e.Actor, "seq", e.Seq)
			continue
		}
		if err := a.write(ctx, e); err != nil {
			a.record(e.Event, "failed")
			return err
		}
		a.record(e.Event, "written")
		a.mu.Lock()
		note(a.latest, e)
		a.mu.Unlock()
	}
	return nil
}

func (a *Audit) write(ctx context.Context, e AuditEvent) error {
	id, err := a.experiment(ctx, true)
	if err != nil {
		return err
	}
	run, err := a.opts.Store.StartRun(ctx, mlflow.RunSpec{ExperimentID: id, RunName: e.Model + "/" + e.Version + " " + e.Event,
		StartTime: e.At, Tags: e.tags(a.opts.Keys)})
	if err != nil {
		return fmt.Errorf("write audit event %s of %s/%s: %w", e.Event, e.Model, e.Version, err)
	}
	if e.Notify != "" {
		e.runID = run.Info.RunID
		a.mu.Lock()
		a.unsent[e.ID()] = e
		a.mu.Unlock()
	}
	if err := a.opts.Store.FinishRun(ctx, run.Info.RunID); err != nil {
		return fmt.Errorf("finish audit run %s: %w", run.Info.RunID, err)
	}
	return nil
}

func (a *Audit) record(event, result string) {
	if a.opts.Recorder != nil {
		a.opts.Recorder.AuditEvent(event, result)
	}
}

// Events returns the events of one version (model's, when version is ""), oldest first.
func (a *Audit) Events(ctx context.Context, model, version string) ([]AuditEvent, error) {
	id, err := a.experiment(ctx, false)
	if err != nil {
		return nil, err
	}
	filter := "tags.`" + auditModel + "` = '" + escapeQuote(model) + "'"
	if version != "" {
		filter += " AND tags.`" + auditVersion + "` = '" + escapeQuote(version) + "'"
	}
	var out []AuditEvent
	for page, err := range a.opts.Store.RunPages(ctx, mlflow.SearchRunsOptions{ExperimentIDs: []string{id}, Filter: filter, PageSize: 1000}) {
		if err != nil {
			return nil, fmt.Errorf("read the audit trail %s: %w", a.opts.Experiment, err)
		}
		for _, run := range page {
			if e, ok := auditEventOf(run, a.opts.Keys); ok {
				out = append(out, e)
			}
		}
	}
	slices.SortStableFunc(out, func(x, y AuditEvent) int {
		if c := x.At.Compare(y.At); c != 0 {
			return c
		}
		return int(x.Seq - y.Seq)
	})
	return out, nil
}

// escapeQuote escapes a value for a single-quoted MLflow search string.
func escapeQuote(s string) string { return strings.ReplaceAll(s, "'", `\'`) }

func clipRunes(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}
