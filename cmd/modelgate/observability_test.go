package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	yaml "go.yaml.in/yaml/v3"

	"github.com/modelgate/modelgate/mlflow"
	"github.com/modelgate/modelgate/mlflow/mlflowtest"
)

const (
	dashboardFile = "../../charts/modelgate/dashboards/modelgate.json"
	rulesFile     = "../../charts/modelgate/rules/modelgate.rules.yml"
)

// tool finds a binary from Debian's prometheus package; without it the test skips,
// unless CI is set.
func tool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s not found: scripts/install-tools.sh installs Debian's prometheus package", name)
	}
	t.Skipf("%s not found (Debian: apt-get install prometheus)", name)
	return ""
}

// TestMetricsAgainstPrometheus runs modelgate against real MLflow with a real Prometheus
// scraping it, drives decisions of every kind, then runs every query of the Grafana
// dashboard and every alert rule through Prometheus' HTTP API: each must parse and
// return data, and every metric they name must be one modelgate exports.
func TestMetricsAgainstPrometheus(t *testing.T) {
	prometheus, promtool := tool(t, "prometheus"), tool(t, "promtool")
	srv := mlflowServer.Get(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	// Notifications go to a receiver that always fails, so failure series have data; and
	// modelgate reaches MLflow through a proxy that answers one request in ten with 503,
	// which the client retries, so error series have data too.
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusBadRequest) }))
	defer hook.Close()
	proxy := flakyProxy(t, srv.URL, 10)
	addr := freeAddr(t)
	daemonCtx, stopDaemon := context.WithCancel(ctx)
	done := make(chan int, 1)
	logs := &syncBuffer{}
	go func() {
		done <- run(daemonCtx, []string{"run"}, keyed(daemonEnv(srv, "MODELGATE_LISTEN_ADDR="+addr, "MODELGATE_POLL_INTERVAL=300ms",
			"SLACK_WEBHOOK_URL="+hook.URL, "MLFLOW_TRACKING_URI="+proxy, "MLFLOW_HTTP_REQUEST_MAX_RETRIES=3", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR=0.05")), io.Discard, logs)
	}()
	defer func() { stopDaemon(); <-done }()
	waitFor(t, time.Minute, "modelgate /readyz", func() bool { code, _ := get("http://" + addr + "/readyz"); return code == 200 })

	// promtool checks the exposition for naming problems.
	_, body := get("http://" + addr + "/metrics")
	check := exec.Command(promtool, "check", "metrics")
	check.Stdin = strings.NewReader(body)
	if out, err := check.CombinedOutput(); err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}

	promURL := startPrometheus(t, prometheus, addr)

	// Decisions of every kind: a promotion, a rejection, a review approved by a person,
	// a review left open, MLflow errors (the champion alias not set yet: 400).
	c := srv.Client(t, mlflow.Options{})
	create := func(spec mlflowtest.Version) mlflow.ModelVersion {
		mv, err := mlflowtest.CreateVersion(ctx, c, spec)
		if err != nil {
			t.Fatal(err)
		}
		return mv
	}
	waitStatus := func(mv mlflow.ModelVersion, want string) {
		waitFor(t, time.Minute, mv.Name+" v"+mv.Version+" "+want, func() bool {
			got, err := c.GetModelVersion(ctx, mv.Name, mv.Version)
			return err == nil && got.Tags["modelgate.status"] == want
		})
	}
	model := "credit-observed"
	good := goodCredit(model)
	waitStatus(create(good), "promoted")
	unfair := goodCredit(model)
	unfair.Metrics["recall_sex_female"] = 0.4
	waitStatus(create(unfair), "rejected")
	borderline := goodCredit(model)
	borderline.Metrics["accuracy"] = 0.85
	reviewed := create(borderline)
	waitStatus(reviewed, "pending_review")
	open := create(borderline)
	waitStatus(open, "pending_review")
	if err := c.SetModelVersionTag(ctx, model, reviewed.Version, "modelgate.approve.alice", "ok"); err != nil {
		t.Fatal(err)
	}
	waitStatus(reviewed, "promoted")

	// Let Prometheus scrape what happened (and have two samples for rates).
	waitFor(t, time.Minute, "Prometheus to see the decisions", func() bool {
		res := promQuery(t, promURL, `sum(modelgate_decisions_total{outcome="approved"}) >= 2 and sum(modelgate_review_wait_seconds_count) >= 1`)
		return len(res) > 0
	})
	time.Sleep(3 * time.Second) // a few more scrapes after the last change, for rate() windows

	exported := exportedNames(t, "http://"+addr+"/metrics")
	vars := strings.NewReplacer("$__rate_interval", "1m", "$job", ".*", "$gate", ".*")

	// Every dashboard query parses and returns data.
	for _, q := range dashboardQueries(t) {
		expr := vars.Replace(q.expr)
		if res := promQuery(t, promURL, expr); len(res) == 0 {
			t.Errorf("dashboard panel %q returns no data: %s", q.panel, expr)
		}
		checkNames(t, "panel "+q.panel, expr, exported)
	}

	// Every alert expression parses and evaluates; what it selects has data; and
	// Prometheus, which loaded the rules file, evaluates each rule without error.
	for _, r := range alertRules(t) {
		promQuery(t, promURL, r.Expr)
		for _, sel := range selectors(r.Expr) {
			if res := promQuery(t, promURL, sel); len(res) == 0 {
				t.Errorf("alert %s: %s has no data", r.Alert, sel)
			}
		}
		checkNames(t, "alert "+r.Alert, r.Expr, exported)
	}
	checkRuleHealth(t, promURL)
}

// flakyProxy forwards to MLflow and answers every n-th request with 503.
func flakyProxy(t *testing.T, target string, n int) string {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	var count atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if count.Add(1)%int64(n) == 0 {
			http.Error(w, "injected", http.StatusServiceUnavailable)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// startPrometheus runs Prometheus scraping modelgate every second, with the alert rules
// loaded, and returns its URL.
func startPrometheus(t *testing.T, bin, target string) string {
	t.Helper()
	dir := t.TempDir()
	rules, err := filepath.Abs(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [%q]
scrape_configs:
  - job_name: modelgate
    static_configs:
      - targets: [%q]
`, rules, target)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	listen := freeAddr(t)
	cmd := exec.Command(bin, "--config.file="+filepath.Join(dir, "prometheus.yml"), "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+listen, "--log.level=warn")
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		_ = cmd.Wait()
	})
	u := "http://" + listen
	waitFor(t, time.Minute, "Prometheus to be ready", func() bool { code, _ := get(u + "/-/ready"); return code == 200 })
	waitFor(t, time.Minute, "the first scrape of modelgate", func() bool {
		return len(promQuery(t, u, `up{job="modelgate"} == 1`)) > 0
	})
	return u
}

type promResult []json.RawMessage

// promQuery runs an instant query; a query Prometheus cannot parse or evaluate fails
// the test.
func promQuery(t *testing.T, base, expr string) promResult {
	t.Helper()
	resp, err := http.Get(base + "/api/v1/query?query=" + url.QueryEscape(expr))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("query %s: %v", expr, err)
	}
	if out.Status != "success" {
		t.Fatalf("Prometheus rejects %s: %s", expr, out.Error)
	}
	var res promResult
	if err := json.Unmarshal(out.Data.Result, &res); err != nil {
		// A scalar result (e.g. time()) is one value.
		return promResult{out.Data.Result}
	}
	return res
}

type dashboardQuery struct{ panel, expr string }

func dashboardQueries(t *testing.T) []dashboardQuery {
	t.Helper()
	raw, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatal(err)
	}
	var out []dashboardQuery
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			out = append(out, dashboardQuery{p.Title, tg.Expr})
		}
	}
	if len(out) < 20 {
		t.Fatalf("only %d dashboard queries", len(out))
	}
	return out
}

type alertRule struct {
	Alert string `json:"alert" yaml:"alert"`
	Expr  string `json:"expr" yaml:"expr"`
}

func alertRules(t *testing.T) []alertRule {
	t.Helper()
	raw, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Groups []struct {
			Rules []alertRule `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	var out []alertRule
	for _, g := range f.Groups {
		out = append(out, g.Rules...)
	}
	return out
}

var (
	metricName = regexp.MustCompile(`\b(modelgate_[a-z_]+|up)\b`)
	selector   = regexp.MustCompile(`\b(modelgate_[a-z_]+|up)(\{[^}]*\})?`)
)

// selectors lists the series selectors of an expression, e.g. up{job="modelgate"}.
func selectors(expr string) []string {
	var out []string
	for _, m := range selector.FindAllString(expr, -1) {
		if !slices.Contains(out, m) {
			out = append(out, m)
		}
	}
	return out
}

// exportedNames reads the metric families modelgate serves (histograms by base name).
func exportedNames(t *testing.T, metricsURL string) map[string]bool {
	t.Helper()
	_, body := get(metricsURL)
	names := map[string]bool{"up": true}
	for _, line := range strings.Split(body, "\n") {
		if name, ok := strings.CutPrefix(line, "# TYPE "); ok {
			names[strings.Fields(name)[0]] = true
		}
	}
	return names
}

// checkNames fails for a metric a query names that modelgate does not export.
func checkNames(t *testing.T, where, expr string, exported map[string]bool) {
	t.Helper()
	for _, name := range metricName.FindAllString(expr, -1) {
		base := name
		for _, suffix := range []string{"_bucket", "_count", "_sum"} {
			base = strings.TrimSuffix(base, suffix)
		}
		if !exported[name] && !exported[base] {
			t.Errorf("%s names %s, which modelgate does not export", where, name)
		}
	}
}

// checkRuleHealth requires every rule Prometheus loaded to evaluate without error.
func checkRuleHealth(t *testing.T, base string) {
	t.Helper()
	_, body := get(base + "/api/v1/rules")
	var out struct {
		Data struct {
			Groups []struct {
				Rules []struct {
					Name      string `json:"name"`
					Health    string `json:"health"`
					LastError string `json:"lastError"`
				} `json:"rules"`
			} `json:"groups"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &out); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, g := range out.Data.Groups {
		for _, r := range g.Rules {
			n++
			if r.Health != "ok" {
				t.Errorf("rule %s: health %q %s", r.Name, r.Health, r.LastError)
			}
		}
	}
	if want := len(alertRules(t)); n != want {
		t.Fatalf("Prometheus loaded %d rules, the file has %d", n, want)
	}
}
