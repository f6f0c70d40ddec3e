package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/modelgate/modelgate/mlflow"
	"github.com/modelgate/modelgate/mlflow/mlflowtest"
	"github.com/modelgate/modelgate/transitions/leader/kubetest"
)

// chartLeaseRules reads the rules of the chart's Role (charts/modelgate/templates/rbac.yaml,
// whose rules are plain YAML): the replicas of the HA test hold exactly what the chart
// grants, so a rule the chart lacks fails here.
func chartLeaseRules(t *testing.T) []rbacv1.PolicyRule {
	t.Helper()
	raw, err := os.ReadFile("../../charts/modelgate/templates/rbac.yaml")
	if err != nil {
		t.Fatal(err)
	}
	text := string(raw)
	i := strings.Index(text, "\nrules:")
	j := strings.Index(text[i:], "\n---")
	if i < 0 || j < 0 {
		t.Fatal("charts/modelgate/templates/rbac.yaml: no rules block before the RoleBinding")
	}
	var role struct {
		Rules []rbacv1.PolicyRule `json:"rules"`
	}
	if err := sigsyaml.UnmarshalStrict([]byte(text[i:i+j]), &role); err != nil || len(role.Rules) == 0 {
		t.Fatalf("the chart's Role rules: %v", err)
	}
	return role.Rules
}

// serviceAccountKubeconfig creates a service account bound to the chart's Role rules in namespace
// default, asks the API server for a token of it, and writes a kubeconfig that goes
// through proxy (the replica's own path to the API server, which the test can cut).
func serviceAccountKubeconfig(t *testing.T, cluster *kubetest.Cluster, name string) string {
	t.Helper()
	ctx := context.Background()
	cs, err := cluster.Client()
	if err != nil {
		t.Fatal(err)
	}
	ns := "default"
	if _, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: chartLeaseRules(t)}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: name},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: name, Namespace: ns}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	expiry := int64(3600)
	tok, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, name, &authv1.TokenRequest{Spec: authv1.TokenRequestSpec{ExpirationSeconds: &expiry}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	path, err := cluster.KubeconfigFor(name, tok.Status.Token)
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// cutProxy forwards TCP connections to the API server until cut: then it drops the ones
// open and holds new ones without an answer, as a network partition does.
type cutProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	cut    bool
	conns  []net.Conn
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target}
	t.Cleanup(func() { ln.Close(); p.setCut(true) })
	go p.serve()
	return p
}

func (p *cutProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		p.conns = append(p.conns, c)
		cut := p.cut
		p.mu.Unlock()
		if cut {
			continue // held: never answered, closed when the cut heals
		}
		go func() {
			up, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				return
			}
			p.mu.Lock()
			p.conns = append(p.conns, up)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(up, c); up.Close() }()
			_, _ = io.Copy(c, up)
			c.Close()
		}()
	}
}

// setCut partitions (true) or heals (false); either way the connections open are closed.
func (p *cutProxy) setCut(cut bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = cut
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// writeLog records which replica wrote to MLflow when: each replica talks to MLflow
// through a proxy of its own.
type writeLog struct {
	mu     sync.Mutex
	writes []replicaWrite
}

type replicaWrite struct {
	replica int
	at      time.Time
	path    string
}

func (l *writeLog) proxy(t *testing.T, replica int, target string) string {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if isWrite(r) && !strings.HasSuffix(r.URL.Path, "/runs/search") {
			l.mu.Lock()
			l.writes = append(l.writes, replicaWrite{replica, time.Now(), r.URL.Path})
			l.mu.Unlock()
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// after returns the writes of replica at or after t.
func (l *writeLog) after(replica int, t time.Time) []replicaWrite {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []replicaWrite
	for _, w := range l.writes {
		if w.replica == replica && !w.at.Before(t) {
			out = append(out, w)
		}
	}
	return out
}

// firstWriteAfter is the first write by any replica but not, at or after t.
func (l *writeLog) firstWriteAfter(not int, t time.Time) (replicaWrite, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, w := range l.writes {
		if w.replica != not && !w.at.Before(t) {
			return w, true
		}
	}
	return replicaWrite{}, false
}

// haNotices counts the JSON notifications received, raw, by the key modelgate puts in
// Idempotency-Key, and by event and version.
type haNotices struct {
	mu    sync.Mutex
	byKey map[string]int
	byEv  map[string]int // "event model version"
}

func (n *haNotices) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body struct{ Event, Model, Version string }
	_ = json.NewDecoder(r.Body).Decode(&body)
	n.mu.Lock()
	n.byKey[r.Header.Get("Idempotency-Key")]++
	n.byEv[body.Event+" "+body.Model+" "+body.Version]++
	n.mu.Unlock()
}

// haNotified is the notifications a version of the HA test's traffic must have been
// announced with, by the kind it was registered as and the status it ended with: one
// decision notified once: rejected, or review then promoted, or promoted.
func haNotified(kind, status string) map[string]int {
	switch {
	case kind == "borderline" && status != "rejected":
		return map[string]int{"review_requested": 1}
	case status == "promoted" || status == "superseded":
		return map[string]int{"promoted": 1}
	case status == "approved":
		return map[string]int{}
	}
	return map[string]int{"rejected": 1}
}

// replica is one `modelgate run` process of the HA test.
type replica struct {
	n    int
	addr string
	env  []string
	logs *syncBuffer
	kube *cutProxy
	mu   sync.Mutex // guards cmd: the traffic reads it while the test stops replicas
	cmd  *exec.Cmd
}

func (r *replica) start(t *testing.T) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "run")
	cmd.Env = append(keyed(os.Environ()), append(r.env, "MODELGATE_TEST_RUN_MAIN=1", "MODELGATE_LISTEN_ADDR="+r.addr)...)
	cmd.Stdout, cmd.Stderr = r.logs, r.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	r.cmd = cmd
	r.mu.Unlock()
}

// stop ends the process with sig and waits for it.
func (r *replica) stop(sig syscall.Signal) {
	r.mu.Lock()
	cmd := r.cmd
	r.cmd = nil
	r.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	_ = cmd.Wait()
}

// running reports whether the replica's process was started and not stopped.
func (r *replica) running() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cmd != nil
}

func (r *replica) leading() bool {
	if !r.running() {
		return false
	}
	code, body := get("http://" + r.addr + "/metrics")
	return code == 200 && strings.Contains(body, "\nmodelgate_leader 1\n")
}

// TestHighAvailability runs three `modelgate run` replicas with leader election on a
// real Kubernetes API server (a Lease, a service account holding the chart's Role) and
// one real MLflow, and, while versions are registered and voted on (each change
// delivered as a signed webhook to a random replica, as a Service would, and sent again
// on a non-2xx answer, as MLflow does), kills the leader with SIGKILL, stops the next one
// with SIGTERM, and cuts the third from the API server. Every version is decided once,
// every event notified (none dropped; a repeat only where a leader was SIGKILLed between
// sending and noting it), no promotion records a wrong previous version, no passing
// version is left unpromoted, a new leader takes over each time, and a partitioned
// leader writes nothing once another has begun.
func TestHighAvailability(t *testing.T) {
	ctx := context.Background()
	cluster := kubetest.ForTest(t)
	srv := mlflowServer.Get(t)
	c := srv.Client(t, mlflow.Options{})
	suffix := strconv.FormatInt(time.Now().UnixNano()%1e6, 10)
	prefix := "ha" + suffix + "-"
	notices := &haNotices{byKey: map[string]int{}, byEv: map[string]int{}}
	hook := httptest.NewServer(notices)
	defer hook.Close()
	policy := writePolicy(t, reviewedGate("ha", prefix+"*")+`
notifications:
  - {url_env: HOOK, format: json}
`)
	secret := "ha-webhook-secret"
	kubeconfig := serviceAccountKubeconfig(t, cluster, "modelgate-"+suffix)
	apiHost := strings.TrimPrefix(cluster.URL, "https://")
	writes := &writeLog{}
	var replicas []*replica
	for i := range 3 {
		kube := newCutProxy(t, apiHost)
		// Each replica reaches the API server through its own cuttable path.
		kcfg, err := os.ReadFile(kubeconfig)
		if err != nil {
			t.Fatal(err)
		}
		own := strings.ReplaceAll(string(kcfg), apiHost, kube.ln.Addr().String())
		ownPath := kubeconfig + "." + strconv.Itoa(i)
		if err := os.WriteFile(ownPath, []byte(own), 0o600); err != nil {
			t.Fatal(err)
		}
		r := &replica{n: i, addr: freeAddr(t), logs: &syncBuffer{}, kube: kube}
		r.env = []string{"MLFLOW_TRACKING_URI=" + writes.proxy(t, i, srv.URL), "MODELGATE_POLICY=" + policy, "HOOK=" + hook.URL,
			"MODELGATE_POLL_INTERVAL=30s", "MODELGATE_LOG_FORMAT=text", "MODELGATE_AUDIT_EXPERIMENT=ha-audit-" + suffix,
			"MODELGATE_WEBHOOK_SECRET=" + secret, "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR=0.05",
			"MODELGATE_LEADER_ELECTION=kubernetes", "KUBECONFIG=" + ownPath, "MODELGATE_LEASE_NAMESPACE=default",
			"MODELGATE_LEASE_NAME=modelgate-" + suffix, "MODELGATE_LEASE_DURATION=4s", "POD_NAME=replica-" + strconv.Itoa(i)}
		r.start(t)
		replicas = append(replicas, r)
	}
	defer func() {
		for _, r := range replicas {
			r.stop(syscall.SIGTERM)
		}
		if t.Failed() {
			for _, r := range replicas {
				t.Logf("replica-%d logs:\n%s", r.n, r.logs)
			}
		}
	}()
	leaderNow := func(not ...int) *replica {
		var found *replica
		waitFor(t, 2*time.Minute, "one replica to lead", func() bool {
			found = nil
			for _, r := range replicas {
				if !slices.Contains(not, r.n) && r.leading() {
					found = r
				}
			}
			return found != nil
		})
		return found
	}
	first := leaderNow()
	t.Logf("replica-%d leads", first.n)

	// deliver sends a change to a random running replica as MLflow would, again on any
	// answer but 2xx.
	deliver := func(entity, action string, data map[string]string) {
		body, _ := json.Marshal(map[string]any{"entity": entity, "action": action, "data": data})
		idb := make([]byte, 8)
		_, _ = rand.Read(idb)
		id := hex.EncodeToString(idb)
		for attempt := 0; ; attempt++ {
			running := slices.DeleteFunc(slices.Clone(replicas), func(r *replica) bool { return !r.running() })
			if len(running) > 0 {
				k, _ := rand.Int(rand.Reader, big.NewInt(int64(len(running))))
				ts := strconv.FormatInt(time.Now().Unix(), 10)
				req, _ := http.NewRequest(http.MethodPost, "http://"+running[k.Int64()].addr+"/webhooks/mlflow", bytes.NewReader(body))
				req.Header.Set(mlflow.HeaderDeliveryID, id)
				req.Header.Set(mlflow.HeaderTimestamp, ts)
				req.Header.Set(mlflow.HeaderSignature, mlflow.SignDelivery([]byte(secret), id, ts, body))
				if resp, err := http.DefaultClient.Do(req); err == nil {
					resp.Body.Close()
					if resp.StatusCode/100 == 2 {
						return
					}
				}
			}
			if attempt == 60 {
				t.Errorf("a delivery for %v was not accepted in 60 tries", data)
				return
			}
			time.Sleep(time.Second)
		}
	}

	// A delivery to a follower still leads to a decision: forwarded to the leader.
	var follower *replica
	for _, r := range replicas {
		if r != first {
			follower = r
			break
		}
	}
	// A follower answers 503 until it has read the lease once (MLflow delivers again);
	// this first delivery is sent once, so wait for the follower to know the leader.
	waitFor(t, 2*time.Minute, "the follower to know the leader", func() bool {
		return strings.Contains(follower.logs.String(), "msg=following leader=replica-"+strconv.Itoa(first.n))
	})
	mv, err := mlflowtest.CreateVersion(ctx, c, goodCredit(prefix+"fwd"))
	if err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	acceptedBefore := sumSeries(t, first.addr, "modelgate_webhook_deliveries_total", `result="accepted"`)
	body, _ := json.Marshal(map[string]any{"entity": "model_version", "action": "created", "data": map[string]string{"name": mv.Name, "version": mv.Version}})
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	req, _ := http.NewRequest(http.MethodPost, "http://"+follower.addr+"/webhooks/mlflow", bytes.NewReader(body))
	req.Header.Set(mlflow.HeaderDeliveryID, "fwd-1")
	req.Header.Set(mlflow.HeaderTimestamp, ts)
	req.Header.Set(mlflow.HeaderSignature, mlflow.SignDelivery([]byte(secret), "fwd-1", ts, body))
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("delivery to a follower: %v %v", resp, err)
	}
	waitStatus(t, c, mv.Name, mv.Version, "promoted")
	t.Logf("a delivery to a follower: decided %s after it was sent", time.Since(began).Round(10*time.Millisecond))
	if sumSeries(t, first.addr, "modelgate_webhook_deliveries_total", `result="accepted"`) <= acceptedBefore {
		t.Error("the leader did not receive the forwarded delivery")
	}

	// Traffic: versions of three models, votes on those that wait, each delivered.
	models := []string{prefix + "a", prefix + "b", prefix + "c"}
	kinds := map[[2]string]string{}
	var kindsMu sync.Mutex
	register := func(i int, kind string) {
		model := models[i%len(models)]
		spec := goodCredit(model)
		switch kind {
		case "unfair":
			spec.Metrics["recall_sex_female"] = 0.5
		case "borderline":
			spec.Metrics["accuracy"] = 0.85
		}
		mv, err := mlflowtest.CreateVersion(ctx, c, spec)
		if err != nil {
			t.Error(err)
			return
		}
		kindsMu.Lock()
		kinds[[2]string{model, mv.Version}] = kind
		kindsMu.Unlock()
		deliver("model_version", "created", map[string]string{"name": model, "version": mv.Version})
	}
	traffic, stopTraffic := context.WithCancel(ctx)
	reviewerDone := make(chan struct{})
	go func() { // a reviewer approving what waits
		defer close(reviewerDone)
		for traffic.Err() == nil {
			for _, model := range models {
				vs, _ := c.SearchModelVersions(traffic, mlflow.SearchOptions{Filter: "name = '" + model + "' AND tags.`modelgate.status` = 'pending_review'"})
				for _, mv := range vs {
					if _, voted := mv.Tags["modelgate.approve.alice"]; !voted {
						if c.SetModelVersionTag(traffic, model, mv.Version, "modelgate.approve.alice", "ok") == nil {
							deliver("model_version_tag", "set", map[string]string{"name": model, "version": mv.Version, "key": "modelgate.approve.alice"})
						}
					}
				}
			}
			time.Sleep(300 * time.Millisecond)
		}
	}()
	kindOf := []string{"good", "unfair", "borderline"}
	for i := range 6 {
		register(i, kindOf[i%3])
	}

	// 1. SIGKILL the leader mid-traffic; another takes over once its lease expires.
	killed := first
	killed.stop(syscall.SIGKILL)
	second := leaderNow(killed.n)
	t.Logf("replica-%d SIGKILLed; replica-%d leads", killed.n, second.n)
	killed.start(t)
	for i := 6; i < 12; i++ {
		register(i, kindOf[i%3])
	}

	// 2. SIGTERM the leader: it finishes, gives the lease back, another leads at once.
	second.stop(syscall.SIGTERM)
	third := leaderNow(second.n)
	t.Logf("replica-%d stopped with SIGTERM; replica-%d leads", second.n, third.n)
	second.start(t)
	for i := 12; i < 18; i++ {
		register(i, kindOf[i%3])
	}

	// 3. Cut the leader from the API server: it cannot renew, stops writing before its
	// lease can be taken, and another replica leads after the lease expires.
	cutAt := time.Now()
	third.kube.setCut(true)
	fourth := leaderNow(third.n)
	t.Logf("replica-%d cut from the API server; replica-%d leads", third.n, fourth.n)
	// A burst of passing versions while the partitioned replica still runs.
	for i := 18; i < 48; i++ {
		register(i, "good")
	}
	if w, ok := writes.firstWriteAfter(third.n, cutAt); ok {
		if late := writes.after(third.n, w.at); len(late) > 0 {
			t.Errorf("the partitioned replica-%d wrote %d time(s) after replica-%d's first write (%s at %s), e.g. %s at %s",
				third.n, len(late), w.replica, w.path, w.at.Format(time.StampMilli), late[0].path, late[0].at.Format(time.StampMilli))
		}
	} else {
		t.Error("no replica wrote after the partition")
	}
	third.kube.setCut(false)

	// Every version decided.
	waitFor(t, 4*time.Minute, "every version to be decided", func() bool {
		kindsMu.Lock()
		defer kindsMu.Unlock()
		for k := range kinds {
			mv, err := c.GetModelVersion(ctx, k[0], k[1])
			if err != nil || mv.Tags["modelgate.status"] == "" || mv.Tags["modelgate.status"] == "pending_review" {
				return false
			}
		}
		return true
	})
	stopTraffic()
	<-reviewerDone
	// The notifications follow the decisions they announce: wait for each to land.
	waitFor(t, 2*time.Minute, "each decision's notification", func() bool {
		kindsMu.Lock()
		defer kindsMu.Unlock()
		notices.mu.Lock()
		defer notices.mu.Unlock()
		for k, kind := range kinds {
			mv, err := c.GetModelVersion(ctx, k[0], k[1])
			if err != nil {
				return false
			}
			for ev, want := range haNotified(kind, mv.Tags["modelgate.status"]) {
				if notices.byEv[ev+" "+k[0]+" "+k[1]] < want {
					return false
				}
			}
		}
		return true
	})

	kindsMu.Lock()
	defer kindsMu.Unlock()
	for _, model := range models {
		var promoted []string // versions that held the alias, in version order
		highest := ""
		for k, kind := range kinds {
			if k[0] != model {
				continue
			}
			mv, err := c.GetModelVersion(ctx, model, k[1])
			if err != nil {
				t.Fatal(err)
			}
			st := mv.Tags["modelgate.status"]
			var rec struct {
				PromotedTo      string `json:"promoted_to"`
				PreviousVersion string `json:"previous_version"`
			}
			_ = json.Unmarshal([]byte(mv.Tags["modelgate.record"]), &rec)
			switch {
			case kind == "unfair" && st != "rejected":
				t.Errorf("%s v%s (unfair) is %s", model, k[1], st)
			case kind != "unfair" && st != "promoted" && st != "superseded" && !(st == "approved" && strings.Contains(mv.Tags["modelgate.summary"], "held by newer version")):
				t.Errorf("%s v%s (%s) left unpromoted: %s, %s", model, k[1], kind, st, mv.Tags["modelgate.summary"])
			}
			if st == "promoted" || st == "superseded" {
				promoted = append(promoted, k[1])
				if mlflow.CompareVersions(k[1], highest) > 0 {
					highest = k[1]
				}
			}
			for ev, want := range haNotified(kind, st) {
				if got := notices.byEv[ev+" "+model+" "+k[1]]; got < want {
					t.Errorf("%s v%s: %d %s notifications, want %d (dropped)", model, k[1], got, ev, want)
				}
			}
		}
		slices.SortFunc(promoted, mlflow.CompareVersions)
		for i, v := range promoted {
			mv, _ := c.GetModelVersion(ctx, model, v)
			var rec struct {
				PreviousVersion string `json:"previous_version"`
			}
			_ = json.Unmarshal([]byte(mv.Tags["modelgate.record"]), &rec)
			want := ""
			if i > 0 {
				want = promoted[i-1]
			}
			if rec.PreviousVersion != want {
				t.Errorf("%s v%s: previous_version %q, want %q (the version that held the alias before it)", model, v, rec.PreviousVersion, want)
			}
		}
		champion, err := c.GetModelVersionByAlias(ctx, model, "champion")
		if err != nil || champion.Version != highest {
			t.Errorf("%s: champion %q (%v), want the highest promoted version %s", model, champion.Version, err, highest)
		}
	}
	repeats := 0
	for key, n := range notices.byKey {
		if key == "" {
			t.Errorf("%d notification(s) without an Idempotency-Key", n)
		}
		repeats += n - 1
	}
	// Only the SIGKILLed leader can have sent a notice without noting it: at most what it
	// had in flight comes again (with the same key, so a receiver drops it).
	if repeats > 1 {
		t.Errorf("%d notifications sent more than once (only one SIGKILL could cause one)", repeats)
	}
	t.Logf("%d versions, %d distinct notifications, %d repeated", len(kinds), len(notices.byKey), repeats)
}
