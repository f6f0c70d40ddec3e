package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelgate/modelgate/mlflow"
	"github.com/modelgate/modelgate/mlflow/mlflowtest"
)

func daemonEnv(srv *mlflowtest.Server, extra ...string) []string {
	return append([]string{
		"MLFLOW_TRACKING_URI=" + srv.URL,
		"MODELGATE_POLICY=../../examples/modelgate.yaml",
		"SLACK_WEBHOOK_URL=http://127.0.0.1:1/unused",
		"MODELGATE_LOG_FORMAT=text",
		"MLFLOW_HTTP_REQUEST_MAX_RETRIES=1",
	}, extra...)
}

func TestRunOncePromotes(t *testing.T) {
	srv := mlflowServer.Get(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := srv.Client(t, mlflow.Options{})
	v, err := mlflowtest.CreateVersion(ctx, c, goodCredit("credit-once"))
	if err != nil {
		t.Fatal(err)
	}
	// A slow Slack: the notification is still in flight when the pass ends, and `run
	// --once` waits for it instead of cancelling it (it lost the last one in 3 of 3 runs).
	var mu sync.Mutex
	var delivered []string
	slack := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		time.Sleep(time.Second)
		mu.Lock()
		delivered = append(delivered, string(body))
		mu.Unlock()
	}))
	defer slack.Close()
	code, out, errOut := runCmd(t, daemonEnv(srv, "SLACK_WEBHOOK_URL="+slack.URL), "run", "--once")
	if code != exitOK {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	mu.Lock()
	got := strings.Join(delivered, "\n")
	mu.Unlock()
	if !strings.Contains(got, "credit-once") {
		t.Fatalf("the notification for credit-once was not delivered before exit; Slack got %q\n%s", got, errOut)
	}
	mv, err := c.GetModelVersion(ctx, "credit-once", v.Version)
	if err != nil {
		t.Fatal(err)
	}
	if mv.Tags["modelgate.status"] != "promoted" {
		t.Fatalf("status %q\n%s", mv.Tags["modelgate.status"], errOut)
	}
	if !strings.Contains(errOut, "msg=decision") || !strings.Contains(errOut, "model=credit-once") || !strings.Contains(errOut, "by=modelgate") {
		t.Fatalf("no audit line:\n%s", errOut)
	}
}

func TestDryRunWritesNothing(t *testing.T) {
	srv := mlflowServer.Get(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := srv.Client(t, mlflow.Options{})
	v, err := mlflowtest.CreateVersion(ctx, c, goodCredit("credit-dry"))
	if err != nil {
		t.Fatal(err)
	}
	for _, how := range [][]string{{"--dry-run"}, {"MODELGATE_DRY_RUN=true"}} {
		env := daemonEnv(srv)
		args := []string{"run", "--once"}
		if strings.HasPrefix(how[0], "--") {
			args = append(args, how...)
		} else {
			env = append(env, how...)
		}
		code, out, errOut := runCmd(t, env, args...)
		if code != exitOK || !strings.Contains(errOut, "dry-run: would set alias") || !strings.Contains(errOut, "dry-run: would notify") {
			t.Fatalf("%v: exit %d\n%s%s", how, code, out, errOut)
		}
		mv, err := c.GetModelVersion(ctx, "credit-dry", v.Version)
		if err != nil {
			t.Fatal(err)
		}
		if len(mv.Tags) != 0 || mv.Description != "" || len(mv.Aliases) != 0 {
			t.Fatalf("%v: dry run wrote: tags %v, aliases %v, description %q", how, mv.Tags, mv.Aliases, mv.Description)
		}
	}
}

func TestRunExitCodes(t *testing.T) {
	srv := mlflowServer.Get(t)
	// A proxy's login page answering 200 with HTML where MLflow's API should be.
	loginPage := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, "<!doctype html><html><title>Sign in</title><body>Sign in to continue</body></html>")
	}))
	defer loginPage.Close()
	for _, tc := range []struct {
		name string
		env  []string
		code int
		text string
	}{
		{"MLflow down", []string{"MLFLOW_TRACKING_URI=http://127.0.0.1:1", "MODELGATE_POLICY=../../examples/modelgate.yaml", "SLACK_WEBHOOK_URL=http://x", "MLFLOW_HTTP_REQUEST_MAX_RETRIES=0"}, exitUpstream, "MLflow unreachable"},
		{"notification URL unset", []string{"MLFLOW_TRACKING_URI=" + srv.URL, "MODELGATE_POLICY=../../examples/modelgate.yaml"}, exitUsage, "SLACK_WEBHOOK_URL is not set"},
		{"broken policy", daemonEnv(srv, "MODELGATE_POLICY=../../examples/broken/bounds.yaml"), exitPolicy, "bounds.yaml:7:9"},
		{"bad variable", daemonEnv(srv, "MODELGATE_POLL_INTERVAL=soon"), exitUsage, "MODELGATE_POLL_INTERVAL"},
		{"HTML where MLflow should be", []string{"MLFLOW_TRACKING_URI=" + loginPage.URL, "MODELGATE_POLICY=../../examples/modelgate.yaml", "SLACK_WEBHOOK_URL=http://x"}, exitUpstream, "HTTP 200 with HTML page: Sign in, not MLflow's API"},
		{"a token as the URI's user name", []string{"MLFLOW_TRACKING_URI=http://tok-secret-1@127.0.0.1:1", "MODELGATE_POLICY=../../examples/modelgate.yaml", "SLACK_WEBHOOK_URL=http://x", "MLFLOW_HTTP_REQUEST_MAX_RETRIES=0"}, exitUsage, "MLFLOW_TRACKING_URI http://***@127.0.0.1:1 carries credentials"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			code, out, errOut := runCmd(t, tc.env, "run", "--once")
			if code != tc.code || !strings.Contains(out+errOut, tc.text) {
				t.Fatalf("exit %d, output %q %q; want %d mentioning %q", code, out, errOut, tc.code, tc.text)
			}
			if strings.Contains(out+errOut, "tok-secret-1") {
				t.Fatalf("the token is printed: %s", out+errOut)
			}
			// Not retried for minutes: an HTML page will not turn into MLflow's API.
			if d := time.Since(start); d > time.Minute {
				t.Fatalf("took %s", d)
			}
		})
	}
}

// syncBuffer collects the daemon's log while it runs.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// bgDaemon is `modelgate run` in a goroutine of the test, serving on addr.
type bgDaemon struct {
	addr   string
	logs   *syncBuffer
	cancel context.CancelFunc
	done   chan int // its exit code
}

// goRun starts `modelgate run` with env, listening on addr.
func goRun(env []string, addr string) *bgDaemon {
	ctx, cancel := context.WithCancel(context.Background())
	d := &bgDaemon{addr: addr, logs: &syncBuffer{}, cancel: cancel, done: make(chan int, 1)}
	go func() {
		d.done <- run(ctx, []string{"run"}, keyed(append(env, "MODELGATE_LISTEN_ADDR="+addr)), io.Discard, d.logs)
	}()
	return d
}

// stop ends the daemon as SIGTERM does and returns its exit code, or -1 when it has not
// stopped within limit.
func (d *bgDaemon) stop(limit time.Duration) int {
	d.cancel()
	select {
	case code := <-d.done:
		return code
	case <-time.After(limit):
		return -1
	}
}

// sumSeries adds up the samples on the daemon's /metrics of a metric whose label set
// contains every one of labels (e.g. `code="403"`).
func sumSeries(t *testing.T, addr, name string, labels ...string) float64 {
	t.Helper()
	_, body := get("http://" + addr + "/metrics")
	sum := 0.0
	sc := bufio.NewScanner(strings.NewReader(body))
next:
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		for _, l := range labels {
			if !strings.Contains(line, l) {
				continue next
			}
		}
		f := strings.Fields(line)
		v, _ := strconv.ParseFloat(f[len(f)-1], 64)
		sum += v
	}
	return sum
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// waitFor polls cond every 100ms until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func get(url string) (int, string) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestDaemonServesHealthDecidesAndStops(t *testing.T) {
	srv := mlflowServer.Get(t)
	d := goRun(daemonEnv(srv, "MODELGATE_POLL_INTERVAL=200ms"), freeAddr(t))
	defer d.cancel()
	addr, logs := d.addr, d.logs
	waitFor(t, time.Minute, "/readyz", func() bool { code, _ := get("http://" + addr + "/readyz"); return code == 200 })
	if code, body := get("http://" + addr + "/healthz"); code != 200 || body != "ok\n" {
		t.Fatalf("/healthz: %d %q", code, body)
	}

	c := srv.Client(t, mlflow.Options{})
	v, err := mlflowtest.CreateVersion(context.Background(), c, goodCredit("credit-daemon"))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Minute, "the new version to be promoted", func() bool {
		mv, err := c.GetModelVersion(context.Background(), "credit-daemon", v.Version)
		return err == nil && mv.Tags["modelgate.status"] == "promoted"
	})

	switch code := d.stop(30 * time.Second); code {
	case exitOK:
	case -1:
		t.Fatal("the daemon did not stop after its context was cancelled")
	default:
		t.Fatalf("exit %d after shutdown\n%s", code, logs)
	}
	if !strings.Contains(logs.String(), "shutting down") {
		t.Fatalf("no shutdown log:\n%s", logs)
	}
	if code, _ := get("http://" + addr + "/healthz"); code != 0 {
		t.Fatalf("still serving after shutdown: %d", code)
	}
}

func TestReadyzWhenMLflowIsDown(t *testing.T) {
	env := []string{"MLFLOW_TRACKING_URI=http://127.0.0.1:1", "MODELGATE_POLICY=../../examples/modelgate.yaml",
		"SLACK_WEBHOOK_URL=http://x", "MLFLOW_HTTP_REQUEST_MAX_RETRIES=0", "MODELGATE_POLL_INTERVAL=100ms"}
	d := goRun(env, freeAddr(t))
	defer d.cancel()
	addr := d.addr
	waitFor(t, 30*time.Second, "/healthz", func() bool { code, _ := get("http://" + addr + "/healthz"); return code == 200 })
	code, body := get("http://" + addr + "/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "not ready: MLflow does not answer") || !strings.Contains(body, "MLflow unreachable") {
		t.Fatalf("/readyz with MLflow down: %d %q; want 503 naming MLflow as the cause", code, body)
	}
	if code := d.stop(30 * time.Second); code != exitOK {
		t.Fatalf("exit %d", code)
	}
}

// brokenListener accepts nothing: Accept fails as a listener whose socket was closed
// under the server would.
type brokenListener struct{ net.Listener }

func (b brokenListener) Accept() (net.Conn, error) {
	return nil, errors.New("socket closed under the server")
}

// TestDaemonStopsWhenItCannotServe: a daemon whose HTTP server stops serving (no metrics,
// no probes) stops deciding too and exits non-zero, rather than acting unobserved.
func TestDaemonStopsWhenItCannotServe(t *testing.T) {
	srv := mlflowServer.Get(t)
	logs := &syncBuffer{}
	d, code := newDaemon(keyed(daemonEnv(srv, "MODELGATE_POLL_INTERVAL=100ms")), false, false, io.Discard, logs)
	if d == nil {
		t.Fatalf("exit %d: %s", code, logs)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan int, 1)
	go func() { done <- d.serve(context.Background(), brokenListener{ln}, io.Discard) }()
	select {
	case code := <-done:
		if code != exitUsage || !strings.Contains(logs.String(), "cannot serve its metrics and probes") {
			t.Fatalf("exit %d, logs:\n%s", code, logs)
		}
	case <-time.After(time.Minute):
		t.Fatal("the daemon went on deciding without an HTTP server")
	}
}
