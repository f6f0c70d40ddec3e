package main

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/modelgate/modelgate/mlflow"
	"github.com/modelgate/modelgate/mlflow/mlflowtest"
)

var mlflowServer = mlflowtest.NewShared(mlflowtest.Options{})

func TestMain(m *testing.M) {
	// The SIGKILL test runs modelgate as a child process: this test binary, running main.
	if os.Getenv("MODELGATE_TEST_RUN_MAIN") == "1" {
		main()
		return
	}
	code := m.Run()
	mlflowServer.Close()
	webhookServer.Close()
	authServer.Close()
	os.Exit(code)
}

// goodCredit passes every check of examples/modelgate.yaml's credit-risk gate.
func goodCredit(model string) mlflowtest.Version {
	return mlflowtest.Version{
		Model: model,
		Metrics: map[string]float64{"accuracy": 0.95, "demographic_parity_difference": 0.03,
			"recall_sex_female": 0.82, "recall_sex_male": 0.85, "f1_score": 0.90, "auc": 0.91},
		Params:  map[string]string{"n_rows": "50000"},
		RunTags: map[string]string{"security_scan": "passed"},
	}
}

type evalJSON struct {
	Model, Version, Gate, Outcome, Reason, Status, Action string
	Checks                                                []struct {
		Name, Result, Message, Observed string
	}
	Writes []struct {
		Op, Version, Key, Value, Alias string
	}
	Notifications []struct{ Event string }
}

func evaluateJSON(t *testing.T, env []string, model, version string) evalJSON {
	t.Helper()
	code, out, errOut := runCmd(t, env, "evaluate", model, version, "--json", "-f", "../../examples/modelgate.yaml")
	if code != exitOK {
		t.Fatalf("evaluate %s %s: exit %d\n%s%s", model, version, code, out, errOut)
	}
	var r evalJSON
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	return r
}

func check(r evalJSON, name string) (result, message string) {
	for _, c := range r.Checks {
		if c.Name == name {
			return c.Result, c.Message
		}
	}
	return "", ""
}

func TestEvaluateAgainstMLflow(t *testing.T) {
	srv := mlflowServer.Get(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := srv.Client(t, mlflow.Options{})
	env := []string{"MLFLOW_TRACKING_URI=" + srv.URL, "MODELGATE_LOG_LEVEL=error"}

	// Version 1 from a run: everything passes; no champion yet.
	v1, err := mlflowtest.CreateVersion(ctx, c, goodCredit("credit-eval"))
	if err != nil {
		t.Fatal(err)
	}
	r := evaluateJSON(t, env, "credit-eval", v1.Version)
	if r.Outcome != "approved" || r.Gate != "credit-risk" {
		t.Fatalf("v1: %+v", r)
	}
	if res, msg := check(r, "beats-champion"); res != "pass" || !strings.Contains(msg, "no baseline") {
		t.Fatalf("beats-champion without a champion: %s %q", res, msg)
	}

	// Version 2, MLflow 3 style (logged model, no run), compared with the champion v1;
	// from a run on a server before 3.0, which has no logged models.
	if err := c.SetAlias(ctx, "credit-eval", "champion", v1.Version); err != nil {
		t.Fatal(err)
	}
	spec := goodCredit("credit-eval")
	spec.LoggedModel = serverAtLeast(t, srv, loggedModelsSince)
	spec.Metrics["f1_score"] = 0.905 // +0.6%: less than the 1% beats-champion asks
	spec.VersionTags = map[string]string{"security_scan": "passed"}
	v2, err := mlflowtest.CreateVersion(ctx, c, spec)
	if err != nil {
		t.Fatal(err)
	}
	if spec.LoggedModel && v2.RunID != "" {
		t.Fatalf("v2 has run_id %q, want none", v2.RunID)
	}
	r = evaluateJSON(t, env, "credit-eval", v2.Version)
	if r.Outcome != "pending_review" {
		t.Fatalf("v2: %+v", r)
	}
	if res, msg := check(r, "beats-champion"); res != "fail" || !strings.Contains(msg, "vs champion v1") {
		t.Fatalf("beats-champion: %s %q", res, msg)
	}
	if res, _ := check(r, "enough-data"); res != "pass" {
		t.Fatalf("enough-data reads the logged model's params: %s", res)
	}

	// Nothing was written.
	after, err := c.GetModelVersion(ctx, "credit-eval", v2.Version)
	if err != nil {
		t.Fatal(err)
	}
	for k := range after.Tags {
		if strings.HasPrefix(k, "modelgate.") {
			t.Fatalf("evaluate wrote tag %s", k)
		}
	}

	// Text output.
	code, out, _ := runCmd(t, env, "evaluate", "-f", "../../examples/modelgate.yaml", "credit-eval", v2.Version)
	if code != exitOK || !strings.Contains(out, "credit-eval version 2: pending_review (gate credit-risk)") || !strings.Contains(out, "beats-champion") ||
		!strings.Contains(out, "would write, in order:") || !strings.Contains(out, "would notify: review_requested") {
		t.Fatalf("text output, exit %d:\n%s", code, out)
	}
}

// TestEvaluateSaysWhatTheDaemonDoes: evaluate prints the daemon's own plan: what it
// says a pass will write is what `run --once` then writes; and on a version the daemon
// has decided it says there is nothing to do, with the registry's status.
func TestEvaluateSaysWhatTheDaemonDoes(t *testing.T) {
	srv := mlflowServer.Get(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := srv.Client(t, mlflow.Options{})
	env := []string{"MLFLOW_TRACKING_URI=" + srv.URL, "MODELGATE_LOG_LEVEL=error"}
	mv, err := mlflowtest.CreateVersion(ctx, c, goodCredit("credit-agree"))
	if err != nil {
		t.Fatal(err)
	}
	plan := evaluateJSON(t, env, "credit-agree", mv.Version)
	if plan.Action != "decide" || plan.Status != "promoted" || plan.Outcome != "approved" {
		t.Fatalf("plan: %+v", plan)
	}
	wantTags := map[string]string{}
	aliasTo := ""
	for _, w := range plan.Writes {
		switch w.Op {
		case "set_tag":
			wantTags[w.Key] = w.Value
		case "set_alias":
			aliasTo = w.Alias + "@" + w.Version
		}
	}
	if aliasTo != "champion@"+mv.Version || len(plan.Notifications) != 1 || plan.Notifications[0].Event != "promoted" {
		t.Fatalf("plan moves %q, notifies %v", aliasTo, plan.Notifications)
	}

	if code, out, errOut := runCmd(t, daemonEnv(srv), "run", "--once"); code != exitOK {
		t.Fatalf("run --once: exit %d\n%s%s", code, out, errOut)
	}
	after, err := c.GetModelVersion(ctx, "credit-agree", mv.Version)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range wantTags {
		if k == "modelgate.record" { // the clock moved between the two commands: its time and signature differ
			v, after.Tags[k] = withoutTime(t, v), withoutTime(t, after.Tags[k])
		}
		if after.Tags[k] != v {
			t.Errorf("tag %s: evaluate said %q, the daemon wrote %q", k, v, after.Tags[k])
		}
	}
	if len(after.Aliases) != 1 || after.Aliases[0] != "champion" {
		t.Errorf("aliases %v, evaluate said champion", after.Aliases)
	}

	decided := evaluateJSON(t, env, "credit-agree", mv.Version)
	if decided.Status != "promoted" || decided.Action != "none" || len(decided.Writes) != 0 || decided.Outcome != "" {
		t.Fatalf("evaluate on the promoted version: %+v", decided)
	}
}

// withoutTime is a record without its time and signature, as canonical JSON.
func withoutTime(t *testing.T, record string) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(record), &m); err != nil {
		t.Fatalf("record %q: %v", record, err)
	}
	delete(m, "decided_at")
	delete(m, "sig")
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestEvaluateErrors(t *testing.T) {
	srv := mlflowServer.Get(t)
	env := []string{"MLFLOW_TRACKING_URI=" + srv.URL}
	for _, tc := range []struct {
		name string
		env  []string
		args []string
		code int
		text string
	}{
		{"missing version", env, []string{"credit-nope", "1"}, exitUsage, "not found"},
		{"not a version", env, []string{"credit-nope", "latest"}, exitUsage, "not a version number"},
		{"no tracking uri", nil, []string{"credit-nope", "1"}, exitUsage, "MLFLOW_TRACKING_URI"},
		{"server down", []string{"MLFLOW_TRACKING_URI=http://127.0.0.1:1", "MLFLOW_HTTP_REQUEST_MAX_RETRIES=0"}, []string{"credit-x", "1"}, exitUpstream, "MLflow unreachable"},
		{"broken policy", env, []string{"credit-x", "1", "-f", "../../examples/broken/bounds.yaml"}, exitPolicy, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"evaluate"}, tc.args...)
			if !strings.Contains(strings.Join(tc.args, " "), "-f") {
				args = append(args, "-f", "../../examples/modelgate.yaml")
			}
			code, out, errOut := runCmd(t, tc.env, args...)
			if code != tc.code || !strings.Contains(out+errOut, tc.text) {
				t.Fatalf("exit %d, output %q %q; want %d mentioning %q", code, out, errOut, tc.code, tc.text)
			}
		})
	}
}
