package transitions

import (
	"context"
	"math"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/modelgate/modelgate/mlflow"
	"github.com/modelgate/modelgate/mlflow/mlflowtest"
)

// TestBadRegistryInput: what people and training jobs leave in a real registry, each
// met with a decision or a log line that says what happened, no user text lost, no panic.
func TestBadRegistryInput(t *testing.T) {
	const openPolicy = `
gates:
  - name: gate-MODEL
    models: ["MODEL*"]
    checks:
      - {name: floor, metric: accuracy, min: 0.8, on_fail: reject}
      - {name: target, metric: accuracy, min: 0.9, on_fail: review}
      - {name: fair, group_metric: 'recall_sex_(.+)', max_gap: 0.1, on_fail: reject}
      - {name: notes, tag: notes, equals: NOTES, on_fail: review}
    review:
      approvers: [alice, bob]
    promote:
      alias: champion
`
	long := strings.Repeat("ü", 4990) + "0123456789" // 5,000 characters, MLflow's tag limit
	cases := []struct {
		name string
		run  func(f *fixture)
	}{
		{"NaN and infinite metrics are missing evidence", func(f *fixture) {
			v := good(f.model)
			v.Metrics["accuracy"] = math.NaN()
			v.Metrics["recall_sex_f"] = math.Inf(1)
			v.VersionTags = map[string]string{"notes": "NOTES"}
			mv := f.create(v)
			f.pass()
			got := f.wantStatus(mv.Version, StatusPendingReview)
			for _, want := range []string{"floor", "missing", "NaN"} {
				if !strings.Contains(got.Description, want) {
					t.Errorf("report does not say %q:\n%s", want, got.Description)
				}
			}
		}},
		{"metric keys with odd characters", func(f *fixture) {
			v := good(f.model)
			delete(v.Metrics, "recall_sex_f")
			delete(v.Metrics, "recall_sex_m")
			v.Metrics["recall_sex_a/b c"] = 0.81
			v.Metrics["recall_sex_d.e-f"] = 0.83
			v.VersionTags = map[string]string{"notes": "NOTES"}
			mv := f.create(v)
			f.pass()
			got := f.wantStatus(mv.Version, StatusPromoted)
			if !strings.Contains(got.Description, "a/b c") {
				t.Errorf("report does not name the group a/b c:\n%s", got.Description)
			}
		}},
		{"tags and description at MLflow's limits", func(f *fixture) {
			v := good(f.model)
			v.VersionTags = map[string]string{"notes": long}
			v.RunTags = map[string]string{"notes": long}
			v.Description = long // the whole 5,000 characters: no room for a report
			mv := f.create(v)
			f.pass()
			got := f.wantStatus(mv.Version, StatusPendingReview) // notes != NOTES
			if got.Description != long || got.Tags["notes"] != long {
				t.Errorf("user text changed: description %d characters, notes tag %d", len([]rune(got.Description)), len([]rune(got.Tags["notes"])))
			}
			if !strings.Contains(got.Tags[TagSummary], "notes") {
				t.Errorf("summary %q does not name the failed check", got.Tags[TagSummary])
			}
			if !strings.Contains(f.logs.String(), "description too long for the report section") {
				t.Errorf("no log line about the missing report:\n%s", f.logs)
			}
		}},
		{"descriptions with broken fences", func(f *fixture) {
			descs := []string{
				"Mine.\n" + FenceBegin + "\nkept, the begin has no end",
				"A\n" + FenceBegin + "\nfirst\n" + FenceEnd + "\nB\n" + FenceBegin + "\nsecond\n" + FenceEnd + "\nC",
				FenceEnd + "\nan end without a begin",
			}
			var versions []string
			for _, d := range descs {
				v := good(f.model)
				v.VersionTags = map[string]string{"notes": "NOTES"}
				v.Description = d
				versions = append(versions, f.create(v).Version)
			}
			f.pass()
			for i, v := range versions {
				status := StatusSuperseded // each took the champion alias from the one before
				if i == len(versions)-1 {
					status = StatusPromoted
				}
				got := f.wantStatus(v, status)
				if n := len(sections(got.Description)); n != 1 {
					t.Errorf("v%s: %d complete report sections:\n%s", v, n, got.Description)
				}
				// The user's text is kept byte for byte; only the line breaks that
				// separate it from the report section may be added.
				want, kept := strings.TrimRight(userText(descs[i]), "\n"), userText(got.Description)
				if !strings.HasPrefix(kept, want) || strings.TrimRight(kept, "\n") != want {
					t.Errorf("v%s: user text %q became %q", v, want, kept)
				}
			}
		}},
		{"a vote tag with an empty name", func(f *fixture) {
			v := borderline(f.model)
			v.VersionTags = map[string]string{"notes": "NOTES"}
			mv := f.create(v)
			f.pass()
			f.wantStatus(mv.Version, StatusPendingReview)
			f.tag(mv.Version, "modelgate.approve.", "lgtm")
			f.pass()
			got := f.wantStatus(mv.Version, StatusPendingReview)
			if !strings.Contains(got.Description, "Ignored vote tags") || !strings.Contains(got.Description, "modelgate.approve.") {
				t.Errorf("report does not list the nameless vote as ignored:\n%s", got.Description)
			}
			f.tag(mv.Version, "modelgate.approve.alice", "lgtm")
			f.pass()
			f.wantStatus(mv.Version, StatusPromoted)
		}},
		{"a status written by hand", func(f *fixture) {
			// Not a state modelgate signed: ignored, the version judged on its evidence.
			v := unfair(f.model)
			v.VersionTags = map[string]string{"notes": "NOTES", TagStatus: "maybe"}
			mv := f.create(v)
			f.pass()
			got := f.wantStatus(mv.Version, StatusRejected)
			if f.alias("champion") != "" || !strings.Contains(got.Tags[TagSummary], "TAMPERING DETECTED") {
				t.Errorf("champion %q; summary %q", f.alias("champion"), got.Tags[TagSummary])
			}
		}},
		{"a version deleted while it is evaluated", func(f *fixture) {
			v := good(f.model)
			v.VersionTags = map[string]string{"notes": "NOTES"}
			doomed := f.create(v)
			other := f.create(v)
			f.rec = f.reconciler(&deletingWriter{Writer: f.client, client: f.client, model: f.model, version: doomed.Version})
			f.pass()
			f.wantStatus(other.Version, StatusPromoted)
			if _, err := f.client.GetModelVersion(f.ctx, f.model, doomed.Version); !mlflow.IsNotFound(err) {
				t.Fatalf("deleted version: %v", err)
			}
			if !strings.Contains(f.logs.String(), "version disappeared while being handled") {
				t.Errorf("no log line for the deleted version:\n%s", f.logs)
			}
			f.pass() // nothing left to retry, no error
			if strings.Contains(f.logs.String(), "will retry") {
				t.Errorf("a deleted version is retried:\n%s", f.logs)
			}
		}},
		{"a model renamed during review", func(f *fixture) {
			v := borderline(f.model)
			v.VersionTags = map[string]string{"notes": "NOTES"}
			v.Description = "Team notes."
			mv := f.create(v)
			f.pass()
			f.wantStatus(mv.Version, StatusPendingReview)
			renamed := f.model + "-renamed"
			if _, err := f.client.RenameRegisteredModel(f.ctx, f.model, renamed); err != nil {
				t.Fatal(err)
			}
			f.model = renamed
			f.tag(mv.Version, "modelgate.approve.bob", "ok under the new name")
			f.pass()
			got := f.wantStatus(mv.Version, StatusPromoted)
			if f.alias("champion") != mv.Version || userText(got.Description) != "Team notes." {
				t.Errorf("champion %q, description %q", f.alias("champion"), got.Description)
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			scenario(t, openPolicy, func(f *fixture) {
				tc.run(f)
				if strings.Contains(f.logs.String(), "panic") {
					f.t.Errorf("logs mention a panic:\n%s", f.logs)
				}
			})
		})
	}
}

// deletingWriter deletes one version in MLflow just before modelgate's first write to
// it, as a user deleting it in the UI mid-evaluation would.
type deletingWriter struct {
	Writer
	client         mlflowtest.Registry
	model, version string
	once           sync.Once
}

func (d *deletingWriter) deleteFirst(ctx context.Context, version string) {
	if version == d.version {
		d.once.Do(func() { _ = d.client.DeleteModelVersion(context.WithoutCancel(ctx), d.model, d.version) })
	}
}

func (d *deletingWriter) SetModelVersionTag(ctx context.Context, name, version, key, value string) error {
	d.deleteFirst(ctx, version)
	return d.Writer.SetModelVersionTag(ctx, name, version, key, value)
}

func (d *deletingWriter) UpdateModelVersionDescription(ctx context.Context, name, version, desc string) (mlflow.ModelVersion, error) {
	d.deleteFirst(ctx, version)
	return d.Writer.UpdateModelVersionDescription(ctx, name, version, desc)
}

func TestLongVoterNameIsSetAside(t *testing.T) { scenario(t, basePolicy, longVoterName) }

// A voter name of 120 "é" (240 bytes) and a re-evaluation: the key the vote moves to is
// longer than MLflow's 250-character limit in bytes, and cutting it split a character,
// which MLflow refused with 400 forever. The name is hashed instead.
func longVoterName(f *fixture) {
	t := f.t
	v := f.create(borderline(f.model))
	f.pass()
	name := strings.Repeat("é", 120)
	f.tag(v.Version, "modelgate.approve."+name, "me")
	f.tag(v.Version, TagReevaluate, "")
	f.pass()
	mv := f.wantStatus(v.Version, StatusPendingReview)
	if hasTag(mv, TagReevaluate) || hasTag(mv, "modelgate.approve."+name) {
		t.Fatalf("the re-evaluation did not finish: %v", mv.Tags)
	}
	found := false
	for k, val := range mv.Tags {
		if strings.HasPrefix(k, StalePrefix) && strings.Contains(k, ".approve.sha256-") && val == "me" && utf8.ValidString(k) && len(k) <= maxTagKey {
			found = true
		}
	}
	if !found {
		t.Fatalf("the vote was not kept under a hashed key: %v", mv.Tags)
	}
}

// invalidWriter refuses every tag write as MLflow refuses an invalid one (400).
type invalidWriter struct {
	Writer
	mu    sync.Mutex
	tries int
}

func (w *invalidWriter) SetModelVersionTag(context.Context, string, string, string, string) error {
	w.mu.Lock()
	w.tries++
	w.mu.Unlock()
	return &mlflow.Error{Method: "POST", Endpoint: "model-versions/set-tag", StatusCode: 400, Code: "INVALID_PARAMETER_VALUE", Message: "invalid"}
}

// UpdateModelVersionDescription refuses too, so that the registry ends the same
// whichever of a step's parallel writes the first refusal cancels.
func (w *invalidWriter) UpdateModelVersionDescription(context.Context, string, string, string) (mlflow.ModelVersion, error) {
	return mlflow.ModelVersion{}, &mlflow.Error{Method: "PATCH", Endpoint: "model-versions/update", StatusCode: 400, Code: "INVALID_PARAMETER_VALUE", Message: "invalid"}
}

func TestInvalidWritesAreNotRetriedForever(t *testing.T) {
	scenario(t, basePolicy, invalidWritesParked, countsRequests)
}

// A write MLflow refuses as invalid fails the same way until the version changes: the
// version is left alone (one log line) instead of being retried every backoff period for
// ever; once its tags change it is tried again.
func invalidWritesParked(f *fixture) {
	t := f.t
	w := &invalidWriter{Writer: f.client}
	f.rec = f.reconciler(w)
	v := f.create(good(f.model))
	for range 5 {
		_ = f.rec.RunOnce(f.ctx)
		f.clock.Advance(11 * time.Minute) // through full scans and backoff
	}
	tries := w.tries
	if tries == 0 || strings.Count(f.logs.String(), "refused a write as invalid") != 1 {
		t.Fatalf("%d tries, logs:\n%s", tries, f.logs)
	}
	f.tag(v.Version, "notes", "fixed something")
	_ = f.rec.RunOnce(f.ctx)
	if w.tries == tries {
		t.Fatal("a version that changed was not tried again")
	}
}

func TestLongDescriptionWarnsOnce(t *testing.T) { scenario(t, basePolicy, longDescriptionWarnsOnce) }

// A waiting version whose description leaves no room for the report: the log says so
// once, not on every pass (the probe saw 47 warnings and the evidence read every pass).
func longDescriptionWarnsOnce(f *fixture) {
	spec := borderline(f.model)
	spec.Description = strings.Repeat("x", 4990)
	v := f.create(spec)
	for range 5 {
		f.pass()
		f.clock.Advance(11 * time.Minute)
	}
	f.wantStatus(v.Version, StatusPendingReview)
	if n := strings.Count(f.logs.String(), "description too long"); n != 1 {
		f.t.Fatalf("%d warnings over 5 passes, want 1:\n%s", n, f.logs)
	}
}
