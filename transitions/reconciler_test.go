package transitions

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelgate/modelgate/mlflow"
)

func jsonDecode(r *http.Request, v any) error { return json.NewDecoder(r.Body).Decode(v) }

func TestAutoPromotion(t *testing.T) { scenario(t, basePolicy, autoPromotion) }

func autoPromotion(f *fixture) {
	t := f.t
	v1 := f.create(good(f.model))
	f.pass()
	mv := f.wantStatus(v1.Version, StatusPromoted)
	if f.alias("champion") != v1.Version {
		t.Fatalf("champion = %q, want %s", f.alias("champion"), v1.Version)
	}
	rec := f.record(v1.Version)
	if rec.Gate != "gate-"+f.model || rec.PromotedTo != "alias:champion" || rec.Policy != f.policy.Gates[0].Digest() || rec.Seq != 1 {
		t.Errorf("record %+v", rec)
	}
	if rec.PreviousVersion != "" {
		t.Errorf("first champion has previous_version %q", rec.PreviousVersion)
	}
	// Three tags, and only three: the Tags table stays readable.
	for k := range mv.Tags {
		if strings.HasPrefix(k, "modelgate.") && k != TagStatus && k != TagSummary && k != TagRecord {
			t.Errorf("extra tag %s", k)
		}
	}
	if !strings.HasPrefix(mv.Description, "✅ promoted: champion\n"+FenceBegin+"\n### ✅ Promoted: champion\n") {
		t.Errorf("description has no report:\n%s", mv.Description)
	}

	// A second good version replaces it and records it as previous.
	v2 := f.create(good(f.model))
	f.pass()
	mv = f.wantStatus(v2.Version, StatusPromoted)
	if f.alias("champion") != v2.Version || f.record(v2.Version).PreviousVersion != v1.Version {
		t.Fatalf("champion %q, previous_version %q; want %s and %s", f.alias("champion"), f.record(v2.Version).PreviousVersion, v2.Version, v1.Version)
	}
	// The former champion says it is no longer live, and by whom.
	old := f.wantStatus(v1.Version, StatusSuperseded)
	if r := f.record(v1.Version); r.SupersededBy != v2.Version || r.Seq != 2 || !strings.Contains(old.Description, "superseded") {
		t.Errorf("v1 record %+v, description:\n%s", r, old.Description)
	}
	if got := f.notes.events(); !slices.Equal(got, []string{"promoted 1", "promoted 2", "superseded 1"}) {
		t.Fatalf("notifications %v", got)
	}
	// Nothing is decided twice.
	f.pass()
	if got := f.notes.events(); len(got) != 3 {
		t.Fatalf("a third pass notified again: %v", got)
	}
}

func TestRejection(t *testing.T) { scenario(t, basePolicy, rejection) }

func rejection(f *fixture) {
	t := f.t
	v := f.create(unfair(f.model))
	f.pass()
	mv := f.wantStatus(v.Version, StatusRejected)
	if !strings.Contains(mv.Tags[TagSummary], "fair: gap 0.34 > 0.1") {
		t.Errorf("summary %q", mv.Tags[TagSummary])
	}
	if f.alias("champion") != "" {
		t.Fatal("a rejected version became champion")
	}
	// The rejection sticks.
	f.pass()
	f.wantStatus(v.Version, StatusRejected)
	if got := f.notes.events(); !slices.Equal(got, []string{"rejected 1"}) {
		t.Fatalf("notifications %v", got)
	}
}

func TestReviewThenApproval(t *testing.T) { scenario(t, basePolicy, reviewThenApproval) }

func reviewThenApproval(f *fixture) {
	t := f.t
	v := f.create(borderline(f.model))
	f.pass()
	mv := f.wantStatus(v.Version, StatusPendingReview)
	if !strings.Contains(mv.Description, "`modelgate.approve.alice`") {
		t.Fatalf("report does not say how to vote:\n%s", mv.Description)
	}
	f.tag(v.Version, "modelgate.approve.alice", "looks fine")
	f.pass()
	mv = f.wantStatus(v.Version, StatusPromoted)
	if f.alias("champion") != v.Version {
		t.Fatal("approved version not promoted")
	}
	if !strings.Contains(mv.Tags[TagSummary], "approved by alice") {
		t.Errorf("summary %q", mv.Tags[TagSummary])
	}
	if !strings.Contains(f.logs.String(), "by=alice") {
		t.Errorf("no audit line naming alice:\n%s", f.logs)
	}
	if got := f.notes.events(); !slices.Equal(got, []string{"review_requested 1", "promoted 1"}) {
		t.Fatalf("notifications %v", got)
	}
}

func TestUnlistedVoteIgnored(t *testing.T) { scenario(t, basePolicy, unlistedVoteIgnored) }

func unlistedVoteIgnored(f *fixture) {
	t := f.t
	v := f.create(borderline(f.model))
	f.pass()
	f.tag(v.Version, "modelgate.approve.mallory", "ship it")
	f.pass()
	mv := f.wantStatus(v.Version, StatusPendingReview)
	if !strings.Contains(mv.Description, "mallory is not an approver") {
		t.Fatalf("the ignored vote is not reported:\n%s", mv.Description)
	}
	if mv.Tags["modelgate.approve.mallory"] != "ship it" {
		t.Fatal("the ignored vote tag was touched")
	}
}

func TestRejectionWithReason(t *testing.T) { scenario(t, basePolicy, rejectionWithReason) }

func rejectionWithReason(f *fixture) {
	t := f.t
	v := f.create(borderline(f.model))
	f.pass()
	f.tag(v.Version, "modelgate.reject.bob", "trained on last year's data")
	f.pass()
	mv := f.wantStatus(v.Version, StatusRejected)
	if !strings.Contains(mv.Tags[TagSummary], "rejected by bob: trained on last year's data") ||
		!strings.Contains(mv.Description, "trained on last year") || f.record(v.Version).RejectedBy != "bob" {
		t.Fatalf("reason missing: summary %q\n%s", mv.Tags[TagSummary], mv.Description)
	}
	// The rejection sticks, even after an approval comes in, or the reason is blanked.
	f.tag(v.Version, "modelgate.approve.alice", "")
	f.tag(v.Version, "modelgate.reject.bob", "")
	f.pass()
	f.wantStatus(v.Version, StatusRejected)
}

func TestRejectionWithoutReason(t *testing.T) { scenario(t, basePolicy, rejectionWithoutReason) }

// A rejection counts with or without a reason (PRODUCT.md v2); the report says none was
// given.
func rejectionWithoutReason(f *fixture) {
	v := f.create(borderline(f.model))
	f.pass()
	f.tag(v.Version, "modelgate.reject.bob", "")
	f.pass()
	mv := f.wantStatus(v.Version, StatusRejected)
	if !strings.Contains(mv.Tags[TagSummary], "rejected by bob: (no reason given)") {
		f.t.Fatalf("summary %q", mv.Tags[TagSummary])
	}
}

func TestTwoApprovalsNeeded(t *testing.T) {
	scenario(t, strings.Replace(basePolicy, "min_approvals: 1", "min_approvals: 2", 1), twoApprovalsNeeded)
}

func twoApprovalsNeeded(f *fixture) {
	t := f.t
	v := f.create(borderline(f.model))
	f.pass()
	f.tag(v.Version, "modelgate.approve.alice", "")
	f.pass()
	mv := f.wantStatus(v.Version, StatusPendingReview)
	if !strings.Contains(mv.Description, "**Review: 1 of 2 approval(s)**") || !strings.Contains(mv.Description, " · **alice** approved") {
		t.Fatalf("report does not show the vote so far:\n%s", mv.Description)
	}
	f.tag(v.Version, "modelgate.approve.bob", "")
	f.pass()
	f.wantStatus(v.Version, StatusPromoted)
}

func TestReviewExpires(t *testing.T) { scenario(t, basePolicy, reviewExpires) }

func reviewExpires(f *fixture) {
	t := f.t
	v := f.create(borderline(f.model))
	f.pass()
	f.clock.Advance(23 * time.Hour)
	f.pass()
	f.wantStatus(v.Version, StatusPendingReview)
	f.clock.Advance(time.Hour)
	f.pass()
	mv := f.wantStatus(v.Version, StatusExpired)
	if !strings.Contains(mv.Tags[TagSummary], "review expired after 24h") {
		t.Errorf("summary %q", mv.Tags[TagSummary])
	}
	if got := f.notes.events(); !slices.Equal(got, []string{"review_requested 1", "expired 1"}) {
		t.Fatalf("notifications %v", got)
	}
}

func TestEvidenceChangeResetsVotes(t *testing.T) {
	scenario(t, strings.Replace(basePolicy, "min_approvals: 1", "min_approvals: 2", 1), evidenceChangeResetsVotes)
}

func evidenceChangeResetsVotes(f *fixture) {
	t := f.t
	v := f.create(borderline(f.model))
	f.pass()
	before := f.record(v.Version).Evidence
	f.tag(v.Version, "modelgate.approve.alice", "ok at 0.85")
	// The team logs a corrected accuracy to the same run.
	if err := f.client.LogBatch(f.ctx, v.RunID, []mlflow.Metric{{Key: "accuracy", Value: 0.86, Timestamp: time.Now().UnixMilli() + 1000, Step: 1}}, nil, nil); err != nil {
		t.Fatal(err)
	}
	f.tag(v.Version, "modelgate.approve.bob", "")
	f.pass()
	mv := f.wantStatus(v.Version, StatusPendingReview)
	if f.record(v.Version).Evidence == before {
		t.Fatal("evidence digest did not change")
	}
	if _, ok := mv.Tags["modelgate.approve.alice"]; ok {
		t.Fatal("a vote cast on the old evidence still counts")
	}
	stale := StalePrefix + strings.TrimPrefix(before, "sha256:") + ".approve.alice"
	if mv.Tags[stale] != "ok at 0.85" {
		t.Fatalf("the set-aside vote lost its text: tags %v", mv.Tags)
	}
	if !strings.Contains(mv.Description, "votes cast on earlier evidence") {
		t.Errorf("report does not say why:\n%s", mv.Description)
	}
	f.tag(v.Version, "modelgate.approve.alice", "")
	f.tag(v.Version, "modelgate.approve.bob", "")
	f.pass()
	f.wantStatus(v.Version, StatusPromoted)
}

func TestReevaluateTag(t *testing.T) { scenario(t, basePolicy, reevaluateTag) }

func reevaluateTag(f *fixture) {
	t := f.t
	v := f.create(unfair(f.model))
	f.pass()
	f.wantStatus(v.Version, StatusRejected)
	// The team fixes the evidence and asks for a new look.
	if err := f.client.LogBatch(f.ctx, v.RunID, []mlflow.Metric{{Key: "recall_sex_f", Value: 0.82, Timestamp: time.Now().UnixMilli() + 1000, Step: 1}}, nil, nil); err != nil {
		t.Fatal(err)
	}
	f.pass()
	f.wantStatus(v.Version, StatusRejected) // sticks until asked
	f.tag(v.Version, TagReevaluate, "fixed the recall metric")
	f.pass()
	mv := f.wantStatus(v.Version, StatusPromoted)
	if _, ok := mv.Tags[TagReevaluate]; ok {
		t.Fatal("modelgate.reevaluate was not deleted")
	}
}

func TestRollbackRestoresPreviousChampion(t *testing.T) {
	scenario(t, basePolicy, rollbackRestoresPreviousChampion)
}

func rollbackRestoresPreviousChampion(f *fixture) {
	t := f.t
	v1 := f.create(good(f.model))
	f.pass()
	v2 := f.create(good(f.model))
	f.pass()
	if f.alias("champion") != v2.Version {
		t.Fatal("v2 not champion")
	}
	f.tag(v2.Version, TagRollback, "latency regression in prod")
	f.pass()
	mv := f.wantStatus(v2.Version, StatusRolledBack)
	if f.alias("champion") != v1.Version {
		t.Fatalf("champion %q after rollback, want %s", f.alias("champion"), v1.Version)
	}
	if !strings.Contains(mv.Tags[TagSummary], "latency regression") {
		t.Errorf("summary %q", mv.Tags[TagSummary])
	}
	f.wantStatus(v1.Version, StatusPromoted)
	// Nothing moves again.
	f.pass()
	if f.alias("champion") != v1.Version {
		t.Fatal("the rollback was undone")
	}
	if got := f.notes.events(); !slices.Equal(got, []string{"promoted 1", "promoted 2", "superseded 1", "rolled_back 2"}) {
		t.Fatalf("notifications %v", got)
	}
}

const stageGateArchivesExistingPolicy = `
gates:
  - name: gate-MODEL
    models: ["MODEL"]
    on_missing: reject
    checks:
      - {name: floor, metric: accuracy, min: 0.8, on_fail: reject}
    promote:
      stage: Production
      archive_existing: true
`

func TestStageGateArchivesExisting(t *testing.T) {
	scenario(t, stageGateArchivesExistingPolicy, stageGateArchivesExisting)
}

func stageGateArchivesExisting(f *fixture) {
	t := f.t
	v1 := f.create(good(f.model))
	f.pass()
	v2 := f.create(good(f.model))
	f.pass()
	if got := f.get(v1.Version).CurrentStage; got != "Archived" {
		t.Fatalf("v1 is %q, want Archived", got)
	}
	mv := f.wantStatus(v2.Version, StatusPromoted)
	if rec := f.record(v2.Version); mv.CurrentStage != "Production" || rec.PromotedTo != "stage:Production" || rec.PreviousVersion != v1.Version {
		t.Fatalf("v2: stage %q, record %+v", mv.CurrentStage, rec)
	}
	f.wantStatus(v1.Version, StatusSuperseded)
}

func TestUserDescriptionKeptAcrossDecisions(t *testing.T) {
	scenario(t, basePolicy, userDescriptionKeptAcrossDecisions)
}

func userDescriptionKeptAcrossDecisions(f *fixture) {
	t := f.t
	user := "Gradient boosting, trained on 2026-Q3.\n\n**Owner:** risk team  \nDo not deploy on Fridays.\n"
	spec := borderline(f.model)
	spec.Description = user
	v := f.create(spec)
	f.pass() // decision 1: review
	mv := f.get(v.Version)
	if !strings.HasSuffix(mv.Description, FenceEnd+"\n\n"+user) || userText(mv.Description) != user {
		t.Fatalf("user text changed:\n%q", mv.Description)
	}
	// The user edits their part in the UI, below the report.
	edited := strings.Replace(mv.Description, "Fridays.", "Fridays or holidays.", 1)
	if _, err := f.client.UpdateModelVersionDescription(f.ctx, f.model, v.Version, edited); err != nil {
		t.Fatal(err)
	}
	f.tag(v.Version, "modelgate.approve.alice", "")
	f.pass() // decision 2: promoted
	mv = f.wantStatus(v.Version, StatusPromoted)
	if want := strings.Replace(user, "Fridays.", "Fridays or holidays.", 1); userText(mv.Description) != want {
		t.Fatalf("user text lost:\n%q", mv.Description)
	}
	if n := strings.Count(mv.Description, FenceBegin); n != 1 {
		t.Fatalf("%d report sections", n)
	}
	if !strings.HasPrefix(mv.Description, "✅ promoted: champion\n") {
		t.Fatalf("report not replaced:\n%s", mv.Description)
	}
}

func TestPromptUntouched(t *testing.T) {
	scenario(t, strings.Replace(basePolicy, `models: ["MODEL"]`, `models: ["*prompt*"]`, 1), promptUntouched)
}

func promptUntouched(f *fixture) {
	t := f.t
	name := strings.ReplaceAll(f.model, "-", "_") + "_prompt"
	if f.real() {
		if _, err := f.srv.RegisterPrompt(f.ctx, name, "Summarise {{text}}"); err != nil {
			t.Fatal(err)
		}
	} else { // what register_prompt leaves in the registry
		if _, err := f.client.CreateRegisteredModel(f.ctx, name, mlflow.Tags{mlflow.PromptTag: "true"}, ""); err != nil {
			t.Fatal(err)
		}
		if _, err := f.client.CreateModelVersion(f.ctx, mlflow.CreateModelVersionRequest{Name: name, Source: "prompt", Tags: mlflow.Tags{"mlflow.prompt.text": "Summarise {{text}}"}}); err != nil {
			t.Fatal(err)
		}
	}
	f.rec.Nudge(name, "1") // as a webhook for the prompt would
	f.pass()
	mv, err := f.client.GetModelVersion(f.ctx, name, "1")
	if err != nil {
		t.Fatal(err)
	}
	for k := range mv.Tags {
		if strings.HasPrefix(k, "modelgate.") {
			t.Fatalf("prompt got tag %s", k)
		}
	}
}

func TestVersionOlderThanSinceUntouched(t *testing.T) {
	scenario(t, basePolicy, versionOlderThanSinceUntouched)
}

func versionOlderThanSinceUntouched(f *fixture) {
	t := f.t
	v := f.create(good(f.model))
	old := f.reconciler(f.client)
	old.cfg.Since = f.clock.Now().Add(time.Hour) // the version was created before Since
	if err := old.RunOnce(f.ctx); err != nil {
		t.Fatal(err)
	}
	if st := f.status(v.Version); st != "" {
		t.Fatalf("old version got status %q", st)
	}
	// Unless someone asks for it.
	f.tag(v.Version, TagReevaluate, "")
	if err := old.RunOnce(f.ctx); err != nil {
		t.Fatal(err)
	}
	f.wantStatus(v.Version, StatusPromoted)
}

func TestManualAliasMoveNotReverted(t *testing.T) {
	scenario(t, basePolicy, manualAliasMoveNotReverted)
}

func manualAliasMoveNotReverted(f *fixture) {
	t := f.t
	v1 := f.create(good(f.model))
	f.pass()
	v2 := f.create(good(f.model))
	f.pass()
	// Someone moves the champion back by hand.
	if err := f.client.SetAlias(f.ctx, f.model, "champion", v1.Version); err != nil {
		t.Fatal(err)
	}
	f.pass()
	f.clock.Advance(11 * time.Minute) // and through a full scan
	f.pass()
	f.pass()
	if f.alias("champion") != v1.Version {
		t.Fatalf("champion %q, want the hand-set %s", f.alias("champion"), v1.Version)
	}
	// The page of each version says which is live: v2 lost it to a person's change, v1
	// holds it again.
	mv := f.wantStatus(v2.Version, StatusSuperseded)
	if r := f.record(v2.Version); r.SupersededBy != ActorHand || r.To != v1.Version || !strings.Contains(mv.Description, "a person") {
		t.Fatalf("v2 record %+v\n%s", r, mv.Description)
	}
	f.wantStatus(v1.Version, StatusPromoted)
	if got := f.notes.events(); !slices.Equal(got, []string{"promoted 1", "promoted 2", "superseded 1", "superseded 2"}) {
		t.Fatalf("notifications %v", got)
	}
}

func TestNotNewerThanTheChampion(t *testing.T) { scenario(t, basePolicy, notNewerThanTheChampion) }

func notNewerThanTheChampion(f *fixture) {
	t := f.t
	v1 := f.create(borderline(f.model)) // waits for review
	f.pass()
	v2 := f.create(good(f.model)) // promoted at once
	f.pass()
	f.tag(v1.Version, "modelgate.approve.alice", "")
	f.pass()
	mv := f.wantStatus(v1.Version, StatusApproved)
	if f.alias("champion") != v2.Version || !strings.Contains(mv.Tags[TagSummary], "held by newer version "+v2.Version) {
		t.Fatalf("champion %q, summary %q", f.alias("champion"), mv.Tags[TagSummary])
	}
}

func TestIdleCycleRequestCount(t *testing.T) {
	scenario(t, basePolicy, idleCycleRequestCount, countsRequests)
}

func idleCycleRequestCount(first *fixture) {
	t := first.t
	for i, n := range []int{100, 1000} {
		f := first
		if i > 0 {
			f = newFixtureOn(t, backendOf(first), basePolicy)
		}
		// A registry of n versions, all decided already (signed records, as an earlier
		// modelgate left them), plus one open review.
		if _, err := f.client.CreateRegisteredModel(f.ctx, f.model, nil, ""); err != nil {
			t.Fatal(err)
		}
		for i := range n {
			rec := f.keys.Encode(f.model, strconv.Itoa(i+1), Record{Seq: 1, Status: StatusRejected, Gate: "gate-" + f.model, At: "2026-11-01T00:00:00Z"})
			if _, err := f.client.CreateModelVersion(f.ctx, mlflow.CreateModelVersionRequest{Name: f.model, Source: "s3://bucket/m",
				Tags: mlflow.Tags{TagStatus: "rejected", TagRecord: rec}}); err != nil {
				t.Fatalf("version %d: %v", i, err)
			}
		}
		f.create(borderline(f.model))
		f.pass() // start-up: a full scan
		f.pass() // settles the review report
		before := f.reqs.snapshot()
		f.pass()
		after := f.reqs.snapshot()
		total := 0
		for k, v := range after {
			total += v - before[k]
		}
		t.Logf("%d versions: %d requests per idle pass (%v)", n, total, after)
		if total != 4 {
			t.Fatalf("%d versions: %d requests in an idle pass, want 4 (newest page, open reviews, rollback requests, re-evaluation requests)", n, total)
		}
	}
}

// TestBurstOfNewVersionsIsFollowedAcrossPages: more versions registered between two
// passes than one page holds are all found by the next incremental pass.
func TestBurstOfNewVersionsIsFollowedAcrossPages(t *testing.T) {
	scenario(t, "gates:\n  - name: gate-MODEL\n    models: [\"MODEL\"]\n", burstOfNewVersionsIsFollowedAcrossPages)
}

func burstOfNewVersionsIsFollowedAcrossPages(f *fixture) {
	t := f.t
	f.rec.cfg.PageSize = 10
	f.pass()     // start-up full scan
	const n = 25 // two full pages and a bit
	if _, err := f.client.CreateRegisteredModel(f.ctx, f.model, nil, ""); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if _, err := f.client.CreateModelVersion(f.ctx, mlflow.CreateModelVersionRequest{Name: f.model, Source: "s3://bucket/m"}); err != nil {
			t.Fatalf("version %d: %v", i, err)
		}
	}
	f.pass() // incremental
	vs, err := f.client.SearchModelVersions(f.ctx, mlflow.SearchOptions{Filter: "name = '" + f.model + "'"})
	if err != nil {
		t.Fatal(err)
	}
	undecided := 0
	for _, mv := range vs {
		if mv.Tags[TagStatus] != string(StatusApproved) {
			undecided++
		}
	}
	if len(vs) != n || undecided != 0 {
		t.Fatalf("%d versions, %d not approved after one incremental pass", len(vs), undecided)
	}
}

// refusingWriter refuses every write as MLflow does for a user without the permission.
type refusingWriter struct {
	Writer
	mu      sync.Mutex
	refused int
}

func (w *refusingWriter) refuse() error {
	w.mu.Lock()
	w.refused++
	w.mu.Unlock()
	return &mlflow.Error{Method: "POST", Endpoint: "model-versions/set-tag", StatusCode: http.StatusForbidden,
		Code: "PERMISSION_DENIED", Message: "Permission denied"}
}

func (w *refusingWriter) SetModelVersionTag(context.Context, string, string, string, string) error {
	return w.refuse()
}

func (w *refusingWriter) UpdateModelVersionDescription(context.Context, string, string, string) (mlflow.ModelVersion, error) {
	return mlflow.ModelVersion{}, w.refuse()
}

func (w *refusingWriter) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.refused
}

// TestRefusedWritesBackOff: a version whose writes MLflow refuses (a missing permission)
// is retried with a backoff that doubles from the poll interval, not on every pass. On
// a clock the test controls: 64 passes one poll interval apart.
func TestRefusedWritesBackOff(t *testing.T) {
	scenario(t, basePolicy, func(f *fixture) {
		w := &refusingWriter{Writer: f.client}
		f.rec = f.reconciler(w)
		f.rec.cfg.PollInterval = time.Second
		f.create(good(f.model))
		passes := 0
		for range 64 {
			_ = f.rec.RunOnce(f.ctx) // the version fails; the pass itself succeeds
			f.clock.Advance(time.Second)
			passes++
		}
		// Attempts at 0, 1, 3, 7, 15, 31 and 63 seconds: 7, each refused once or a few
		// times (the writes of a step run in parallel). A tight loop refuses on every pass.
		attempts := strings.Count(f.logs.String(), "version not handled; will retry")
		f.t.Logf("%d passes: %d attempts, %d writes refused", passes, attempts, w.count())
		if attempts < 5 || attempts > 8 {
			f.t.Fatalf("%d attempts in %d passes one poll interval apart, want about log2(%d)+1 = 7", attempts, passes, passes)
		}
		if f.status("1") != "" {
			f.t.Fatal("a refused version got a status")
		}
	}, countsRequests)
}
