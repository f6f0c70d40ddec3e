package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/modelgate/modelgate/mlflow"
	"github.com/modelgate/modelgate/mlflow/mlflowtest"
)

// faultProxy stands between modelgate and MLflow and, on a schedule, answers with 5xx
// bursts, 429 with Retry-After, connection resets, responses slower than the client's
// timeout, and bodies cut off half way. It also records every alias MLflow actually set.
type faultProxy struct {
	rp      *httputil.ReverseProxy
	n       atomic.Int64
	burst   atomic.Int64 // 503s still to send
	faults  sync.Map     // kind -> *atomic.Int64
	mu      sync.Mutex
	aliases []aliasSet
	srv     *httptest.Server
	inject  bool // false: only record
	trap    writeTrap
}

// writeTrap holds one write request in flight on the proxy, so that a test can kill
// modelgate while that write is on the wire: Arm(n) makes the n-th write from now stop
// and signal Held; the test then kills modelgate and says with Release whether the held
// write reaches MLflow (its answer lost with the dead process) or is dropped.
type writeTrap struct {
	mu      sync.Mutex
	left    int // writes to let through before holding one; 0: disarmed
	held    chan struct{}
	release chan bool
	writes  atomic.Int64 // every write that reached the proxy
}

// Arm holds the n-th write (n >= 1) from now.
func (w *writeTrap) Arm(n int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.left, w.held, w.release = n, make(chan struct{}, 1), make(chan bool, 1)
}

// Disarm stops holding writes.
func (w *writeTrap) Disarm() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.left = 0
}

// catch counts a write and reports whether this one is to be held.
func (w *writeTrap) catch() (held chan struct{}, release chan bool, ok bool) {
	w.writes.Add(1)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.left == 0 {
		return nil, nil, false
	}
	w.left--
	if w.left > 0 {
		return nil, nil, false
	}
	return w.held, w.release, true
}

func isWrite(r *http.Request) bool {
	return r.Method == http.MethodPost || r.Method == http.MethodPatch || r.Method == http.MethodDelete
}

type aliasSet struct{ model, alias, version string }

func newFaultProxy(t *testing.T, target string) *faultProxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{rp: httputil.NewSingleHostReverseProxy(u), inject: true}
	p.srv = httptest.NewServer(withBody(p))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *faultProxy) count(kind string) {
	v, _ := p.faults.LoadOrStore(kind, new(atomic.Int64))
	v.(*atomic.Int64).Add(1)
}

func (p *faultProxy) counts() map[string]int64 {
	out := map[string]int64{}
	p.faults.Range(func(k, v any) bool { out[k.(string)] = v.(*atomic.Int64).Load(); return true })
	return out
}

func (p *faultProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if isWrite(r) {
		if held, release, ok := p.trap.catch(); ok {
			held <- struct{}{}
			if <-release {
				// The write reaches MLflow although the process that sent it is gone.
				p.forward(httptest.NewRecorder(), r.WithContext(context.WithoutCancel(r.Context())))
			}
			return
		}
	}
	n := p.n.Add(1)
	if !p.inject {
		n = 1 // no scheduled fault
	}
	switch {
	case p.burst.Load() > 0:
		p.burst.Add(-1)
		p.count("503")
		http.Error(w, `{"error_code":"TEMPORARILY_UNAVAILABLE","message":"injected"}`, http.StatusServiceUnavailable)
		return
	case n%41 == 0:
		p.burst.Store(2) // this one and the next two
		p.count("503")
		http.Error(w, "injected", http.StatusServiceUnavailable)
		return
	case n%23 == 0:
		p.count("429")
		w.Header().Set("Retry-After", "1")
		http.Error(w, `{"error_code":"REQUEST_LIMIT_EXCEEDED","message":"injected"}`, http.StatusTooManyRequests)
		return
	case n%29 == 0:
		p.count("reset")
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				if tc, ok := conn.(*net.TCPConn); ok {
					_ = tc.SetLinger(0) // RST, not FIN
				}
				conn.Close()
				return
			}
		}
	case n%31 == 0:
		p.count("slow")
		select { // longer than the client's 1s timeout
		case <-time.After(1500 * time.Millisecond):
		case <-r.Context().Done():
			return
		}
	case n%37 == 0:
		p.count("truncated")
		p.truncated(w, r)
		return
	}
	p.forward(w, r)
}

// forward passes a request to MLflow and records the aliases MLflow accepted.
func (p *faultProxy) forward(w http.ResponseWriter, r *http.Request) {
	rec := httptest.NewRecorder()
	p.rp.ServeHTTP(rec, r)
	if strings.HasSuffix(r.URL.Path, "/registered-models/alias") && r.Method == http.MethodPost && rec.Code == 200 {
		p.noteAlias(r)
	}
	for k, vs := range rec.Header() {
		w.Header()[k] = vs
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}

// noteAlias records an alias set that MLflow accepted, read from the copy of the request
// body withBody kept.
func (p *faultProxy) noteAlias(r *http.Request) {
	var in struct{ Name, Alias, Version string }
	if b, ok := r.Context().Value(bodyKey{}).([]byte); ok {
		_ = json.Unmarshal(b, &in)
	}
	p.mu.Lock()
	p.aliases = append(p.aliases, aliasSet{in.Name, in.Alias, in.Version})
	p.mu.Unlock()
}

type bodyKey struct{}

// truncated forwards the request and sends half of the response body, announcing all of
// it, then closes the connection.
func (p *faultProxy) truncated(w http.ResponseWriter, r *http.Request) {
	rec := httptest.NewRecorder()
	p.rp.ServeHTTP(rec, r)
	body := rec.Body.Bytes()
	hj, ok := w.(http.Hijacker)
	if !ok {
		return
	}
	conn, buf, err := hj.Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	fmt.Fprintf(buf, "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", rec.Code, http.StatusText(rec.Code), len(body))
	_, _ = buf.Write(body[:len(body)/2])
	_ = buf.Flush()
}

// withBody keeps a copy of each request body in its context, for noteAlias.
func withBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil {
			b, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(b))
			r = r.WithContext(context.WithValue(r.Context(), bodyKey{}, b))
		}
		next.ServeHTTP(w, r)
	})
}

// noticeCounter counts the notifications received per event and version.
type noticeCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *noticeCounter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var n struct{ Event, Model, Version string }
	_ = json.NewDecoder(r.Body).Decode(&n)
	c.mu.Lock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[n.Event+" "+n.Model+" "+n.Version]++
	c.mu.Unlock()
}

func (c *noticeCounter) get(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[key]
}

const jsonPolicy = "../../examples/modelgate.yaml"

// TestFaultyMLflowEveryDecisionLandsOnce runs modelgate through a proxy injecting every
// kind of fault: each version still gets its decision once, notified once, with one
// report section; and the daemon stops within its deadline while faults go on.
func TestFaultyMLflowEveryDecisionLandsOnce(t *testing.T) {
	srv := mlflowServer.Get(t)
	proxy := newFaultProxy(t, srv.URL)
	hooks := &noticeCounter{}
	hook := httptest.NewServer(hooks)
	defer hook.Close()
	policy := writePolicy(t, reviewedGate("faults", "faulty-*")+`
notifications:
  - {url_env: HOOK, format: json}
`)
	d := goRun([]string{"MLFLOW_TRACKING_URI=" + proxy.srv.URL, "MODELGATE_POLICY=" + policy, "HOOK=" + hook.URL,
		"MODELGATE_POLL_INTERVAL=300ms", "MLFLOW_HTTP_REQUEST_TIMEOUT=1", "MLFLOW_HTTP_REQUEST_MAX_RETRIES=8",
		"MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR=0.05", "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER=0.05", "MODELGATE_LOG_FORMAT=text"}, freeAddr(t))
	defer d.cancel()

	c := srv.Client(t, mlflow.Options{})
	model := "faulty-credit"
	// Each version's final status, and the notifications it gets, each exactly once.
	want, events, notes := map[string]string{}, map[string][]string{}, map[string]string{}
	lastGood := ""
	for i := range 9 {
		spec := goodCredit(model)
		spec.Description = "user notes " + strconv.Itoa(i)
		status, event := "promoted", "promoted"
		switch i % 3 {
		case 1:
			spec.Metrics["recall_sex_female"] = 0.5
			status, event = "rejected", "rejected"
		case 2:
			spec.Metrics["accuracy"] = 0.85
			status, event = "pending_review", "review_requested"
		}
		mv, err := mlflowtest.CreateVersion(context.Background(), c, spec)
		if err != nil {
			t.Fatal(err)
		}
		want[mv.Version], events[mv.Version], notes[mv.Version] = status, []string{event}, spec.Description
		if status == "promoted" {
			if lastGood != "" { // a newer promotion supersedes it
				want[lastGood], events[lastGood] = "superseded", append(events[lastGood], "superseded")
			}
			lastGood = mv.Version
		}
	}
	waitFor(t, 3*time.Minute, "every version to be decided", func() bool {
		for v, st := range want {
			mv, err := c.GetModelVersion(context.Background(), model, v)
			if err != nil || mv.Tags["modelgate.status"] != st {
				return false
			}
		}
		return true
	})

	// Stop (as SIGTERM does) while the faults go on: nothing may hang past its deadline.
	stopAt := time.Now()
	switch code := d.stop(45 * time.Second); code {
	case exitOK:
	case -1:
		t.Fatal("modelgate did not stop within 45s of SIGTERM under faults")
	default:
		t.Fatalf("exit %d\n%s", code, d.logs)
	}
	t.Logf("stopped %s after SIGTERM; faults injected: %v", time.Since(stopAt).Round(time.Millisecond), proxy.counts())
	for _, kind := range []string{"503", "429", "reset", "slow", "truncated"} {
		if proxy.counts()[kind] == 0 {
			t.Errorf("no %s fault was injected: the schedule did not exercise it", kind)
		}
	}

	// run returns after draining notifications: every one sent has reached the hook.
	for v, st := range want {
		mv, err := c.GetModelVersion(context.Background(), model, v)
		if err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(mv.Description, "<!-- modelgate:begin -->"); n != 1 || !strings.HasSuffix(mv.Description, "\n"+notes[v]) {
			t.Errorf("v%s (%s): %d report sections, description %q", v, st, n, mv.Description)
		}
		for _, event := range events[v] {
			if n := hooks.get(event + " " + model + " " + v); n != 1 {
				t.Errorf("v%s: %d %s notifications, want exactly 1", v, n, event)
			}
		}
	}
	checkAliasesOnlyMoveUp(t, proxy.aliasLog())
}

func (p *faultProxy) aliasLog() []aliasSet {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]aliasSet(nil), p.aliases...)
}

// checkAliasesOnlyMoveUp: per model and alias, the versions MLflow was told to set,
// with repeats of the same move (a retry, a redo after a crash) merged, only increase:
// no version promoted twice, no alias moved backwards.
func checkAliasesOnlyMoveUp(t *testing.T, log []aliasSet) {
	t.Helper()
	last := map[string]string{}
	seen := map[string]map[string]bool{}
	for _, a := range log {
		k := a.model + "@" + a.alias
		if a.version == last[k] {
			continue
		}
		if seen[k] == nil {
			seen[k] = map[string]bool{}
		}
		if seen[k][a.version] {
			t.Errorf("%s: version %s promoted twice (log %v)", k, a.version, log)
		}
		if prev := last[k]; prev != "" && mlflow.CompareVersions(a.version, prev) < 0 {
			t.Errorf("%s moved backwards from %s to %s", k, prev, a.version)
		}
		seen[k][a.version] = true
		last[k] = a.version
	}
}

// reviewedGate is the policy of the fault tests: a version with accuracy under 0.8 or a
// recall gap over 0.1 is rejected, one under 0.9 waits for alice, the rest become
// champion.
func reviewedGate(name, models string) string {
	return fmt.Sprintf(`
gates:
  - name: %s
    models: [%q]
    checks:
      - {name: floor, metric: accuracy, min: 0.8, on_fail: reject}
      - {name: target, metric: accuracy, min: 0.9, on_fail: review}
      - {name: fair, group_metric: 'recall_sex_(.+)', max_gap: 0.1, on_fail: reject}
    review: {approvers: [alice]}
    promote: {alias: champion}
`, name, models)
}

func writePolicy(t *testing.T, body string) string {
	t.Helper()
	p := t.TempDir() + "/policy.yaml"
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestMLflowKilledMidReconcile: MLflow dies while modelgate works through new versions
// and comes back on the same store. modelgate keeps running, says it is not ready and
// counts failed passes meanwhile, and ends as an uninterrupted run would.
func TestMLflowKilledMidReconcile(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: skipped with -short")
	}
	srv, err := mlflowtest.Start(context.Background(), mlflowtest.Options{})
	if err != nil {
		mlflowtest.Unavailable(t, err)
	}
	defer srv.Close()
	policy := writePolicy(t, `
gates:
  - name: kill
    models: ["killed-*"]
    on_missing: reject
    checks:
      - {name: floor, metric: accuracy, min: 0.8}
    promote: {alias: champion}
`)
	addr, logs := startDaemon(t, []string{"MLFLOW_TRACKING_URI=" + srv.URL, "MODELGATE_POLICY=" + policy,
		"MODELGATE_POLL_INTERVAL=200ms", "MLFLOW_HTTP_REQUEST_MAX_RETRIES=1", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR=0.05", "MODELGATE_LOG_FORMAT=text"})
	c := srv.Client(t, mlflow.Options{})
	var versions []mlflow.ModelVersion
	for range 6 {
		mv, err := mlflowtest.CreateVersion(context.Background(), c, goodCredit("killed-credit"))
		if err != nil {
			t.Fatal(err)
		}
		versions = append(versions, mv)
	}
	waitFor(t, time.Minute, "the first version to be decided", func() bool {
		mv, err := c.GetModelVersion(context.Background(), "killed-credit", versions[0].Version)
		return err == nil && mv.Tags["modelgate.status"] != ""
	})
	srv.Kill()
	errorsBefore := sumSeries(t, addr, "modelgate_poll_errors_total")
	waitFor(t, time.Minute, "/readyz to report MLflow down", func() bool {
		code, body := get("http://" + addr + "/readyz")
		return code == http.StatusServiceUnavailable && strings.Contains(body, "MLflow")
	})
	waitFor(t, time.Minute, "poll errors to be counted", func() bool {
		return sumSeries(t, addr, "modelgate_poll_errors_total") > errorsBefore
	})
	if code, _ := get("http://" + addr + "/healthz"); code != 200 {
		t.Fatal("modelgate stopped serving while MLflow was down")
	}
	if err := srv.Restart(context.Background()); err != nil {
		t.Fatal(err)
	}
	last := versions[len(versions)-1]
	waitFor(t, 2*time.Minute, "every version to be decided after MLflow came back", func() bool {
		for _, v := range versions {
			mv, err := c.GetModelVersion(context.Background(), v.Name, v.Version)
			want := "superseded" // each newer version takes the alias from the one before
			if v.Version == versions[len(versions)-1].Version {
				want = "promoted"
			}
			if err != nil || mv.Tags["modelgate.status"] != want {
				return false
			}
		}
		return true
	})
	waitFor(t, time.Minute, "/readyz", func() bool { code, _ := get("http://" + addr + "/readyz"); return code == 200 })
	champion, err := c.GetModelVersionByAlias(context.Background(), "killed-credit", "champion")
	if err != nil || champion.Version != last.Version {
		t.Fatalf("champion %v (%v), want the newest version %s", champion.Version, err, last.Version)
	}
	for i, v := range versions {
		mv, _ := c.GetModelVersion(context.Background(), v.Name, v.Version)
		wantPrev := ""
		if i > 0 {
			wantPrev = versions[i-1].Version
		}
		var rec struct {
			PreviousVersion string `json:"previous_version"`
		}
		if err := json.Unmarshal([]byte(mv.Tags["modelgate.record"]), &rec); err != nil || rec.PreviousVersion != wantPrev ||
			strings.Count(mv.Description, "<!-- modelgate:begin -->") != 1 {
			t.Errorf("v%s: record %s (want previous_version %q), %d sections\n%s", v.Version, mv.Tags["modelgate.record"], wantPrev,
				strings.Count(mv.Description, "<!-- modelgate:begin -->"), logs)
		}
	}
}

// sigkillCount is how many times TestSIGKILLWhileWriting kills modelgate:
// MODELGATE_SIGKILLS, default 20 (make test-long runs 200).
func sigkillCount(t *testing.T) int {
	t.Helper()
	n := 20
	if v := os.Getenv("MODELGATE_SIGKILLS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			t.Fatalf("MODELGATE_SIGKILLS=%q: want a positive number", v)
		}
	}
	return n
}

// TestSIGKILLWhileWriting kills modelgate with SIGKILL while one of its writes to MLflow
// is on the wire, over and over (a seeded loop), while versions are registered and votes
// cast, and restarts it each time. The proxy in front of MLflow holds the n-th write of
// each run (n random), the test kills modelgate at that moment, and the held write then
// either reaches MLflow (its answer lost) or is dropped. Most kills must have landed on a
// write in flight. In the end every version has the decision its evidence and votes call
// for, no version was promoted twice, no alias moved backwards, no report section is
// duplicated and no user text is lost.
func TestSIGKILLWhileWriting(t *testing.T) {
	srv := mlflowServer.Get(t)
	proxy := newFaultProxy(t, srv.URL)
	proxy.inject = false
	kills := sigkillCount(t)
	rng := rand.New(rand.NewPCG(20261125, uint64(kills)))
	policy := writePolicy(t, reviewedGate("sigkill", "sigkill-*"))
	logs := &syncBuffer{}
	start := func() *exec.Cmd {
		cmd := exec.Command(os.Args[0], "run")
		cmd.Env = append(keyed(os.Environ()), "MODELGATE_TEST_RUN_MAIN=1", "MLFLOW_TRACKING_URI="+proxy.srv.URL, "MODELGATE_POLICY="+policy,
			"MODELGATE_POLL_INTERVAL=100ms", "MODELGATE_LISTEN_ADDR="+freeAddr(t), "MODELGATE_LOG_FORMAT=text",
			"MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR=0.05")
		cmd.Stdout, cmd.Stderr = logs, logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}

	c := srv.Client(t, mlflow.Options{})
	model := "sigkill-credit"
	kinds := map[string]string{} // version -> good, unfair, borderline
	register := func(i int) {
		spec := goodCredit(model)
		spec.Description = fmt.Sprintf("Trained by the risk team, run %d.\nDo not remove this line.", i)
		kind := []string{"good", "unfair", "borderline"}[rng.IntN(3)]
		switch kind {
		case "unfair":
			spec.Metrics["recall_sex_female"] = 0.5
		case "borderline":
			spec.Metrics["accuracy"] = 0.85
		}
		mv, err := mlflowtest.CreateVersion(context.Background(), c, spec)
		if err != nil {
			t.Fatal(err)
		}
		kinds[mv.Version] = kind
	}
	traffic, stopTraffic := context.WithCancel(context.Background())
	reviewer := make(chan struct{})
	go func() { // a reviewer approving what waits for review
		defer close(reviewer)
		for traffic.Err() == nil {
			vs, _ := c.SearchModelVersions(traffic, mlflow.SearchOptions{Filter: "name = '" + model + "' AND tags.`modelgate.status` = 'pending_review'"})
			for _, mv := range vs {
				if _, voted := mv.Tags["modelgate.approve.alice"]; !voted {
					_ = c.SetModelVersionTag(traffic, model, mv.Version, "modelgate.approve.alice", "fine")
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	defer func() { stopTraffic(); <-reviewer }()

	inFlight, reached := 0, 0
	for i := range kills {
		register(i) // every run finds work waiting
		proxy.trap.Arm(1 + rng.IntN(8))
		held, release := proxy.trap.held, proxy.trap.release
		child := start()
		select {
		case <-held:
			inFlight++
		case <-time.After(20 * time.Second): // nothing left to write: kill it anyway
		}
		_ = child.Process.Kill() // SIGKILL: no shutdown, no drain
		_ = child.Wait()
		forward := rng.IntN(2) == 0
		if forward {
			reached++
		}
		release <- forward
		proxy.trap.Disarm()
	}
	t.Logf("%d SIGKILLs, %d of them with a write in flight (%d of those writes reached MLflow); %d writes in all",
		kills, inFlight, reached, proxy.trap.writes.Load())
	if inFlight*4 < kills*3 {
		t.Errorf("only %d of %d kills landed while a write was in flight: the test does not test what it says", inFlight, kills)
	}

	final := start()
	defer func() { _ = final.Process.Signal(syscall.SIGTERM); _ = final.Wait() }()
	waitFor(t, 5*time.Minute, "every version to be decided", func() bool {
		vs, err := c.SearchModelVersions(context.Background(), mlflow.SearchOptions{Filter: "name = '" + model + "'"})
		if err != nil || len(vs) != len(kinds) {
			return false
		}
		for _, mv := range vs {
			if st := mv.Tags["modelgate.status"]; st == "" || st == "pending_review" {
				return false
			}
		}
		return true
	})

	highestPromoted := ""
	for v, kind := range kinds {
		mv, err := c.GetModelVersion(context.Background(), model, v)
		if err != nil {
			t.Fatal(err)
		}
		st := mv.Tags["modelgate.status"]
		// A good or approved version was promoted (and superseded by a newer one since),
		// or approved when a newer version already held the alias.
		promotedOnce := st == "promoted" || st == "superseded" ||
			(st == "approved" && strings.Contains(mv.Tags["modelgate.summary"], "held by newer version"))
		ok := map[string]bool{"good": promotedOnce, "unfair": st == "rejected", "borderline": promotedOnce}[kind]
		if !ok {
			t.Errorf("v%s (%s): status %q, summary %q", v, kind, st, mv.Tags["modelgate.summary"])
		}
		if st == "promoted" && mlflow.CompareVersions(v, highestPromoted) > 0 {
			highestPromoted = v
		}
		if n := strings.Count(mv.Description, "<!-- modelgate:begin -->"); n != 1 || !strings.Contains(mv.Description, "Do not remove this line.") {
			t.Errorf("v%s: %d report sections; user text kept: %v", v, n, strings.Contains(mv.Description, "Do not remove this line."))
		}
	}
	champion, err := c.GetModelVersionByAlias(context.Background(), model, "champion")
	if err != nil || champion.Version != highestPromoted {
		t.Errorf("champion %q, want the highest promoted version %q", champion.Version, highestPromoted)
	}
	checkAliasesOnlyMoveUp(t, proxy.aliasLog())
	if t.Failed() {
		t.Logf("modelgate logs:\n%s", logs)
	}
}
