package transitions

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
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
}

// fullScanPageSize is the page size of a full scan, which pages through everything
// since the Since time (an incremental pass usually needs one page of Config.PageSize).
const fullScanPageSize = 1000

// Reconciler watches the registry and applies the policy. It keeps no state that
// matters across restarts: what it remembers (the newest version seen, versions to retry)
// only saves requests, and a new process rebuilds it with a full scan.
type Reconciler struct {
	cfg     Config
	reader  Reader
	writer  Writer
	planner *Planner
	policy  *rules.Policy
	logger  *slog.Logger
	metrics Recorder
	notify  Notifier
	now     func() time.Time

	mu          sync.Mutex
	newest      int64     // creation time (ms) of the newest version seen by a scan
	lastFull    time.Time // when the last full scan started
	lastSuccess time.Time // when the last pass that could read MLflow ended
	retry       map[versionKey]retryState
	nudged      map[versionKey]bool
	pending     map[versionKey]openReview // open reviews as of the last pass
	wake        chan struct{}             // a nudge arrived
}

type versionKey struct{ model, version string }

// retryState backs off versions whose handling failed, so a permanent error (a missing
// permission) is retried at a slowing pace rather than on every pass.
type retryState struct {
	failures int
	next     time.Time
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
	cfg.PageSize = cmp.Or(cfg.PageSize, 200)
	planner, err := NewPlanner(PlannerConfig{Reader: cfg.Reader, Policy: cfg.Policy, Logger: cfg.Logger, Clock: cfg.Clock, Since: cfg.Since})
	if err != nil {
		return nil, err
	}
	return &Reconciler{
		cfg: cfg, reader: cfg.Reader, writer: cfg.Writer, planner: planner, policy: cfg.Policy, logger: cfg.Logger,
		metrics: cfg.Metrics, notify: cfg.Notifier, now: cfg.Clock,
		retry: map[versionKey]retryState{}, nudged: map[versionKey]bool{},
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
// open reviews, rollback and re-evaluation requests, retries), then handle them. It
// returns an error when MLflow could not be read; failures on single versions are
// logged, counted and retried on later passes.
func (r *Reconciler) RunOnce(ctx context.Context) error {
	start := r.now()
	items, pendingBefore, err := r.collect(ctx, start)
	if err != nil {
		r.metrics.Poll(r.now().Sub(start), err)
		return err
	}
	r.settle(r.handle(ctx, items, pendingBefore))
	r.mu.Lock()
	r.lastSuccess = r.now()
	r.mu.Unlock()
	r.metrics.Poll(r.now().Sub(start), nil)
	return nil
}

// collect runs the searches of a pass. An idle incremental pass on any registry makes
// four requests: the newest versions (one page), open reviews, rollback requests and
// re-evaluation requests, the last three filtered by tag on the server.
func (r *Reconciler) collect(ctx context.Context, start time.Time) (map[versionKey]*item, map[versionKey]openReview, error) {
	r.mu.Lock()
	full := r.lastFull.IsZero() || start.Sub(r.lastFull) >= r.cfg.FullScanInterval
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
			return nil, nil, fmt.Errorf("search new versions: %w", err)
		}
		brandNew, below := false, false
		for _, mv := range page {
			if mv.CreationTimestamp < cutoff {
				below = true
				break
			}
			brandNew = brandNew || mv.CreationTimestamp > newest
			seenNewest = max(seenNewest, mv.CreationTimestamp)
			if mv.Tags[TagStatus] == "" || full {
				add(mv, full)
			}
		}
		if below || (!full && !brandNew) {
			break
		}
	}

	pending := map[versionKey]openReview{}
	for _, q := range []struct {
		what, filter string
	}{
		{"open reviews", mlflow.TagFilter(TagStatus, string(StatusPendingReview))},
		{"rollback requests", mlflow.TagPresentFilter(TagRollback) + " AND " + mlflow.TagFilter(TagStatus, string(StatusPromoted))},
		{"re-evaluation requests", mlflow.TagPresentFilter(TagReevaluate)},
	} {
		for page, err := range r.reader.ModelVersionPages(ctx, mlflow.SearchOptions{Filter: q.filter, PageSize: fullScanPageSize}) {
			if err != nil {
				return nil, nil, fmt.Errorf("search %s: %w", q.what, err)
			}
			for _, mv := range page {
				add(mv, full)
				if mv.Tags[TagStatus] == string(StatusPendingReview) {
					pending[versionKey{mv.Name, mv.Version}] = openReviewOf(mv)
				}
			}
		}
	}

	if err := r.readDue(ctx, start, items); err != nil {
		return nil, nil, err
	}

	r.mu.Lock()
	r.newest = seenNewest
	if full {
		r.lastFull = start
	}
	r.mu.Unlock()
	return items, pending, nil
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

func openReviewOf(mv mlflow.ModelVersion) openReview {
	t, _ := time.Parse(time.RFC3339, mv.Tags[TagDecidedAt])
	return openReview{gate: mv.Tags[TagGate], requested: t}
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
			for _, it := range versions {
				if gctx.Err() != nil {
					return nil // shutting down: start nothing new
				}
				k := versionKey{it.mv.Name, it.mv.Version}
				if r.backingOff(k) {
					// Failed recently (a missing permission, say): a search finds it again
					// on every pass, but it waits for its retry time like the rest.
					continue
				}
				status, gate, _ := r.handleItem(gctx, it)
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
func (r *Reconciler) handleItem(ctx context.Context, it *item) (Status, string, error) {
	k := versionKey{it.mv.Name, it.mv.Version}
	status, gate, err := r.handleVersion(ctx, it)
	switch {
	case err == nil:
		r.forget(k)
	case mlflow.IsNotFound(err):
		r.logger.Info("version disappeared while being handled (deleted or renamed)", "model", k.model, "version", k.version)
		r.forget(k)
	default:
		r.logger.Error("version not handled; will retry", "model", k.model, "version", k.version, "error", err)
		r.failed(k)
	}
	return status, gate, err
}

// handleVersion plans what one version needs and applies the plan. It returns the
// status the version ends with ("" when it is unknown: the plan failed) and its gate.
func (r *Reconciler) handleVersion(ctx context.Context, it *item) (Status, string, error) {
	p, err := r.planner.Plan(ctx, it.mv, it.full)
	if err != nil {
		return "", "", err
	}
	if err := r.Apply(ctx, p); err != nil {
		return "", p.Gate, err
	}
	return p.Status, p.Gate, nil
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
