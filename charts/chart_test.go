// Package charts_test renders the Helm chart with the real helm binary and decodes every
// manifest strictly into the Kubernetes API types, so a misspelt field fails a test.
package charts_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	yamlv3 "go.yaml.in/yaml/v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/yaml"

	"github.com/modelgate/modelgate/rules"
)

const chart = "modelgate"

// helmBinary finds helm (PATH, then $(go env GOPATH)/bin where `go install` puts it).
// Without it the tests skip, unless CI is set: there it is a failure.
func helmBinary(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("helm"); err == nil {
		return p
	}
	gopath, _ := exec.Command("go", "env", "GOPATH").Output()
	if p := filepath.Join(strings.TrimSpace(string(gopath)), "bin", "helm"); fileExists(p) {
		return p
	}
	if os.Getenv("CI") != "" {
		t.Fatal("helm not found: scripts/install-tools.sh installs it")
	}
	t.Skip("helm not found: go install helm.sh/helm/v3/cmd/helm@v3.22.0")
	return ""
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

func helm(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(helmBinary(t), args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helm %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.String())
	}
	return string(out)
}

// rendered is the chart's output, decoded by kind.
type rendered struct {
	deployment     *appsv1.Deployment
	service        *corev1.Service
	serviceAccount *corev1.ServiceAccount
	configMaps     map[string]*corev1.ConfigMap
	serviceMonitor *monitoringv1.ServiceMonitor
	prometheusRule *monitoringv1.PrometheusRule
	role           *rbacv1.Role
	roleBinding    *rbacv1.RoleBinding
	pdb            *policyv1.PodDisruptionBudget
	kinds          []string
}

func render(t *testing.T, args ...string) rendered {
	t.Helper()
	out := helm(t, append([]string{"template", "mg", chart, "--kube-version", "1.30.0", "--set", "signingKey.existingSecret=modelgate-signing-key"}, args...)...)
	r := rendered{configMaps: map[string]*corev1.ConfigMap{}}
	for _, doc := range strings.Split(out, "\n---\n") {
		if strings.TrimSpace(strings.TrimPrefix(doc, "---")) == "" {
			continue
		}
		var head struct{ Kind string }
		if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
			t.Fatalf("not YAML: %v\n%s", err, doc)
		}
		r.kinds = append(r.kinds, head.Kind)
		var target any
		switch head.Kind {
		case "Deployment":
			r.deployment = &appsv1.Deployment{}
			target = r.deployment
		case "Service":
			r.service = &corev1.Service{}
			target = r.service
		case "ServiceAccount":
			r.serviceAccount = &corev1.ServiceAccount{}
			target = r.serviceAccount
		case "ConfigMap":
			cm := &corev1.ConfigMap{}
			target = cm
			defer func() { r.configMaps[cm.Name] = cm }()
		case "ServiceMonitor":
			r.serviceMonitor = &monitoringv1.ServiceMonitor{}
			target = r.serviceMonitor
		case "PrometheusRule":
			r.prometheusRule = &monitoringv1.PrometheusRule{}
			target = r.prometheusRule
		case "Role":
			r.role = &rbacv1.Role{}
			target = r.role
		case "RoleBinding":
			r.roleBinding = &rbacv1.RoleBinding{}
			target = r.roleBinding
		case "PodDisruptionBudget":
			r.pdb = &policyv1.PodDisruptionBudget{}
			target = r.pdb
		default:
			t.Fatalf("unexpected kind %q rendered", head.Kind)
		}
		// Strict: a field the API type does not have is an error.
		if err := yaml.UnmarshalStrict([]byte(doc), target); err != nil {
			t.Fatalf("%s does not decode strictly: %v\n%s", head.Kind, err, doc)
		}
	}
	return r
}

func TestHelmLint(t *testing.T) {
	helm(t, "lint", chart, "--strict", "--set", "mlflow.trackingUri=http://mlflow:5000", "--set", "signingKey.existingSecret=k")
	helm(t, "lint", chart, "--strict", "-f", filepath.Join(chart, "ci", "all-on-values.yaml"))
}

func TestDefaultValues(t *testing.T) {
	r := render(t, "--set", "mlflow.trackingUri=http://mlflow.mlflow.svc:5000")
	if r.serviceMonitor != nil || r.prometheusRule != nil {
		t.Fatal("ServiceMonitor and PrometheusRule are optional: off by default")
	}
	for _, k := range r.kinds {
		if k == "Secret" {
			t.Fatal("the chart renders a Secret: credentials must come from an existing Secret")
		}
	}
	d := r.deployment
	if d == nil || *d.Spec.Replicas != 2 || d.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType ||
		d.Spec.Strategy.RollingUpdate.MaxUnavailable.IntValue() != 0 {
		t.Fatalf("deployment: two replicas, rolling updates that keep one ready: %+v", d.Spec)
	}
	checkLeaderElection(t, r)
	pod := d.Spec.Template.Spec
	c := pod.Containers[0]
	switch {
	case pod.SecurityContext.RunAsNonRoot == nil || !*pod.SecurityContext.RunAsNonRoot:
		t.Error("pod does not require a non-root user")
	case pod.SecurityContext.SeccompProfile == nil || pod.SecurityContext.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault:
		t.Error("no RuntimeDefault seccomp profile")
	case c.SecurityContext.ReadOnlyRootFilesystem == nil || !*c.SecurityContext.ReadOnlyRootFilesystem:
		t.Error("root filesystem is writable")
	case c.SecurityContext.AllowPrivilegeEscalation == nil || *c.SecurityContext.AllowPrivilegeEscalation:
		t.Error("privilege escalation allowed")
	case len(c.SecurityContext.Capabilities.Drop) != 1 || c.SecurityContext.Capabilities.Drop[0] != "ALL":
		t.Error("capabilities not dropped")
	case c.LivenessProbe.HTTPGet.Path != "/healthz" || c.ReadinessProbe.HTTPGet.Path != "/readyz":
		t.Error("probes do not use /healthz and /readyz")
	case c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero():
		t.Error("no memory request or limit")
	case d.Spec.Template.Annotations["checksum/policy"] == "":
		t.Error("no checksum annotation: a policy change would not roll the pod")
	}
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
	}
	if env["MLFLOW_TRACKING_URI"] != "http://mlflow.mlflow.svc:5000" || env["MODELGATE_POLICY"] != "/etc/modelgate/policy/modelgate.yaml" {
		t.Errorf("env %v", env)
	}

	// The default policy is one modelgate accepts.
	policy := r.configMaps["mg-modelgate-policy"].Data["modelgate.yaml"]
	if _, err := rules.Load("values.yaml policy", []byte(policy)); err != nil {
		t.Fatalf("the chart's default policy does not pass modelgate check:\n%v", err)
	}

	dash := r.configMaps["mg-modelgate-dashboard"]
	if dash == nil || dash.Labels["grafana_dashboard"] != "1" {
		t.Fatalf("dashboard ConfigMap missing or without grafana_dashboard: \"1\": %+v", dash)
	}
	want, _ := os.ReadFile(filepath.Join(chart, "dashboards", "modelgate.json"))
	if strings.TrimSpace(dash.Data["modelgate.json"]) != strings.TrimSpace(string(want)) {
		t.Error("the dashboard ConfigMap differs from dashboards/modelgate.json")
	}
}

// checkLeaderElection: two pods with leader election, the Role that lets them use the
// Lease and nothing else, bound to their service account, whose token is mounted, and a
// PodDisruptionBudget that keeps one through a drain.
func checkLeaderElection(t *testing.T, r rendered) {
	t.Helper()
	pod := r.deployment.Spec.Template.Spec
	if pod.AutomountServiceAccountToken == nil || !*pod.AutomountServiceAccountToken {
		t.Error("the service account token is not mounted: leader election cannot reach the API")
	}
	env := map[string]corev1.EnvVar{}
	for _, e := range pod.Containers[0].Env {
		env[e.Name] = e
	}
	fieldOf := func(name string) string {
		if e := env[name]; e.ValueFrom != nil && e.ValueFrom.FieldRef != nil {
			return e.ValueFrom.FieldRef.FieldPath
		}
		return ""
	}
	if env["MODELGATE_LEADER_ELECTION"].Value != "kubernetes" || env["MODELGATE_LEASE_NAME"].Value != "mg-modelgate" ||
		fieldOf("POD_NAME") != "metadata.name" || fieldOf("MODELGATE_LEASE_NAMESPACE") != "metadata.namespace" || fieldOf("POD_IP") != "status.podIP" {
		t.Errorf("leader election environment: %+v", env)
	}
	want := []rbacv1.PolicyRule{{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"get", "create", "update"}}}
	if r.role == nil || !reflect.DeepEqual(r.role.Rules, want) {
		t.Errorf("Role: %+v, want exactly %+v", r.role, want)
	}
	if b := r.roleBinding; b == nil || b.RoleRef.Name != r.role.Name || len(b.Subjects) != 1 || b.Subjects[0].Name != pod.ServiceAccountName {
		t.Errorf("RoleBinding %+v does not bind the Role to the pods' service account %q", b, pod.ServiceAccountName)
	}
	if p := r.pdb; p == nil || p.Spec.MinAvailable.IntValue() != 1 || !reflect.DeepEqual(p.Spec.Selector.MatchLabels, r.deployment.Spec.Selector.MatchLabels) {
		t.Errorf("PodDisruptionBudget: %+v", p)
	}
}

// TestOneReplicaWithoutLeaderElection: leader election off means one pod, replaced with
// Recreate, no Kubernetes API access; two pods without it are refused.
func TestOneReplicaWithoutLeaderElection(t *testing.T) {
	r := render(t, "--set", "mlflow.trackingUri=http://m:5000", "--set", "leaderElection.enabled=false", "--set", "replicaCount=1")
	d := r.deployment
	if *d.Spec.Replicas != 1 || d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType || r.role != nil || r.pdb != nil ||
		d.Spec.Template.Spec.AutomountServiceAccountToken == nil || *d.Spec.Template.Spec.AutomountServiceAccountToken {
		t.Fatalf("one replica: %+v, role %v, pdb %v", d.Spec, r.role, r.pdb)
	}
	cmd := exec.Command(helmBinary(t), "template", "mg", chart, "--set", "mlflow.trackingUri=http://m:5000", "--set", "signingKey.existingSecret=k",
		"--set", "leaderElection.enabled=false")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "replicaCount > 1 needs leaderElection.enabled=true") {
		t.Fatalf("two replicas without leader election: %v\n%s", err, out)
	}
}

func TestPolicyChangeRollsThePod(t *testing.T) {
	a := render(t, "--set", "mlflow.trackingUri=http://m:5000")
	other := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(other, []byte("policy: |\n  gates: [{name: x, models: ['*'], on_missing: reject}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	b := render(t, "--set", "mlflow.trackingUri=http://m:5000", "-f", other)
	if a.deployment.Spec.Template.Annotations["checksum/policy"] == b.deployment.Spec.Template.Annotations["checksum/policy"] {
		t.Fatal("the checksum annotation did not change with the policy")
	}
}

func TestEverythingOn(t *testing.T) {
	r := render(t, "-f", filepath.Join(chart, "ci", "all-on-values.yaml"))
	if r.serviceMonitor == nil || r.prometheusRule == nil || r.serviceAccount == nil || r.service == nil {
		t.Fatalf("kinds rendered: %v", r.kinds)
	}
	if r.serviceMonitor.Spec.JobLabel != "app.kubernetes.io/name" || r.serviceMonitor.Spec.Endpoints[0].Path != "/metrics" {
		t.Errorf("service monitor %+v", r.serviceMonitor.Spec)
	}
	if r.serviceMonitor.Labels["release"] != "kube-prometheus-stack" {
		t.Error("serviceMonitor.labels not applied")
	}
	c := r.deployment.Spec.Template.Spec.Containers[0]
	var secretEnv, webhookSecret bool
	for _, e := range c.EnvFrom {
		secretEnv = secretEnv || (e.SecretRef != nil && e.SecretRef.Name == "modelgate-mlflow")
	}
	for _, e := range c.Env {
		if e.Name == "MODELGATE_WEBHOOK_SECRET" {
			webhookSecret = e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil && e.ValueFrom.SecretKeyRef.Name == "modelgate-webhook" && e.Value == ""
		}
	}
	if !secretEnv || !webhookSecret {
		t.Errorf("secrets are not referenced from existing Secrets: envFrom %+v", c.EnvFrom)
	}

	// The PrometheusRule carries exactly the plain rules file's groups.
	raw, err := os.ReadFile(filepath.Join(chart, "rules", "modelgate.rules.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var plain monitoringv1.PrometheusRuleSpec
	if err := yaml.UnmarshalStrict(raw, &plain); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(plain, r.prometheusRule.Spec) {
		a, _ := json.MarshalIndent(plain, "", " ")
		b, _ := json.MarshalIndent(r.prometheusRule.Spec, "", " ")
		t.Fatalf("PrometheusRule differs from the rules file:\n%s\n%s", a, b)
	}
}

func TestTrackingURIRequired(t *testing.T) {
	cmd := exec.Command(helmBinary(t), "template", "mg", chart, "--kube-version", "1.30.0", "--set", "signingKey.existingSecret=k")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || !strings.Contains(string(out), "mlflow.trackingUri is required") {
		t.Fatalf("helm template without mlflow.trackingUri: %v\n%s", err, out)
	}
}

// TestSigningKeyRequired: the chart refuses to render without an existing Secret for the
// signing key, and says how to make one; it never generates a key (Helm's lookup gives a
// new one under `helm template` and GitOps tools, and every record would look forged).
func TestSigningKeyRequired(t *testing.T) {
	cmd := exec.Command(helmBinary(t), "template", "mg", chart, "--kube-version", "1.30.0", "--set", "mlflow.trackingUri=http://m:5000")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || !strings.Contains(string(out), "signingKey.existingSecret is required") ||
		!strings.Contains(string(out), "kubectl create secret generic modelgate-signing-key --from-literal=signing-key=$(openssl rand -hex 32)") {
		t.Fatalf("helm template without a signing key: %v\n%s", err, out)
	}
	r := render(t, "--set", "mlflow.trackingUri=http://m:5000")
	var found bool
	for _, e := range r.deployment.Spec.Template.Spec.Containers[0].Env {
		if e.Name == "MODELGATE_SIGNING_KEY" && e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil &&
			e.ValueFrom.SecretKeyRef.Name == "modelgate-signing-key" && e.ValueFrom.SecretKeyRef.Key == "signing-key" {
			found = true
		}
	}
	if !found {
		t.Fatal("MODELGATE_SIGNING_KEY does not come from the Secret")
	}
}

// TestEveryValueIsDocumented walks values.yaml: every key has a comment above it, except
// the keys inside a documented value (the fields of podSecurityContext) or of a section
// whose own keys are all documented (image: repository, tag, pullPolicy).
func TestEveryValueIsDocumented(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(chart, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc yamlv3.Node
	if err := yamlv3.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	var walk func(n *yamlv3.Node, path string)
	walk = func(n *yamlv3.Node, path string) {
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			documented := strings.TrimSpace(k.HeadComment) != ""
			section := v.Kind == yamlv3.MappingNode && len(v.Content) > 0 && !documented
			switch {
			case section:
				walk(v, path+k.Value+".")
			case !documented:
				t.Errorf("values.yaml:%d: %s%s has no comment", k.Line, path, k.Value)
			}
		}
	}
	walk(doc.Content[0], "")
}
