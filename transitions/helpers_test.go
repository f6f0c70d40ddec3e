package transitions

import (
	"context"
	"fmt"
	"iter"
	"log/slog"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelgate/modelgate/mlflow"
	"github.com/modelgate/modelgate/mlflow/mlflowtest"
	"github.com/modelgate/modelgate/rules"
)

var mlflowServer = mlflowtest.NewShared(mlflowtest.Options{})

func TestMain(m *testing.M) {
	code := m.Run()
	mlflowServer.Close()
	verifiedServer.Close()
	os.Exit(code)
}

// basePolicy gates one model: a hard floor, a review target, a fairness limit, one
// approver of two needed, and promotion to the champion alias.
const basePolicy = `
gates:
  - name: gate-MODEL
    models: ["MODEL"]
    checks:
      - {name: floor, metric: accuracy, min: 0.8, on_fail: reject}
      - {name: target, metric: accuracy, min: 0.9, on_fail: review}
      - {name: fair, group_metric: 'recall_sex_(.+)', max_gap: 0.1, on_fail: reject}
    review:
      approvers: [alice, bob]
      min_approvals: 1
      expires_after: 24h
    promote:
      alias: champion
`

// Evidence of versions as a training job logs it.
func good(model string) mlflowtest.Version {
	return mlflowtest.Version{Model: model, Metrics: map[string]float64{"accuracy": 0.95, "recall_sex_f": 0.80, "recall_sex_m": 0.84}}
}

func borderline(model string) mlflowtest.Version {
	v := good(model)
	v.Metrics["accuracy"] = 0.85
	return v
}

func unfair(model string) mlflowtest.Version {
	v := good(model)
	v.Metrics["recall_sex_f"] = 0.5
	return v
}

// fixture is one test's world: its model, its policy, a clock it controls, the
// registry (a real MLflow server, or the in-memory one) and the reconciler under test.
type fixture struct {
	t      *testing.T
	ctx    context.Context
	srv    *mlflowtest.Server // nil on the in-memory registry
	client mlflowtest.Registry
	model  string
	base   string // the model's name when the test started (a test may rename it)
	policy *rules.Policy
	clock  *fakeClock
	reqs   *requestCounter
	notes  *notices
	logs   *strings.Builder
	rec    *Reconciler
	keys   Keys
	audit  *Audit // the daemon's audit trail
	// agree makes every pass check, version by version, that the daemon does exactly
	// what `modelgate evaluate` says it will (agreeingPass).
	agree bool
	// noAudit builds reconcilers without an audit trail (MODELGATE_AUDIT_EXPERIMENT=off).
	noAudit bool
}

// backend is where a scenario runs.
type backend string

const (
	inMemory   backend = "memory"
	realMLflow backend = "mlflow"
)

// scenario runs a test three ways:
//   - "memory": on the in-memory registry, the state machine in milliseconds;
//   - "evaluate": on the in-memory registry again, where every pass first asks for each
//     version the plan `modelgate evaluate` would print, then lets the daemon handle the
//     version and requires it to write and notify exactly that (see agreeingPass);
//   - "mlflow" (unless -short): on a real MLflow server, after which the registry must
//     hold what the in-memory run left (f.state, compared).
//
// Scenarios that count requests opt out of the evaluate run, whose extra reads they would
// count (countsRequests).
func scenario(t *testing.T, policy string, run func(f *fixture), opts ...scenarioOption) {
	t.Helper()
	var o scenarioOptions
	for _, opt := range opts {
		opt(&o)
	}
	var memoryState string
	t.Run(string(inMemory), func(t *testing.T) {
		f := newFixtureOn(t, inMemory, policy)
		run(f)
		memoryState = f.state()
	})
	if !o.countsRequests {
		t.Run("evaluate", func(t *testing.T) {
			f := newFixtureOn(t, inMemory, policy)
			f.agree = true
			run(f)
		})
	}
	t.Run(string(realMLflow), func(t *testing.T) {
		f := newFixtureOn(t, realMLflow, policy)
		run(f)
		if got := f.state(); memoryState != "" && !t.Failed() && got != memoryState {
			t.Errorf("the real MLflow registry ends differently from the in-memory one:\n%s\nin memory:\n%s", got, memoryState)
		}
	})
}

type scenarioOptions struct{ countsRequests bool }

type scenarioOption func(*scenarioOptions)

// countsRequests marks a scenario that counts MLflow requests.
func countsRequests(o *scenarioOptions) { o.countsRequests = true }

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// requestCounter counts MLflow requests by endpoint.
type requestCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (r *requestCounter) ObserveMLflowRequest(endpoint, _ string, _ time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.n == nil {
		r.n = map[string]int{}
	}
	r.n[endpoint]++
}

func (r *requestCounter) snapshot() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]int{}
	for k, v := range r.n {
		out[k] = v
	}
	return out
}

func (r *requestCounter) total() int {
	n := 0
	for _, v := range r.snapshot() {
		n += v
	}
	return n
}

type notices struct {
	mu      sync.Mutex
	list    []Notice
	seen    map[string]bool
	repeats int
}

// Notify records a notice as an idempotent receiver would: a notice whose id it has
// seen already is counted as a repeat, not a new one. It reports the notice sent.
func (n *notices) Notify(x Notice) {
	n.mu.Lock()
	if n.seen == nil {
		n.seen = map[string]bool{}
	}
	if x.ID != "" && n.seen[x.ID] {
		n.repeats++
	} else {
		n.seen[x.ID] = true
		n.list = append(n.list, x)
	}
	n.mu.Unlock()
	if x.Sent != nil {
		x.Sent()
	}
}

func (n *notices) events() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []string
	for _, x := range n.list {
		out = append(out, fmt.Sprintf("%s %s", x.Event, x.Version))
	}
	return out
}

var (
	modelSeq     atomic.Int64
	notNameChars = regexp.MustCompile(`[^a-z0-9]+`)
)

// newFixture gives the test its own model name (so tests sharing a server stay apart)
// on a real MLflow server, and a reconciler with the policy, where MODEL stands for the
// model name.
func newFixture(t *testing.T, policy string) *fixture {
	t.Helper()
	return newFixtureOn(t, realMLflow, policy)
}

func newFixtureOn(t *testing.T, b backend, policy string) *fixture {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	model := fmt.Sprintf("%s-%d", strings.ToLower(strings.TrimPrefix(t.Name(), "Test")), modelSeq.Add(1))
	model = notNameChars.ReplaceAllString(model, "-")
	f := &fixture{t: t, ctx: ctx, model: model, base: model, keys: Keys{Current: testKey}, reqs: &requestCounter{}, notes: &notices{},
		clock: &fakeClock{now: time.Now().UTC()}, logs: &strings.Builder{}}
	switch b {
	case realMLflow:
		f.srv = mlflowServer.Get(t)
		f.client = f.srv.Client(t, mlflow.Options{Observer: f.reqs})
	default:
		mem := mlflowtest.NewMemory()
		mem.Observer = f.reqs
		f.client = mem
	}
	f.setPolicy(policy)
	return f
}

func backendOf(f *fixture) backend {
	if f.real() {
		return realMLflow
	}
	return inMemory
}

// real reports whether the fixture runs on a real MLflow server.
func (f *fixture) real() bool { return f.srv != nil }

// setPolicy (re)builds the reconciler with a policy, as a restart with a new file would.
func (f *fixture) setPolicy(policy string) {
	f.t.Helper()
	p, err := rules.Load("test.yaml", []byte(strings.ReplaceAll(policy, "MODEL", f.model)))
	if err != nil {
		f.t.Fatalf("policy: %v", err)
	}
	f.policy = p
	f.rec = f.reconciler(f.client)
}

// testKey is the signing key of the tests' records.
var testKey = []byte("modelgate-tests-signing-key-0123456789abcdef")

// reconciler builds a reconciler as a (re)started process would: a new audit trail
// index, loaded on its first pass.
func (f *fixture) reconciler(w Writer) *Reconciler {
	f.t.Helper()
	logger := slog.New(slog.NewTextHandler(&syncWriter{b: f.logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var store AuditStore = f.client
	if s, ok := w.(AuditStore); ok { // a writer that stands for the whole process (crash tests)
		store = s
	}
	f.audit = nil
	if !f.noAudit {
		f.audit = NewAudit(AuditOptions{Store: store, Experiment: f.auditExperiment(), Keys: f.keys, Logger: logger})
	}
	rec, err := New(Config{
		Reader: scoped{f.client, f.base}, Writer: w, Policy: f.policy, Notifier: f.notes, Clock: f.clock.Now,
		Logger: logger, Keys: f.keys, Audit: f.audit,
		Since: f.clock.Now().Add(-time.Hour),
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return rec
}

// scoped shows the reconciler only the fixture's own models (the base name, and names
// that start with it, such as a renamed one): tests share one real MLflow server, and a
// reconciler must not act on another test's models (with the fixtures' audit trails apart,
// it would take their records for ones missing their events).
type scoped struct {
	mlflowtest.Registry
	base string
}

func (s scoped) ours(name string) bool { return strings.HasPrefix(name, s.base) }

func (s scoped) ModelVersionPages(ctx context.Context, opts mlflow.SearchOptions) iter.Seq2[[]mlflow.ModelVersion, error] {
	return func(yield func([]mlflow.ModelVersion, error) bool) {
		for page, err := range s.Registry.ModelVersionPages(ctx, opts) {
			if !yield(slices.DeleteFunc(page, func(mv mlflow.ModelVersion) bool { return !s.ours(mv.Name) }), err) {
				return
			}
		}
	}
}

func (s scoped) RegisteredModelPages(ctx context.Context, opts mlflow.SearchOptions) iter.Seq2[[]mlflow.RegisteredModel, error] {
	return func(yield func([]mlflow.RegisteredModel, error) bool) {
		for page, err := range s.Registry.RegisteredModelPages(ctx, opts) {
			if !yield(slices.DeleteFunc(page, func(rm mlflow.RegisteredModel) bool { return !s.ours(rm.Name) }), err) {
				return
			}
		}
	}
}

// auditExperiment is the fixture's own audit experiment (tests share a server).
func (f *fixture) auditExperiment() string { return "modelgate-audit-" + f.base }

// evaluateAudit is the audit trail as `modelgate evaluate` reads it: no index, a search
// per version.
func (f *fixture) evaluateAudit() *Audit {
	return NewAudit(AuditOptions{Store: f.client, Experiment: f.auditExperiment(), Keys: f.keys})
}

// record returns a version's record, which must verify.
func (f *fixture) record(version string) Record {
	f.t.Helper()
	mv := f.get(version)
	rec, v := f.keys.Decode(f.model, version, mv.Tags[TagRecord])
	if v != RecordValid {
		f.t.Fatalf("version %s: record %s: %q", version, v, mv.Tags[TagRecord])
	}
	return rec
}

type syncWriter struct {
	mu sync.Mutex
	b  *strings.Builder
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (f *fixture) create(v mlflowtest.Version) mlflow.ModelVersion {
	f.t.Helper()
	mv, err := mlflowtest.CreateVersion(f.ctx, f.client, v)
	if err != nil {
		f.t.Fatalf("create version: %v", err)
	}
	return mv
}

// pass runs one reconcile pass and fails the test on error.
func (f *fixture) pass() {
	f.t.Helper()
	if f.agree {
		f.agreeingPass()
		return
	}
	if err := f.rec.RunOnce(f.ctx); err != nil {
		f.t.Fatalf("RunOnce: %v\n%s", err, f.logs)
	}
}

func (f *fixture) get(version string) mlflow.ModelVersion {
	f.t.Helper()
	mv, err := f.client.GetModelVersion(f.ctx, f.model, version)
	if err != nil {
		f.t.Fatal(err)
	}
	return mv
}

func (f *fixture) status(version string) Status {
	f.t.Helper()
	return Status(f.get(version).Tags[TagStatus])
}

func (f *fixture) wantStatus(version string, want Status) mlflow.ModelVersion {
	f.t.Helper()
	mv := f.get(version)
	if got := Status(mv.Tags[TagStatus]); got != want {
		f.t.Fatalf("version %s: status %q, want %q (summary %q)\nlogs:\n%s", version, got, want, mv.Tags[TagSummary], f.logs)
	}
	return mv
}

func (f *fixture) alias(name string) string {
	f.t.Helper()
	mv, err := f.client.GetModelVersionByAlias(f.ctx, f.model, name)
	if mlflow.IsNotFound(err) {
		return ""
	}
	if err != nil {
		f.t.Fatal(err)
	}
	return mv.Version
}

func (f *fixture) tag(version, key, value string) {
	f.t.Helper()
	if err := f.client.SetModelVersionTag(f.ctx, f.model, version, key, value); err != nil {
		f.t.Fatal(err)
	}
}

// waitUntil polls cond with a generous deadline.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
