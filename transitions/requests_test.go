package transitions

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/modelgate/modelgate/mlflow"
)

// benchPolicy is the benchmark's gate (scripts/bench): floors, a fairness limit, a
// comparison with the champion, promotion to champion.
const benchPolicy = `
gates:
  - name: gate-MODEL
    models: ["MODEL"]
    on_missing: reject
    checks:
      - {name: accuracy-floor, metric: accuracy, min: 0.8, on_fail: reject}
      - {name: auc-floor, metric: auc, min: 0.7, on_fail: reject}
      - {name: fair, group_metric: 'recall_sex_(.+)', max_gap: 0.1, on_fail: reject}
      - {name: beats-champion, metric: f1, baseline: champion, greater_is_better: true, min_absolute_change: 0, on_fail: reject}
    promote: {alias: champion}
`

// requestKinds sorts the requests of decisions by whom they serve: the audit trail
// (runs and experiments written or searched), the former champion losing its alias
// (a model version request naming a version other than the one being decided), and the
// rest, the decided version's own reads and writes.
type requestKinds struct {
	next                   http.RoundTripper
	mu                     sync.Mutex
	deciding               map[string]bool // versions being decided
	byEndpoint             map[string]int
	promoted               map[string]bool // versions given their promoted status
	audit, superseded, own int
}

func (k *requestKinds) RoundTrip(req *http.Request) (*http.Response, error) {
	endpoint := req.URL.Path[strings.Index(req.URL.Path, "/api/2.0/mlflow/")+len("/api/2.0/mlflow/"):]
	version := req.URL.Query().Get("version")
	if req.Body != nil && req.Method != http.MethodGet {
		body, err := io.ReadAll(req.Body)
		if err != nil {
			return nil, err
		}
		req.Body = io.NopCloser(bytes.NewReader(body))
		var v struct{ Version, Key, Value string }
		_ = json.Unmarshal(body, &v)
		version = v.Version
		if v.Key == TagStatus && v.Value == string(StatusPromoted) {
			defer k.markPromoted(version)
		}
	}
	k.mu.Lock()
	switch {
	case strings.HasPrefix(endpoint, "experiments/") || (strings.HasPrefix(endpoint, "runs/") && endpoint != "runs/get"):
		k.audit++
	case version != "" && (!k.deciding[version] || k.promoted[version]):
		k.superseded++
	default:
		k.own++
		k.byEndpoint[req.Method+" "+endpoint]++
	}
	k.mu.Unlock()
	return k.next.RoundTrip(req)
}

// markPromoted: the version's status says promoted; what is written to it from now on
// is its losing the alias to a newer one.
func (k *requestKinds) markPromoted(version string) {
	k.mu.Lock()
	k.promoted[version] = true
	k.mu.Unlock()
}

func (k *requestKinds) reset(deciding map[string]bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.deciding, k.audit, k.superseded, k.own = deciding, 0, 0, 0
	k.byEndpoint, k.promoted = map[string]int{}, map[string]bool{}
}

// TestRequestsPerDecision holds the number of MLflow requests a decision costs on a real
// server (a count, not a time): ten versions of one model, each better than the last,
// decided and promoted in one pass, each taking champion from the one before. The pass's
// own searches (an idle pass' four) are left out; the audit trail's writes and the former
// champion's `superseded` writes are counted apart (docs/performance.md).
func TestRequestsPerDecision(t *testing.T) {
	if testing.Short() {
		t.Skip("needs a real MLflow server")
	}
	for _, withAudit := range []bool{false, true} {
		name := map[bool]string{false: "audit-off", true: "audit-on"}[withAudit]
		t.Run(name, func(t *testing.T) {
			f := newFixtureOn(t, realMLflow, benchPolicy)
			kinds := &requestKinds{next: http.DefaultTransport, byEndpoint: map[string]int{}, promoted: map[string]bool{}}
			f.client = f.srv.Client(t, mlflow.Options{Observer: f.reqs, Transport: kinds})
			f.noAudit = !withAudit
			f.rec = f.reconciler(f.client)
			f.pass() // start-up: a full scan of an empty model
			first := good(f.model)
			first.Metrics["auc"], first.Metrics["f1"] = 0.8, 0.70
			f.create(first)
			f.pass() // the first champion
			const n = 10
			deciding := map[string]bool{}
			for i := range n {
				v := good(f.model)
				v.Metrics["auc"], v.Metrics["f1"] = 0.8, 0.71+float64(i)/100
				deciding[f.create(v).Version] = true
			}
			kinds.reset(deciding)
			f.pass()
			if got := f.alias("champion"); !deciding[got] || got != f.get(got).Version {
				t.Fatalf("champion %q after the pass", got)
			}
			f.wantStatus(f.alias("champion"), StatusPromoted)
			const passSearches = 4
			own := float64(kinds.own-passSearches) / n
			t.Logf("%s, per decision: %.1f own requests, %.1f audit trail, %.1f former champion's", name, own, float64(kinds.audit)/n, float64(kinds.superseded)/n)
			t.Logf("the decided versions' requests, by endpoint: %v", kinds.byEndpoint)
			if own > 8 {
				t.Errorf("%.1f requests per decision for the decided version, want 8 or fewer", own)
			}
		})
	}
}
