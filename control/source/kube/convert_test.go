package kube

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/glassmesh/glassmesh/control/model"
	"github.com/glassmesh/glassmesh/control/source"
)

func ptr[T any](v T) *T { return &v }

func TestServiceFromKubernetes(t *testing.T) {
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "reviews", Namespace: "shop"},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": "reviews"},
			Ports: []corev1.ServicePort{
				{Name: "grpc-api", Port: 9080, Protocol: corev1.ProtocolTCP},
				{Name: "web", Port: 8080, AppProtocol: ptr("http")},
				{Name: "h2", Port: 8081, AppProtocol: ptr("kubernetes.io/h2c")},
				{Name: "db", Port: 5432},
				{Name: "dns", Port: 53, Protocol: corev1.ProtocolUDP},
			},
		},
	}
	got := source.ServiceFromKubernetes(s)
	want := []model.ServicePort{
		{Name: "grpc-api", Port: 9080, Protocol: model.ProtocolGRPC},
		{Name: "web", Port: 8080, Protocol: model.ProtocolHTTP},
		{Name: "h2", Port: 8081, Protocol: model.ProtocolHTTP2},
		{Name: "db", Port: 5432, Protocol: model.ProtocolTCP},
	}
	if len(got.Spec.Ports) != len(want) {
		t.Fatalf("ports %+v, want %+v (UDP left out)", got.Spec.Ports, want)
	}
	for i := range want {
		if got.Spec.Ports[i] != want[i] {
			t.Errorf("port %d: %+v, want %+v", i, got.Spec.Ports[i], want[i])
		}
	}
	if got.Origin.File != "kubernetes:services/shop/reviews" {
		t.Errorf("origin %q", got.Origin.File)
	}
	s.Spec.Selector = nil
	if source.ServiceFromKubernetes(s) != nil {
		t.Errorf("a Service without a selector selects no pods; want nil")
	}
}

func TestWorkloadsFromKubernetes(t *testing.T) {
	pod := func(name, rs, hash, ip string, phase corev1.PodPhase) *corev1.Pod {
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop",
				Labels: map[string]string{"app": "reviews", "version": "v2", "pod-template-hash": hash}},
			Spec:   corev1.PodSpec{ServiceAccountName: "reviews"},
			Status: corev1.PodStatus{Phase: phase, PodIP: ip},
		}
		if rs != "" {
			p.OwnerReferences = []metav1.OwnerReference{{Kind: "ReplicaSet", Name: rs, Controller: ptr(true)}}
		}
		return p
	}
	pods := []*corev1.Pod{
		pod("reviews-v2-7d9f-abcde", "reviews-v2-7d9f", "7d9f", "10.0.0.2", corev1.PodRunning),
		pod("reviews-v2-7d9f-fghij", "reviews-v2-7d9f", "7d9f", "10.0.0.3", corev1.PodRunning),
		pod("reviews-v2-7d9f-pendi", "reviews-v2-7d9f", "7d9f", "", corev1.PodPending),
		pod("reviews-v2-7d9f-start", "reviews-v2-7d9f", "7d9f", "10.0.0.4", corev1.PodPending),
		pod("reviews-v2-7d9f-done1", "reviews-v2-7d9f", "7d9f", "10.0.0.5", corev1.PodSucceeded),
		pod("debug", "", "", "10.0.0.9", corev1.PodRunning),
	}
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: "reviews-x1", Namespace: "shop", Labels: map[string]string{discoveryv1.LabelServiceName: "reviews"}},
		Endpoints: []discoveryv1.Endpoint{
			{Addresses: []string{"10.0.0.2"}, TargetRef: &corev1.ObjectReference{Kind: "Pod", Name: "reviews-v2-7d9f-abcde"}},
			{Addresses: []string{"10.0.0.3"}, TargetRef: &corev1.ObjectReference{Kind: "Pod", Name: "reviews-v2-7d9f-fghij"}},
			{Addresses: []string{"10.0.0.4"}, TargetRef: &corev1.ObjectReference{Kind: "Pod", Name: "reviews-v2-7d9f-start"},
				Conditions: discoveryv1.EndpointConditions{Ready: ptr(false)}},
		},
		Ports: []discoveryv1.EndpointPort{{Name: ptr("grpc-api"), Port: ptr(int32(19080)), Protocol: ptr(corev1.ProtocolTCP)}},
	}
	ws := workloadsFromKubernetes(pods, []*discoveryv1.EndpointSlice{slice})
	if len(ws) != 2 {
		t.Fatalf("%d workloads, want the Deployment and the bare pod", len(ws))
	}
	debug, reviews := ws[0], ws[1]
	if reviews.Name != "reviews-v2" || reviews.Spec.ServiceAccount != "reviews" {
		t.Errorf("workload %s sa %s, want reviews-v2 / reviews", reviews.Name, reviews.Spec.ServiceAccount)
	}
	if _, ok := reviews.Labels["pod-template-hash"]; ok || reviews.Labels["version"] != "v2" {
		t.Errorf("labels %v: want the pod's own, without the template hash", reviews.Labels)
	}
	if len(reviews.Spec.Endpoints) != 2 || reviews.Spec.Endpoints[0].Address != "10.0.0.2" || reviews.Spec.Endpoints[0].Ports["grpc-api"] != 19080 {
		t.Errorf("endpoints %+v, want the two ready pods with the slice's port (not the starting one)", reviews.Spec.Endpoints)
	}
	if debug.Name != "debug" || len(debug.Spec.Endpoints) != 0 {
		t.Errorf("bare pod: %+v, want a workload of its own name and no endpoints (no Service lists it)", debug)
	}
}

func TestParseCustomResource(t *testing.T) {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "glassmesh.io/v1alpha1", "kind": "TrafficRoute",
		"metadata": map[string]any{"name": "reviews", "namespace": "shop", "resourceVersion": "42", "uid": "x",
			"managedFields": []any{map[string]any{"manager": "kubectl"}}},
		"spec": map[string]any{
			"service": "reviews",
			"subsets": []any{map[string]any{"name": "v1", "labels": map[string]any{"version": "v1"}}},
			"rules":   []any{map[string]any{"destinations": []any{map[string]any{"subset": "v1", "weight": int64(100)}}}},
		},
		"status": map[string]any{"conditions": []any{}},
	}}
	objs, diags := parseCustomResource("trafficroutes", u)
	if len(diags) != 0 || len(objs.Routes) != 1 || objs.Routes[0].Spec.Service != "reviews" {
		t.Fatalf("objects %+v, diagnostics %v", objs, diags)
	}
	// A field the model does not know is the same error as in a file, naming
	// the object and the path.
	u.Object["spec"].(map[string]any)["wieghts"] = true
	_, diags = parseCustomResource("trafficroutes", u)
	if len(diags) != 1 || diags[0].File != "kubernetes:trafficroutes/shop/reviews" || diags[0].Line != 0 || !strings.Contains(diags[0].Error(), "wieghts") {
		t.Errorf("diagnostics %v, want one naming the object and the unknown field", diags)
	}
}

// The source watches exactly the resources deploy/crds defines.
func TestCustomResourcesMatchTheCRDs(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "..", "deploy", "crds", "*."+model.CRDGroup+".yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no CRDs in deploy/crds (%v)", err)
	}
	var plurals []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var crd struct {
			Spec struct {
				Names struct{ Plural string }
			}
		}
		if err := yaml.Unmarshal(b, &crd); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		plurals = append(plurals, crd.Spec.Names.Plural)
	}
	watched := CustomResources()
	slices.Sort(plurals)
	slices.Sort(watched)
	if !slices.Equal(plurals, watched) {
		t.Errorf("deploy/crds defines %v; the source watches %v", plurals, watched)
	}
}

// The digest of a set of objects depends on their versions, not on the
// order they are listed in.
func TestObjectDigest(t *testing.T) {
	obj := func(ns, name, rv string) metav1.Object {
		return &metav1.ObjectMeta{Namespace: ns, Name: name, ResourceVersion: rv}
	}
	digest := func(objs ...metav1.Object) string {
		var d objectDigest
		for _, o := range objs {
			d.add("pods", o)
		}
		return d.String()
	}
	a, b := obj("shop", "a", "1"), obj("shop", "b", "7")
	if digest(a, b) != digest(b, a) {
		t.Error("the order changes the digest")
	}
	if digest(a, b) == digest(a, obj("shop", "b", "8")) {
		t.Error("a new resourceVersion leaves the digest alone")
	}
	if digest(a, b) == digest(a) || digest(a) == digest(obj("shop", "a1", "")) {
		t.Error("different sets of objects share a digest")
	}
}
