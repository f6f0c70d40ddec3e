package transitions

import (
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelgate/modelgate/mlflow"
	"github.com/modelgate/modelgate/mlflow/mlflowtest"
)

// verifiedServer is a real MLflow started with the modelgate-auth app
// (mlflow/modelgate-auth): reviewers may edit every model, and modelgate's user (the
// admin, as the fixtures' clients are) may move votes aside.
var verifiedServer = mlflowtest.NewShared(mlflowtest.Options{BasicAuth: true, AppName: "modelgate-auth",
	DefaultPermission: "EDIT", Env: []string{"MODELGATE_AUTH_SERVICE_USERS=" + mlflowtest.AdminUser}})

const verifiedPolicy = `
gates:
  - name: gate-MODEL
    models: ["MODEL"]
    checks:
      - {name: floor, metric: accuracy, min: 0.8, on_fail: reject}
      - {name: target, metric: accuracy, min: 0.9, on_fail: review}
    review:
      approvers: [alice, bob, carol]
      min_approvals: 2
      identity: verified
      forbid_self_approval: true
    promote: {alias: champion}
`

// TestVerifiedVotes runs the review of verified votes on a real MLflow with the
// modelgate-auth app and real users: a vote in another name is refused by MLflow; a tag
// written around the API (into the database) is not counted, nor is a record of another
// version; the creator's own approval is ignored; modelgate still sets stale votes aside;
// approvals recorded for the logged-in users promote the version, marked verified.
func TestVerifiedVotes(t *testing.T) {
	if testing.Short() {
		t.Skip("needs a real MLflow server with the modelgate-auth app")
	}
	f := newFixtureOn(t, realMLflow, verifiedPolicy)
	f.srv = verifiedServer.Get(t)
	f.client = f.srv.Client(t, mlflow.Options{Observer: f.reqs})
	f.rec = f.reconciler(f.client)
	users := map[string]*mlflow.Client{}
	for _, name := range []string{"alice", "bob", "carol"} {
		if err := f.srv.CreateUser(f.ctx, name, name+"-password-1"); err != nil && !strings.Contains(err.Error(), "already exists") {
			t.Fatal(err)
		}
		users[name] = f.srv.Client(t, mlflow.Options{Username: name, Password: name + "-password-1"})
	}
	vote := func(user, version, key string) error {
		return users[user].SetModelVersionTag(f.ctx, f.model, version, key, "")
	}

	// carol registers the version: she is its recorded creator.
	v1, err := mlflowtest.CreateVersion(f.ctx, users["carol"], borderline(f.model))
	if err != nil {
		t.Fatal(err)
	}
	f.pass()
	f.wantStatus(v1.Version, StatusPendingReview)

	// alice cannot vote as bob: MLflow refuses it, in words she understands.
	err = vote("alice", v1.Version, "modelgate.approve.bob")
	if !mlflow.IsPermissionDenied(err) || !strings.Contains(err.Error(), "signed in to MLflow as alice") {
		t.Fatalf("alice voting as bob: %v", err)
	}
	// A tag written around MLflow's API, straight into its database, has no record.
	f.forgeTag(v1.Version, "modelgate.approve.bob")
	// carol approving her own version is recorded, and ignored.
	if err := vote("carol", v1.Version, "modelgate.approve.carol"); err != nil {
		t.Fatal(err)
	}
	// alice's approval is recorded and counts.
	if err := vote("alice", v1.Version, "modelgate.approve.alice"); err != nil {
		t.Fatal(err)
	}
	f.pass()
	got := f.wantStatus(v1.Version, StatusPendingReview)
	for _, want := range []string{"**alice (✔ verified)** approved", "Review: 1 of 2 approval(s)",
		"unverified: modelgate-auth has no record of bob", "carol created this version and cannot approve it (forbid\\_self\\_approval)"} {
		if !strings.Contains(got.Description, want) {
			t.Errorf("report lacks %q:\n%s", want, got.Description)
		}
	}

	// New evidence, judged on request: modelgate (the server's service user) sets the
	// votes aside.
	if err := f.client.LogBatch(f.ctx, v1.RunID, []mlflow.Metric{{Key: "accuracy", Value: 0.86, Timestamp: f.clock.Now().UnixMilli() + 1, Step: 1}}, nil, nil); err != nil {
		t.Fatal(err)
	}
	f.tag(v1.Version, TagReevaluate, "new accuracy")
	f.pass()
	got = f.wantStatus(v1.Version, StatusPendingReview)
	if hasTag(got, "modelgate.approve.alice") || !slices.ContainsFunc(keys(got.Tags), func(k string) bool {
		return strings.HasPrefix(k, "modelgate.stale.") && strings.HasSuffix(k, ".approve.alice")
	}) {
		t.Fatalf("alice's vote was not set aside: %v", keys(got.Tags))
	}

	// A record of alice's vote on version 1 does not make a forged one on version 2 count.
	v2, err := mlflowtest.CreateVersion(f.ctx, users["carol"], borderline(f.model))
	if err != nil {
		t.Fatal(err)
	}
	f.forgeTag(v2.Version, "modelgate.approve.alice")
	f.pass()
	if got := f.wantStatus(v2.Version, StatusPendingReview); !strings.Contains(got.Description, "unverified: modelgate-auth has no record of alice") {
		t.Errorf("a forged vote on version 2 counted:\n%s", got.Description)
	}

	// Fresh approvals by alice and bob, each logged in as themselves, promote version 1.
	for _, u := range []string{"alice", "bob"} {
		if err := vote(u, v1.Version, "modelgate.approve."+u); err != nil {
			t.Fatal(err)
		}
	}
	f.pass()
	got = f.wantStatus(v1.Version, StatusPromoted)
	if rec := f.record(v1.Version); !slices.Equal(rec.ApprovedBy, []string{"alice", "bob"}) ||
		!strings.Contains(got.Description, "alice (✔ verified)") || !strings.Contains(got.Description, "bob (✔ verified)") {
		t.Fatalf("promoted: record %+v\n%s", rec, got.Description)
	}
}

// forgeTag writes a vote tag into the MLflow database directly, as someone who can
// write it could: no request, so no modelgate-auth record.
func (f *fixture) forgeTag(version, key string) {
	f.t.Helper()
	python, err := mlflowtest.Python()
	if err != nil {
		f.t.Fatal(err)
	}
	script := `import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
c.execute("insert into model_version_tags (key, value, name, version) values (?, '', ?, ?)", (sys.argv[2], sys.argv[3], int(sys.argv[4])))
c.commit()`
	out, err := exec.CommandContext(f.ctx, python, "-c", script, filepath.Join(f.srv.Dir, "mlflow.db"), key, f.model, version).CombinedOutput()
	if err != nil {
		f.t.Fatalf("forge %s on %s/%s: %v\n%s", key, f.model, version, err, out)
	}
}

func keys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// TestUnrecordedVoteIsLookedAtAgain: a vote whose record comes after its tag (a webhook
// delivered before the plugin committed it) is not dropped: the version is looked at
// again shortly, and then the vote counts.
func TestUnrecordedVoteIsLookedAtAgain(t *testing.T) {
	f := newFixtureOn(t, inMemory, strings.Replace(verifiedPolicy, "min_approvals: 2", "min_approvals: 1", 1))
	mem := f.client.(*mlflowtest.Memory)
	f.rec.cfg.RecheckAfter = 10 * time.Millisecond
	v := f.create(borderline(f.model))
	mem.RecordVote(f.model, v.Version, "", "carol", "create")
	f.pass()
	f.tag(v.Version, "modelgate.approve.alice", "")
	f.pass()
	got := f.wantStatus(v.Version, StatusPendingReview)
	if !strings.Contains(got.Description, "unverified: modelgate-auth has no record of alice") {
		t.Fatalf("report:\n%s", got.Description)
	}
	mem.RecordVote(f.model, v.Version, "modelgate.approve.alice", "alice", "set")
	waitUntil(t, "the version to be nudged again", func() bool {
		f.rec.mu.Lock()
		defer f.rec.mu.Unlock()
		return f.rec.nudged[versionKey{f.model, v.Version}]
	})
	if err := f.rec.RunNudged(f.ctx); err != nil {
		t.Fatal(err)
	}
	f.wantStatus(v.Version, StatusPromoted)
}
