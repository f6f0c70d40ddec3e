package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/modelgate/modelgate/mlflow"
	"github.com/modelgate/modelgate/mlflow/mlflowtest"
)

// TestHistoryCommand: `modelgate history` reads the audit trail the daemon wrote and
// answers who held champion when; an audit run edited by hand is left out and reported.
func TestHistoryCommand(t *testing.T) {
	srv := mlflowServer.Get(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := srv.Client(t, mlflow.Options{})
	env := daemonEnv(srv, "MODELGATE_AUDIT_EXPERIMENT=history-test-audit")
	once := func() {
		t.Helper()
		if code, out, errOut := runCmd(t, env, "run", "--once"); code != exitOK {
			t.Fatalf("run --once: exit %d\n%s%s", code, out, errOut)
		}
	}
	v1, err := mlflowtest.CreateVersion(ctx, c, goodCredit("credit-history"))
	if err != nil {
		t.Fatal(err)
	}
	once()
	better := goodCredit("credit-history")
	better.Metrics["f1_score"] = 0.95 // beats the champion by more than the gate's 1%
	v2, err := mlflowtest.CreateVersion(ctx, c, better)
	if err != nil {
		t.Fatal(err)
	}
	once()
	between := time.Now().UTC() // after v2's promotion, before its rollback
	if err := c.SetModelVersionTag(ctx, "credit-history", v2.Version, "modelgate.rollback", "latency regression"); err != nil {
		t.Fatal(err)
	}
	once()

	code, out, errOut := runCmd(t, env, "history", "credit-history", "--alias", "champion")
	if code != exitOK {
		t.Fatalf("history: exit %d\n%s%s", code, out, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 5 || !strings.Contains(lines[2], " "+v1.Version+" ") || !strings.Contains(lines[3], " "+v2.Version+" ") ||
		!strings.Contains(lines[4], "rollback") || !strings.Contains(lines[4], "latency regression") || !strings.Contains(lines[4], "now") {
		t.Fatalf("history:\n%s", out)
	}

	code, out, _ = runCmd(t, env, "history", "credit-history", "--alias", "champion", "--at", between.Format(time.RFC3339Nano), "--json")
	var answers []struct {
		Target, Version string
		Tenure          struct {
			How, By        string
			EvidenceDigest string `json:"evidence_digest"`
		}
	}
	if err := json.Unmarshal([]byte(out), &answers); code != exitOK || err != nil || len(answers) != 1 ||
		answers[0].Version != v2.Version || answers[0].Tenure.How != "promoted" || !strings.HasPrefix(answers[0].Tenure.EvidenceDigest, "sha256:") {
		t.Fatalf("--at %s: exit %d, %v\n%s", between.Format(time.RFC3339), code, err, out)
	}

	// An auditor's tool must not trust an audit run someone edited.
	exp, err := c.ExperimentByName(ctx, "history-test-audit")
	if err != nil {
		t.Fatal(err)
	}
	runs, _, err := c.SearchRunsPage(ctx, mlflow.SearchRunsOptions{ExperimentIDs: []string{exp.ExperimentID},
		Filter: "tags.`modelgate.event` = 'rolled_back'"}, "")
	if err != nil || len(runs) != 1 {
		t.Fatalf("rolled_back runs: %v %v", runs, err)
	}
	if err := c.SetRunTag(ctx, runs[0].Info.RunID, "modelgate.to_version", "99"); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = runCmd(t, env, "history", "credit-history")
	if code != exitOK || !strings.Contains(errOut, "1 audit run(s) of credit-history do not verify") || strings.Contains(out, " 99 ") {
		t.Fatalf("an edited run: exit %d\n%s%s", code, out, errOut)
	}

	for _, tc := range []struct {
		name string
		env  []string
		args []string
		code int
		text string
	}{
		{"no trail for the model", env, []string{"history", "credit-none"}, exitPolicy, "has no audit trail"},
		{"MLflow down", []string{"MLFLOW_TRACKING_URI=http://127.0.0.1:1", "MLFLOW_HTTP_REQUEST_MAX_RETRIES=0"}, []string{"history", "x"}, exitUpstream, "MLflow unreachable"},
		{"bad --at", env, []string{"history", "x", "--at", "last tuesday"}, exitUsage, "RFC 3339"},
		{"both targets", env, []string{"history", "x", "--alias", "a", "--stage", "Production"}, exitUsage, "not both"},
		{"audit off", append(env, "MODELGATE_AUDIT_EXPERIMENT=off"), []string{"history", "x"}, exitUsage, "off"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCmd(t, tc.env, tc.args...)
			if code != tc.code || !strings.Contains(out+errOut, tc.text) {
				t.Fatalf("exit %d, output %q %q; want %d mentioning %q", code, out, errOut, tc.code, tc.text)
			}
		})
	}
}
