// Command bench measures modelgate against a real MLflow server (the one
// scripts/install-mlflow.sh installs): decision latency with webhooks and with polling,
// requests per idle pass as the registry grows, backfill time against the bare requests
// and a Python MlflowClient script, and peak memory. Every figure comes with a baseline
// measured in the same run; docs/performance.md records the method and the results.
//
//	go run ./scripts/bench latency  [-n 20] [-poll 5s]
//	go run ./scripts/bench idle     [-sizes 100,1000,10000]
//	go run ./scripts/bench backfill [-n 200] [-models 8]
//	go run ./scripts/bench burst    [-n 1000] [-over 1m]
//	go run ./scripts/bench all
//
// BENCH_MLFLOW_WORKERS=1 runs MLflow with one worker, BENCH_MLFLOW_AUTH=1 with basic-auth,
// BENCH_MLFLOW_STORE=postgres on a PostgreSQL cluster of its own instead of SQLite.
//
// It is not part of CI's pass/fail: scripts/bench.sh runs it.
package main

import (
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/modelgate/modelgate/mlflow"
	"github.com/modelgate/modelgate/mlflow/mlflowtest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return errors.New("usage: bench latency|idle|backfill|burst|all [flags]")
	}
	workers, err := mlflowWorkers()
	if err != nil {
		return err
	}
	auth := ""
	if benchAuth() {
		auth = ", basic-auth"
	}
	store, err := benchStore()
	if err != nil {
		return err
	}
	storeName := map[string]string{"sqlite": "SQLite", "postgres": "PostgreSQL"}[store]
	fmt.Printf("machine: %s/%s, %d CPUs, %s; MLflow %s (%s, %d uvicorn workers%s)\n\n", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version(), mlflowtest.MLflowVersion, storeName, workers, auth)
	switch args[0] {
	case "latency":
		return latency(ctx, args[1:])
	case "idle":
		return idle(ctx, args[1:])
	case "backfill":
		return backfill(ctx, args[1:])
	case "burst":
		return burst(ctx, args[1:])
	case "all":
		for _, f := range []func(context.Context, []string) error{idle, backfill, burst, latency} {
			if err := f(ctx, nil); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("unknown benchmark %q", args[0])
}

// env is one benchmark's MLflow server and modelgate binary.
type env struct {
	srv     *mlflowtest.Server
	client  *mlflow.Client
	bin     string // modelgate
	dir     string
	webhook bool
	pg      *postgres // the store under BENCH_MLFLOW_STORE=postgres
}

const webhookSecret = "bench-webhook-secret"

// newEnv starts an MLflow server (able to call webhooks on 127.0.0.1 when webhook is
// set) and builds modelgate.
func newEnv(ctx context.Context, webhook bool) (*env, error) {
	workers, err := mlflowWorkers()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "modelgate-bench-")
	if err != nil {
		return nil, err
	}
	opts := mlflowtest.Options{Dir: filepath.Join(dir, "mlflow"), Workers: workers, BasicAuth: benchAuth()}
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, err
	}
	store, err := benchStore()
	if err != nil {
		return nil, err
	}
	var pg *postgres
	if store == "postgres" {
		if pg, err = startPostgres(ctx, dir); err != nil {
			return nil, err
		}
		opts.BackendStoreURI = pg.URI()
	}
	if webhook {
		opts.Env = []string{
			"MLFLOW_WEBHOOK_ALLOWED_SCHEMES=http,https", "MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS=true",
			"MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY=bW9kZWxnYXRlLWJlbmNoLWZlcm5ldC1rZXktMzJieXQ=", "MLFLOW_WEBHOOK_CACHE_TTL=1",
		}
	}
	srv, err := mlflowtest.Start(ctx, opts)
	if err != nil {
		if pg != nil {
			pg.stop()
		}
		return nil, err
	}
	c, err := mlflow.New(authed(mlflow.Options{TrackingURI: srv.URL, MaxRetries: 5, BackoffFactor: 50 * time.Millisecond}))
	if err != nil {
		return nil, err
	}
	bin := filepath.Join(dir, "modelgate")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/modelgate")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		srv.Close()
		if pg != nil {
			pg.stop()
		}
		return nil, fmt.Errorf("build modelgate: %w", err)
	}
	return &env{srv: srv, client: c, bin: bin, dir: dir, webhook: webhook, pg: pg}, nil
}

func (e *env) Close() {
	e.srv.Close()
	if e.pg != nil {
		e.pg.stop()
	}
	_ = os.RemoveAll(e.dir)
}

// signingKey signs the records of the bench's daemons (and those idle seeds).
var signingKey = []byte("modelgate-bench-signing-key-0123456789abcdef")

// benchPolicy gates bench-* models: thresholds, a fairness check, a comparison with the
// champion, promotion to champion.
const benchPolicy = `gates:
  - name: bench
    models: ["bench-*"]
    on_missing: reject
    checks:
      - {name: floor, metric: accuracy, min: 0.8, on_fail: reject}
      - {name: fair, group_metric: 'recall_sex_(.+)', max_gap: 0.1, on_fail: reject}
      - {name: auc, metric: auc, min: 0.7, on_fail: reject}
      - {name: beats-champion, metric: f1_score, baseline: champion, greater_is_better: true, min_absolute_change: 0.0, on_fail: reject}
    promote:
      alias: champion
`

// daemon is a running modelgate process.
type daemon struct {
	cmd  *exec.Cmd
	addr string
	done chan struct{}
}

func (e *env) startDaemon(ctx context.Context, extraEnv ...string) (*daemon, error) {
	return e.startDaemonWith(ctx, benchPolicy, extraEnv...)
}

// startDaemonWith starts modelgate with a policy of its own.
func (e *env) startDaemonWith(ctx context.Context, policyText string, extraEnv ...string) (*daemon, error) {
	policy := filepath.Join(e.dir, "policy.yaml")
	if err := os.WriteFile(policy, []byte(policyText), 0o644); err != nil {
		return nil, err
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(e.bin, "run")
	cmd.Env = append(os.Environ(),
		"MLFLOW_TRACKING_URI="+e.srv.URL, "MODELGATE_POLICY="+policy, "MODELGATE_LISTEN_ADDR="+addr,
		"MODELGATE_LOG_LEVEL=warn", "MODELGATE_SINCE=24h", "MODELGATE_SIGNING_KEY="+hex.EncodeToString(signingKey))
	cmd.Env = append(cmd.Env, authEnv()...)
	cmd.Env = append(cmd.Env, extraEnv...)
	logf, err := os.Create(filepath.Join(e.dir, "modelgate.log"))
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	d := &daemon{cmd: cmd, addr: addr, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); logf.Close(); close(d.done) }()
	if err := waitUntil(ctx, 10*time.Minute, func() bool { return httpOK("http://" + addr + "/readyz") }); err != nil {
		d.stop()
		return nil, fmt.Errorf("modelgate not ready: %w (log: %s)", err, filepath.Join(e.dir, "modelgate.log"))
	}
	return d, nil
}

func (d *daemon) stop() {
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(30 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.done
	}
}

// metric sums the samples of a metric family on the daemon's /metrics.
func (d *daemon) metric(name string, labelFilter string) (float64, error) {
	resp, err := http.Get("http://" + d.addr + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	var sum float64
	for _, line := range strings.Split(string(body), "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		if labelFilter != "" && !strings.Contains(line, labelFilter) {
			continue
		}
		var v float64
		fields := strings.Fields(line)
		if _, err := fmt.Sscanf(fields[len(fields)-1], "%g", &v); err == nil {
			sum += v
		}
	}
	return sum, nil
}

// peakRSS is the process' peak resident set size (VmHWM), in MB.
func (d *daemon) peakRSS() (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", d.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kb float64
			if _, err := fmt.Sscanf(strings.TrimSpace(v), "%g kB", &kb); err != nil {
				return 0, err
			}
			return kb / 1024, nil
		}
	}
	return 0, errors.New("no VmHWM")
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func httpOK(u string) bool {
	resp, err := http.Get(u)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func waitUntil(ctx context.Context, limit time.Duration, cond func() bool) error {
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			return errors.New("timed out")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}

// quantile of sorted durations (nearest rank).
func quantile(ds []time.Duration, q float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	i := int(q*float64(len(s))+0.5) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// benchAuth is BENCH_MLFLOW_AUTH=1: the server runs MLflow's basic-auth app and every
// client (modelgate, the floor, the script, the seeding) signs in as its admin, so the
// figures show what authentication costs.
func benchAuth() bool { return os.Getenv("BENCH_MLFLOW_AUTH") == "1" }

// authed adds the admin's credentials to a client's options under BENCH_MLFLOW_AUTH.
func authed(o mlflow.Options) mlflow.Options {
	if benchAuth() {
		o.Username, o.Password = mlflowtest.AdminUser, mlflowtest.AdminPassword
	}
	return o
}

// authEnv is the credentials' environment for modelgate and the script.
func authEnv() []string {
	if !benchAuth() {
		return nil
	}
	return []string{"MLFLOW_TRACKING_USERNAME=" + mlflowtest.AdminUser, "MLFLOW_TRACKING_PASSWORD=" + mlflowtest.AdminPassword}
}

// mlflowWorkers is BENCH_MLFLOW_WORKERS: the MLflow server's worker processes, 4 by
// default as `mlflow server` starts.
func mlflowWorkers() (int, error) {
	v := os.Getenv("BENCH_MLFLOW_WORKERS")
	if v == "" {
		return 4, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("BENCH_MLFLOW_WORKERS=%q: must be a number of workers, 1 or more", v)
	}
	return n, nil
}

func newFlags(name string) *flag.FlagSet { return flag.NewFlagSet(name, flag.ExitOnError) }
