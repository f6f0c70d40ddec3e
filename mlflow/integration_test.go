package mlflow_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/modelgate/modelgate/mlflow"
	"github.com/modelgate/modelgate/mlflow/mlflowtest"
)

// One plain server and one basic-auth server per test run, started on first use.
var (
	mlflowServer = mlflowtest.NewShared(mlflowtest.Options{})
	authServer   = mlflowtest.NewShared(mlflowtest.Options{BasicAuth: true})
)

func TestMain(m *testing.M) {
	code := m.Run()
	mlflowServer.Close()
	authServer.Close()
	os.Exit(code)
}

// requests counts calls per endpoint.
type requests struct {
	mu sync.Mutex
	n  map[string]int
}

func (r *requests) ObserveMLflowRequest(endpoint, _ string, _ time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.n == nil {
		r.n = map[string]int{}
	}
	r.n[endpoint]++
}

func (r *requests) count(endpoint string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n[endpoint]
}

func newClient(t *testing.T, srv *mlflowtest.Server, opts mlflow.Options) *mlflow.Client {
	t.Helper()
	opts.TrackingURI = srv.URL
	if opts.MaxRetries == 0 {
		opts.MaxRetries = 2
	}
	opts.BackoffFactor = 50 * time.Millisecond
	c, err := mlflow.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func ctxFor(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// modelName gives each test its own registered model on the shared server.
func modelName(t *testing.T) string {
	return strings.NewReplacer("/", "-", " ", "-").Replace(t.Name())
}

func createVersions(t *testing.T, c *mlflow.Client, name string, n int) []mlflow.ModelVersion {
	t.Helper()
	ctx := ctxFor(t)
	if _, err := c.CreateRegisteredModel(ctx, name, nil, ""); err != nil {
		t.Fatalf("create model %s: %v", name, err)
	}
	var out []mlflow.ModelVersion
	for i := range n {
		mv, err := c.CreateModelVersion(ctx, mlflow.CreateModelVersionRequest{Name: name, Source: "s3://bucket/" + name + "/" + string(rune('a'+i))})
		if err != nil {
			t.Fatalf("create version: %v", err)
		}
		out = append(out, mv)
	}
	return out
}

// release is the MLflow release the test server runs: the pinned one, or under
// make test-compat an older one.
func release(t *testing.T, srv *mlflowtest.Server) mlflow.ServerRelease {
	t.Helper()
	r, ok := mlflow.ParseServerVersion(srv.Version)
	if !ok {
		t.Fatalf("the test server's /version answered %q", srv.Version)
	}
	return r
}

func TestServerIsThePinnedRelease(t *testing.T) {
	srv := mlflowServer.Get(t)
	want, err := mlflowtest.Release()
	if err != nil {
		t.Fatal(err)
	}
	if os.Getenv("MODELGATE_MLFLOW") == "" && want != mlflowtest.MLflowVersion {
		t.Fatalf("MLflow %s installed, want %s (rerun scripts/install-mlflow.sh)", want, mlflowtest.MLflowVersion)
	}
	if srv.Version != want {
		t.Fatalf("the server answers /version %q; its installation is %s", srv.Version, want)
	}
	// The client reads the same release, as modelgate does at start-up.
	got, err := newClient(t, srv, mlflow.Options{}).ServerVersion(ctxFor(t))
	if _, ok := mlflow.ParseServerVersion(got); err != nil || got != srv.Version || !ok {
		t.Fatalf("ServerVersion = %q, %v; want %s", got, err, srv.Version)
	}
}

func TestHealth(t *testing.T) {
	srv := mlflowServer.Get(t)
	c := newClient(t, srv, mlflow.Options{})
	if err := c.Health(ctxFor(t)); err != nil {
		t.Fatalf("Health: %v", err)
	}
	down, err := mlflow.New(mlflow.Options{TrackingURI: "http://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := down.Health(ctxFor(t)); !errors.Is(err, mlflow.ErrUnreachable) {
		t.Fatalf("Health on a closed port: %v, want ErrUnreachable", err)
	}
}

func TestRegisteredModelEndpoints(t *testing.T) {
	srv := mlflowServer.Get(t)
	c := newClient(t, srv, mlflow.Options{})
	ctx := ctxFor(t)
	name := modelName(t)

	rm, err := c.CreateRegisteredModel(ctx, name, mlflow.Tags{"team": "risk"}, "credit model")
	if err != nil {
		t.Fatal(err)
	}
	if rm.Name != name || rm.Tags["team"] != "risk" {
		t.Fatalf("created %+v", rm)
	}
	if _, err := c.CreateRegisteredModel(ctx, name, nil, ""); !mlflow.IsAlreadyExists(err) {
		t.Fatalf("second create: %v, want ErrAlreadyExists", err)
	}
	if err := c.SetRegisteredModelTag(ctx, name, "modelgate.owner", "gate"); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteRegisteredModelTag(ctx, name, "team"); err != nil {
		t.Fatal(err)
	}
	rm, err = c.GetRegisteredModel(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if rm.Tags["modelgate.owner"] != "gate" || rm.Tags["team"] != "" || rm.Description != "credit model" {
		t.Fatalf("after tag edits: %+v", rm)
	}
	found, err := c.SearchRegisteredModels(ctx, mlflow.SearchOptions{Filter: "name = '" + name + "'"})
	if err != nil || len(found) != 1 || found[0].Name != name {
		t.Fatalf("search by name: %v, %v", found, err)
	}
	renamed := name + "-renamed"
	if _, err := c.RenameRegisteredModel(ctx, name, renamed); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetRegisteredModel(ctx, name); !mlflow.IsNotFound(err) {
		t.Fatalf("get old name after rename: %v, want ErrNotFound", err)
	}
	if err := c.DeleteRegisteredModel(ctx, renamed); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetRegisteredModel(ctx, renamed); !mlflow.IsNotFound(err) {
		t.Fatalf("get after delete: %v, want ErrNotFound", err)
	}
}

func TestModelVersionEndpoints(t *testing.T) {
	srv := mlflowServer.Get(t)
	c := newClient(t, srv, mlflow.Options{})
	ctx := ctxFor(t)
	name := modelName(t)
	vs := createVersions(t, c, name, 3)
	if vs[0].Version != "1" || vs[2].Version != "3" || vs[0].Tags != nil && len(vs[0].Tags) != 0 {
		t.Fatalf("versions %+v", vs)
	}

	// Tag edits do not bump last_updated_timestamp; a description update does.
	if err := c.SetModelVersionTag(ctx, name, "2", "modelgate.status", "pending_review"); err != nil {
		t.Fatal(err)
	}
	mv, err := c.GetModelVersion(ctx, name, "2")
	if err != nil {
		t.Fatal(err)
	}
	if mv.Tags["modelgate.status"] != "pending_review" || mv.LastUpdatedTimestamp != vs[1].LastUpdatedTimestamp {
		t.Fatalf("after set-tag: tags %v, last_updated %d (was %d)", mv.Tags, mv.LastUpdatedTimestamp, vs[1].LastUpdatedTimestamp)
	}
	time.Sleep(5 * time.Millisecond) // timestamps are milliseconds
	updated, err := c.UpdateModelVersionDescription(ctx, name, "2", "user text\n")
	if err != nil {
		t.Fatal(err)
	}
	if updated.Description != "user text\n" || updated.LastUpdatedTimestamp <= vs[1].LastUpdatedTimestamp {
		t.Fatalf("after update: %q, last_updated %d (was %d)", updated.Description, updated.LastUpdatedTimestamp, vs[1].LastUpdatedTimestamp)
	}
	if err := c.DeleteModelVersionTag(ctx, name, "2", "modelgate.status"); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteModelVersionTag(ctx, name, "2", "never-set"); err != nil {
		t.Fatalf("deleting an absent tag: %v, want success", err)
	}
	if mv, _ = c.GetModelVersion(ctx, name, "2"); len(mv.Tags) != 0 {
		t.Fatalf("tags after delete: %v", mv.Tags)
	}

	// Aliases: set, read back three ways, move, delete.
	if err := c.SetAlias(ctx, name, "champion", "1"); err != nil {
		t.Fatal(err)
	}
	if err := c.SetAlias(ctx, name, "champion", "3"); err != nil {
		t.Fatal(err)
	}
	byAlias, err := c.GetModelVersionByAlias(ctx, name, "champion")
	if err != nil || byAlias.Version != "3" {
		t.Fatalf("by alias: %+v, %v", byAlias, err)
	}
	rm, err := c.GetRegisteredModel(ctx, name)
	if v, ok := rm.AliasVersion("champion"); err != nil || !ok || v != "3" {
		t.Fatalf("registered model aliases %v, %v", rm.Aliases, err)
	}
	if mv, _ = c.GetModelVersion(ctx, name, "3"); !slices.Contains(mv.Aliases, "champion") {
		t.Fatalf("version aliases %v", mv.Aliases)
	}
	searched, err := c.SearchModelVersions(ctx, mlflow.SearchOptions{Filter: "name = '" + name + "'"})
	if err != nil || len(searched) != 3 {
		t.Fatalf("search: %d versions, %v", len(searched), err)
	}
	for _, s := range searched {
		if len(s.Aliases) != 0 {
			t.Fatalf("search returned aliases %v: the server behaviour this client documents has changed", s.Aliases)
		}
	}
	if _, err := c.GetModelVersionByAlias(ctx, name, "challenger"); !mlflow.IsNotFound(err) {
		t.Fatalf("unknown alias: %v, want ErrNotFound", err)
	}
	if err := c.SetAlias(ctx, name, "champion", "99"); !mlflow.IsNotFound(err) {
		t.Fatalf("alias on a missing version: %v, want ErrNotFound", err)
	}
	if err := c.DeleteAlias(ctx, name, "champion"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetModelVersionByAlias(ctx, name, "champion"); !mlflow.IsNotFound(err) {
		t.Fatalf("deleted alias: %v, want ErrNotFound", err)
	}

	// Stages: archive_existing_versions moves the previous Production version out.
	if _, err := c.TransitionStage(ctx, name, "1", "Production", false); err != nil {
		t.Fatal(err)
	}
	moved, err := c.TransitionStage(ctx, name, "2", "production", true)
	if err != nil || moved.CurrentStage != "Production" {
		t.Fatalf("transition: %+v, %v", moved, err)
	}
	if mv, _ = c.GetModelVersion(ctx, name, "1"); mv.CurrentStage != "Archived" {
		t.Fatalf("version 1 is %q, want Archived", mv.CurrentStage)
	}
	latest, err := c.GetLatestVersions(ctx, name, "Production")
	if err != nil || len(latest) != 1 || latest[0].Version != "2" {
		t.Fatalf("latest Production: %+v, %v", latest, err)
	}
	if _, err := c.TransitionStage(ctx, name, "3", "Bogus", false); !errors.Is(err, mlflow.ErrInvalidParameter) {
		t.Fatalf("bogus stage: %v, want ErrInvalidParameter", err)
	}

	// Delete: the version disappears from get and search.
	if err := c.DeleteModelVersion(ctx, name, "3"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetModelVersion(ctx, name, "3"); !mlflow.IsNotFound(err) {
		t.Fatalf("get deleted version: %v, want ErrNotFound", err)
	}
	if _, err := c.GetModelVersion(ctx, name+"-nope", "1"); !mlflow.IsNotFound(err) {
		t.Fatalf("get version of a missing model: %v, want ErrNotFound", err)
	}
}

func TestSearchFollowsEveryPage(t *testing.T) {
	srv := mlflowServer.Get(t)
	reqs := &requests{}
	c := newClient(t, srv, mlflow.Options{Observer: reqs})
	ctx := ctxFor(t)
	name := modelName(t)
	createVersions(t, c, name, 7)

	opts := mlflow.SearchOptions{Filter: "name = '" + name + "'", OrderBy: []string{"creation_timestamp DESC"}, PageSize: 2}
	before := reqs.count("model-versions/search")
	all, err := c.SearchModelVersions(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	pages := reqs.count("model-versions/search") - before
	var got []string
	for _, mv := range all {
		got = append(got, mv.Version)
	}
	if want := []string{"7", "6", "5", "4", "3", "2", "1"}; !slices.Equal(got, want) {
		t.Fatalf("versions %v, want %v", got, want)
	}
	// 7 results in pages of 2: four pages, the last one short and without a token.
	if pages != 4 {
		t.Fatalf("%d search requests, want 4", pages)
	}

	// The token is MLflow's offset, base64 JSON: check the client sent what it received.
	_, token, err := c.SearchModelVersionsPage(ctx, opts, "")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := base64.StdEncoding.DecodeString(token)
	var off struct{ Offset int }
	if err != nil || json.Unmarshal(raw, &off) != nil || off.Offset != 2 {
		t.Fatalf("page token %q decodes to %s (%v), want offset 2", token, raw, err)
	}

	// Stopping the iterator stops fetching.
	before = reqs.count("model-versions/search")
	for mv, err := range c.ModelVersions(ctx, opts) {
		if err != nil || mv.Version != "7" {
			t.Fatalf("first: %+v, %v", mv, err)
		}
		break
	}
	if n := reqs.count("model-versions/search") - before; n != 1 {
		t.Fatalf("breaking after the first version made %d requests, want 1", n)
	}
}

func TestSearchByTag(t *testing.T) {
	srv := mlflowServer.Get(t)
	c := newClient(t, srv, mlflow.Options{})
	ctx := ctxFor(t)
	name := modelName(t)
	createVersions(t, c, name, 3)
	for v, status := range map[string]string{"1": "promoted", "2": "pending_review"} {
		if err := c.SetModelVersionTag(ctx, name, v, "modelgate.status", status); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.SetModelVersionTag(ctx, name, "3", "modelgate.reevaluate", ""); err != nil {
		t.Fatal(err)
	}
	byName := "name = '" + name + "' AND "
	pending, err := c.SearchModelVersions(ctx, mlflow.SearchOptions{Filter: byName + mlflow.TagFilter("modelgate.status", "pending_review")})
	if err != nil || len(pending) != 1 || pending[0].Version != "2" || pending[0].Tags["modelgate.status"] != "pending_review" {
		t.Fatalf("pending: %+v, %v", pending, err)
	}
	present, err := c.SearchModelVersions(ctx, mlflow.SearchOptions{Filter: byName + mlflow.TagPresentFilter("modelgate.status")})
	if err != nil || len(present) != 2 {
		t.Fatalf("versions with a status tag: %d, %v; want 2", len(present), err)
	}
	// An empty tag value still counts as present: reviewers may leave the value blank.
	reeval, err := c.SearchModelVersions(ctx, mlflow.SearchOptions{Filter: byName + mlflow.TagPresentFilter("modelgate.reevaluate")})
	if err != nil || len(reeval) != 1 || reeval[0].Version != "3" {
		t.Fatalf("versions with an empty reevaluate tag: %+v, %v", reeval, err)
	}
}

func TestRunEvidence(t *testing.T) {
	srv := mlflowServer.Get(t)
	reqs := &requests{}
	c := newClient(t, srv, mlflow.Options{Observer: reqs})
	ctx := ctxFor(t)
	exp, err := c.CreateExperiment(ctx, modelName(t))
	if err != nil {
		t.Fatal(err)
	}
	run, err := c.CreateRun(ctx, exp, "train")
	if err != nil {
		t.Fatal(err)
	}
	id := run.Info.RunID
	var ms []mlflow.Metric
	for i, v := range []float64{0.5, 0.6, 0.7, 0.8, 0.9} {
		ms = append(ms, mlflow.Metric{Key: "accuracy", Value: mlflow.Float(v), Timestamp: int64(1000 + i), Step: int64(i)})
	}
	ms = append(ms,
		mlflow.Metric{Key: "nan_metric", Value: mlflow.Float(math.NaN()), Timestamp: 1},
		mlflow.Metric{Key: "inf_metric", Value: mlflow.Float(math.Inf(1)), Timestamp: 1},
		mlflow.Metric{Key: "recall_sex_female", Value: 0.81, Timestamp: 1})
	if err := c.LogBatch(ctx, id, ms, []mlflow.Param{{Key: "n_rows", Value: "12000"}}, mlflow.Tags{"security_scan": "passed"}); err != nil {
		t.Fatal(err)
	}
	if err := c.FinishRun(ctx, id); err != nil {
		t.Fatal(err)
	}
	got, err := c.GetRun(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	metrics := mlflow.LatestMetrics(got.Data.Metrics)
	if metrics["accuracy"] != 0.9 || metrics["recall_sex_female"] != 0.81 || !math.IsNaN(metrics["nan_metric"]) || !math.IsInf(metrics["inf_metric"], 1) {
		t.Fatalf("metrics %v", metrics)
	}
	if mlflow.ParamMap(got.Data.Params)["n_rows"] != "12000" || got.Data.Tags["security_scan"] != "passed" || got.Info.Status != "FINISHED" {
		t.Fatalf("run %+v", got)
	}

	before := reqs.count("metrics/get-history")
	hist, err := c.MetricHistory(ctx, id, "accuracy", 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != 5 || hist[0].Value != 0.5 || hist[4].Value != 0.9 {
		t.Fatalf("history %+v", hist)
	}
	// Servers before 3.3 (3.0.1 and 2.22.5 seen) ignore max_results and answer the
	// whole history at once: the client still reads it all.
	want := 3
	if !release(t, srv).AtLeast(3, 3) {
		want = 1
	}
	if n := reqs.count("metrics/get-history") - before; n != want {
		t.Fatalf("history of 5 values in pages of 2 took %d requests, want %d", n, want)
	}
	if _, err := c.GetRun(ctx, "0123456789abcdef0123456789abcdef"); !mlflow.IsNotFound(err) {
		t.Fatalf("missing run: %v, want ErrNotFound", err)
	}
}

func TestLoggedModelVersionResolvesMetrics(t *testing.T) {
	srv := mlflowServer.Get(t)
	c := newClient(t, srv, mlflow.Options{})
	ctx := ctxFor(t)
	name := modelName(t)
	exp, err := c.CreateExperiment(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if !release(t, srv).AtLeast(3, 0) {
		// No logged models before 3.0: the endpoint is missing, and the error says so.
		_, err := c.CreateLoggedModel(ctx, exp, "classifier", "", nil)
		if !mlflow.IsNotFound(err) || !strings.Contains(err.Error(), "MLflow 3") {
			t.Fatalf("logged model on MLflow %s: %v, want not found naming MLflow 3", srv.Version, err)
		}
		return
	}
	// MLflow 3 style: a logged model with no run of its own, metrics logged against it
	// from an evaluation run, registered from models:/<id>.
	lm, err := c.CreateLoggedModel(ctx, exp, "classifier", "", []mlflow.Param{{Key: "max_depth", Value: "4"}})
	if err != nil {
		t.Fatal(err)
	}
	eval, err := c.CreateRun(ctx, exp, "evaluation")
	if err != nil {
		t.Fatal(err)
	}
	metrics := []mlflow.Metric{{Key: "accuracy", Value: 0.93, Timestamp: 1, ModelID: lm.Info.ModelID}}
	if err := c.LogBatch(ctx, eval.Info.RunID, metrics, nil, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateRegisteredModel(ctx, name, nil, ""); err != nil {
		t.Fatal(err)
	}
	mv, err := c.CreateModelVersion(ctx, mlflow.CreateModelVersionRequest{Name: name, Source: "models:/" + lm.Info.ModelID, ModelID: lm.Info.ModelID})
	if err != nil {
		t.Fatal(err)
	}
	if mv.RunID != "" || mv.LoggedModelID() != lm.Info.ModelID {
		t.Fatalf("version run_id %q, logged model %q; want empty and %s", mv.RunID, mv.LoggedModelID(), lm.Info.ModelID)
	}
	got, err := c.GetLoggedModel(ctx, mv.LoggedModelID())
	if err != nil {
		t.Fatal(err)
	}
	if m := mlflow.LatestMetrics(got.Data.Metrics); m["accuracy"] != 0.93 {
		t.Fatalf("logged model metrics %v", m)
	}
	if mlflow.ParamMap(got.Data.Params)["max_depth"] != "4" {
		t.Fatalf("logged model params %v", got.Data.Params)
	}
	if _, err := c.GetLoggedModel(ctx, "m-00000000000000000000000000000000"); !mlflow.IsNotFound(err) {
		t.Fatalf("missing logged model: %v, want ErrNotFound", err)
	}
}

func TestPromptIsRecognised(t *testing.T) {
	srv := mlflowServer.Get(t)
	c := newClient(t, srv, mlflow.Options{})
	ctx := ctxFor(t)
	name := strings.ToLower(modelName(t))
	version, err := srv.RegisterPrompt(ctx, name, "Summarise {{text}}")
	if err != nil {
		t.Fatal(err)
	}
	if version != "1" {
		t.Fatalf("register_prompt printed %q", version)
	}
	rm, err := c.GetRegisteredModel(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if !rm.IsPrompt() {
		t.Fatalf("registered model tags %v: not recognised as a prompt", rm.Tags)
	}
	mv, err := c.GetModelVersion(ctx, name, "1")
	if err != nil {
		t.Fatal(err)
	}
	if !mv.IsPrompt() {
		t.Fatalf("prompt version tags %v: not recognised as a prompt", mv.Tags)
	}
	found, err := c.SearchModelVersions(ctx, mlflow.SearchOptions{Filter: "name = '" + name + "'"})
	if err != nil || len(found) != 0 {
		t.Fatalf("search returned the prompt: %+v, %v", found, err)
	}
}

func TestBasicAuth(t *testing.T) {
	srv := authServer.Get(t)
	ctx := ctxFor(t)
	admin := newClient(t, srv, mlflow.Options{Username: mlflowtest.AdminUser, Password: mlflowtest.AdminPassword})
	name := modelName(t)
	createVersions(t, admin, name, 1)

	wrong := newClient(t, srv, mlflow.Options{Username: mlflowtest.AdminUser, Password: "not-the-password"})
	_, err := wrong.GetModelVersion(ctx, name, "1")
	if !mlflow.IsUnauthenticated(err) || !strings.Contains(err.Error(), "MLFLOW_TRACKING_PASSWORD") {
		t.Fatalf("wrong password: %v, want ErrUnauthenticated naming the variables to fix", err)
	}
	if strings.Contains(err.Error(), "not-the-password") {
		t.Fatalf("error leaks the password: %v", err)
	}
	anonymous := newClient(t, srv, mlflow.Options{})
	if _, err := anonymous.GetModelVersion(ctx, name, "1"); !mlflow.IsUnauthenticated(err) {
		t.Fatalf("no credentials: %v, want ErrUnauthenticated", err)
	}

	if err := srv.CreateUser(ctx, "reviewer", "reviewer-password-1"); err != nil {
		t.Fatal(err)
	}
	reviewer := newClient(t, srv, mlflow.Options{Username: "reviewer", Password: "reviewer-password-1"})
	if _, err := reviewer.GetModelVersion(ctx, name, "1"); err != nil {
		t.Fatalf("READ user reading: %v", err)
	}
	err = reviewer.SetModelVersionTag(ctx, name, "1", "modelgate.approve.reviewer", "")
	if !mlflow.IsPermissionDenied(err) || !strings.Contains(err.Error(), "MANAGE") {
		t.Fatalf("READ user setting a tag: %v, want ErrPermissionDenied saying which permission is needed", err)
	}
	if err := srv.GrantModelPermission(ctx, name, "reviewer", "EDIT"); err != nil {
		t.Fatal(err)
	}
	if err := reviewer.SetModelVersionTag(ctx, name, "1", "modelgate.approve.reviewer", "lgtm"); err != nil {
		t.Fatalf("EDIT user setting a tag: %v", err)
	}
	if err := reviewer.DeleteModelVersionTag(ctx, name, "1", "modelgate.approve.reviewer"); !mlflow.IsPermissionDenied(err) {
		t.Fatalf("EDIT user deleting a tag: %v, want ErrPermissionDenied (deleting needs MANAGE)", err)
	}
	// Search has no permission check at all in MLflow's basic-auth app.
	if vs, err := reviewer.SearchModelVersions(ctx, mlflow.SearchOptions{Filter: "name = '" + name + "'"}); err != nil || len(vs) != 1 {
		t.Fatalf("search as reviewer: %d, %v", len(vs), err)
	}
	// /health needs no credentials.
	if err := anonymous.Health(ctx); err != nil {
		t.Fatalf("health without credentials: %v", err)
	}
}

// TestInflightLimitFollowsARealServer: a crowd of writes to a one-worker MLflow on
// SQLite queue behind each other (its write lock); their answers slow down, and the
// client's limit comes down from its maximum, while every write succeeds.
func TestInflightLimitFollowsARealServer(t *testing.T) {
	srv := mlflowServer.Get(t)
	c := newClient(t, srv, mlflow.Options{MaxInFlight: 32})
	ctx := ctxFor(t)
	name := modelName(t)
	v := createVersions(t, c, name, 1)[0].Version
	for i := range 3 { // lone writes: how fast the server answers one
		if err := c.SetModelVersionTag(ctx, name, v, "warm", strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	for i := range 128 {
		g.Go(func() error {
			return c.SetModelVersionTag(gctx, name, v, "k"+strconv.Itoa(i), strconv.Itoa(i)) // one key each: MLflow fails concurrent writes of one key (docs/mlflow.md)
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatalf("a write of the crowd failed: %v", err)
	}
	if got := c.InflightLimit(); got >= 32 {
		t.Fatalf("limit %d after a crowd of 128 writes on a one-worker server, want it below the maximum 32", got)
	}
	t.Logf("limit after the crowd: %d of 32", c.InflightLimit())
}

// TestVoteRecordsWithoutThePlugin: a server without the modelgate-auth app answers the
// records endpoint 404, which the client names as what it is and how to fix it.
func TestVoteRecordsWithoutThePlugin(t *testing.T) {
	srv := mlflowServer.Get(t)
	_, err := newClient(t, srv, mlflow.Options{}).GetVoteRecords(ctxFor(t), "m", "1")
	if !errors.Is(err, mlflow.ErrNoVoteRecords) || !strings.Contains(err.Error(), "--app-name modelgate-auth") {
		t.Fatalf("GetVoteRecords on a server without the plugin: %v", err)
	}
}
