package main

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/modelgate/modelgate/mlflow"
	"github.com/modelgate/modelgate/mlflow/mlflowtest"
)

// webhookServer is an MLflow server that delivers webhooks to 127.0.0.1 over http:
// the schemes and private addresses MLflow 3.18 refuses by default are allowed, the
// secrets are encrypted with a fixed key (so every worker can read them), and the
// subscriber cache lasts one second.
var webhookServer = mlflowtest.NewShared(mlflowtest.Options{Env: []string{
	"MLFLOW_WEBHOOK_ALLOWED_SCHEMES=http,https",
	"MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS=true",
	"MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY=" + base64.URLEncoding.EncodeToString([]byte("modelgate-tests-fernet-key-32byt")),
	"MLFLOW_WEBHOOK_CACHE_TTL=1",
}})

const webhookSecret = "whsec-modelgate-tests"

// startDaemon runs `modelgate run` in the background until the test ends.
func startDaemon(t *testing.T, env []string) (addr string, logs *syncBuffer) {
	t.Helper()
	return startDaemonAt(t, env, freeAddr(t))
}

// startDaemonAt runs `modelgate run` on addr until the test ends, once it is ready.
func startDaemonAt(t *testing.T, env []string, addr string) (string, *syncBuffer) {
	t.Helper()
	d := goRun(env, addr)
	t.Cleanup(func() {
		if code := d.stop(time.Minute); code != exitOK {
			t.Errorf("daemon exit %d\n%s", code, d.logs)
		}
	})
	waitFor(t, time.Minute, "/readyz", func() bool { code, _ := get("http://" + addr + "/readyz"); return code == 200 })
	return addr, d.logs
}

// decidedWithin measures the time from a version's creation returning to modelgate.status
// being set (polled every 20ms).
func decidedWithin(t *testing.T, c *mlflow.Client, mv mlflow.ModelVersion, want string, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	waitFor(t, limit, mv.Name+" v"+mv.Version+" to be "+want, func() bool {
		got, err := c.GetModelVersion(context.Background(), mv.Name, mv.Version)
		return err == nil && got.Tags["modelgate.status"] == want
	})
	return time.Since(start)
}

// TestWebhooksDecideInAboutASecond: with the poll interval at an hour, a new version is
// decided, and a reviewer's vote acted on, because MLflow calls modelgate's webhook.
func TestWebhooksDecideInAboutASecond(t *testing.T) {
	srv := webhookServer.Get(t)
	if !serverAtLeast(t, srv, webhooksSince) {
		t.Skipf("MLflow %s has no registry webhooks (3.3+): TestLostWebhookCaughtByPolling checks that modelgate polls instead", srv.Version)
	}
	env := daemonEnv(srv, "MODELGATE_POLL_INTERVAL=1h", "MODELGATE_WEBHOOK_SECRET="+webhookSecret)
	listen, logs := startDaemonWithWebhook(t, env)
	c := srv.Client(t, mlflow.Options{})
	ctx := context.Background()

	v1, err := mlflowtest.CreateVersion(ctx, c, goodCredit("credit-webhook"))
	if err != nil {
		t.Fatal(err)
	}
	took := decidedWithin(t, c, v1, "promoted", 20*time.Second)
	t.Logf("new version decided %s after it was created (poll interval 1h)", took.Round(time.Millisecond))

	spec := goodCredit("credit-webhook")
	spec.Metrics["accuracy"] = 0.85
	v2, err := mlflowtest.CreateVersion(ctx, c, spec)
	if err != nil {
		t.Fatal(err)
	}
	decidedWithin(t, c, v2, "pending_review", 20*time.Second)
	if err := c.SetModelVersionTag(ctx, v2.Name, v2.Version, "modelgate.approve.alice", "ok"); err != nil {
		t.Fatal(err)
	}
	took = decidedWithin(t, c, v2, "promoted", 20*time.Second)
	t.Logf("approval acted on %s after the tag was set", took.Round(time.Millisecond))

	_, metrics := get("http://" + listen + "/metrics")
	if !strings.Contains(metrics, `modelgate_webhook_deliveries_total{result="accepted"}`) ||
		strings.Contains(metrics, `modelgate_webhook_deliveries_total{result="accepted"} 0`) {
		t.Fatalf("no accepted webhook delivery counted:\n%s", grep(metrics, "webhook_deliveries"))
	}
	if strings.Contains(metrics, `modelgate_webhook_deliveries_total{result="bad_signature"} 1`) {
		t.Fatalf("deliveries refused:\n%s", logs)
	}
}

// TestLostWebhookCaughtByPolling: MLflow calls a webhook URL where nothing listens (the
// endpoint is down during the event); the next poll decides the version anyway. On a
// server without webhooks (before 3.3), modelgate says so once, registers nothing, and
// decides by polling. Either way /readyz and modelgate_mlflow_server_info name the
// server's release.
func TestLostWebhookCaughtByPolling(t *testing.T) {
	srv := webhookServer.Get(t)
	down := "http://" + freeAddr(t) + "/webhooks/mlflow" // nothing listens there
	env := daemonEnv(srv, "MODELGATE_POLL_INTERVAL=2s", "MODELGATE_WEBHOOK_SECRET="+webhookSecret, "MODELGATE_WEBHOOK_URL="+down)
	listen, logs := startDaemon(t, env)
	webhooks := serverAtLeast(t, srv, webhooksSince)
	if webhooks {
		waitFor(t, 30*time.Second, "the webhook to be registered", func() bool { return strings.Contains(logs.String(), "webhook registered in MLflow") })
	} else {
		waitFor(t, 30*time.Second, "the warning that webhooks are off", func() bool {
			return strings.Contains(logs.String(), "this MLflow has no registry webhooks (they came in 3.3)")
		})
	}
	if code, body := get("http://" + listen + "/readyz"); code != 200 || !strings.Contains(body, "MLflow "+srv.Version) {
		t.Errorf("/readyz = %d %q, want it to name MLflow %s", code, body, srv.Version)
	}
	c := srv.Client(t, mlflow.Options{})
	mv, err := mlflowtest.CreateVersion(context.Background(), c, goodCredit("credit-lost-webhook"))
	if err != nil {
		t.Fatal(err)
	}
	took := decidedWithin(t, c, mv, "promoted", 30*time.Second)
	t.Logf("decided by polling %s after creation", took.Round(time.Millisecond))
	_, metrics := get("http://" + listen + "/metrics")
	if !strings.Contains(metrics, `modelgate_webhook_deliveries_total{result="accepted"} 0`) {
		t.Fatalf("a delivery reached modelgate, so this did not test a lost webhook:\n%s", grep(metrics, "webhook_deliveries"))
	}
	if !strings.Contains(metrics, `modelgate_mlflow_server_info{version="`+srv.Version+`"} 1`) {
		t.Errorf("modelgate_mlflow_server_info does not name %s:\n%s", srv.Version, grep(metrics, "server_info"))
	}
	if !webhooks && strings.Contains(logs.String(), "webhook registered in MLflow") {
		t.Errorf("a webhook was registered on MLflow %s, which has none:\n%s", srv.Version, logs)
	}
}

// serverAtLeast reports whether the test server (the pinned release, or an older one
// under make test-compat) is release since or later.
func serverAtLeast(t *testing.T, srv *mlflowtest.Server, since mlflow.ServerRelease) bool {
	t.Helper()
	r, ok := mlflow.ParseServerVersion(srv.Version)
	if !ok {
		t.Fatalf("the test server's /version answered %q", srv.Version)
	}
	return r.AtLeast(since.Major, since.Minor)
}

// startDaemonWithWebhook starts the daemon, registers its webhook with its own address
// (known only once it listens), and waits until MLflow's one-second subscriber cache has
// surely seen it.
func startDaemonWithWebhook(t *testing.T, env []string) (string, *syncBuffer) {
	t.Helper()
	addr := freeAddr(t)
	addr, logs := startDaemonAt(t, append(env, "MODELGATE_WEBHOOK_URL=http://"+addr+"/webhooks/mlflow"), addr)
	waitFor(t, 30*time.Second, "the webhook to be registered", func() bool { return strings.Contains(logs.String(), "webhook registered in MLflow") })
	// MLflow caches the subscribers of each event for MLFLOW_WEBHOOK_CACHE_TTL (1s here):
	// an event right after the registration could still see the old list.
	time.Sleep(1500 * time.Millisecond)
	return addr, logs
}

func grep(text, sub string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
