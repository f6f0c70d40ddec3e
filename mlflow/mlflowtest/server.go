// Package mlflowtest starts a real MLflow server for tests: `mlflow server` on a free
// 127.0.0.1 port with a SQLite store and artifact root in a temporary directory, stopped
// with its whole process group when the tests end.
//
// The server comes from the virtual environment that scripts/install-mlflow.sh creates
// (.cache/mlflow-venv at the repository root), or from $MODELGATE_MLFLOW. When neither
// exists, tests skip with a message saying how to install it; when the CI environment
// variable is set they fail instead, so CI can never pass without the real server.
package mlflowtest

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// MLflowVersion is the MLflow release the tests pin (scripts/install-mlflow.sh).
const MLflowVersion = "3.18.0"

// ErrNotInstalled means no mlflow executable was found.
var ErrNotInstalled = errors.New("MLflow is not installed: run scripts/install-mlflow.sh (or set MODELGATE_MLFLOW to an mlflow executable)")

// Options changes how the server runs.
type Options struct {
	// Env is added to the server's environment, e.g. MLFLOW_WEBHOOK_ALLOWED_SCHEMES=http.
	Env []string
	// BasicAuth runs the server with --app-name basic-auth, an admin user
	// (AdminUser/AdminPassword) and default_permission DefaultPermission (READ if empty).
	BasicAuth         bool
	DefaultPermission string
	// AppName replaces basic-auth as the --app-name of a BasicAuth server, e.g.
	// "modelgate-auth" (mlflow/modelgate-auth, which scripts/install-mlflow.sh installs).
	AppName string
	// Dir holds the store; a new temporary directory when empty.
	Dir string
	// BackendStoreURI replaces the SQLite file in Dir as the tracking and registry
	// store, e.g. postgresql://user@127.0.0.1:5432/mlflow (the benchmarks' PostgreSQL).
	BackendStoreURI string
	// Workers is the number of uvicorn workers (default 1, which keeps tests light;
	// `mlflow server` itself defaults to 4).
	Workers int
	// StartTimeout bounds the wait for /health (default 3 minutes: the first start on a
	// new SQLite file runs every migration).
	StartTimeout time.Duration
}

// Admin credentials of a BasicAuth server.
const (
	AdminUser     = "admin"
	AdminPassword = "modelgate-test-admin-1"
)

// Server is a running MLflow server.
type Server struct {
	URL     string // http://127.0.0.1:PORT
	Dir     string // store, artifacts and server.log
	Port    int
	Version string // what the server's /version answered

	opts   Options
	cmd    *exec.Cmd
	done   chan struct{} // closed when the process has exited
	ownDir bool
}

// Binary returns the mlflow executable to run.
func Binary() (string, error) {
	if p := os.Getenv("MODELGATE_MLFLOW"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("MODELGATE_MLFLOW=%s: %w", p, err)
		}
		return p, nil
	}
	root, err := repoRoot()
	if err == nil {
		p := filepath.Join(root, ".cache", "mlflow-venv", "bin", "mlflow")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", ErrNotInstalled
}

// Release is the MLflow release of the executable Binary returns, read from its
// installation's metadata (no Python started): "3.18.0", say.
func Release() (string, error) {
	bin, err := Binary()
	if err != nil {
		return "", err
	}
	dirs, _ := filepath.Glob(filepath.Join(filepath.Dir(bin), "..", "lib", "python*", "site-packages", "mlflow-[0-9]*.dist-info"))
	if len(dirs) != 1 {
		return "", fmt.Errorf("the MLflow release of %s: %d mlflow-*.dist-info beside it, want one", bin, len(dirs))
	}
	return strings.TrimSuffix(strings.TrimPrefix(filepath.Base(dirs[0]), "mlflow-"), ".dist-info"), nil
}

func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the working directory")
		}
		dir = parent
	}
}

// Start runs a server and waits until /health answers.
func Start(ctx context.Context, opts Options) (*Server, error) {
	s := &Server{opts: opts, Dir: opts.Dir}
	if s.Dir == "" {
		dir, err := os.MkdirTemp(storeParent(), "modelgate-mlflow-")
		if err != nil {
			return nil, err
		}
		s.Dir, s.ownDir = dir, true
	}
	var err error
	for range 3 { // a free port can be taken between choosing it and binding it
		if s.Port, err = freePort(); err != nil {
			break
		}
		if err = s.start(ctx); err == nil {
			return s, nil
		}
	}
	s.cleanup()
	return nil, err
}

// storeParent is where temporary stores go: /dev/shm when it exists, since SQLite's
// fsync on every commit dominates the time of a test that writes a lot, and the store
// lives only as long as the test; the temp directory otherwise.
func storeParent() string {
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		if f, err := os.CreateTemp("/dev/shm", "modelgate-probe-"); err == nil {
			f.Close()
			os.Remove(f.Name())
			return "/dev/shm"
		}
	}
	return os.TempDir()
}

// Restart stops the server and starts it again on the same store and port.
func (s *Server) Restart(ctx context.Context) error {
	s.Stop()
	return s.start(ctx)
}

func (s *Server) start(ctx context.Context) error {
	bin, err := Binary()
	if err != nil {
		return err
	}
	s.URL = "http://127.0.0.1:" + strconv.Itoa(s.Port)
	args := []string{"server",
		"--backend-store-uri", cmp.Or(s.opts.BackendStoreURI, "sqlite:///"+filepath.Join(s.Dir, "mlflow.db")),
		"--default-artifact-root", filepath.Join(s.Dir, "artifacts"),
		"--host", "127.0.0.1", "--port", strconv.Itoa(s.Port),
		"--workers", strconv.Itoa(max(s.opts.Workers, 1)),
	}
	env := append(cleanEnv(os.Environ()), s.opts.Env...)
	if s.opts.BasicAuth {
		ini, err := s.writeAuthConfig()
		if err != nil {
			return err
		}
		args = append(args, "--app-name", cmp.Or(s.opts.AppName, "basic-auth"))
		// Releases before the pinned one serve the basic-auth app (a Flask app) with
		// gunicorn: from 3.x's switch to uvicorn until the app was wrapped for it, their
		// default uvicorn answers every request 500 (3.3.2: "Flask.__call__() missing 1
		// required positional argument").
		if release, err := Release(); err != nil || release != MLflowVersion {
			args = append(args, "--gunicorn-opts", "")
		}
		env = append(env, "MLFLOW_AUTH_CONFIG_PATH="+ini, "MLFLOW_FLASK_SERVER_SECRET_KEY=modelgate-tests")
	}
	logf, err := os.OpenFile(s.logPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Dir = s.Dir
	cmd.Stdout, cmd.Stderr = logf, logf
	// Own process group, so Stop reaches the uvicorn worker the CLI spawns; and a
	// parent-death signal, so a test binary killed outright does not leave it running.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", bin, err)
	}
	s.cmd = cmd
	s.done = make(chan struct{})
	go func() { _ = cmd.Wait(); close(s.done) }()

	timeout := s.opts.StartTimeout
	if timeout == 0 {
		timeout = 3 * time.Minute
	}
	if err := s.waitHealthy(ctx, timeout); err != nil {
		s.Stop()
		return fmt.Errorf("mlflow server on port %d: %w\n%s", s.Port, err, s.LogTail(40))
	}
	resp, err := http.Get(s.URL + "/version")
	if err != nil {
		s.Stop()
		return fmt.Errorf("mlflow server version: %w", err)
	}
	defer resp.Body.Close()
	v, _ := io.ReadAll(io.LimitReader(resp.Body, 100))
	s.Version = strings.TrimSpace(string(v))
	return nil
}

func (s *Server) waitHealthy(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/health", nil)
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-s.done:
			return errors.New("exited before answering /health")
		case <-ctx.Done():
			return fmt.Errorf("no answer on /health: %w", ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Stop ends the server's process group: SIGTERM, then SIGKILL after ten seconds.
func (s *Server) Stop() {
	s.signal(syscall.SIGTERM, 10*time.Second)
}

// Kill ends the server's process group at once with SIGKILL, as a crash would.
func (s *Server) Kill() {
	s.signal(syscall.SIGKILL, 10*time.Second)
}

func (s *Server) signal(sig syscall.Signal, grace time.Duration) {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	pgid := s.cmd.Process.Pid
	_ = syscall.Kill(-pgid, sig)
	select {
	case <-s.done:
	case <-time.After(grace):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-s.done
	}
	// The CLI may exit before its worker: make sure nothing of the group survives.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	s.cmd = nil
}

// Close stops the server and removes a temporary store directory it created.
func (s *Server) Close() {
	s.Stop()
	s.cleanup()
}

func (s *Server) cleanup() {
	if s.ownDir {
		_ = os.RemoveAll(s.Dir)
	}
}

func (s *Server) logPath() string { return filepath.Join(s.Dir, "server.log") }

// LogTail returns the last n lines of the server's log.
func (s *Server) LogTail(n int) string {
	b, err := os.ReadFile(s.logPath())
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func (s *Server) writeAuthConfig() (string, error) {
	perm := s.opts.DefaultPermission
	if perm == "" {
		perm = "READ"
	}
	ini := fmt.Sprintf(`[mlflow]
default_permission = %s
database_uri = sqlite:///%s
admin_username = %s
admin_password = %s
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
`, perm, filepath.Join(s.Dir, "basic_auth.db"), AdminUser, AdminPassword)
	p := filepath.Join(s.Dir, "basic_auth.ini")
	return p, os.WriteFile(p, []byte(ini), 0o600)
}

// cleanEnv drops client settings of the developer's shell that would change the
// server (a tracking URI pointing elsewhere, credentials).
func cleanEnv(env []string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if strings.HasPrefix(kv, "MLFLOW_") {
			continue
		}
		out = append(out, kv)
	}
	return out
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Shared starts one server per test package, on first use, and skips (or, with CI set,
// fails) the tests that need it when MLflow is not installed.
//
//	var mlflowServer = mlflowtest.NewShared(mlflowtest.Options{})
//	func TestMain(m *testing.M) { code := m.Run(); mlflowServer.Close(); os.Exit(code) }
type Shared struct {
	opts Options
	once sync.Once
	srv  *Server
	err  error
}

// NewShared prepares a shared server; nothing starts until Get is called.
func NewShared(opts Options) *Shared { return &Shared{opts: opts} }

// Get returns the running server, starting it on the first call.
func (sh *Shared) Get(tb testing.TB) *Server {
	tb.Helper()
	if testing.Short() {
		tb.Skip("integration test: skipped with -short")
	}
	sh.once.Do(func() {
		sh.srv, sh.err = Start(context.Background(), sh.opts)
	})
	if sh.err != nil {
		Unavailable(tb, sh.err)
	}
	return sh.srv
}

// Close stops the server if it was started.
func (sh *Shared) Close() {
	if sh.srv != nil {
		sh.srv.Close()
	}
}

// Unavailable skips the test when MLflow is missing, and fails it when CI is set or the
// server was installed but could not start.
func Unavailable(tb testing.TB, err error) {
	tb.Helper()
	if errors.Is(err, ErrNotInstalled) && os.Getenv("CI") == "" {
		tb.Skipf("integration test skipped: %v", err)
	}
	tb.Fatalf("MLflow server unavailable: %v", err)
}

// Python returns the interpreter of the virtual environment that holds mlflow, for tests
// that drive the real MLflow Python client (prompts, sklearn models).
func Python() (string, error) {
	bin, err := Binary()
	if err != nil {
		return "", err
	}
	p := filepath.Join(filepath.Dir(bin), "python")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("no python beside %s: %w", bin, err)
	}
	return p, nil
}

// RunPython runs a Python script with the MLflow client pointed at the server.
func (s *Server) RunPython(ctx context.Context, script string, env ...string) (string, error) {
	py, err := Python()
	if err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, py, "-c", script)
	cmd.Env = append(cleanEnv(os.Environ()), "MLFLOW_TRACKING_URI="+s.URL, "GIT_PYTHON_REFRESH=quiet")
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("python: %w\n%s", err, out)
	}
	return string(out), nil
}

// RegisterPrompt registers a prompt with MLflow's Python client, as a user would, and
// returns what the client printed last (the prompt's version). The call is
// mlflow.genai.register_prompt from 3.1; 2.22 and 3.0 have mlflow.register_prompt.
func (s *Server) RegisterPrompt(ctx context.Context, name, template string) (string, error) {
	out, err := s.RunPython(ctx, `
import os, mlflow
register = getattr(getattr(mlflow, "genai", None), "register_prompt", None) or mlflow.register_prompt
print(register(name=os.environ["PROMPT_NAME"], template=os.environ["PROMPT_TEMPLATE"]).version)
`, "PROMPT_NAME="+name, "PROMPT_TEMPLATE="+template)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	return strings.TrimSpace(lines[len(lines)-1]), err
}

// CreateUser adds a user to a BasicAuth server.
func (s *Server) CreateUser(ctx context.Context, username, password string) error {
	return s.adminPost(ctx, "/api/2.0/mlflow/users/create", map[string]string{"username": username, "password": password})
}

// GrantModelPermission gives a user READ, USE, EDIT, MANAGE or DENY on a registered
// model. MLflow 3.18 replaced the per-model permission endpoints of earlier releases
// (registered-models/permissions/create) with role-based grants under /api/3.0; a server
// without those gets the older call.
func (s *Server) GrantModelPermission(ctx context.Context, model, username, permission string) error {
	return s.grant(ctx, map[string]string{"username": username, "resource_type": "registered_model", "resource_id": model, "permission": permission},
		"/api/2.0/mlflow/registered-models/permissions/create", map[string]string{"name": model, "username": username, "permission": permission})
}

// GrantExperimentPermission gives a user READ, USE, EDIT, MANAGE or DENY on an
// experiment (by id): modelgate's user writes the audit trail's experiment.
func (s *Server) GrantExperimentPermission(ctx context.Context, experimentID, username, permission string) error {
	return s.grant(ctx, map[string]string{"username": username, "resource_type": "experiment", "resource_id": experimentID, "permission": permission},
		"/api/2.0/mlflow/experiments/permissions/create", map[string]string{"experiment_id": experimentID, "username": username, "permission": permission})
}

// grant posts a role-based grant, or the older per-resource call where the server does
// not have /api/3.0/mlflow/users/permissions/grant (it answers 404).
func (s *Server) grant(ctx context.Context, body map[string]string, olderPath string, olderBody map[string]string) error {
	err := s.adminPost(ctx, "/api/3.0/mlflow/users/permissions/grant", body)
	if errors.Is(err, errNoEndpoint) {
		return s.adminPost(ctx, olderPath, olderBody)
	}
	return err
}

// errNoEndpoint is adminPost's error for a 404 answer.
var errNoEndpoint = errors.New("no such endpoint")

func (s *Server) adminPost(ctx context.Context, path string, body map[string]string) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+path, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth(AdminUser, AdminPassword)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 2048))
		if resp.StatusCode == http.StatusNotFound && !bytes.Contains(msg, []byte("RESOURCE_DOES_NOT_EXIST")) {
			return fmt.Errorf("POST %s: %w", path, errNoEndpoint)
		}
		return fmt.Errorf("POST %s: HTTP %d: %s", path, resp.StatusCode, msg)
	}
	return nil
}
