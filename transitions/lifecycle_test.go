package transitions

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelgate/modelgate/mlflow"
)

const lineagePolicy = `
gates:
  - name: gate-MODEL
    models: ["MODEL"]
    checks:
      - {name: floor, metric: accuracy, min: 0.8, on_fail: reject}
      - {name: reproducible, lineage: {git_commit: true, datasets: 2}, on_fail: review}
    review: {approvers: [alice]}
    promote: {alias: champion}
`

func TestLineageInTheReport(t *testing.T) { scenario(t, lineagePolicy, lineageInTheReport) }

// The report always names the commit and each dataset with its digest; a version
// without them, or with fewer datasets than the check asks, waits for a person.
func lineageInTheReport(f *fixture) {
	t := f.t
	datasets := []mlflow.DatasetInput{
		{Tags: mlflow.Tags{"mlflow.data.context": "training"}, Dataset: mlflow.Dataset{Name: "train-q3", Digest: "2981c147", SourceType: "s3", Source: `{"uri": "s3://bucket/train.parquet"}`}},
		{Tags: mlflow.Tags{"mlflow.data.context": "evaluation"}, Dataset: mlflow.Dataset{Name: "eval-q3", Digest: "77aa01f2", SourceType: "s3", Source: `{"uri": "s3://bucket/eval.parquet"}`}},
	}
	full := good(f.model)
	full.RunTags = map[string]string{"mlflow.source.git.commit": "4f2c9e1d0b7a55aa"}
	full.Datasets = datasets
	partial := good(f.model)
	partial.RunTags = map[string]string{"mlflow.source.git.commit": "4f2c9e1d0b7a55aa"}
	partial.Datasets = datasets[:1]
	absent := good(f.model)
	vFull, vPartial, vAbsent := f.create(full), f.create(partial), f.create(absent)
	f.pass()
	got := f.wantStatus(vFull.Version, StatusPromoted)
	if !strings.Contains(got.Description, "commit 4f2c9e1d0b7a; datasets train-q3 (2981c147), eval-q3 (77aa01f2)") {
		t.Errorf("the report does not name the commit and datasets:\n%s", got.Description)
	}
	got = f.wantStatus(vPartial.Version, StatusPendingReview)
	if !strings.Contains(got.Tags[TagSummary], "reproducible: 1 dataset input(s) logged, 2 needed (review)") {
		t.Errorf("partial lineage: summary %q", got.Tags[TagSummary])
	}
	got = f.wantStatus(vAbsent.Version, StatusPendingReview)
	if !strings.Contains(got.Description, "no git commit; no datasets") || !strings.Contains(got.Tags[TagSummary], "no mlflow.source.git.commit tag") {
		t.Errorf("absent lineage:\n%s\n%s", got.Tags[TagSummary], got.Description)
	}
}

const rolloutPolicy = `
gates:
  - name: gate-MODEL
    models: ["MODEL"]
    checks:
      - {name: floor, metric: accuracy, min: 0.8, on_fail: reject}
      - {name: target, metric: accuracy, min: 0.9, on_fail: review}
    review: {approvers: [alice]}
    promote:
      alias: champion
      rollout:
        - alias: challenger
          soak: 24h
          checks:
            - {name: online, metric: online_accuracy, min: 0.9, on_fail: reject}
            - {name: errors, metric: error_rate, max: 0.05, on_fail: review}
`

// logOnline logs metrics against a version's run after its registration, as an
// online-monitoring job does during a soak.
func (f *fixture) logOnline(mv mlflow.ModelVersion, metrics map[string]float64) {
	f.t.Helper()
	var ms []mlflow.Metric
	for k, v := range metrics {
		ms = append(ms, mlflow.Metric{Key: k, Value: mlflow.Float(v), Timestamp: f.clock.Now().UnixMilli()})
	}
	if err := f.client.LogBatch(f.ctx, mv.RunID, ms, nil, nil); err != nil {
		f.t.Fatal(err)
	}
}

func TestStagedRollout(t *testing.T) { scenario(t, rolloutPolicy, stagedRollout) }

// An approved version holds challenger for its soak, then its stage checks run on the
// evidence logged meanwhile and it moves to champion; the approval it had stays valid
// through the soak; a restart in the middle of the soak changes nothing.
func stagedRollout(f *fixture) {
	t := f.t
	v := f.create(borderline(f.model))
	f.pass()
	f.wantStatus(v.Version, StatusPendingReview)
	f.tag(v.Version, "modelgate.approve.alice", "ok for a challenger")
	f.pass()
	got := f.wantStatus(v.Version, StatusStaged)
	rec := f.record(v.Version)
	if f.alias("challenger") != v.Version || f.alias("champion") != "" || rec.Stage != "challenger" || rec.StagedAt == "" ||
		!strings.HasPrefix(got.Description, "⏩ staged: challenger") {
		t.Fatalf("staged: challenger %q, champion %q, record %+v\n%s", f.alias("challenger"), f.alias("champion"), rec, got.Description)
	}
	f.clock.Advance(12 * time.Hour)
	f.rec = f.reconciler(f.client) // a restart in the middle of the soak
	f.pass()
	f.wantStatus(v.Version, StatusStaged)
	f.logOnline(v, map[string]float64{"online_accuracy": 0.93, "error_rate": 0.01})
	f.clock.Advance(13 * time.Hour)
	f.pass()
	got = f.wantStatus(v.Version, StatusPromoted)
	rec = f.record(v.Version)
	if f.alias("champion") != v.Version || f.alias("challenger") != "" || !slices.Equal(rec.ApprovedBy, []string{"alice"}) ||
		!strings.Contains(got.Description, "stage challenger: held for 24h from") || !strings.Contains(got.Description, `online\_accuracy 0.93`) {
		t.Fatalf("after the soak: champion %q, challenger %q, record %+v\n%s", f.alias("champion"), f.alias("challenger"), rec, got.Description)
	}
	if got := f.notes.events(); !slices.Contains(got, "staged "+v.Version) || !slices.Contains(got, "promoted "+v.Version) {
		t.Fatalf("notifications %v", got)
	}
}

func TestStageCheckFails(t *testing.T) { scenario(t, rolloutPolicy, stageCheckFails) }

// A stage check that fails rejects the version (or sends it to review) and takes the
// stage's alias from it; the status and report say why.
func stageCheckFails(f *fixture) {
	t := f.t
	bad := f.create(good(f.model))
	f.pass()
	f.wantStatus(bad.Version, StatusStaged)
	f.logOnline(bad, map[string]float64{"online_accuracy": 0.71, "error_rate": 0.01})
	f.clock.Advance(25 * time.Hour)
	f.pass()
	got := f.wantStatus(bad.Version, StatusRejected)
	if f.alias("challenger") != "" || f.alias("champion") != "" || !strings.Contains(got.Description, `online\_accuracy 0.71 &lt; 0.9`) ||
		!strings.Contains(got.Tags[TagSummary], "its checks rejected it: challenger removed from it") {
		t.Fatalf("rejected in its stage: challenger %q\n%s\n%s\n%s", f.alias("challenger"), got.Tags[TagSummary], got.Description, f.logs)
	}

	// A review check of the stage asks the approvers; their approval moves it on.
	slow := f.create(good(f.model))
	f.pass()
	f.wantStatus(slow.Version, StatusStaged)
	f.logOnline(slow, map[string]float64{"online_accuracy": 0.95, "error_rate": 0.2})
	f.clock.Advance(25 * time.Hour)
	f.pass()
	got = f.wantStatus(slow.Version, StatusPendingReview)
	if f.alias("challenger") != "" || !strings.Contains(got.Description, `error\_rate 0.2 &gt; 0.05`) {
		t.Fatalf("stage review: challenger %q\n%s", f.alias("challenger"), got.Description)
	}
	f.tag(slow.Version, "modelgate.approve.alice", "error rate explained: a noisy client")
	f.pass()
	f.wantStatus(slow.Version, StatusPromoted) // the last stage was passed by its approvers
	if f.alias("champion") != slow.Version {
		t.Fatalf("champion %q", f.alias("champion"))
	}
}

func TestNewerVersionReplacesTheStaged(t *testing.T) {
	scenario(t, rolloutPolicy, newerVersionReplacesTheStaged)
}

// A newer approved version takes the stage from the one in it, which is superseded; a
// rollback works from the stage.
func newerVersionReplacesTheStaged(f *fixture) {
	t := f.t
	v1 := f.create(good(f.model))
	f.pass()
	f.wantStatus(v1.Version, StatusStaged)
	v2 := f.create(good(f.model))
	f.pass()
	f.wantStatus(v2.Version, StatusStaged)
	old := f.wantStatus(v1.Version, StatusSuperseded)
	if f.alias("challenger") != v2.Version || !strings.Contains(old.Tags[TagSummary], "superseded: alias:challenger now held by version "+v2.Version) {
		t.Fatalf("challenger %q; v1 summary %q", f.alias("challenger"), old.Tags[TagSummary])
	}
	// A rollback from the stage gives challenger back to the version that held it
	// before, which is staged again.
	f.tag(v2.Version, TagRollback, "bad canary")
	f.pass()
	f.wantStatus(v2.Version, StatusRolledBack)
	f.wantStatus(v1.Version, StatusStaged)
	if a := f.alias("challenger"); a != v1.Version {
		t.Fatalf("challenger after the rollback: %q, want %s", a, v1.Version)
	}
}

const recertifyPolicy = `
gates:
  - name: gate-MODEL
    models: ["MODEL"]
    checks:
      - {name: floor, metric: accuracy, min: 0.8, on_fail: reject}
      - {name: target, metric: accuracy, min: 0.9, on_fail: review}
    review: {approvers: [alice, bob], recertify_after: 90d}
    promote: {alias: champion}
`

func TestRecertification(t *testing.T) { scenario(t, recertifyPolicy, recertification) }

// After recertify_after, a promoted version keeps its alias but is due for fresh
// approval: notified, its old votes set aside as stale; a fresh approval makes it
// promoted again and resets the clock; rollback works while it is due.
func recertification(f *fixture) {
	t := f.t
	v := f.create(borderline(f.model))
	f.pass()
	f.tag(v.Version, "modelgate.approve.alice", "fine")
	f.pass()
	f.wantStatus(v.Version, StatusPromoted)
	f.clock.Advance(89 * 24 * time.Hour)
	f.pass()
	f.wantStatus(v.Version, StatusPromoted)
	f.clock.Advance(2 * 24 * time.Hour)
	f.pass()
	got := f.wantStatus(v.Version, StatusRecertificationDue)
	if f.alias("champion") != v.Version || hasTag(got, "modelgate.approve.alice") || !strings.Contains(got.Tags[TagSummary], "re-certification due") {
		t.Fatalf("due: champion %q, tags %v", f.alias("champion"), got.Tags)
	}
	if !slices.Contains(f.notes.events(), "recertification_due "+v.Version) {
		t.Fatalf("notifications %v", f.notes.events())
	}
	f.pass() // nothing new: no writes, no notification
	f.tag(v.Version, "modelgate.approve.bob", "still good on Q4 data")
	f.pass()
	f.wantStatus(v.Version, StatusPromoted)
	rec := f.record(v.Version)
	if !slices.Equal(rec.ApprovedBy, []string{"bob"}) || rec.time().Before(f.clock.Now().Add(-time.Minute)) {
		t.Fatalf("re-certified record %+v", rec)
	}
	f.clock.Advance(91 * 24 * time.Hour)
	f.pass()
	f.wantStatus(v.Version, StatusRecertificationDue)
	f.tag(v.Version, TagRollback, "model too old")
	f.pass()
	f.wantStatus(v.Version, StatusRolledBack)
	if f.alias("champion") != "" {
		t.Fatalf("champion %q after the rollback of the only version", f.alias("champion"))
	}
}
