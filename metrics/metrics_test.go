package metrics

import (
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/modelgate/modelgate/rules"
	"github.com/modelgate/modelgate/transitions"
)

func policy(t *testing.T) *rules.Policy {
	t.Helper()
	p, err := rules.Load("t.yaml", []byte(`
gates:
  - name: credit
    models: ["credit-*"]
    on_missing: reject
    checks:
      - {name: floor, metric: accuracy, min: 0.8}
notifications:
  - {url_env: HOOK, format: slack}
`))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestNamesFollowPrometheusConventions(t *testing.T) {
	m := New("v1.2.3")
	m.InitPolicy(policy(t))
	m.ObserveMLflowRequest("model-versions/search", "200", 20*time.Millisecond)
	m.ReviewsPending(map[string]transitions.PendingReviews{"credit": {Count: 2, Oldest: time.Unix(1700000000, 0)}})
	problems, err := testutil.GatherAndLint(m.Registry())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
}

func TestEveryProductMetricIsExported(t *testing.T) {
	m := New("v1.2.3")
	m.InitPolicy(policy(t))
	m.ObserveMLflowRequest("runs/get", "200", time.Millisecond)
	m.ReviewWait(time.Hour)
	m.DecisionLatency(time.Second)
	m.Poll(time.Second, nil)
	families, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, f := range families {
		got[f.GetName()] = true
	}
	// The names PRODUCT.md promises.
	for _, name := range []string{
		"modelgate_decisions_total", "modelgate_check_results_total", "modelgate_promotions_total",
		"modelgate_rollbacks_total", "modelgate_reviews_pending", "modelgate_review_wait_seconds",
		"modelgate_decision_latency_seconds", "modelgate_poll_duration_seconds", "modelgate_poll_errors_total",
		"modelgate_last_successful_poll_timestamp_seconds", "modelgate_mlflow_requests_total",
		"modelgate_mlflow_request_duration_seconds", "modelgate_notifications_total",
		"modelgate_webhook_deliveries_total", "modelgate_build_info",
		"go_goroutines", "process_resident_memory_bytes",
	} {
		if !got[name] {
			t.Errorf("%s is not exported", name)
		}
	}
}

func TestEvents(t *testing.T) {
	m := New("v1")
	m.InitPolicy(policy(t))
	if v := testutil.ToFloat64(m.decisions.WithLabelValues("credit", "rejected")); v != 0 {
		t.Fatalf("pre-initialised series = %v", v)
	}
	m.Decision("credit", "rejected")
	m.CheckResult("credit", "floor", "fail")
	m.Promotion("credit", "alias", "promoted")
	m.Rollback("credit")
	m.Notification("slack", "failed")
	m.WebhookDelivery("accepted")
	m.Poll(time.Second, errors.New("down"))
	for name, got := range map[string]float64{
		"decisions":     testutil.ToFloat64(m.decisions.WithLabelValues("credit", "rejected")),
		"checks":        testutil.ToFloat64(m.checkResults.WithLabelValues("credit", "floor", "fail")),
		"promotions":    testutil.ToFloat64(m.promotions.WithLabelValues("credit", "alias", "promoted")),
		"rollbacks":     testutil.ToFloat64(m.rollbacks.WithLabelValues("credit")),
		"notifications": testutil.ToFloat64(m.notifications.WithLabelValues("slack", "failed")),
		"webhooks":      testutil.ToFloat64(m.webhookDeliveries.WithLabelValues("accepted")),
		"poll errors":   testutil.ToFloat64(m.pollErrors),
	} {
		if got != 1 {
			t.Errorf("%s = %v, want 1", name, got)
		}
	}
	if v := testutil.ToFloat64(m.lastSuccessfulPoll); v != 0 {
		t.Errorf("a failed poll set the last successful poll to %v", v)
	}
	m.Poll(time.Second, nil)
	if v := testutil.ToFloat64(m.lastSuccessfulPoll); v < float64(time.Now().Add(-time.Minute).Unix()) {
		t.Errorf("last successful poll %v", v)
	}
}

func TestPendingGaugeFollowsTheRegistry(t *testing.T) {
	m := New("v1")
	oldest := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	m.ReviewsPending(map[string]transitions.PendingReviews{"credit": {Count: 3, Oldest: oldest}, "fraud": {}})
	if v := testutil.ToFloat64(m.reviewsPending.WithLabelValues("credit")); v != 3 {
		t.Fatalf("credit pending = %v", v)
	}
	if v := testutil.ToFloat64(m.oldestReview.WithLabelValues("credit")); v != float64(oldest.Unix()) {
		t.Fatalf("oldest = %v", v)
	}
	// The last review closes: the count drops to 0 and the oldest series goes away.
	m.ReviewsPending(map[string]transitions.PendingReviews{"credit": {}, "fraud": {}})
	if v := testutil.ToFloat64(m.reviewsPending.WithLabelValues("credit")); v != 0 {
		t.Fatalf("credit pending = %v", v)
	}
	if n := testutil.CollectAndCount(m.oldestReview); n != 0 {
		t.Fatalf("%d oldest-review series left", n)
	}
}

func TestBuildInfo(t *testing.T) {
	m := New("v9.9.9")
	err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(`
# HELP modelgate_build_info Always 1; the labels say which modelgate is running.
# TYPE modelgate_build_info gauge
modelgate_build_info{goversion="`+goVersion()+`",version="v9.9.9"} 1
`), "modelgate_build_info")
	if err != nil {
		t.Fatal(err)
	}
}

func goVersion() string { return runtime.Version() }
