package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"

	"github.com/modelgate/modelgate/mlflow"
	"github.com/modelgate/modelgate/transitions"
	"github.com/modelgate/modelgate/transitions/leader"
)

// serviceAccountNamespace is where Kubernetes mounts the pod's namespace.
const serviceAccountNamespace = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// newElector builds the leader elector of MODELGATE_LEADER_ELECTION=kubernetes: in a pod
// it uses the service account, outside one the kubeconfig of KUBECONFIG.
func newElector(cfg Config, logger *slog.Logger, obs leader.Observer) (*leader.Elector, error) {
	var restCfg *rest.Config
	namespace := cfg.LeaseNamespace
	if cfg.InCluster != "" {
		c, err := rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("MODELGATE_LEADER_ELECTION=kubernetes: the pod's service account: %w (the chart mounts its token)", err)
		}
		restCfg = c
		if namespace == "" {
			namespace = cfg.PodNamespace
		}
		if namespace == "" {
			if b, err := os.ReadFile(serviceAccountNamespace); err == nil {
				namespace = strings.TrimSpace(string(b))
			}
		}
	} else {
		loader := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(&clientcmd.ClientConfigLoadingRules{ExplicitPath: cfg.Kubeconfig}, &clientcmd.ConfigOverrides{})
		c, err := loader.ClientConfig()
		if err != nil {
			return nil, fmt.Errorf("KUBECONFIG=%s: %w", cfg.Kubeconfig, err)
		}
		restCfg = c
		if namespace == "" {
			namespace, _, _ = loader.Namespace()
		}
	}
	if namespace == "" {
		return nil, errors.New("MODELGATE_LEASE_NAMESPACE is not set and the pod's namespace is unknown: set it (the chart sets it from the pod)")
	}
	restCfg.UserAgent = "modelgate/" + buildVersion()
	restCfg.Timeout = 10 * time.Second
	leases, err := leader.NewLeaseClient(restCfg)
	if err != nil {
		return nil, fmt.Errorf("Kubernetes client: %w", err)
	}
	// client-go's REST client logs through klog: into modelgate's log, as JSON or text.
	klog.SetSlogLogger(logger.With("component", "kubernetes"))
	identity := cfg.PodName
	if identity == "" {
		host, _ := os.Hostname()
		suffix := make([]byte, 3)
		_, _ = rand.Read(suffix)
		identity = host + "-" + hex.EncodeToString(suffix) // processes on one host stay apart
	}
	return leader.New(leader.Config{
		Leases: leases, Namespace: namespace, Name: cfg.LeaseName, Identity: identity,
		Address: advertisedAddress(cfg), LeaseDuration: cfg.LeaseDuration, Logger: logger, Observer: obs,
	})
}

// advertisedAddress is where the other replicas reach this one: POD_IP (the chart sets it)
// with the listen port, or the listen address itself, or the host name.
func advertisedAddress(cfg Config) string {
	host, port, err := net.SplitHostPort(cfg.ListenAddr)
	if err != nil {
		return ""
	}
	switch {
	case cfg.PodIP != "":
		host = cfg.PodIP
	case host == "" || host == "0.0.0.0" || host == "::":
		host, _ = os.Hostname()
	}
	return net.JoinHostPort(host, port)
}

// router sends a webhook's nudge to the reconciler when this replica leads, and forwards
// it to the leader otherwise, so that a delivery reaching a follower still leads to a
// decision in about a second; when it cannot (no leader yet), MLflow is told to retry.
type router struct {
	elector *leader.Elector // nil without leader election
	secret  []byte
	client  *http.Client
	logger  *slog.Logger

	mu  sync.Mutex
	rec *transitions.Reconciler // the reconciler while this replica leads
}

func (r *router) set(rec *transitions.Reconciler) {
	r.mu.Lock()
	r.rec = rec
	r.mu.Unlock()
}

func (r *router) current() *transitions.Reconciler {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.rec
}

// Nudge implements transitions.Nudger (the receiver relays through RelayNudge).
func (r *router) Nudge(model, version string) { _ = r.RelayNudge(model, version) }

// RelayNudge implements transitions.Relayer: the leader's reconciler takes the nudge, or
// the leader does, through a forwarded delivery; an error makes the receiver answer 503,
// and MLflow sends the delivery again.
func (r *router) RelayNudge(model, version string) error {
	if rec := r.current(); rec != nil {
		rec.Nudge(model, version)
		return nil
	}
	return r.forward("model_version", "created", map[string]string{"name": model, "version": version})
}

// RelayAlias implements transitions.Relayer for alias events.
func (r *router) RelayAlias(model, alias string) error {
	if rec := r.current(); rec != nil {
		rec.NudgeAlias(model, alias)
		return nil
	}
	// The leader reads only the model and the alias; "0" stands for the version.
	return r.forward("model_version_alias", "created", map[string]string{"name": model, "alias": alias, "version": "0"})
}

// errNoLeader: no leader is known yet (an election in progress).
var errNoLeader = errors.New("no leader known yet")

// forward posts the nudge to the leader as a delivery signed with the webhook's secret,
// which the leader's receiver verifies like MLflow's own, and waits for its answer.
func (r *router) forward(entity, action string, data map[string]string) error {
	if r.elector == nil {
		return errNoLeader
	}
	identity, addr := r.elector.Leader()
	if addr == "" || identity == r.elector.Identity() {
		return errNoLeader
	}
	now := time.Now()
	body, err := json.Marshal(map[string]any{"entity": entity, "action": action, "data": data,
		"timestamp": now.UTC().Format(time.RFC3339)})
	if err != nil {
		return err
	}
	idBytes := make([]byte, 12)
	_, _ = rand.Read(idBytes)
	id, ts := "forwarded-"+hex.EncodeToString(idBytes), strconv.FormatInt(now.Unix(), 10)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/webhooks/mlflow", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(mlflow.HeaderDeliveryID, id)
	req.Header.Set(mlflow.HeaderTimestamp, ts)
	req.Header.Set(mlflow.HeaderSignature, mlflow.SignDelivery(r.secret, id, ts, body))
	resp, err := r.client.Do(req)
	if err != nil {
		return fmt.Errorf("forwarding to the leader %s: %w", identity, err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("the leader %s answered HTTP %d", identity, resp.StatusCode)
	}
	r.logger.Debug("webhook delivery forwarded to the leader", "leader", identity, "model", data["name"])
	return nil
}

// readiness is what /readyz checks besides MLflow's health.
type readiness interface {
	ready(now time.Time) error
}

// soloReadiness: without leader election the one replica is ready when a pass has read
// MLflow recently and writes are not halted.
type soloReadiness struct {
	passes     passTracker
	staleAfter time.Duration
}

func (s soloReadiness) ready(now time.Time) error { return passReady(s.passes, s.staleAfter, now) }

// passReady checks the reconciler's last successful pass and the halt.
func passReady(passes passTracker, staleAfter time.Duration, now time.Time) error {
	if err := passes.Halted(); err != nil {
		return fmt.Errorf("writes halted: %w", err)
	}
	last := passes.LastSuccess()
	switch age := now.Sub(last); {
	case last.IsZero():
		return errors.New("no reconcile pass has completed yet")
	case age > staleAfter:
		return fmt.Errorf("last successful pass %s ago (more than %s)", age.Round(time.Second), staleAfter)
	}
	return nil
}

// haReadiness: a follower is ready when the Kubernetes API answers (it does not poll,
// so a rolling update proceeds); the leader, once it has led for longer than staleAfter,
// also needs a recent pass.
type haReadiness struct {
	elector    *leader.Elector
	router     *router
	staleAfter time.Duration
}

func (h haReadiness) ready(now time.Time) error {
	if err := h.elector.Healthy(); err != nil {
		return err
	}
	since := h.elector.LeadingSince()
	rec := h.router.current()
	if since.IsZero() || rec == nil || now.Sub(since) < h.staleAfter {
		return nil
	}
	return passReady(rec, h.staleAfter, now)
}
