package k8s

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/yaml"

	"github.com/glassmesh/glassmesh/e2e/k8s/kubetest"
)

// helmtestDir is the module that renders the chart with helm's Go packages
// (this module must not import helm).
const helmtestDir = "../../deploy/helmtest"

// plainManifests are the chart's defaults without Helm.
const plainManifests = "../../deploy/kubernetes"

// TestHelmChartApplies renders the Helm chart (deploy/helmtest/cmd/render)
// with its defaults and with several replicas on volumes, and applies every
// object, its CRDs first, to an API server (server-side apply, kinds mapped
// by discovery), as does `kubectl apply -f deploy/kubernetes/`. The API
// server (one of the test's own, authorizing with RBAC) must accept them
// all; then it answers SubjectAccessReviews: the ServiceAccount may read what the Kubernetes
// source watches, write statuses, events, its Lease and its injector's CA
// bundle, and nothing more of what is asked.
func TestHelmChartApplies(t *testing.T) {
	cfg := rbacServer(t)
	cs := kubernetes.NewForConfigOrDie(cfg)
	a := newApplier(t, cfg)
	render := renderer(t)

	t.Run("the chart's CRDs apply and are established", func(t *testing.T) {
		objs := decodeObjects(t, "crds", render(t, "--crds"))
		if len(objs) != 8 {
			t.Errorf("chart has %d CRDs; want the 8 glassmesh kinds", len(objs))
		}
		for _, o := range objs {
			a.apply(t, o)
			waitEstablished(t, a.dyn, o.GetName())
		}
		a.mapper.Reset()
	})

	cases := []struct {
		name, release string
		set           []string
		kind          string // Deployment or StatefulSet
		replicas      int32
	}{
		{name: "default values", release: "e2e-default", kind: "Deployment", replicas: 1},
		{name: "two replicas on volumes, remote write, a token and a CA from Secrets", release: "e2e-replicas", kind: "StatefulSet", replicas: 2,
			set: []string{"replicaCount=2", "storage.type=persistentVolumeClaim", "storage.size=20Gi", "storage.storageClass=standard",
				"remoteWrite={http://mimir.obs:9009/api/v1/push}", "tracesExportOTLP={http://tempo.obs:4318}",
				"metricsQueryURL=http://mimir.obs:9009/prometheus", "apiToken.existingSecret=glassmesh-token", "ca.existingSecret=glassmesh-ca"}},
	}
	for _, c := range cases {
		t.Run("the chart with "+c.name+" applies", func(t *testing.T) {
			ns := "helm-" + c.release // newNamespace's names, from the subtest's, would be invalid
			if _, err := cs.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			args := []string{"--namespace", ns, "--release", c.release}
			for _, s := range c.set {
				args = append(args, "--set", s)
			}
			objs := decodeObjects(t, c.release, render(t, args...))
			applied := a.applyAll(t, objs, ns)
			fullname := c.release + "-glassmesh"
			checkKinds(t, applied, "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "Service", c.kind, "MutatingWebhookConfiguration")
			checkWorkload(t, cs, ns, c.kind, fullname, c.replicas)
			if c.kind == "StatefulSet" {
				s, err := cs.AppsV1().StatefulSets(ns).Get(context.Background(), fullname, metav1.GetOptions{})
				if err != nil {
					t.Fatal(err)
				}
				if len(s.Spec.VolumeClaimTemplates) != 1 || s.Spec.VolumeClaimTemplates[0].Spec.Resources.Requests.Storage().String() != "20Gi" {
					t.Errorf("StatefulSet volume claims %+v", s.Spec.VolumeClaimTemplates)
				}
			}
			checkServiceAccess(t, cs, ns, fullname, fullname+"-sidecar-injector")
		})
	}

	t.Run("deploy/kubernetes applies", func(t *testing.T) {
		objs := decodeDir(t, plainManifests)
		const ns = "glassmesh-system"
		applied := a.applyAll(t, objs, ns)
		checkKinds(t, applied, "Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "Service", "Deployment", "MutatingWebhookConfiguration")
		checkWorkload(t, cs, ns, "Deployment", "glassmesh", 1)
		checkServiceAccess(t, cs, ns, "glassmesh", "glassmesh-sidecar-injector")
	})
}

// applier applies unstructured objects with server-side apply, mapping
// kinds to resources by the API server's discovery.
type applier struct {
	dyn    dynamic.Interface
	mapper *restmapper.DeferredDiscoveryRESTMapper
}

func newApplier(t *testing.T, cfg *rest.Config) *applier {
	cs := kubernetes.NewForConfigOrDie(cfg)
	return &applier{
		dyn:    dynamic.NewForConfigOrDie(cfg),
		mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(cs.Discovery())),
	}
}

// resource is where o lives: its resource client and whether it is
// namespaced.
func (a *applier) resource(t *testing.T, o *unstructured.Unstructured) (schema.GroupVersionResource, bool) {
	t.Helper()
	gvk := o.GroupVersionKind()
	m, err := a.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		t.Fatalf("%s %s: %v", gvk, o.GetName(), err)
	}
	return m.Resource, m.Scope.Name() == meta.RESTScopeNameNamespace
}

func (a *applier) client(t *testing.T, o *unstructured.Unstructured) dynamic.ResourceInterface {
	gvr, namespaced := a.resource(t, o)
	if namespaced {
		return a.dyn.Resource(gvr).Namespace(o.GetNamespace())
	}
	return a.dyn.Resource(gvr)
}

func (a *applier) apply(t *testing.T, o *unstructured.Unstructured) *unstructured.Unstructured {
	t.Helper()
	got, err := a.client(t, o).Apply(context.Background(), o.GetName(), o, metav1.ApplyOptions{FieldManager: "glassmesh-e2e", Force: true})
	if err != nil {
		t.Fatalf("apply %s %s/%s: %v", o.GetKind(), o.GetNamespace(), o.GetName(), err)
	}
	return got
}

// applyAll applies objs; namespaced ones without a namespace go to ns.
// Nothing is deleted: the API server is the test's own.
func (a *applier) applyAll(t *testing.T, objs []*unstructured.Unstructured, ns string) []*unstructured.Unstructured {
	t.Helper()
	var applied []*unstructured.Unstructured
	for _, o := range objs {
		if _, namespaced := a.resource(t, o); namespaced && o.GetNamespace() == "" {
			o.SetNamespace(ns)
		}
		applied = append(applied, a.apply(t, o))
	}
	t.Logf("%d objects applied: %s", len(applied), kindCounts(applied))
	return applied
}

// rbacServer starts an API server of the test's own that authorizes with
// RBAC (the shared one allows everything, so its SubjectAccessReviews would
// answer yes to anything) and stops it when the test ends. Applying the
// chart there also keeps its webhook configurations, which point at
// Services with no pods, away from other tests' pods.
func rbacServer(t *testing.T) *rest.Config {
	t.Helper()
	logf, err := os.CreateTemp("", "kube-apiserver-rbac-*.log")
	if err != nil {
		t.Fatal(err)
	}
	tb := kubetest.NewProcessTB("kube-apiserver-rbac", logf)
	began := time.Now()
	s, err := kubetest.Start(tb, logf, "--authorization-mode=RBAC")
	if err != nil {
		tb.Close()
		logf.Close()
		t.Fatalf("start an API server with RBAC: %v (log %s)", err, logf.Name())
	}
	t.Logf("kube-apiserver with --authorization-mode=RBAC up in %s", time.Since(began).Round(10*time.Millisecond))
	t.Cleanup(func() {
		s.Stop()
		tb.Close()
		logf.Close()
		if t.Failed() {
			t.Logf("RBAC kube-apiserver log: %s", logf.Name())
		} else {
			os.Remove(logf.Name())
		}
	})
	return s.Config
}

// renderer builds deploy/helmtest/cmd/render once and returns a function
// running it.
func renderer(t *testing.T) func(t *testing.T, args ...string) []byte {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "render")
	build := exec.Command("go", "build", "-o", bin, "./cmd/render")
	build.Dir = helmtestDir
	began := time.Now()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/render in %s: %v\n%s", helmtestDir, err, out)
	}
	t.Logf("built the chart renderer in %s", time.Since(began).Round(100*time.Millisecond))
	return func(t *testing.T, args ...string) []byte {
		t.Helper()
		cmd := exec.Command(bin, args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("render %s: %v\n%s", strings.Join(args, " "), err, stderr.Bytes())
		}
		return out
	}
}

// decodeObjects decodes a multi-document YAML stream.
func decodeObjects(t *testing.T, what string, b []byte) []*unstructured.Unstructured {
	t.Helper()
	var objs []*unstructured.Unstructured
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(b)))
	for i := 1; ; i++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: document %d: %v", what, i, err)
		}
		if len(bytes.TrimSpace(stripYAMLComments(doc))) == 0 {
			continue
		}
		var m map[string]any
		if err := yaml.Unmarshal(doc, &m); err != nil {
			t.Fatalf("%s: document %d: %v", what, i, err)
		}
		o := &unstructured.Unstructured{Object: m}
		if o.GetKind() == "" || o.GetName() == "" {
			t.Fatalf("%s: document %d has no kind or name:\n%s", what, i, doc)
		}
		objs = append(objs, o)
	}
	if len(objs) == 0 {
		t.Fatalf("%s: no objects", what)
	}
	return objs
}

// decodeDir decodes the *.yaml files of dir in name order.
func decodeDir(t *testing.T, dir string) []*unstructured.Unstructured {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in %s: %v", dir, err)
	}
	sort.Strings(files)
	var objs []*unstructured.Unstructured
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		objs = append(objs, decodeObjects(t, f, b)...)
	}
	return objs
}

var crdResource = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

func waitEstablished(t *testing.T, dyn dynamic.Interface, name string) {
	t.Helper()
	within(t, time.Minute, "CRD "+name+" established", func() error {
		crd, err := dyn.Resource(crdResource).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
		for _, c := range conds {
			if m, ok := c.(map[string]any); ok && m["type"] == "Established" && m["status"] == "True" {
				return nil
			}
		}
		return fmt.Errorf("conditions %v", conds)
	})
}

func kindCounts(objs []*unstructured.Unstructured) string {
	n := map[string]int{}
	for _, o := range objs {
		n[o.GetKind()]++
	}
	var parts []string
	for k, v := range n {
		parts = append(parts, fmt.Sprintf("%d %s", v, k))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

func checkKinds(t *testing.T, objs []*unstructured.Unstructured, kinds ...string) {
	t.Helper()
	have := map[string]bool{}
	for _, o := range objs {
		have[o.GetKind()] = true
	}
	for _, k := range kinds {
		if !have[k] {
			t.Errorf("no %s applied (have %s)", k, kindCounts(objs))
		}
	}
}

// checkWorkload reads glassmesh's Deployment or StatefulSet back from the
// API server (defaults applied) and checks its replicas and probes.
func checkWorkload(t *testing.T, cs kubernetes.Interface, ns, kind, name string, replicas int32) {
	t.Helper()
	ctx := context.Background()
	var (
		n   *int32
		pod corev1.PodTemplateSpec
	)
	switch kind {
	case "Deployment":
		d, err := cs.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		n, pod = d.Spec.Replicas, d.Spec.Template
	case "StatefulSet":
		s, err := cs.AppsV1().StatefulSets(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		n, pod = s.Spec.Replicas, s.Spec.Template
		if _, err := cs.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("a Deployment %s/%s next to the StatefulSet: %v", ns, name, err)
		}
	}
	if n == nil || *n != replicas {
		t.Errorf("%s %s/%s replicas %v; want %d", kind, ns, name, n, replicas)
	}
	if len(pod.Spec.Containers) == 0 {
		t.Fatalf("%s %s/%s has no containers", kind, ns, name)
	}
	c := pod.Spec.Containers[0]
	probe := func(what string, p *corev1.Probe, path string) {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != path {
			t.Errorf("%s %s: %s probe %+v; want GET %s", kind, name, what, p, path)
			return
		}
		port := p.HTTPGet.Port.IntValue()
		if p.HTTPGet.Port.String() == "http" {
			port = 20001
			found := false
			for _, cp := range c.Ports {
				found = found || (cp.Name == "http" && cp.ContainerPort == 20001)
			}
			if !found {
				t.Errorf("%s %s: no container port named http = 20001 (%v)", kind, name, c.Ports)
			}
		}
		if port != 20001 {
			t.Errorf("%s %s: %s probe on port %s; want the HTTP API's, 20001", kind, name, what, p.HTTPGet.Port.String())
		}
	}
	probe("readiness", c.ReadinessProbe, "/readyz")
	probe("liveness", c.LivenessProbe, "/healthz")
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() {
		t.Errorf("%s %s: no resource requests (%v)", kind, name, c.Resources.Requests)
	}
	if pod.Spec.ServiceAccountName != name {
		t.Errorf("%s %s: serviceAccountName %q; want %q", kind, name, pod.Spec.ServiceAccountName, name)
	}
}

// access is one SubjectAccessReview question.
type access struct {
	verb, group, resource, namespace, name string
}

func (a access) String() string {
	r := a.resource
	if a.group != "" {
		r += "." + a.group
	}
	if a.name != "" {
		r += "/" + a.name
	}
	if a.namespace != "" {
		r += " in " + a.namespace
	}
	return a.verb + " " + r
}

// checkServiceAccess asks the API server (SubjectAccessReview, its RBAC
// authorizer) what glassmesh's ServiceAccount ns/sa may do.
func checkServiceAccess(t *testing.T, cs kubernetes.Interface, ns, sa, injector string) {
	t.Helper()
	var allowed []access
	for _, r := range []struct{ group, resource string }{
		{"", "services"}, {"", "pods"}, {"", "namespaces"}, {"discovery.k8s.io", "endpointslices"},
		{"glassmesh.io", "services"}, {"glassmesh.io", "workloads"}, {"glassmesh.io", "trafficroutes"}, {"glassmesh.io", "slos"},
		{"glassmesh.io", "canaries"}, {"glassmesh.io", "slopolicies"}, {"glassmesh.io", "peerauthentications"}, {"glassmesh.io", "authorizationpolicies"},
		{"apiextensions.k8s.io", "customresourcedefinitions"},
	} {
		for _, verb := range []string{"get", "list", "watch"} {
			allowed = append(allowed, access{verb: verb, group: r.group, resource: r.resource})
		}
	}
	allowed = append(allowed,
		access{verb: "list", resource: "pods", namespace: "some-app"}, // all namespaces, and each
		access{verb: "update", group: "glassmesh.io", resource: "trafficroutes/status", namespace: "some-app"},
		access{verb: "update", group: "glassmesh.io", resource: "canaries/status", namespace: "some-app"},
		access{verb: "patch", group: "glassmesh.io", resource: "canaries", namespace: "some-app"}, // the action annotation
		access{verb: "patch", group: "gateway.networking.k8s.io", resource: "httproutes/status", namespace: "some-app"},
		access{verb: "create", resource: "events", namespace: "some-app"},
		access{verb: "get", group: "coordination.k8s.io", resource: "leases", namespace: ns},
		access{verb: "create", group: "coordination.k8s.io", resource: "leases", namespace: ns},
		access{verb: "update", group: "coordination.k8s.io", resource: "leases", namespace: ns},
		access{verb: "get", group: "admissionregistration.k8s.io", resource: "mutatingwebhookconfigurations", name: injector},
		access{verb: "update", group: "admissionregistration.k8s.io", resource: "mutatingwebhookconfigurations", name: injector},
	)
	// Least privilege: a few things it must not do.
	denied := []access{
		{verb: "get", resource: "secrets", namespace: "some-app"},
		{verb: "delete", resource: "pods", namespace: "some-app"},
		{verb: "create", resource: "pods", namespace: "some-app"},
		{verb: "update", group: "glassmesh.io", resource: "trafficroutes", namespace: "some-app"},
		{verb: "patch", group: "glassmesh.io", resource: "trafficroutes", namespace: "some-app"},
		{verb: "update", group: "glassmesh.io", resource: "canaries", namespace: "some-app"},
		{verb: "patch", group: "gateway.networking.k8s.io", resource: "httproutes", namespace: "some-app"},
		{verb: "create", group: "coordination.k8s.io", resource: "leases", namespace: "some-app"},
		{verb: "update", group: "admissionregistration.k8s.io", resource: "mutatingwebhookconfigurations", name: "someone-elses"},
		{verb: "create", group: "rbac.authorization.k8s.io", resource: "clusterrolebindings"},
	}
	user := "system:serviceaccount:" + ns + ":" + sa
	ask := func(a access) (bool, string, error) {
		res := strings.SplitN(a.resource, "/", 2)
		attrs := &authorizationv1.ResourceAttributes{Verb: a.verb, Group: a.group, Resource: res[0], Namespace: a.namespace, Name: a.name}
		if len(res) == 2 {
			attrs.Subresource = res[1]
		}
		r, err := cs.AuthorizationV1().SubjectAccessReviews().Create(context.Background(), &authorizationv1.SubjectAccessReview{
			Spec: authorizationv1.SubjectAccessReviewSpec{User: user,
				Groups:             []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"},
				ResourceAttributes: attrs},
		}, metav1.CreateOptions{})
		if err != nil {
			return false, "", err
		}
		return r.Status.Allowed, r.Status.Reason + r.Status.EvaluationError, nil
	}
	// The RBAC authorizer reads roles and bindings from informers: give the
	// ones just applied a moment.
	within(t, 30*time.Second, user+" allowed to "+allowed[0].String(), func() error {
		if ok, why, err := ask(allowed[0]); err != nil || !ok {
			return fmt.Errorf("allowed %v: %s %v", ok, why, err)
		}
		return nil
	})
	for _, a := range allowed {
		if ok, why, err := ask(a); err != nil || !ok {
			t.Errorf("%s may not %s: %s %v", user, a, why, err)
		}
	}
	for _, a := range denied {
		if ok, why, err := ask(a); err != nil || ok {
			t.Errorf("%s may %s (%s %v); want denied", user, a, why, err)
		}
	}
	t.Logf("SubjectAccessReviews: %s may do the %d things asked and not the %d others", user, len(allowed), len(denied))
}
