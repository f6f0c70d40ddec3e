package metrics

import (
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// newMetrics registers the metrics on a registry of their own, with the Go and process
// collectors as main does.
func newMetrics(version string) (*Metrics, *prometheus.Registry) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := New(version, reg)
	m.InitSeries([]Gate{{Name: "credit", Checks: []string{"floor"}}}, []string{"slack"})
	m.Leader(true) // one replica, without leader election, leads
	return m, reg
}

func TestNamesFollowPrometheusConventions(t *testing.T) {
	m, reg := newMetrics("v1.2.3")
	m.ObserveMLflowRequest("model-versions/search", "200", 20*time.Millisecond)
	m.ReviewsPending("credit", 2, time.Unix(1700000000, 0))
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
}

func TestEveryProductMetricIsExported(t *testing.T) {
	m, reg := newMetrics("v1.2.3")
	m.ObserveMLflowRequest("runs/get", "200", time.Millisecond)
	m.ReviewWait(time.Hour)
	m.DecisionLatency(time.Second)
	m.Poll(time.Second, nil)
	m.AuditEvent("promoted", "written")
	families, err := reg.Gather()
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
		"modelgate_webhook_deliveries_total", "modelgate_build_info", "modelgate_leader", "modelgate_leadership_changes_total",
		"modelgate_tamper_detected_total", "modelgate_overrides_total", "modelgate_audit_events_total",
		"modelgate_writes_halted",
		"go_goroutines", "process_resident_memory_bytes",
	} {
		if !got[name] {
			t.Errorf("%s is not exported", name)
		}
	}
}

func TestEvents(t *testing.T) {
	m, _ := newMetrics("v1")
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
	if n := testutil.CollectAndCount(m.lastSuccessfulPoll); n != 0 {
		t.Errorf("a failed poll set the last successful poll (%d series)", n)
	}
	m.Poll(time.Second, nil)
	if v := testutil.ToFloat64(m.lastSuccessfulPoll.WithLabelValues()); v < float64(time.Now().Add(-time.Minute).Unix()) {
		t.Errorf("last successful poll %v", v)
	}
}

// TestFollowersExportNoGateGauges: a replica that stops leading drops the gauges the
// leader sets from the registry, so that its stale values neither add to the new
// leader's nor fire the polling and review alerts; it exports modelgate_leader 0.
func TestFollowersExportNoGateGauges(t *testing.T) {
	m, _ := newMetrics("v1")
	m.Leader(true)
	m.Poll(time.Second, nil)
	m.ReviewsPending("credit", 2, time.Unix(1700000000, 0))
	if testutil.ToFloat64(m.leader) != 1 || testutil.CollectAndCount(m.reviewsPending) != 1 || testutil.CollectAndCount(m.oldestReview) != 1 {
		t.Fatal("the leader does not export its gauges")
	}
	m.Leader(false)
	m.LeadershipChange()
	for name, c := range map[string]prometheus.Collector{"reviews_pending": m.reviewsPending, "oldest": m.oldestReview, "last poll": m.lastSuccessfulPoll} {
		if n := testutil.CollectAndCount(c); n != 0 {
			t.Errorf("a follower exports %d series of %s", n, name)
		}
	}
	if testutil.ToFloat64(m.leader) != 0 || testutil.ToFloat64(m.leadershipChanges) != 1 {
		t.Error("leader gauge or changes counter wrong")
	}
}

func TestPendingGaugeFollowsTheRegistry(t *testing.T) {
	m, _ := newMetrics("v1")
	oldest := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	m.ReviewsPending("credit", 3, oldest)
	m.ReviewsPending("fraud", 0, time.Time{})
	if v := testutil.ToFloat64(m.reviewsPending.WithLabelValues("credit")); v != 3 {
		t.Fatalf("credit pending = %v", v)
	}
	if v := testutil.ToFloat64(m.oldestReview.WithLabelValues("credit")); v != float64(oldest.Unix()) {
		t.Fatalf("oldest = %v", v)
	}
	// The last review closes: the count drops to 0 and the oldest series goes away.
	m.ReviewsPending("credit", 0, time.Time{})
	if v := testutil.ToFloat64(m.reviewsPending.WithLabelValues("credit")); v != 0 {
		t.Fatalf("credit pending = %v", v)
	}
	if n := testutil.CollectAndCount(m.oldestReview); n != 0 {
		t.Fatalf("%d oldest-review series left", n)
	}
}

func TestBuildInfo(t *testing.T) {
	_, reg := newMetrics("v9.9.9")
	err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP modelgate_build_info Always 1; the labels say which modelgate is running.
# TYPE modelgate_build_info gauge
modelgate_build_info{goversion="`+goVersion()+`",version="v9.9.9"} 1
`), "modelgate_build_info")
	if err != nil {
		t.Fatal(err)
	}
}

func goVersion() string { return runtime.Version() }
