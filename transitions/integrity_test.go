package transitions

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelgate/modelgate/mlflow"
	"github.com/modelgate/modelgate/mlflow/mlflowtest"
)

// These tests are the forgeries an editor of the registry with plain EDIT permission
// (what every voter needs) tried against modelgate v1, and the other ways a state can be
// written behind modelgate's back. Each must be refused, undone, counted, notified,
// written to the audit trail and shown in the report.

// settle runs passes until nothing changes (each forgery takes one pass to undo and
// maybe one more to act on what was requested).
func (f *fixture) settle() {
	f.t.Helper()
	for range 3 {
		f.pass()
	}
}

// auditEvents lists the audit trail's events of the fixture's model as "event vN by actor".
func (f *fixture) auditEvents() []string {
	f.t.Helper()
	events, err := f.evaluateAudit().Events(f.ctx, f.model, "")
	if err != nil && !errors.Is(err, ErrNoAuditTrail) {
		f.t.Fatal(err)
	}
	var out []string
	for _, e := range events {
		if !e.Verified {
			f.t.Errorf("audit event %s of v%s does not verify", e.Event, e.Version)
		}
		out = append(out, e.Event+" v"+e.Version+" by "+e.Actor)
	}
	return out
}

func (f *fixture) wantTampered(version, kind string) {
	f.t.Helper()
	mv := f.get(version)
	said := "TAMPERING DETECTED"
	if kind == TamperProtected {
		said = "promote.protect is on"
	}
	if !strings.Contains(mv.Tags[TagSummary], said) || !strings.Contains(mv.Description, said) {
		f.t.Errorf("v%s: the summary and report do not say what happened: %q", version, mv.Tags[TagSummary])
	}
	if !slices.Contains(f.notes.events(), "tampered "+version) {
		f.t.Errorf("v%s: no tampered notification: %v", version, f.notes.events())
	}
	if !slices.Contains(f.auditEvents(), "tampered v"+version+" by unknown") && kind != TamperProtected {
		f.t.Errorf("v%s: no tampered audit event: %v", version, f.auditEvents())
	}
	if !strings.Contains(f.logs.String(), "kind="+kind) {
		f.t.Errorf("v%s: no %s tampering logged:\n%s", version, kind, f.logs)
	}
}

func TestForgedRollbackTargetIsRefused(t *testing.T) { scenario(t, basePolicy, forgedRollbackTarget) }

// Forgery 1: the champion's previous holder is written by hand (a v1 tag, or an edited
// record) to a version a reviewer rejected, then a rollback is asked for. The rollback
// goes to the last verified holder instead.
func forgedRollbackTarget(f *fixture) {
	t := f.t
	rejected := f.create(borderline(f.model))
	f.pass()
	f.tag(rejected.Version, "modelgate.reject.bob", "leaks PII")
	f.pass()
	f.wantStatus(rejected.Version, StatusRejected)
	v2 := f.create(good(f.model))
	f.pass()
	v3 := f.create(good(f.model))
	f.pass()
	f.wantStatus(v3.Version, StatusPromoted)

	// The forger edits the champion's record to name the rejected version as its
	// predecessor, adds v1's tag for good measure, and asks for a rollback.
	mv := f.get(v3.Version)
	forged := strings.Replace(mv.Tags[TagRecord], `"previous_version":"`+v2.Version+`"`, `"previous_version":"`+rejected.Version+`"`, 1)
	if forged == mv.Tags[TagRecord] {
		t.Fatalf("the record names no previous version: %s", forged)
	}
	f.tag(v3.Version, TagRecord, forged)
	f.tag(v3.Version, "modelgate.previous_version", rejected.Version)
	f.tag(v3.Version, TagRollback, "urgent")
	f.pass() // the forged record is replaced by the last signed one
	f.wantTampered(v3.Version, TamperBadSignature)
	if _, left := f.get(v3.Version).Tags["modelgate.previous_version"]; left {
		t.Error("the forged v1 tag was left")
	}
	f.settle() // then the rollback is carried out, on the verified record

	if got := f.alias("champion"); got != v2.Version {
		t.Fatalf("champion %q after the rollback, want the last verified holder %s (never the rejected %s)", got, v2.Version, rejected.Version)
	}
	f.wantStatus(v3.Version, StatusRolledBack)
	f.wantStatus(rejected.Version, StatusRejected)
}

func TestUndoneVetoIsRestored(t *testing.T) { scenario(t, basePolicy, undoneVeto) }

// Forgery 2: a reviewer's rejection is undone by blanking its reason, setting the status
// back to pending_review and approving. The rejection is restored.
func undoneVeto(f *fixture) {
	t := f.t
	v := f.create(borderline(f.model))
	f.pass()
	f.tag(v.Version, "modelgate.reject.bob", "trained on last year's data")
	f.pass()
	f.wantStatus(v.Version, StatusRejected)

	f.tag(v.Version, "modelgate.reject.bob", "")
	f.tag(v.Version, TagStatus, string(StatusPendingReview))
	f.tag(v.Version, "modelgate.approve.alice", "ship it")
	f.settle()

	f.wantStatus(v.Version, StatusRejected)
	if f.alias("champion") != "" {
		t.Fatalf("champion %q: the veto was undone", f.alias("champion"))
	}
	if r := f.record(v.Version); r.RejectedBy != "bob" {
		t.Errorf("record %+v", r)
	}
	f.wantTampered(v.Version, TamperStatusChanged)
}

func TestPreDecidedVersionIsJudged(t *testing.T) { scenario(t, basePolicy, preDecidedVersion) }

// Forgery 3: a version registered already tagged approved, with terrible metrics. It is
// judged on its evidence as if new.
func preDecidedVersion(f *fixture) {
	t := f.t
	spec := good(f.model)
	spec.Metrics["accuracy"] = 0.10
	spec.VersionTags = map[string]string{TagStatus: string(StatusApproved), TagSummary: "all good"}
	v := f.create(spec)
	f.settle()
	mv := f.wantStatus(v.Version, StatusRejected)
	if f.alias("champion") != "" || !strings.Contains(mv.Description, "accuracy 0.1") {
		t.Fatalf("champion %q, report:\n%s", f.alias("champion"), mv.Description)
	}
	f.wantTampered(v.Version, TamperUnsigned)
}

func TestVersionTagCannotOverrideRunTag(t *testing.T) {
	scenario(t, strings.Replace(basePolicy, "      - {name: fair,", "      - {name: security-scan, tag: security_scan, equals: passed, on_fail: reject}\n      - {name: fair,", 1), versionTagAgainstRunTag)
}

// Forgery 4: the version tag says the scanner passed; the run (what the training job
// recorded) says it failed. The check fails and the report shows both.
func versionTagAgainstRunTag(f *fixture) {
	spec := good(f.model)
	spec.RunTags = map[string]string{"security_scan": "failed"}
	spec.VersionTags = map[string]string{"security_scan": "passed"}
	v := f.create(spec)
	f.pass()
	mv := f.wantStatus(v.Version, StatusRejected)
	if !strings.Contains(mv.Tags[TagSummary], `differs between the version ("passed") and its run ("failed")`) {
		f.t.Fatalf("summary %q", mv.Tags[TagSummary])
	}
}

func TestReplayedRecordIsRefused(t *testing.T) { scenario(t, basePolicy, replayedRecord) }

// An older, validly signed record of the same version (its pending state, from before a
// rejection) written back with its status: the audit trail's latest event is the
// reference, and the rejection is restored.
func replayedRecord(f *fixture) {
	t := f.t
	v := f.create(borderline(f.model))
	f.pass()
	pending := f.get(v.Version).Tags[TagRecord]
	f.tag(v.Version, "modelgate.reject.bob", "no")
	f.pass()
	f.wantStatus(v.Version, StatusRejected)

	f.tag(v.Version, TagRecord, pending)
	f.tag(v.Version, TagStatus, string(StatusPendingReview))
	f.tag(v.Version, "modelgate.reject.bob", "")
	f.tag(v.Version, "modelgate.approve.alice", "")
	f.settle()
	f.wantStatus(v.Version, StatusRejected)
	if f.alias("champion") != "" {
		t.Fatal("a replayed record promoted the version")
	}
	f.wantTampered(v.Version, TamperReplayed)
	// The restored record comes after every one before it.
	if r := f.record(v.Version); r.Seq != 3 {
		t.Errorf("restored record has seq %d, want 3", r.Seq)
	}
}

func TestCopiedRecordIsRefused(t *testing.T) { scenario(t, basePolicy, copiedRecord) }

// A promoted record copied from another model's version of the same number does not
// verify as this model's.
func copiedRecord(f *fixture) {
	t := f.t
	other := f.model + "-other"
	spec := good(other)
	ov, err := mlflowtest.CreateVersion(f.ctx, f.client, spec)
	if err != nil {
		t.Fatal(err)
	}
	f.setPolicy(strings.Replace(basePolicy, `models: ["MODEL"]`, `models: ["MODEL*"]`, 1))
	f.pass()
	bad := unfair(f.model)
	v := f.create(bad)
	promoted := f.keys.Encode(other, ov.Version, f.recordOf(other, ov.Version))
	f.tag(v.Version, TagRecord, promoted)
	f.tag(v.Version, TagStatus, string(StatusPromoted))
	f.settle()
	f.wantStatus(v.Version, StatusRejected)
	f.wantTampered(v.Version, TamperCopied)
}

func (f *fixture) recordOf(model, version string) Record {
	f.t.Helper()
	mv, err := f.client.GetModelVersion(f.ctx, model, version)
	if err != nil {
		f.t.Fatal(err)
	}
	rec, v := f.keys.Decode(model, version, mv.Tags[TagRecord])
	if v != RecordValid {
		f.t.Fatalf("%s/%s: %s", model, version, v)
	}
	return rec
}

func TestOverride(t *testing.T) {
	scenario(t, strings.Replace(basePolicy, "      approvers: [alice, bob]", "      approvers: [alice, bob]\n      overriders: [head-of-risk]", 1), override)
}

// The urgent exception: an overrider promotes a version a reviewer rejected, with a
// reason; loud in the report, the notification, the audit trail and the record.
func override(f *fixture) {
	t := f.t
	v := f.create(borderline(f.model))
	f.pass()
	f.tag(v.Version, "modelgate.reject.bob", "not convinced")
	f.pass()
	f.wantStatus(v.Version, StatusRejected)
	f.tag(v.Version, "modelgate.override.alice", "I am not an overrider") // ignored
	f.tag(v.Version, "modelgate.override.head-of-risk", "")               // no reason: ignored
	f.pass()
	f.wantStatus(v.Version, StatusRejected)

	f.tag(v.Version, "modelgate.override.head-of-risk", "fraud spike: the fix cannot wait")
	f.pass()
	mv := f.wantStatus(v.Version, StatusPromoted)
	if f.alias("champion") != v.Version {
		t.Fatal("an override did not promote")
	}
	if r := f.record(v.Version); r.OverriddenBy != "head-of-risk" {
		t.Errorf("record %+v", r)
	}
	if !strings.HasPrefix(mv.Tags[TagSummary], "promoted to alias:champion; OVERRIDDEN by head-of-risk: fraud spike") {
		t.Errorf("summary %q", mv.Tags[TagSummary])
	}
	if !slices.Contains(f.notes.events(), "overridden "+v.Version) || !slices.Contains(f.auditEvents(), "overridden v"+v.Version+" by head-of-risk") {
		t.Errorf("notifications %v, audit %v", f.notes.events(), f.auditEvents())
	}
	f.settle() // and nothing more happens
	if n := strings.Count(strings.Join(f.auditEvents(), "\n"), "overridden"); n != 1 {
		t.Errorf("%d overridden events", n)
	}
}

func TestReevaluateKeepsAHumanRejection(t *testing.T) {
	scenario(t, basePolicy, reevaluateKeepsRejection)
}

// modelgate.reevaluate on unchanged evidence re-runs the checks but never lifts a
// person's rejection; once the evidence changes, it judges afresh.
func reevaluateKeepsRejection(f *fixture) {
	t := f.t
	v := f.create(borderline(f.model))
	f.pass()
	f.tag(v.Version, "modelgate.reject.bob", "wrong data")
	f.pass()
	f.tag(v.Version, TagReevaluate, "please")
	f.pass()
	mv := f.wantStatus(v.Version, StatusRejected)
	if !strings.Contains(mv.Tags[TagSummary], "the rejection by bob stands") || hasTag(mv, TagReevaluate) {
		t.Fatalf("summary %q, tags %v", mv.Tags[TagSummary], mv.Tags)
	}
	// The team fixes the evidence: now the checks pass and the version is judged afresh.
	if err := f.client.LogBatch(f.ctx, v.RunID, []mlflow.Metric{{Key: "accuracy", Value: 0.95, Timestamp: time.Now().UnixMilli() + 1000, Step: 1}}, nil, nil); err != nil {
		t.Fatal(err)
	}
	f.tag(v.Version, TagReevaluate, "fixed")
	f.pass()
	f.wantStatus(v.Version, StatusPromoted)
	if _, kept := f.get(v.Version).Tags["modelgate.reject.bob"]; kept {
		t.Error("the rejection was not set aside")
	}
}

func TestProtectedAliasMovedBack(t *testing.T) {
	scenario(t, strings.Replace(basePolicy, "      alias: champion", "      alias: champion\n      protect: true", 1), protectedAliasMovedBack)
}

// With promote.protect, a person's move of the alias to a version modelgate did not
// promote is undone (the idle pass watches aliases: one request more).
func protectedAliasMovedBack(f *fixture) {
	t := f.t
	unvetted := f.create(unfair(f.model))
	v2 := f.create(good(f.model))
	f.pass()
	f.wantStatus(v2.Version, StatusPromoted)
	if err := f.client.SetAlias(f.ctx, f.model, "champion", unvetted.Version); err != nil {
		t.Fatal(err)
	}
	f.pass()
	if got := f.alias("champion"); got != v2.Version {
		t.Fatalf("champion %q, want it moved back to %s", got, v2.Version)
	}
	f.wantStatus(v2.Version, StatusPromoted)
	f.wantTampered(v2.Version, TamperProtected)
}

func TestRenamedModelKeepsItsRecords(t *testing.T) {
	scenario(t, strings.Replace(basePolicy, `models: ["MODEL"]`, `models: ["MODEL*"]`, 1), renamedModel)
}

// A model renamed by its owners is not tampering: its records are signed again under
// the new name.
func renamedModel(f *fixture) {
	t := f.t
	v := f.create(good(f.model))
	f.pass()
	renamed := f.model + "-renamed"
	if _, err := f.client.RenameRegisteredModel(f.ctx, f.model, renamed); err != nil {
		t.Fatal(err)
	}
	f.model = renamed
	f.settle()
	f.wantStatus(v.Version, StatusPromoted)
	if r := f.record(v.Version); r.Model != renamed || !slices.Contains(r.Events, EventRenamed+":modelgate") {
		t.Fatalf("record %+v", r)
	}
	if strings.Contains(f.logs.String(), "tampering") {
		t.Errorf("a rename was taken for tampering:\n%s", f.logs)
	}
}

func TestWrongKeyHaltsWrites(t *testing.T) {
	scenario(t, basePolicy, wrongKeyHaltsWrites, countsRequests)
}

// With a wrong (or lost) signing key, most records fail to verify: modelgate writes
// nothing and says so, rather than re-judging the registry; the old key given as the
// previous one makes the records verify again.
func wrongKeyHaltsWrites(f *fixture) {
	t := f.t
	for range 5 {
		f.create(good(f.model))
	}
	f.pass()
	right := f.keys
	f.keys = Keys{Current: []byte("another-key-that-signed-nothing-0123456789")}
	f.rec = f.reconciler(f.client)
	f.create(good(f.model)) // work waiting
	before := f.reqs.snapshot()
	if err := f.rec.RunOnce(f.ctx); !errors.Is(err, ErrIntegrity) {
		t.Fatalf("RunOnce with the wrong key: %v", err)
	}
	after := f.reqs.snapshot()
	for _, write := range []string{"model-versions/set-tag", "model-versions/update", "registered-models/alias", "runs/create"} {
		if after[write] != before[write] {
			t.Errorf("%d %s requests with the wrong key", after[write]-before[write], write)
		}
	}
	if !strings.Contains(f.logs.String(), "writes halted") {
		t.Errorf("no log line says so:\n%s", f.logs)
	}
	// The operator rotates: the old key becomes the previous one.
	f.keys = Keys{Current: f.keys.Current, Previous: right.Current}
	f.rec = f.reconciler(f.client)
	f.pass()
	if st := f.status("6"); st != StatusPromoted {
		t.Fatalf("after the rotation, the waiting version is %q", st)
	}
	// Its record is signed with the new key; the others still verify with the old one.
	f.keys = Keys{Current: f.keys.Current}
	f.record("6")
}

func TestV1VersionsAreMigratedOnce(t *testing.T) { scenario(t, basePolicy, v1Migration) }

// A version decided by modelgate v1 (its eight tags) is migrated on the first v2 start,
// whatever its age: the v1 tags become a signed record and go. Afterwards, v1 tags that
// appear are tampering.
func v1Migration(f *fixture) {
	t := f.t
	if _, err := f.client.CreateRegisteredModel(f.ctx, f.model, nil, ""); err != nil {
		t.Fatal(err)
	}
	v1Tags := func(status string) mlflow.Tags {
		return mlflow.Tags{TagStatus: status, TagSummary: "decided by v1", "modelgate.gate": "gate-" + f.model,
			"modelgate.decided_at": "2025-01-02T03:04:05Z", "modelgate.policy_digest": "sha256:1111111111111111",
			"modelgate.evidence_digest": "sha256:2222222222222222", "modelgate.promoted_to": "alias:champion"}
	}
	old, err := f.client.CreateModelVersion(f.ctx, mlflow.CreateModelVersionRequest{Name: f.model, Source: "s3://bucket/m", Tags: v1Tags("promoted")})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.client.SetAlias(f.ctx, f.model, "champion", old.Version); err != nil {
		t.Fatal(err)
	}
	f.rec.cfg.Since = f.clock.Now().Add(time.Hour) // older than Since: migrated all the same
	f.pass()
	mv := f.wantStatus(old.Version, StatusPromoted)
	for _, k := range v1Tags("") {
		_ = k
	}
	for k := range mv.Tags {
		if slices.Contains([]string{"modelgate.gate", "modelgate.decided_at", "modelgate.policy_digest", "modelgate.evidence_digest", "modelgate.promoted_to"}, k) {
			t.Errorf("v1 tag %s left", k)
		}
	}
	if r := f.record(old.Version); r.Status != StatusPromoted || r.PromotedTo != "alias:champion" || r.Evidence != "sha256:2222222222222222" {
		t.Fatalf("migrated record %+v", r)
	}
	if !slices.Contains(f.auditEvents(), "migrated v"+old.Version+" by modelgate") {
		t.Errorf("audit %v", f.auditEvents())
	}
	// v1 tags written now are a forgery, not a migration.
	late, err := f.client.CreateModelVersion(f.ctx, mlflow.CreateModelVersionRequest{Name: f.model, Source: "s3://bucket/m", Tags: v1Tags("promoted")})
	if err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(11 * time.Minute) // a full scan
	f.pass()
	if st := f.status(late.Version); st == StatusPromoted {
		t.Fatal("late v1 tags were migrated as a decision")
	}
	f.wantTampered(late.Version, TamperUnsigned)
}

func TestRecordRemovedIsRestored(t *testing.T) { scenario(t, basePolicy, recordRemoved) }

// A decided version whose record and status were deleted (by someone with MANAGE) is not
// judged again as if new: the audit trail knows its last signed state, and it comes back.
func recordRemoved(f *fixture) {
	t := f.t
	v := f.create(borderline(f.model))
	f.pass()
	f.tag(v.Version, "modelgate.reject.bob", "no")
	f.pass()
	for _, k := range []string{TagRecord, TagStatus} {
		if err := f.client.DeleteModelVersionTag(f.ctx, f.model, v.Version, k); err != nil {
			t.Fatal(err)
		}
	}
	f.pass()
	f.wantStatus(v.Version, StatusRejected)
	if r := f.record(v.Version); r.RejectedBy != "bob" {
		t.Errorf("record %+v", r)
	}
	f.wantTampered(v.Version, TamperRecordRemoved)
}
