package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/modelgate/modelgate/mlflow"
	"github.com/modelgate/modelgate/mlflow/mlflowtest"
)

var authServer = mlflowtest.NewShared(mlflowtest.Options{BasicAuth: true})

// TestMissingPermissions runs modelgate as a basic-auth user with READ only, then with
// EDIT only (which can set tags and aliases but not delete them): each refused write is
// logged naming the permission to grant, shows as a 403 in modelgate_mlflow_requests_total,
// and is retried; nothing is half-written. (That the retries back off rather than spin is
// TestRefusedWritesBackOff's, on a clock the test controls: counting retries against
// the wall clock here failed on a busy machine, where basic auth makes every pass slow.)
func TestMissingPermissions(t *testing.T) {
	srv := authServer.Get(t)
	ctx := context.Background()
	admin := srv.Client(t, mlflow.Options{})
	policy := writePolicy(t, `
gates:
  - name: perm
    models: ["perm-*"]
    on_missing: reject
    checks:
      - {name: floor, metric: accuracy, min: 0.8, on_fail: reject}
    promote: {alias: champion}
`)
	cases := []struct {
		user, permission string
		// prepare registers the version the user's modelgate meets and returns it.
		prepare func(t *testing.T, model string) string
		// refused is the endpoint MLflow refuses; check looks at the registry afterwards.
		refused string
		check   func(t *testing.T, model, version string)
	}{
		{
			user: "gate-reader", permission: "READ",
			prepare: func(t *testing.T, model string) string {
				spec := goodCredit(model)
				spec.Description = "notes by the team"
				mv, err := mlflowtest.CreateVersion(ctx, admin, spec)
				if err != nil {
					t.Fatal(err)
				}
				return mv.Version
			},
			refused: "model-versions/",
			check: func(t *testing.T, model, version string) {
				mv, err := admin.GetModelVersion(ctx, model, version)
				if err != nil {
					t.Fatal(err)
				}
				if mv.Description != "notes by the team" || mv.Tags["modelgate.status"] != "" {
					t.Errorf("a READ-only modelgate changed the version: description %q, status %q", mv.Description, mv.Tags["modelgate.status"])
				}
				if _, err := admin.GetModelVersionByAlias(ctx, model, "champion"); !mlflow.IsNotFound(err) {
					t.Errorf("champion alias: %v, want none", err)
				}
			},
		},
		{
			user: "gate-editor", permission: "EDIT",
			prepare: func(t *testing.T, model string) string {
				// Rejected by an admin-run modelgate first, then a re-evaluation is
				// asked for: judging again works with EDIT, removing the request does not.
				spec := goodCredit(model)
				spec.Metrics["accuracy"] = 0.5
				mv, err := mlflowtest.CreateVersion(ctx, admin, spec)
				if err != nil {
					t.Fatal(err)
				}
				if code, out, errOut := runCmd(t, []string{"MLFLOW_TRACKING_URI=" + srv.URL, "MLFLOW_TRACKING_USERNAME=" + mlflowtest.AdminUser,
					"MLFLOW_TRACKING_PASSWORD=" + mlflowtest.AdminPassword, "MODELGATE_POLICY=" + policy}, "run", "--once"); code != exitOK {
					t.Fatalf("admin run: exit %d\n%s%s", code, out, errOut)
				}
				if err := admin.SetModelVersionTag(ctx, model, mv.Version, "modelgate.reevaluate", "true"); err != nil {
					t.Fatal(err)
				}
				// The audit trail's experiment, made by the admin's run, is writable by
				// modelgate's user, as docs/threat-model.md says to grant it.
				exp, err := admin.ExperimentByName(ctx, "modelgate-audit")
				if err != nil {
					t.Fatal(err)
				}
				if err := srv.GrantExperimentPermission(ctx, exp.ExperimentID, "gate-editor", "EDIT"); err != nil {
					t.Fatal(err)
				}
				return mv.Version
			},
			refused: "model-versions/delete-tag",
			check: func(t *testing.T, model, version string) {
				mv, err := admin.GetModelVersion(ctx, model, version)
				if err != nil {
					t.Fatal(err)
				}
				if mv.Tags["modelgate.status"] != "rejected" || strings.Count(mv.Description, "<!-- modelgate:begin -->") != 1 {
					t.Errorf("status %q, %d report sections", mv.Tags["modelgate.status"], strings.Count(mv.Description, "<!-- modelgate:begin -->"))
				}
				if _, kept := mv.Tags["modelgate.reevaluate"]; !kept {
					t.Error("the re-evaluation request is gone although modelgate could not delete it")
				}
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.permission, func(t *testing.T) {
			model := "perm-" + strings.ToLower(tc.permission)
			password := tc.user + "-password-1"
			if err := srv.CreateUser(ctx, tc.user, password); err != nil {
				t.Fatal(err)
			}
			version := tc.prepare(t, model)
			if err := srv.GrantModelPermission(ctx, model, tc.user, tc.permission); err != nil {
				t.Fatal(err)
			}
			d := goRun([]string{"MLFLOW_TRACKING_URI=" + srv.URL, "MLFLOW_TRACKING_USERNAME=" + tc.user,
				"MLFLOW_TRACKING_PASSWORD=" + password, "MODELGATE_POLICY=" + policy, "MODELGATE_POLL_INTERVAL=100ms",
				"MODELGATE_LOG_FORMAT=json"}, freeAddr(t))
			defer d.cancel()
			addr, logs := d.addr, d.logs
			defer func() {
				if t.Failed() {
					t.Logf("modelgate logs:\n%s", logs)
				}
			}()
			// The first refusal, then a retry: both counted as 403s of the endpoint.
			waitFor(t, 3*time.Minute, "a refused write and its retry, counted", func() bool {
				return sumSeries(t, addr, "modelgate_mlflow_requests_total", `code="403"`, `endpoint="`+tc.refused) >= 2
			})
			if code := d.stop(time.Minute); code != exitOK {
				t.Fatalf("exit %d\n%s", code, logs)
			}
			out := logs.String()
			if !strings.Contains(out, `"level":"ERROR"`) || !strings.Contains(out, "needs MANAGE") || !strings.Contains(out, `"version":"`+version+`"`) {
				t.Errorf("no error log naming the version and the permission to grant:\n%s", out)
			}
			if strings.Contains(out, password) {
				t.Error("the password reached the logs")
			}
			tc.check(t, model, version)
		})
	}
}
