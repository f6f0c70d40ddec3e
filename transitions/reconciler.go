package transitions

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/modelgate/modelgate/mlflow"
	"github.com/modelgate/modelgate/rules"
)

// Config configures a Reconciler. Reader, Writer and Policy are required.
type Config struct {
	Reader Reader
	Writer Writer
	Policy *rules.Policy
	Logger *slog.Logger
	// Metrics and Notifier may be nil.
	Metrics  Recorder
	Notifier Notifier
	// Keys sign the records modelgate writes and verify those it reads.
	Keys Keys
	// Audit is the audit trail (nil: off). It is also the reference that tells a replayed
	// record from the current one.
	Audit *Audit
	// Clock returns the current time (tests inject one to expire reviews).
	Clock func() time.Time
	// Concurrency bounds how many models are worked on at once (default 8). A model's
	// own versions are handled one after the other, oldest first, so that promotions
	// and baselines follow the order the versions were registered in.
	Concurrency int
	// Since: versions created before it are not gated unless they carry
	// modelgate.reevaluate.
	Since time.Time
	// PollInterval is the time between passes in Run (default 30s).
	PollInterval time.Duration
	// FullScanInterval is the time between full scans, the safety net behind the cheap
	// incremental passes (default 10m). The first pass is always a full scan.
	FullScanInterval time.Duration
	// Lookback is how far before the newest version seen an incremental pass looks
	// again on its first page, for versions whose creation committed after a newer one's
	// (default 30s). An idle pass reads one page whatever the registry holds.
	Lookback time.Duration
	// WriteTimeout bounds the writes for one version once started; they are not cut by
	// shutdown, so a version is never left half-written by a SIGTERM (default 30s).
	WriteTimeout time.Duration
	// PageSize is the page size of an incremental pass (default 200; a full scan uses
	// 1,000).
	PageSize int
	// Debounce is how long Run waits after a nudge for more before it acts, so a burst
	// of webhook events for one version (created, then several tags) leads to one
	// evaluation (default 100ms).
	Debounce time.Duration
	// RecheckAfter is when a version with a vote that modelgate-auth had no record of
	// yet is looked at again, once per set of such votes (default 2s): MLflow may deliver
	// the webhook before the plugin has committed its record.
	RecheckAfter time.Duration
}

// fullScanPageSize is the page size of a full scan, which pages through everything
// since the Since time (an incremental pass usually needs one page of Config.PageSize).
const fullScanPageSize = 1000

// Reconciler watches the registry and applies the policy. It keeps no state that
// matters across restarts: what it remembers (the newest version seen, versions to retry,
// who holds each target) only saves requests, and a new process rebuilds it with a full
// scan.
type Reconciler struct {
	cfg     Config
	reader  Reader
	writer  Writer
	planner *Planner
	audit   *Audit
	policy  *rules.Policy
	logger  *slog.Logger
	metrics Recorder
	notify  Notifier
	now     func() time.Time

	mu          sync.Mutex
	newest      int64     // creation time (ms) of the newest version seen by a scan
	lastFull    time.Time // when the last full scan started
	lastSuccess time.Time // when the last pass that could read MLflow ended
	halted      error     // most records failed verification: no writes until a full scan passes
	retry       map[versionKey]retryState
	nudged      map[versionKey]bool
	rechecked   map[versionKey]string     // the unrecorded votes a recheck was scheduled for
	pending     map[versionKey]openReview // open reviews as of the last pass
	holders     map[targetKey]string      // who holds each gated target, by modelgate's records
	wake        chan struct{}             // a nudge arrived
}

type versionKey struct{ model, version string }

// targetKey is a promotion target of a model: alias:champion, stage:Production.
type targetKey struct{ model, target string }

// retryState backs off versions whose handling failed, so a permanent error (a missing
// permission) is retried at a slowing pace rather than on every pass. A write MLflow
// refused as invalid (400) fails the same way until the version changes: such a version
// is parked, with a fingerprint of its tags and description, and left alone until they
// change.
type retryState struct {
	failures int
	next     time.Time
	parked   string
}

// New builds a reconciler.
func New(cfg Config) (*Reconciler, error) {
	switch {
	case cfg.Reader == nil || cfg.Writer == nil:
		return nil, errors.New("transitions: Reader and Writer are required")
	case cfg.Policy == nil:
		return nil, errors.New("transitions: Policy is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Metrics == nil {
		cfg.Metrics = nopRecorder{}
	}
	if cfg.Notifier == nil {
		cfg.Notifier = nopNotifier{}
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	cfg.Concurrency = cmp.Or(cfg.Concurrency, 8)
	cfg.PollInterval = cmp.Or(cfg.PollInterval, 30*time.Second)
	cfg.FullScanInterval = cmp.Or(cfg.FullScanInterval, 10*time.Minute)
	cfg.Lookback = cmp.Or(cfg.Lookback, 30*time.Second)
	cfg.WriteTimeout = cmp.Or(cfg.WriteTimeout, 30*time.Second)
	cfg.Debounce = cmp.Or(cfg.Debounce, 100*time.Millisecond)
	cfg.RecheckAfter = cmp.Or(cfg.RecheckAfter, 2*time.Second)
	cfg.PageSize = cmp.Or(cfg.PageSize, 200)
	pc := PlannerConfig{Reader: cfg.Reader, Policy: cfg.Policy, Logger: cfg.Logger, Clock: cfg.Clock, Since: cfg.Since, Keys: cfg.Keys}
	if cfg.Audit != nil {
		pc.Audit = cfg.Audit
	}
	planner, err := NewPlanner(pc)
	if err != nil {
		return nil, err
	}
	return &Reconciler{
		cfg: cfg, reader: cfg.Reader, writer: cfg.Writer, planner: planner, audit: cfg.Audit, policy: cfg.Policy,
		logger: cfg.Logger, metrics: cfg.Metrics, notify: cfg.Notifier, now: cfg.Clock,
		retry: map[versionKey]retryState{}, nudged: map[versionKey]bool{}, holders: map[targetKey]string{}, rechecked: map[versionKey]string{},
		pending: map[versionKey]openReview{}, wake: make(chan struct{}, 1),
	}, nil
}

// Run reconciles every PollInterval, and shortly after each nudge, until ctx ends. A
// pass that fails is logged and counted, and the loop goes on. Passes never overlap, so
// no version is handled by two at once.
func (r *Reconciler) Run(ctx context.Context) error {
	ticker := time.NewTicker(r.cfg.PollInterval)
	defer ticker.Stop()
	pass := func(run func(context.Context) error) {
		if err := run(ctx); err != nil && ctx.Err() == nil {
			r.logger.Error("reconcile pass failed", "error", err)
		}
	}
	pass(r.RunOnce)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
			pass(r.RunOnce)
		case <-r.wake:
			select { // gather the rest of a burst
			case <-ctx.Done():
				return nil
			case <-time.After(r.cfg.Debounce):
			}
			pass(r.RunNudged)
		}
	}
}

// RunNudged handles only the versions nudged since the last pass (and retries that are
// due): no search, one read per version.
func (r *Reconciler) RunNudged(ctx context.Context) error {
	if err := r.Halted(); err != nil {
		return err
	}
	if r.audit != nil && !r.audit.isLoaded() {
		if err := r.audit.Load(ctx); err != nil {
			return err
		}
		r.resendUnsent()
	}
	items := map[versionKey]*item{}
	if err := r.readDue(ctx, r.now(), items); err != nil {
		return err
	}
	if len(items) == 0 {
		return nil
	}
	r.mu.Lock()
	pending := maps.Clone(r.pending)
	r.mu.Unlock()
	r.settle(r.handle(ctx, items, pending))
	return nil
}

// settle records the open reviews a pass ended with.
func (r *Reconciler) settle(pending map[versionKey]openReview) {
	r.mu.Lock()
	r.pending = pending
	r.mu.Unlock()
	for gate, p := range r.pendingByGate(pending) {
		r.metrics.ReviewsPending(gate, p.Count, p.Oldest)
	}
}

// item is a version to look at in this pass, with the reasons it was found for.
type item struct {
	mv   mlflow.ModelVersion
	full bool // found by a full scan: re-read a pending version's evidence
}

// RunOnce is one reconcile pass: find the versions that need something (new versions,
// open reviews, requests, targets moved, retries), then handle them. It returns an error
// when MLflow could not be read, or when most records fail verification (a wrong or lost
// signing key: modelgate then writes nothing); failures on single versions are logged,
// counted and retried on later passes.
func (r *Reconciler) RunOnce(ctx context.Context) error {
	start := r.now()
	if r.audit != nil && !r.audit.isLoaded() {
		if err := r.audit.Load(ctx); err != nil {
			r.metrics.Poll(r.now().Sub(start), err)
			return err
		}
		r.resendUnsent()
	}
	items, pendingBefore, full, err := r.collect(ctx, start)
	if err != nil {
		r.metrics.Poll(r.now().Sub(start), err)
		return err
	}
	if full {
		if err := r.checkIntegrity(items); err != nil {
			r.metrics.Poll(r.now().Sub(start), nil)
			return err
		}
	} else if err := r.Halted(); err != nil {
		return err
	}
	r.settle(r.handle(ctx, items, pendingBefore))
	r.afterPass(ctx, items, full)
	r.mu.Lock()
	r.lastSuccess = r.now()
	r.mu.Unlock()
	r.metrics.Poll(r.now().Sub(start), nil)
	return nil
}

// ErrIntegrity says most records failed verification in a full scan: the signing key is
// wrong or was lost. modelgate then writes nothing rather than re-judging the registry.
var ErrIntegrity = errors.New("most modelgate.record tags fail verification")

// minRecordsForHalt is how many records a full scan must check before their failing to
// verify can mean a wrong key rather than a few forged ones.
const minRecordsForHalt = 4

// checkIntegrity counts, over a full scan's versions, the records that fail to verify:
// when most do, the key is wrong (or lost), and judging the registry afresh would undo
// every decision. The reconciler halts its writes and says so until a full scan passes.
func (r *Reconciler) checkIntegrity(items map[versionKey]*item) error {
	checked, bad := 0, 0
	for _, it := range items {
		if it.mv.IsPrompt() || it.mv.Tags[TagRecord] == "" {
			continue
		}
		checked++
		if _, v := r.planner.keys.Decode(it.mv.Name, it.mv.Version, it.mv.Tags[TagRecord]); v == RecordBadSig || v == RecordMalformed {
			bad++
		}
	}
	var err error
	if checked >= minRecordsForHalt && bad*2 > checked {
		err = fmt.Errorf("%w (%d of %d): MODELGATE_SIGNING_KEY is not the key that signed them (set it back, or put the old key in MODELGATE_SIGNING_KEY_PREVIOUS); nothing is written until a full scan verifies", ErrIntegrity, bad, checked)
	}
	r.mu.Lock()
	was := r.halted
	r.halted = err
	r.mu.Unlock()
	r.metrics.Halted(err != nil)
	switch {
	case err != nil && was == nil:
		r.logger.Error("writes halted: most records fail verification", "records", checked, "failing", bad, "error", err)
	case err == nil && was != nil:
		r.logger.Info("records verify again: writes resume", "records", checked)
	}
	return err
}

// Halted returns why the reconciler writes nothing, or nil.
func (r *Reconciler) Halted() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.halted
}

// collect runs the searches of a pass. An idle incremental pass makes four requests plus
// one per overrider name in the policy: the newest versions (one page), open reviews,
// rollback requests, re-evaluation requests and overrides, all but the first filtered by
// tag on the server; with a protected target, one more reads every model's aliases and
// stages. A full scan also reads back to Since, every version holding a target, and any
// version still carrying v1 tags.
func (r *Reconciler) collect(ctx context.Context, start time.Time) (map[versionKey]*item, map[versionKey]openReview, bool, error) {
	r.mu.Lock()
	full := r.lastFull.IsZero() || start.Sub(r.lastFull) >= r.cfg.FullScanInterval || r.halted != nil
	newest := r.newest
	r.mu.Unlock()

	items := map[versionKey]*item{}
	add := func(mv mlflow.ModelVersion, full bool) {
		k := versionKey{mv.Name, mv.Version}
		if it, ok := items[k]; ok {
			it.full = it.full || full
			return
		}
		items[k] = &item{mv: mv, full: full}
	}

	// New versions, newest first. A full scan goes down to the Since time. An incremental
	// pass reads the first page, and the next ones only while a page brings versions newer
	// than any seen before (a burst of registrations), down to Lookback before the newest
	// seen: the versions of that first page whose creation committed out of order are
	// caught; anything older that the offset paging of MLflow may skip (rows added or
	// deleted while paging) is caught by the next full scan, and at once by webhooks.
	cutoff := r.cfg.Since.UnixMilli()
	pageSize := fullScanPageSize
	if !full {
		cutoff = max(cutoff, newest-r.cfg.Lookback.Milliseconds())
		pageSize = r.cfg.PageSize
	}
	seenNewest := newest
	opts := mlflow.SearchOptions{OrderBy: []string{"creation_timestamp DESC"}, PageSize: pageSize}
	for page, err := range r.reader.ModelVersionPages(ctx, opts) {
		if err != nil {
			return nil, nil, full, fmt.Errorf("search new versions: %w", err)
		}
		brandNew, below := false, false
		for _, mv := range page {
			if mv.CreationTimestamp < cutoff {
				below = true
				break
			}
			brandNew = brandNew || mv.CreationTimestamp > newest
			seenNewest = max(seenNewest, mv.CreationTimestamp)
			if full || !r.settled(mv) {
				add(mv, full)
			}
		}
		if below || (!full && !brandNew) {
			break
		}
	}

	pending := map[versionKey]openReview{}
	type query struct{ what, filter string }
	queries := []query{
		{"open reviews", mlflow.TagFilter(TagStatus, string(StatusPendingReview))},
		{"rollback requests", mlflow.TagPresentFilter(TagRollback)},
		{"re-evaluation requests", mlflow.TagPresentFilter(TagReevaluate)},
	}
	for _, name := range r.overriders() {
		queries = append(queries, query{"overrides by " + name, mlflow.TagPresentFilter(rules.OverridePrefix + name)})
	}
	rollout, recertify := r.lifecycles()
	switch {
	case full:
		for _, s := range []Status{StatusPromoted, StatusStaged, StatusRecertificationDue, StatusSuperseded} {
			queries = append(queries, query{"versions " + string(s), mlflow.TagFilter(TagStatus, string(s))})
		}
		queries = append(queries, query{"versions decided under v1", mlflow.TagPresentFilter(v1Tags[0])})
	default:
		// A constant number of searches, whatever the registry's size: staged versions
		// (their soak may be over), versions whose re-certification waits for votes.
		if rollout {
			queries = append(queries, query{"versions staged", mlflow.TagFilter(TagStatus, string(StatusStaged))})
		}
		if recertify {
			queries = append(queries, query{"versions recertification_due", mlflow.TagFilter(TagStatus, string(StatusRecertificationDue))})
		}
	}
	staged, due := map[string]int{}, map[string]int{}
	for _, q := range queries {
		for page, err := range r.reader.ModelVersionPages(ctx, mlflow.SearchOptions{Filter: q.filter, PageSize: fullScanPageSize}) {
			if err != nil {
				return nil, nil, full, fmt.Errorf("search %s: %w", q.what, err)
			}
			for _, mv := range page {
				add(mv, full)
				switch Status(mv.Tags[TagStatus]) {
				case StatusPendingReview:
					pending[versionKey{mv.Name, mv.Version}] = r.openReviewOf(mv)
				case StatusStaged:
					staged[r.gateOf(mv)]++
				case StatusRecertificationDue:
					due[r.gateOf(mv)]++
				}
			}
		}
	}
	for _, g := range r.policy.Gates {
		if len(g.Promote.Rollout) > 0 || g.Review.RecertifyAfter > 0 {
			r.metrics.Lifecycle(g.Name, staged[g.Name], due[g.Name])
		}
	}
	if full {
		r.believe(items)
	}
	if full || r.protects() {
		if err := r.watchTargets(ctx); err != nil {
			return nil, nil, full, err
		}
	}

	if err := r.readDue(ctx, start, items); err != nil {
		return nil, nil, full, err
	}

	r.mu.Lock()
	r.newest = seenNewest
	if full {
		r.lastFull = start
	}
	r.mu.Unlock()
	return items, pending, full, nil
}

// settled reports, from its tags alone, whether a version needs nothing: a record that
// verifies and a status that matches it (an incremental pass skips such versions).
func (r *Reconciler) settled(mv mlflow.ModelVersion) bool {
	if mv.IsPrompt() {
		return true
	}
	if mv.Tags[TagStatus] == "" && mv.Tags[TagRecord] == "" {
		return false
	}
	_, ok := r.planner.keys.Of(mv)
	return ok && !slices.ContainsFunc(v1Tags, func(k string) bool { return hasTag(mv, k) })
}

// overriders lists every overrider name of the policy, each searched for once a pass.
func (r *Reconciler) overriders() []string {
	var out []string
	for _, g := range r.policy.Gates {
		for _, o := range g.Review.Overriders {
			if !slices.ContainsFunc(out, func(x string) bool { return strings.EqualFold(x, o) }) {
				out = append(out, o)
			}
		}
	}
	return out
}

// lifecycles reports whether some gate has a staged rollout, and some re-certifies.
func (r *Reconciler) lifecycles() (rollout, recertify bool) {
	for _, g := range r.policy.Gates {
		rollout = rollout || len(g.Promote.Rollout) > 0
		recertify = recertify || g.Review.RecertifyAfter > 0
	}
	return rollout, recertify
}

// gateOf is the gate a version's record names ("" when it has none it can read).
func (r *Reconciler) gateOf(mv mlflow.ModelVersion) string {
	rec, _ := r.planner.keys.Decode(mv.Name, mv.Version, mv.Tags[TagRecord])
	return rec.Gate
}

// protects reports whether some gate protects its target (then every pass watches the
// aliases and stages; otherwise full scans do).
func (r *Reconciler) protects() bool {
	return slices.ContainsFunc(r.policy.Gates, func(g *rules.Gate) bool { return g.Promote.Protect })
}

// believe records who holds each target by the verified records of a full scan.
func (r *Reconciler) believe(items map[versionKey]*item) {
	holders := map[targetKey]string{}
	for _, it := range items {
		if rec, ok := r.planner.keys.Of(it.mv); ok && holdsTarget(rec.Status) {
			k := targetKey{it.mv.Name, rec.PromotedTo}
			if cur, ok := holders[k]; !ok || mlflow.CompareVersions(it.mv.Version, cur) > 0 {
				holders[k] = it.mv.Version
			}
		}
	}
	r.mu.Lock()
	r.holders = holders
	r.mu.Unlock()
}

// watchTargets reads every registered model's aliases and stages (one request per 1,000
// models) and nudges the versions whose target moved from where modelgate's records put
// it: the version that held it (superseded by hand, or moved back under protect) and the
// version that holds it now.
func (r *Reconciler) watchTargets(ctx context.Context) error {
	r.mu.Lock()
	believed := maps.Clone(r.holders)
	r.mu.Unlock()
	if len(believed) == 0 {
		return nil
	}
	for page, err := range r.reader.RegisteredModelPages(ctx, mlflow.SearchOptions{PageSize: 1000}) {
		if err != nil {
			return fmt.Errorf("search registered models (aliases): %w", err)
		}
		for _, rm := range page {
			for k, version := range believed {
				if k.model != rm.Name {
					continue
				}
				if now := holderIn(rm, k.target); now != version {
					r.mu.Lock()
					r.nudged[versionKey{k.model, version}] = true
					if now != "" {
						r.nudged[versionKey{k.model, now}] = true
					}
					r.mu.Unlock()
				}
			}
		}
	}
	return nil
}

// holderIn reads the holder of a target from a registered model: its aliases, or the
// newest version in a stage.
func holderIn(rm mlflow.RegisteredModel, target string) string {
	t, ok := parseTarget(target)
	switch {
	case !ok:
		return ""
	case t.Alias != "":
		v, _ := rm.AliasVersion(t.Alias)
		return v
	}
	best := ""
	for _, mv := range rm.LatestVersions {
		if mv.CurrentStage == t.Stage && mlflow.CompareVersions(mv.Version, best) > 0 {
			best = mv.Version
		}
	}
	return best
}

// afterPass does what a pass does once its versions are handled: after a full scan, note
// the v1 migration done.
func (r *Reconciler) afterPass(ctx context.Context, items map[versionKey]*item, full bool) {
	if full && r.audit != nil {
		r.markMigrated(ctx, items)
	}
}

// markMigrated notes on the audit experiment that no version carries v1 tags any more:
// from then on, v1 tags that appear are tampering, not a migration.
func (r *Reconciler) markMigrated(ctx context.Context, items map[versionKey]*item) {
	for _, it := range items {
		if slices.ContainsFunc(v1Tags, func(k string) bool { return hasTag(it.mv, k) }) {
			if _, failing := r.retryState(versionKey{it.mv.Name, it.mv.Version}); failing {
				return
			}
		}
	}
	if err := r.audit.MarkMigrated(ctx); err != nil {
		r.logger.Warn("could not note the v1 migration on the audit experiment; it is tried again on the next full scan", "error", err)
	}
}

func (r *Reconciler) retryState(k versionKey) (retryState, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.retry[k]
	return s, ok
}

// readDue reads, one by one, the versions to retry and those a webhook pointed at.
func (r *Reconciler) readDue(ctx context.Context, now time.Time, items map[versionKey]*item) error {
	keys := r.due(now)
	for i, k := range keys {
		if _, ok := items[k]; ok {
			continue
		}
		mv, err := r.reader.GetModelVersion(ctx, k.model, k.version)
		switch {
		case mlflow.IsNotFound(err):
			r.forget(k)
		case err != nil:
			// Keep what is left for the next scheduled pass (without waking Run again:
			// MLflow is failing, and a tight retry loop would not help it).
			r.mu.Lock()
			for _, rest := range keys[i:] {
				r.nudged[rest] = true
			}
			r.mu.Unlock()
			return fmt.Errorf("read %s/%s: %w", k.model, k.version, err)
		default:
			items[k] = &item{mv: mv}
		}
	}
	return nil
}

// due returns the versions to read again this pass: failed ones whose backoff is over,
// and nudged ones.
func (r *Reconciler) due(now time.Time) []versionKey {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []versionKey
	for k, s := range r.retry {
		if !now.Before(s.next) {
			out = append(out, k)
		}
	}
	for k := range r.nudged {
		out = append(out, k)
		delete(r.nudged, k)
	}
	return out
}

// backingOff reports whether a version failed recently and its retry time has not come.
func (r *Reconciler) backingOff(k versionKey) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.retry[k]
	return ok && r.now().Before(s.next)
}

func (r *Reconciler) forget(k versionKey) {
	r.mu.Lock()
	delete(r.retry, k)
	r.mu.Unlock()
}

// failed schedules a retry with exponential backoff, from one poll interval up to the
// full-scan interval.
func (r *Reconciler) failed(k versionKey) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.retry[k]
	s.failures++
	wait := r.cfg.PollInterval << min(s.failures-1, 10)
	s.next = r.now().Add(min(wait, r.cfg.FullScanInterval))
	r.retry[k] = s
}

// Nudge asks for a version to be looked at soon (webhooks call it): Run handles it after
// Debounce, with whatever else was nudged meanwhile.
func (r *Reconciler) Nudge(model, version string) {
	r.mu.Lock()
	r.nudged[versionKey{model, version}] = true
	r.mu.Unlock()
	r.wakeUp()
}

// NudgeAlias asks for the version modelgate's records say holds an alias to be looked
// at soon: a webhook said the alias moved (or was deleted).
func (r *Reconciler) NudgeAlias(model, alias string) {
	r.mu.Lock()
	v, ok := r.holders[targetKey{model, "alias:" + alias}]
	if ok {
		r.nudged[versionKey{model, v}] = true
	}
	r.mu.Unlock()
	if ok {
		r.wakeUp()
	}
}

func (r *Reconciler) wakeUp() {
	select {
	case r.wake <- struct{}{}:
	default: // a pass is already due
	}
}

// openReview is a version waiting for review: its gate and when review was requested.
type openReview struct {
	gate      string
	requested time.Time
}

func (r *Reconciler) openReviewOf(mv mlflow.ModelVersion) openReview {
	rec, _ := r.planner.keys.Decode(mv.Name, mv.Version, mv.Tags[TagRecord])
	return openReview{gate: rec.Gate, requested: rec.requested()}
}

// handle works on the items: models in parallel (bounded), each model's versions in
// order. It returns the versions still pending review.
func (r *Reconciler) handle(ctx context.Context, items map[versionKey]*item, pending map[versionKey]openReview) map[versionKey]openReview {
	byModel := map[string][]*item{}
	for _, it := range items {
		byModel[it.mv.Name] = append(byModel[it.mv.Name], it)
	}
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(r.cfg.Concurrency)
	for _, model := range slices.Sorted(maps.Keys(byModel)) {
		versions := byModel[model]
		slices.SortFunc(versions, func(a, b *item) int { return mlflow.CompareVersions(a.mv.Version, b.mv.Version) })
		g.Go(func() error {
			cache := newModelCache(r.reader)
			planner := r.planner.with(cache)
			for _, it := range versions {
				if gctx.Err() != nil {
					return nil // shutting down: start nothing new
				}
				k := versionKey{it.mv.Name, it.mv.Version}
				if r.parkedAsIs(k, it.mv) {
					continue
				}
				if r.backingOff(k) {
					// Failed recently (a missing permission, say): a search finds it again
					// on every pass, but it waits for its retry time like the rest.
					continue
				}
				status, gate, _ := r.handleItem(gctx, planner, cache, it)
				mu.Lock()
				switch _, known := pending[k]; {
				case status == StatusPendingReview && !known:
					// Requested in this pass; a review that stays open keeps the time the
					// search read (a re-request shows from the next pass on).
					pending[k] = openReview{gate: gate, requested: r.now()}
				case status != "" && status != StatusPendingReview:
					delete(pending, k)
				}
				mu.Unlock()
			}
			return nil
		})
	}
	_ = g.Wait()
	return pending
}

// handleItem handles one version and deals with the outcome: a version that failed is
// logged and retried later with backoff, one that disappeared (deleted or renamed) is
// dropped. It returns what handleVersion returned.
func (r *Reconciler) handleItem(ctx context.Context, planner *Planner, cache *modelCache, it *item) (Status, string, error) {
	k := versionKey{it.mv.Name, it.mv.Version}
	status, gate, err := r.handleVersion(ctx, planner, cache, it)
	switch {
	case err == nil:
		r.forget(k)
	case mlflow.IsNotFound(err):
		r.logger.Info("version disappeared while being handled (deleted or renamed)", "model", k.model, "version", k.version)
		r.forget(k)
	case errors.Is(err, mlflow.ErrInvalidParameter):
		r.logger.Error("version not handled: MLflow refused a write as invalid, and would refuse it again; the version is left alone until its tags or description change",
			"model", k.model, "version", k.version, "error", err)
		r.park(k, it.mv)
	default:
		r.logger.Error("version not handled; will retry", "model", k.model, "version", k.version, "error", err)
		r.failed(k)
	}
	return status, gate, err
}

// fingerprint identifies what a person can change on a version: its tags and its
// description, without what modelgate itself writes (the three state tags and the report
// section, which a partly applied plan may have changed, and whose report carries the
// time it was written).
func fingerprint(mv mlflow.ModelVersion) string {
	h := sha256.New()
	for _, k := range slices.Sorted(maps.Keys(mv.Tags)) {
		switch k {
		case TagStatus, TagSummary, TagRecord:
			continue
		}
		fmt.Fprintf(h, "%q=%q\n", k, mv.Tags[k])
	}
	fmt.Fprintf(h, "%q", userText(mv.Description))
	return hex.EncodeToString(h.Sum(nil))
}

// park leaves a version alone until it changes.
func (r *Reconciler) park(k versionKey, mv mlflow.ModelVersion) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.retry[k]
	s.parked = fingerprint(mv)
	s.next = r.now().Add(r.cfg.FullScanInterval)
	r.retry[k] = s
}

// parkedAsIs reports whether a version is parked and has not changed since.
func (r *Reconciler) parkedAsIs(k versionKey, mv mlflow.ModelVersion) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	s, ok := r.retry[k]
	if !ok || s.parked == "" {
		return false
	}
	if s.parked == fingerprint(mv) {
		return true
	}
	delete(r.retry, k) // it changed: try again now
	return false
}

// handleVersion plans what one version needs, with the model's cache, and applies the
// plan. It returns the status the version ends with ("" when it is unknown: the plan
// failed) and its gate.
func (r *Reconciler) handleVersion(ctx context.Context, planner *Planner, cache *modelCache, it *item) (Status, string, error) {
	p, err := planner.Plan(ctx, it.mv, it.full)
	if err != nil {
		return "", "", err
	}
	if len(p.Writes) > 0 {
		defer cache.forgetAliases()
	}
	if err := r.Apply(ctx, p); err != nil {
		return "", p.Gate, err
	}
	r.track(p)
	r.recheckUnrecorded(p)
	return p.Status, p.Gate, nil
}

// recheckUnrecorded looks at a version again shortly when its review ignored a vote that
// modelgate-auth had no record of yet, once for each set of such votes: a vote is not
// dropped because its record came a moment after its tag, and a forged tag (written
// around MLflow's API) does not keep the reconciler busy.
func (r *Reconciler) recheckUnrecorded(p *Plan) {
	var keys []string
	if p.Report != nil {
		keys = p.Review.Unrecorded()
	}
	k := versionKey{p.Model, p.Version}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(keys) == 0 {
		delete(r.rechecked, k)
		return
	}
	slices.Sort(keys)
	fp := strings.Join(keys, "\x00")
	if r.rechecked[k] == fp {
		return
	}
	r.rechecked[k] = fp
	time.AfterFunc(r.cfg.RecheckAfter, func() { r.Nudge(p.Model, p.Version) })
}

// track keeps the holders map in step with what a plan wrote.
func (r *Reconciler) track(p *Plan) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range p.Events {
		if e.Target == "" {
			continue
		}
		k := targetKey{e.Model, e.Target}
		switch {
		case holdsTarget(e.Status):
			r.holders[k] = e.Version
		case r.holders[k] == e.Version:
			delete(r.holders, k)
			if e.ToVersion != "" && e.Event == EventRolledBack {
				r.holders[k] = e.ToVersion
			}
		}
	}
}

// pendingByGate counts open reviews per gate, listing every gate of the policy so a
// gauge goes back to 0 when its last review closes.
func (r *Reconciler) pendingByGate(pending map[versionKey]openReview) map[string]PendingReviews {
	out := map[string]PendingReviews{}
	for _, g := range r.policy.Gates {
		out[g.Name] = PendingReviews{}
	}
	for _, o := range pending {
		p := out[o.gate]
		p.Count++
		if !o.requested.IsZero() && (p.Oldest.IsZero() || o.requested.Before(p.Oldest)) {
			p.Oldest = o.requested
		}
		out[o.gate] = p
	}
	return out
}

// LastSuccess is when the last pass that could read MLflow ended (zero before the first).
func (r *Reconciler) LastSuccess() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lastSuccess
}
