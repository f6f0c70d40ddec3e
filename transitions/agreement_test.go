package transitions

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/modelgate/modelgate/mlflow"
)

// agreeingPass is a full reconcile pass that, before the daemon handles each version,
// asks for the plan `modelgate evaluate` would print (a Planner built as the command
// builds it, reading the version with its own request), then lets the daemon handle the
// version (plan and apply, as RunOnce does) and requires the daemon to write exactly the
// writes the plan listed, and to send exactly its notifications.
func (f *fixture) agreeingPass() {
	f.t.Helper()
	rec := f.rec
	rec.mu.Lock()
	rec.lastFull = time.Time{} // every pass a full scan: evaluate plans as a full scan would
	rec.mu.Unlock()
	items, _, _, err := rec.collect(f.ctx, f.clock.Now())
	if err != nil {
		f.t.Fatalf("collect: %v", err)
	}
	evaluate, err := NewPlanner(PlannerConfig{Reader: f.client, Policy: f.policy, Clock: f.clock.Now, Since: rec.cfg.Since,
		Keys: f.keys, Audit: f.evaluateAudit()})
	if err != nil {
		f.t.Fatal(err)
	}
	defer rec.afterPass(f.ctx, items, true)
	var order []*item
	for _, it := range items {
		order = append(order, it)
	}
	slices.SortFunc(order, func(a, b *item) int {
		return cmp.Or(strings.Compare(a.mv.Name, b.mv.Name), mlflow.CompareVersions(a.mv.Version, b.mv.Version))
	})
	real := rec.writer
	defer func() { rec.writer = real }()
	caches := map[string]*modelCache{} // as a pass reads each model
	for _, it := range order {
		cache := caches[it.mv.Name]
		if cache == nil {
			cache = newModelCache(rec.reader)
			caches[it.mv.Name] = cache
		}
		want, err := evaluate.PlanVersion(f.ctx, it.mv.Name, it.mv.Version)
		if err != nil {
			f.t.Fatalf("evaluate %s/%s: %v", it.mv.Name, it.mv.Version, err)
		}
		got := &writeRecorder{w: real}
		rec.writer = got
		notesBefore := len(f.notes.events())
		if _, _, err := rec.handleItem(f.ctx, rec.planner.with(cache), cache, it); mlflow.IsNotFound(err) {
			continue // deleted under the daemon's feet (TestBadRegistryInput)
		} else if err != nil {
			f.t.Fatalf("daemon on %s/%s: %v", it.mv.Name, it.mv.Version, err)
		}
		if w, g := canonicalWrites(want.Writes), canonicalWrites(got.list()); w != g {
			f.t.Fatalf("%s/%s: evaluate said it would write\n%s\nthe daemon wrote\n%s", it.mv.Name, it.mv.Version, w, g)
		}
		var wantNotes []string
		for _, n := range want.Notices {
			wantNotes = append(wantNotes, fmt.Sprintf("%s %s", n.Event, n.Version))
		}
		if gotNotes := f.notes.events()[notesBefore:]; !slices.Equal(gotNotes, wantNotes) {
			f.t.Fatalf("%s/%s: evaluate said it would notify %v, the daemon notified %v", it.mv.Name, it.mv.Version, wantNotes, gotNotes)
		}
	}
}

// canonicalWrites renders writes in a fixed order, without their steps (a recorder sees
// the order in which parallel writes happened to land, not the plan's steps).
func canonicalWrites(ws []Write) string {
	lines := make([]string, 0, len(ws))
	for _, w := range ws {
		w.Step = 0
		b, _ := json.Marshal(w)
		lines = append(lines, string(b))
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// writeRecorder is a Writer that records each write it passes on.
type writeRecorder struct {
	w      Writer
	mu     sync.Mutex
	writes []Write
}

func (r *writeRecorder) add(w Write) {
	r.mu.Lock()
	r.writes = append(r.writes, w)
	r.mu.Unlock()
}

func (r *writeRecorder) list() []Write {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.writes)
}

func (r *writeRecorder) SetModelVersionTag(ctx context.Context, name, version, key, value string) error {
	r.add(Write{Op: OpSetTag, Version: version, Key: key, Value: value})
	return r.w.SetModelVersionTag(ctx, name, version, key, value)
}

func (r *writeRecorder) DeleteModelVersionTag(ctx context.Context, name, version, key string) error {
	r.add(Write{Op: OpDeleteTag, Version: version, Key: key})
	return r.w.DeleteModelVersionTag(ctx, name, version, key)
}

func (r *writeRecorder) UpdateModelVersionDescription(ctx context.Context, name, version, description string) (mlflow.ModelVersion, error) {
	r.add(Write{Op: OpDescription, Version: version, Value: description})
	return r.w.UpdateModelVersionDescription(ctx, name, version, description)
}

func (r *writeRecorder) SetAlias(ctx context.Context, name, alias, version string) error {
	r.add(Write{Op: OpSetAlias, Alias: alias, Version: version})
	return r.w.SetAlias(ctx, name, alias, version)
}

func (r *writeRecorder) DeleteAlias(ctx context.Context, name, alias string) error {
	r.add(Write{Op: OpDeleteAlias, Alias: alias})
	return r.w.DeleteAlias(ctx, name, alias)
}

func (r *writeRecorder) TransitionStage(ctx context.Context, name, version, stage string, archive bool) (mlflow.ModelVersion, error) {
	r.add(Write{Op: OpTransitionStage, Version: version, Stage: stage, ArchiveExisting: archive})
	return r.w.TransitionStage(ctx, name, version, stage, archive)
}
