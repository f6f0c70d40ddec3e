package transitions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"maps"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/modelgate/modelgate/mlflow"
)

var errKilled = errors.New("killed")

// killAfter is a Writer (and the audit trail's store) that lets n writes through and
// then fails every write, as if the process had been killed at that point: nothing after
// the n-th write reaches MLflow, audit runs included.
type killAfter struct {
	w     Writer
	store AuditStore
	mu    sync.Mutex
	n     int
}

func (k *killAfter) StartRun(ctx context.Context, spec mlflow.RunSpec) (mlflow.Run, error) {
	if err := k.allow(); err != nil {
		return mlflow.Run{}, err
	}
	return k.store.StartRun(ctx, spec)
}

func (k *killAfter) FinishRun(ctx context.Context, runID string) error {
	if err := k.allow(); err != nil {
		return err
	}
	return k.store.FinishRun(ctx, runID)
}

func (k *killAfter) SetRunTag(ctx context.Context, runID, key, value string) error {
	if err := k.allow(); err != nil {
		return err
	}
	return k.store.SetRunTag(ctx, runID, key, value)
}

func (k *killAfter) SetExperimentTag(ctx context.Context, id, key, value string) error {
	if err := k.allow(); err != nil {
		return err
	}
	return k.store.SetExperimentTag(ctx, id, key, value)
}

func (k *killAfter) CreateExperiment(ctx context.Context, name string) (string, error) {
	return k.store.CreateExperiment(ctx, name)
}

func (k *killAfter) ExperimentByName(ctx context.Context, name string) (mlflow.Experiment, error) {
	return k.store.ExperimentByName(ctx, name)
}

func (k *killAfter) RunPages(ctx context.Context, opts mlflow.SearchRunsOptions) iter.Seq2[[]mlflow.Run, error] {
	return k.store.RunPages(ctx, opts)
}

func (k *killAfter) allow() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.n <= 0 {
		return errKilled
	}
	k.n--
	return nil
}

func (k *killAfter) SetModelVersionTag(ctx context.Context, name, version, key, value string) error {
	if err := k.allow(); err != nil {
		return err
	}
	return k.w.SetModelVersionTag(ctx, name, version, key, value)
}

func (k *killAfter) DeleteModelVersionTag(ctx context.Context, name, version, key string) error {
	if err := k.allow(); err != nil {
		return err
	}
	return k.w.DeleteModelVersionTag(ctx, name, version, key)
}

func (k *killAfter) UpdateModelVersionDescription(ctx context.Context, name, version, description string) (mlflow.ModelVersion, error) {
	if err := k.allow(); err != nil {
		return mlflow.ModelVersion{}, err
	}
	return k.w.UpdateModelVersionDescription(ctx, name, version, description)
}

func (k *killAfter) SetAlias(ctx context.Context, name, alias, version string) error {
	if err := k.allow(); err != nil {
		return err
	}
	return k.w.SetAlias(ctx, name, alias, version)
}

func (k *killAfter) DeleteAlias(ctx context.Context, name, alias string) error {
	if err := k.allow(); err != nil {
		return err
	}
	return k.w.DeleteAlias(ctx, name, alias)
}

func (k *killAfter) TransitionStage(ctx context.Context, name, version, stage string, archive bool) (mlflow.ModelVersion, error) {
	if err := k.allow(); err != nil {
		return mlflow.ModelVersion{}, err
	}
	return k.w.TransitionStage(ctx, name, version, stage, archive)
}

// crashScenario prepares a model (setup), then does the step that the reconciler is
// killed in the middle of.
type crashScenario struct {
	name   string
	policy string
	setup  func(f *fixture) // run without interruption
	step   func(f *fixture) // what happens before the interrupted pass
}

// TestKillAndRestartAtEachWrite interrupts the reconciler after each write of a pass in
// turn, restarts a fresh one, and requires the registry to end exactly as after an
// uninterrupted pass: same tags, same description (one report section), same aliases and
// stages, and one notification for the step.
func TestKillAndRestartAtEachWrite(t *testing.T) {
	scenarios := []crashScenario{
		{"auto-promotion over a champion", basePolicy,
			func(f *fixture) { f.create(good(f.model)); f.pass() },
			func(f *fixture) { f.create(good(f.model)) }},
		{"approval by a reviewer", basePolicy,
			func(f *fixture) { f.create(good(f.model)); f.pass(); f.create(borderline(f.model)); f.pass() },
			func(f *fixture) { f.tag("2", "modelgate.approve.alice", "ok") }},
		{"rollback", basePolicy,
			func(f *fixture) { f.create(good(f.model)); f.pass(); f.create(good(f.model)); f.pass() },
			func(f *fixture) { f.tag("2", TagRollback, "bad latency") }},
		{"votes set aside when evidence changes", basePolicy,
			func(f *fixture) {
				f.create(borderline(f.model))
				f.pass()
				f.tag("1", "modelgate.approve.mallory", "x")
			},
			func(f *fixture) {
				mv := f.get("1")
				if err := f.client.LogBatch(f.ctx, mv.RunID, []mlflow.Metric{{Key: "accuracy", Value: 0.95, Timestamp: 9e12, Step: 9}}, nil, nil); err != nil {
					f.t.Fatal(err)
				}
				f.tag("1", "modelgate.approve.bob", "yes")
			}},
		{"stage promotion", strings.Replace(basePolicy, "alias: champion", "stage: Production\n      archive_existing: true", 1),
			func(f *fixture) { f.create(good(f.model)); f.pass() },
			func(f *fixture) { f.create(good(f.model)) }},
	}
	for _, sc := range scenarios {
		for _, b := range []backend{inMemory, realMLflow} {
			t.Run(sc.name+"/"+string(b), func(t *testing.T) { killAndRestart(t, b, sc) })
		}
	}
}

// killAndRestart runs one crash scenario on one backend.
func killAndRestart(t *testing.T, b backend, sc crashScenario) {
	// The uninterrupted run, counting its writes.
	ref := newFixtureOn(t, b, sc.policy)
	sc.setup(ref)
	sc.step(ref)
	notesBefore := len(ref.notes.events())
	counter := &killAfter{w: ref.client, store: ref.client, n: 1 << 30}
	ref.rec = ref.reconciler(counter)
	ref.pass()
	writes := 1<<30 - counter.n
	want := ref.state()
	wantNotes := ref.notes.events()[notesBefore:]
	if writes == 0 {
		t.Fatal("the step made no write")
	}
	t.Logf("%d writes in the uninterrupted pass", writes)

	for _, k := range killPoints(b, writes) {
		f := newFixtureOn(t, b, sc.policy)
		sc.setup(f)
		sc.step(f)
		before := len(f.notes.events())
		f.rec = f.reconciler(&killAfter{w: f.client, store: f.client, n: k})
		_ = f.rec.RunOnce(f.ctx) // killed after k writes
		f.rec = f.reconciler(f.client)
		f.pass() // restarted
		if got := f.state(); got != want {
			t.Fatalf("killed after %d of %d writes, then restarted:\n%s\nwant (uninterrupted):\n%s", k, writes, got, want)
		}
		// The notifications of one pass, in any order: a restart may handle the former
		// holder before the version that took its target.
		if got := f.notes.events()[before:]; !slices.Equal(slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(wantNotes))) {
			t.Fatalf("killed after %d writes: notifications %v, want %v", k, got, wantNotes)
		}
	}
}

// killPoints lists after how many writes to kill: every one on the in-memory registry;
// on a real server (where each point costs a fresh model and ~5 s) seven spread over the
// pass, first and last included, which the in-memory run has shown to behave alike.
func killPoints(b backend, writes int) []int {
	var out []int
	stride := 1
	if b == realMLflow && writes > 7 {
		stride = (writes + 5) / 6
	}
	for k := 0; k < writes; k += stride {
		out = append(out, k)
	}
	if last := writes - 1; out[len(out)-1] != last {
		out = append(out, last)
	}
	return out
}

var decidedAtLine = regexp.MustCompile(`\d{4}-\d\d-\d\d \d\d:\d\d UTC`)

// state renders what the registry holds for the fixture's model, with the model's name,
// the gate digest and decision times replaced, so two fixtures can be compared.
func (f *fixture) state() string {
	f.t.Helper()
	rm, err := f.client.GetRegisteredModel(f.ctx, f.model)
	if mlflow.IsNotFound(err) {
		return "no model MODEL"
	}
	if err != nil {
		f.t.Fatal(err)
	}
	vs, err := f.client.SearchModelVersions(f.ctx, mlflow.SearchOptions{Filter: "name = '" + f.model + "'", OrderBy: []string{"version_number ASC"}})
	if err != nil {
		f.t.Fatal(err)
	}
	var b strings.Builder
	aliases := map[string]string{}
	for _, a := range rm.Aliases {
		aliases[a.Alias] = a.Version
	}
	fmt.Fprintf(&b, "aliases %v\n", aliases)
	for _, mv := range vs {
		fmt.Fprintf(&b, "version %s stage %s\n", mv.Version, mv.CurrentStage)
		for _, k := range slices.Sorted(maps.Keys(mv.Tags)) {
			v := mv.Tags[k]
			if k == TagRecord {
				v = normalRecord(f.keys, f.model, mv.Version, v)
			}
			fmt.Fprintf(&b, "  tag %s=%q\n", k, decidedAtLine.ReplaceAllString(v, "TIME"))
		}
		if n := strings.Count(mv.Description, FenceBegin); n > 1 {
			fmt.Fprintf(&b, "  %d report sections\n", n)
		}
		fmt.Fprintf(&b, "  description %q\n", decidedAtLine.ReplaceAllString(mv.Description, "TIME"))
	}
	if f.audit != nil {
		events, err := f.evaluateAudit().Events(f.ctx, f.model, "")
		if err != nil && !errors.Is(err, ErrNoAuditTrail) {
			f.t.Fatal(err)
		}
		var lines []string
		for _, e := range events {
			lines = append(lines, fmt.Sprintf("audit v%s seq %d %s by %s: %s target %q from %q to %q verified %t",
				e.Version, e.Seq, e.Event, e.Actor, e.Status, e.Target, e.FromVersion, e.ToVersion, e.Verified))
		}
		slices.Sort(lines) // the order of events of one pass is the order writes landed
		b.WriteString(strings.Join(lines, "\n") + "\n")
	}
	return strings.NewReplacer(f.model, "MODEL", f.base, "MODEL", f.policy.Gates[0].Digest(), "GATE-DIGEST").Replace(b.String())
}

// normalRecord renders a record without its times and signature, saying whether it
// verified, so two runs of a scenario compare.
func normalRecord(keys Keys, model, version, raw string) string {
	rec, v := keys.Decode(model, version, raw)
	rec.At, rec.Requested, rec.StagedAt = "", "", ""
	b, _ := json.Marshal(rec)
	return fmt.Sprintf("%s %s", v, b)
}
