// Package metrics holds modelgate's Prometheus metrics, registered on the Registerer
// main passes in (never the global default). Callers report events (a decision, a
// promotion, an MLflow request) through methods taking plain values; the metrics
// themselves stay private to this package, which imports no other package of ours.
//
// Labels carry only gate and check names from the policy and fixed words (outcomes,
// results, endpoint names, HTTP codes): never model versions or anything a user typed.
package metrics

import (
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

const namespace = "modelgate"

// Label values known in advance: series for them are created at start-up with value 0,
// so rate() and alerts see a series before the first event.
var (
	outcomes      = []string{"approved", "pending_review", "rejected", "expired"}
	checkResults  = []string{"pass", "fail", "missing"}
	promoTargets  = []string{"alias", "stage"}
	promoResults  = []string{"promoted", "skipped", "failed"}
	notifyResults = []string{"sent", "failed", "dropped"}
	webhookResult = []string{"accepted", "duplicate", "ignored", "bad_signature", "stale", "malformed", "too_large", "busy", "unavailable"}
)

// Metrics is every metric modelgate exports.
type Metrics struct {
	decisions          *prometheus.CounterVec
	checkResults       *prometheus.CounterVec
	promotions         *prometheus.CounterVec
	rollbacks          *prometheus.CounterVec
	reviewsPending     *prometheus.GaugeVec
	oldestReview       *prometheus.GaugeVec
	reviewWait         prometheus.Histogram
	decisionLatency    prometheus.Histogram
	pollDuration       prometheus.Histogram
	pollErrors         prometheus.Counter
	lastSuccessfulPoll *prometheus.GaugeVec // no labels: absent until a pass succeeds, and on followers
	mlflowRequests     *prometheus.CounterVec
	mlflowDuration     *prometheus.HistogramVec
	inflightLimit      prometheus.Gauge
	serverInfo         *prometheus.GaugeVec
	notifications      *prometheus.CounterVec
	webhookDeliveries  *prometheus.CounterVec
	tamper             *prometheus.CounterVec
	overrides          *prometheus.CounterVec
	auditEvents        *prometheus.CounterVec
	halted             prometheus.Gauge
	staged             *prometheus.GaugeVec
	recertDue          *prometheus.GaugeVec
	leader             prometheus.Gauge
	leadershipChanges  prometheus.Counter
	gates              []string // the policy's gates, for the gauges a leader sets
}

// Label values of the integrity metrics.
var (
	tamperKinds  = []string{"unsigned", "bad_signature", "replayed", "status_changed", "record_removed", "protected_move"}
	auditResults = []string{"written", "existing", "failed"}
)

// New creates the metrics and registers them on reg. version is modelgate's build
// version, for modelgate_build_info.
func New(version string, reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "decisions_total",
			Help: "Decisions written to the registry, by gate and outcome (approved, pending_review, rejected, expired). A promotion counts as approved."},
			[]string{"gate", "outcome"}),
		checkResults: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "check_results_total",
			Help: "Check evaluations, by gate, check and result (pass, fail, missing)."},
			[]string{"gate", "check", "result"}),
		promotions: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "promotions_total",
			Help: "Promotion attempts, by gate, target kind (alias, stage) and result (promoted, skipped because a newer version holds the target, failed)."},
			[]string{"gate", "target", "result"}),
		rollbacks: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "rollbacks_total",
			Help: "Rollbacks carried out (modelgate.rollback), by gate."},
			[]string{"gate"}),
		reviewsPending: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Name: "reviews_pending",
			Help: "Versions waiting for review, by gate, as read from the registry on the last pass."},
			[]string{"gate"}),
		oldestReview: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Name: "review_oldest_pending_timestamp_seconds",
			Help: "When the oldest open review of a gate was requested (Unix seconds); no series for a gate without open reviews."},
			[]string{"gate"}),
		reviewWait: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: namespace, Name: "review_wait_seconds",
			Help:    "Time from a review request to a person's decision.",
			Buckets: []float64{60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 2 * 86400, 3 * 86400, 7 * 86400}}),
		decisionLatency: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: namespace, Name: "decision_latency_seconds",
			Help:    "Time from a version's creation in MLflow to modelgate's first decision on it.",
			Buckets: []float64{0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 6 * 3600, 86400}}),
		pollDuration: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: namespace, Name: "poll_duration_seconds",
			Help:    "Duration of a reconcile pass (searching the registry and handling what it found).",
			Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300}}),
		pollErrors: prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "poll_errors_total",
			Help: "Reconcile passes that could not read MLflow."}),
		lastSuccessfulPoll: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Name: "last_successful_poll_timestamp_seconds",
			Help: "When the last reconcile pass that could read MLflow ended (Unix seconds); only the leader exports it."}, nil),
		mlflowRequests: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "mlflow_requests_total",
			Help: "HTTP requests to MLflow, retries included, by endpoint and status code (\"error\" when no response came)."},
			[]string{"endpoint", "code"}),
		mlflowDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Name: "mlflow_request_duration_seconds",
			Help:    "Duration of HTTP requests to MLflow, by endpoint.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}},
			[]string{"endpoint"}),
		notifications: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "notifications_total",
			Help: "Notifications, by format (slack, json) and result (sent, failed after retries, dropped because the queue was full)."},
			[]string{"format", "result"}),
		webhookDeliveries: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "webhook_deliveries_total",
			Help: "MLflow webhook deliveries received, by result."},
			[]string{"result"}),
	}
	m.tamper = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "tamper_detected_total",
		Help: "States modelgate did not write, detected and undone, by gate and kind (unsigned, bad_signature, replayed, status_changed, record_removed, protected_move)."},
		[]string{"gate", "kind"})
	m.overrides = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "overrides_total",
		Help: "Versions promoted by an overrider despite failed checks or rejections, by gate."},
		[]string{"gate"})
	m.auditEvents = prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "audit_events_total",
		Help: "Audit trail writes, by event and result (written, existing: written before and skipped, failed)."},
		[]string{"event", "result"})
	m.halted = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: "writes_halted",
		Help: "1 while modelgate writes nothing because most records fail verification (a wrong or lost signing key), else 0."})
	m.staged = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Name: "staged_versions",
		Help: "Versions in a rollout stage (status staged), by gate, as read from the registry each pass."}, []string{"gate"})
	m.recertDue = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Name: "recertifications_due",
		Help: "Promoted versions whose approval is older than the gate's recertify_after (status recertification_due), by gate."}, []string{"gate"})
	m.inflightLimit = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: "mlflow_inflight_limit",
		Help: "How many requests to MLflow may be in flight at once now: adapted to what the server sustains, at most MODELGATE_CONCURRENCY."})
	m.serverInfo = prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Name: "mlflow_server_info",
		Help: "1, with the release of the MLflow server modelgate talks to, read at start-up."}, []string{"version"})
	m.leader = prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: "leader",
		Help: "1 while this replica is the one that decides and writes (always, without leader election), else 0."})
	m.leadershipChanges = prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "leadership_changes_total",
		Help: "Times this replica became or stopped being the leader."})
	buildInfo := prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Name: "build_info",
		Help: "Always 1; the labels say which modelgate is running."}, []string{"version", "goversion"})
	buildInfo.WithLabelValues(version, runtime.Version()).Set(1)
	reg.MustRegister(
		buildInfo, m.decisions, m.checkResults, m.promotions, m.rollbacks, m.reviewsPending, m.oldestReview,
		m.reviewWait, m.decisionLatency, m.pollDuration, m.pollErrors, m.lastSuccessfulPoll,
		m.mlflowRequests, m.mlflowDuration, m.inflightLimit, m.serverInfo, m.notifications, m.webhookDeliveries,
		m.tamper, m.overrides, m.auditEvents, m.halted, m.leader, m.leadershipChanges, m.staged, m.recertDue,
	)
	for _, r := range webhookResult {
		m.webhookDeliveries.WithLabelValues(r)
	}
	return m
}

// Gate names a gate of the policy and its checks, for the series created at start-up.
type Gate struct {
	Name   string
	Checks []string
}

// InitSeries creates the zero-valued series of every gate and check of the policy, and
// of the notification formats it uses, so dashboards and alerts have series to work with
// before the first event.
func (m *Metrics) InitSeries(gates []Gate, notificationFormats []string) {
	for _, g := range gates {
		gate := g.Name
		for _, o := range outcomes {
			m.decisions.WithLabelValues(gate, o)
		}
		for _, c := range g.Checks {
			for _, r := range checkResults {
				m.checkResults.WithLabelValues(gate, c, r)
			}
		}
		for _, t := range promoTargets {
			for _, r := range promoResults {
				m.promotions.WithLabelValues(gate, t, r)
			}
		}
		m.rollbacks.WithLabelValues(gate)
		m.gates = append(m.gates, gate)
		m.overrides.WithLabelValues(gate)
		for _, k := range tamperKinds {
			m.tamper.WithLabelValues(gate, k)
		}
	}
	for _, f := range notificationFormats {
		for _, r := range notifyResults {
			m.notifications.WithLabelValues(f, r)
		}
	}
}

// Decision implements transitions.Recorder.
func (m *Metrics) Decision(gate, outcome string) { m.decisions.WithLabelValues(gate, outcome).Inc() }

// CheckResult implements transitions.Recorder.
func (m *Metrics) CheckResult(gate, check, result string) {
	m.checkResults.WithLabelValues(gate, check, result).Inc()
}

// Promotion implements transitions.Recorder.
func (m *Metrics) Promotion(gate, target, result string) {
	m.promotions.WithLabelValues(gate, target, result).Inc()
}

// Rollback implements transitions.Recorder.
func (m *Metrics) Rollback(gate string) { m.rollbacks.WithLabelValues(gate).Inc() }

// ReviewsPending implements transitions.Recorder: the gauges are set from what the
// registry holds, never counted up and down, so they are right after a restart. oldest
// is when the oldest open review was requested (zero when count is 0).
func (m *Metrics) ReviewsPending(gate string, count int, oldest time.Time) {
	m.reviewsPending.WithLabelValues(gate).Set(float64(count))
	if count == 0 || oldest.IsZero() {
		m.oldestReview.DeleteLabelValues(gate)
		return
	}
	m.oldestReview.WithLabelValues(gate).Set(float64(oldest.UnixMilli()) / 1000)
}

// ReviewWait implements transitions.Recorder.
func (m *Metrics) ReviewWait(d time.Duration) { m.reviewWait.Observe(max(d.Seconds(), 0)) }

// DecisionLatency implements transitions.Recorder.
func (m *Metrics) DecisionLatency(d time.Duration) { m.decisionLatency.Observe(max(d.Seconds(), 0)) }

// Poll implements transitions.Recorder.
func (m *Metrics) Poll(d time.Duration, err error) {
	m.pollDuration.Observe(d.Seconds())
	if err != nil {
		m.pollErrors.Inc()
		return
	}
	m.lastSuccessfulPoll.WithLabelValues().SetToCurrentTime()
}

// Leader implements leader.Observer. A leader exports the gate gauges (open reviews,
// the oldest one, the last successful pass), starting at 0; a follower exports none, so
// that its stale values neither add to the leader's nor fire alerts.
func (m *Metrics) Leader(leading bool) {
	if leading {
		m.leader.Set(1)
		for _, g := range m.gates {
			m.reviewsPending.WithLabelValues(g)
		}
		return
	}
	m.leader.Set(0)
	m.staged.Reset()
	m.recertDue.Reset()
	m.reviewsPending.Reset()
	m.oldestReview.Reset()
	m.lastSuccessfulPoll.Reset()
}

// Lifecycle implements transitions.Recorder.
func (m *Metrics) Lifecycle(gate string, staged, recertificationDue int) {
	m.staged.WithLabelValues(gate).Set(float64(staged))
	m.recertDue.WithLabelValues(gate).Set(float64(recertificationDue))
}

// LeadershipChange implements leader.Observer.
func (m *Metrics) LeadershipChange() { m.leadershipChanges.Inc() }

// ObserveMLflowRequest implements mlflow.Observer.
func (m *Metrics) ObserveMLflowRequest(endpoint, code string, d time.Duration) {
	m.mlflowRequests.WithLabelValues(endpoint, code).Inc()
	m.mlflowDuration.WithLabelValues(endpoint).Observe(d.Seconds())
}

// MLflowServer records the MLflow server's release.
func (m *Metrics) MLflowServer(version string) {
	m.serverInfo.Reset()
	m.serverInfo.WithLabelValues(version).Set(1)
}

// ObserveMLflowInflightLimit implements mlflow.LimitObserver.
func (m *Metrics) ObserveMLflowInflightLimit(limit int) { m.inflightLimit.Set(float64(limit)) }

// Notification implements transitions.NotificationRecorder.
func (m *Metrics) Notification(format, result string) {
	m.notifications.WithLabelValues(format, result).Inc()
}

// WebhookDelivery counts a webhook delivery by result.
func (m *Metrics) WebhookDelivery(result string) { m.webhookDeliveries.WithLabelValues(result).Inc() }

// Tampering implements transitions.Recorder.
func (m *Metrics) Tampering(gate, kind string) { m.tamper.WithLabelValues(gate, kind).Inc() }

// Override implements transitions.Recorder.
func (m *Metrics) Override(gate string) { m.overrides.WithLabelValues(gate).Inc() }

// Halted implements transitions.Recorder.
func (m *Metrics) Halted(halted bool) {
	if halted {
		m.halted.Set(1)
		return
	}
	m.halted.Set(0)
}

// AuditEvent implements transitions.AuditRecorder.
func (m *Metrics) AuditEvent(event, result string) {
	m.auditEvents.WithLabelValues(event, result).Inc()
}
