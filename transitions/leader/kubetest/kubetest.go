// Package kubetest runs a real Kubernetes API server (kube-apiserver v1.34.4 on a
// single-member etcd v3.6.4), built from the Go module proxy by scripts/build-kube.sh, for
// the tests of leader election. No Docker, no kubelet: the API server alone is what a
// Lease needs. Each Cluster has its own etcd data, ports and credentials.
package kubetest

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// ErrNotBuilt is returned when the binaries are missing: run scripts/build-kube.sh.
var ErrNotBuilt = errors.New("kube-apiserver and etcd are not built: run scripts/build-kube.sh (about 5 minutes the first time)")

// Cluster is a running etcd and kube-apiserver.
type Cluster struct {
	URL        string // https://127.0.0.1:PORT
	Token      string // a static token with every permission
	Kubeconfig string // a kubeconfig file for URL and Token

	dir       string
	etcd, api *exec.Cmd
}

// Bin is the directory holding the binaries: MODELGATE_KUBE_BIN, else .cache/kube/bin
// above the working directory.
func Bin() (string, error) {
	if d := os.Getenv("MODELGATE_KUBE_BIN"); d != "" {
		return d, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		p := filepath.Join(dir, ".cache", "kube", "bin")
		if _, err := os.Stat(filepath.Join(p, "kube-apiserver")); err == nil {
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", ErrNotBuilt
		}
		dir = parent
	}
}

// Unavailable skips the test when the binaries are not built, unless CI is set: then
// the test fails.
func Unavailable(tb testing.TB, err error) {
	tb.Helper()
	if errors.Is(err, ErrNotBuilt) && os.Getenv("CI") == "" {
		tb.Skipf("Kubernetes API server test skipped: %v", err)
	}
	tb.Fatalf("Kubernetes API server unavailable: %v", err)
}

// ForTest starts a Cluster for an integration test and stops it when the test ends:
// skipped under -short, and where the binaries are not built (unless CI is set).
func ForTest(t testing.TB) *Cluster {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: skipped with -short")
	}
	c, err := Start(context.Background())
	if err != nil {
		Unavailable(t, err)
	}
	t.Cleanup(c.Close)
	return c
}

// Start runs etcd and the API server in a new temporary directory and waits until the
// API server is ready.
func Start(ctx context.Context) (*Cluster, error) {
	bin, err := Bin()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "modelgate-kube-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{dir: dir}
	if err := c.start(ctx, bin); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func (c *Cluster) start(ctx context.Context, bin string) error {
	ports, err := freePorts(3)
	if err != nil {
		return err
	}
	etcdURL := "http://127.0.0.1:" + strconv.Itoa(ports[0])
	c.etcd = command(filepath.Join(bin, "etcd"), filepath.Join(c.dir, "etcd.log"),
		"-dir", filepath.Join(c.dir, "etcd"), "-listen", etcdURL, "-peer", "http://127.0.0.1:"+strconv.Itoa(ports[1]))
	if err := c.etcd.Start(); err != nil {
		return fmt.Errorf("start etcd: %w", err)
	}

	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	keyFile := filepath.Join(c.dir, "sa.key")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600); err != nil {
		return err
	}
	token := make([]byte, 16)
	if _, err := rand.Read(token); err != nil {
		return err
	}
	c.Token = hex.EncodeToString(token)
	tokens := filepath.Join(c.dir, "tokens.csv")
	if err := os.WriteFile(tokens, []byte(c.Token+",admin,admin,system:masters\n"), 0o600); err != nil {
		return err
	}
	c.URL = "https://127.0.0.1:" + strconv.Itoa(ports[2])
	c.api = command(filepath.Join(bin, "kube-apiserver"), filepath.Join(c.dir, "apiserver.log"),
		"--etcd-servers="+etcdURL,
		"--bind-address=127.0.0.1", "--secure-port="+strconv.Itoa(ports[2]),
		"--cert-dir="+filepath.Join(c.dir, "certs"),
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file="+keyFile, "--service-account-signing-key-file="+keyFile,
		"--token-auth-file="+tokens,
		"--authorization-mode=RBAC", // the chart's Role is what grants a replica the Lease
		"--service-cluster-ip-range=10.0.0.0/24",
		"--disable-admission-plugins=ServiceAccount",
		"--enable-priority-and-fairness=false",
		"--v=0")
	if err := c.api.Start(); err != nil {
		return fmt.Errorf("start kube-apiserver: %w", err)
	}
	if err := c.waitReady(ctx, 2*time.Minute); err != nil {
		log, _ := os.ReadFile(filepath.Join(c.dir, "apiserver.log"))
		return fmt.Errorf("%w\n%s", err, tail(log, 3000))
	}
	c.Kubeconfig = filepath.Join(c.dir, "kubeconfig")
	return os.WriteFile(c.Kubeconfig, []byte(c.kubeconfig()), 0o600)
}

// command runs a binary in its own process group with its output in logFile.
func command(bin, logFile string, args ...string) *exec.Cmd {
	cmd := exec.Command(bin, args...)
	if f, err := os.Create(logFile); err == nil {
		cmd.Stdout, cmd.Stderr = f, f
	}
	// Its own process group, killed by the parent's death too: a test that times out
	// leaves no server behind.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	return cmd
}

func (c *Cluster) waitReady(ctx context.Context, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.URL+"/readyz", nil)
		req.Header.Set("Authorization", "Bearer "+c.Token)
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kube-apiserver on %s not ready within %s", c.URL, limit)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Config is a client configuration with every permission.
func (c *Cluster) Config() *rest.Config {
	return &rest.Config{Host: c.URL, BearerToken: c.Token, TLSClientConfig: rest.TLSClientConfig{Insecure: true}}
}

// Client is a clientset with every permission.
func (c *Cluster) Client() (*kubernetes.Clientset, error) { return kubernetes.NewForConfig(c.Config()) }

// KubeconfigFor writes a kubeconfig that authenticates with token (of a service account,
// say) and returns its path.
func (c *Cluster) KubeconfigFor(name, token string) (string, error) {
	p := filepath.Join(c.dir, name+".kubeconfig")
	return p, os.WriteFile(p, []byte(kubeconfig(c.URL, token)), 0o600)
}

func (c *Cluster) kubeconfig() string { return kubeconfig(c.URL, c.Token) }

func kubeconfig(url, token string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: test
  cluster: {server: %q, insecure-skip-tls-verify: true}
users:
- name: test
  user: {token: %q}
contexts:
- name: test
  context: {cluster: test, user: test, namespace: default}
current-context: test
`, url, token)
}

// Close stops the API server, then etcd, and removes their data.
func (c *Cluster) Close() {
	for _, cmd := range []*exec.Cmd{c.api, c.etcd} {
		if cmd == nil || cmd.Process == nil {
			continue
		}
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	}
	if c.dir != "" {
		_ = os.RemoveAll(c.dir)
	}
}

func freePorts(n int) ([]int, error) {
	var out []int
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, l)
		out = append(out, l.Addr().(*net.TCPAddr).Port)
	}
	return out, nil
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
