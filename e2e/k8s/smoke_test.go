package k8s

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
)

var namespaces atomic.Int64

// newNamespace creates a namespace of the test's own and deletes it when the
// test ends (no controller-manager finalizes it; deletion is enough to keep
// names apart).
func newNamespace(t *testing.T, cs kubernetes.Interface) string {
	t.Helper()
	name := fmt.Sprintf("t%d-%s", namespaces.Add(1), strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name())))
	if len(name) > 63 {
		name = strings.TrimRight(name[:63], "-")
	}
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create namespace %s: %v", name, err)
	}
	t.Cleanup(func() { _ = cs.CoreV1().Namespaces().Delete(ctx, name, metav1.DeleteOptions{}) })
	return name
}

func TestAPIServer(t *testing.T) {
	cfg, kubeconfig := startAPIServer(t)

	t.Run("answers /readyz and reports its version", func(t *testing.T) {
		cs := kubernetes.NewForConfigOrDie(cfg)
		body, err := cs.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(context.Background())
		if err != nil || string(body) != "ok" {
			t.Fatalf("/readyz = %q, %v", body, err)
		}
		v, err := cs.Discovery().ServerVersion()
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(v.GitVersion, "v1.37.") && v.GitVersion != "v0.0.0-master+$Format:%H$" {
			t.Logf("server version %s", v.GitVersion)
		}
	})

	t.Run("the kubeconfig file reaches the same server", func(t *testing.T) {
		kc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
		if err != nil {
			t.Fatal(err)
		}
		if kc.Host != cfg.Host {
			t.Fatalf("kubeconfig host %s, want %s", kc.Host, cfg.Host)
		}
		cs := kubernetes.NewForConfigOrDie(kc)
		if _, err := cs.CoreV1().Namespaces().Get(context.Background(), "default", metav1.GetOptions{}); err != nil {
			t.Fatalf("get namespace default through %s: %v", kubeconfig, err)
		}
	})
}

// TestCoreObjectsThroughInformers creates what the Kubernetes source reads
// (a Service, its EndpointSlice, a Pod) and sees each in an informer's cache.
func TestCoreObjectsThroughInformers(t *testing.T) {
	cfg, _ := startAPIServer(t)
	cs := kubernetes.NewForConfigOrDie(cfg)
	ns := newNamespace(t, cs)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	factory := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithNamespace(ns))
	services := factory.Core().V1().Services().Lister()
	slices := factory.Discovery().V1().EndpointSlices().Lister()
	pods := factory.Core().V1().Pods().Lister()
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	for typ, ok := range factory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			t.Fatalf("informer of %v did not sync", typ)
		}
	}
	defer cancel()

	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "reviews", Labels: map[string]string{"app": "reviews"}},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": "reviews"},
			Ports:    []corev1.ServicePort{{Name: "grpc", Port: 9080, Protocol: corev1.ProtocolTCP, AppProtocol: ptr.To("grpc")}},
		},
	}
	if _, err := cs.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "reviews-v1-0", Labels: map[string]string{"app": "reviews", "version": "v1"}},
		Spec: corev1.PodSpec{
			ServiceAccountName: "reviews",
			Containers:         []corev1.Container{{Name: "app", Image: "reviews:v1"}},
		},
	}
	created, err := cs.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// No kubelet runs: the test plays its part and reports the pod's IP.
	created.Status = corev1.PodStatus{
		Phase:      corev1.PodRunning,
		PodIP:      "10.1.0.7",
		PodIPs:     []corev1.PodIP{{IP: "10.1.0.7"}},
		Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
	}
	if _, err := cs.CoreV1().Pods(ns).UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	// No endpointslice controller runs: the test writes the slice.
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Name:   "reviews-abc",
			Labels: map[string]string{discoveryv1.LabelServiceName: "reviews", discoveryv1.LabelManagedBy: "glassmesh-test"},
		},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{{
			Addresses:  []string{"10.1.0.7"},
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)},
			TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: pod.Name},
		}},
		Ports: []discoveryv1.EndpointPort{{Name: ptr.To("grpc"), Port: ptr.To[int32](9080), Protocol: ptr.To(corev1.ProtocolTCP)}},
	}
	if _, err := cs.DiscoveryV1().EndpointSlices(ns).Create(ctx, slice, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	eventually(t, ctx, "the Service in the informer's cache", func() error {
		s, err := services.Services(ns).Get("reviews")
		if err != nil {
			return err
		}
		if s.Spec.ClusterIP == "" || s.Spec.Ports[0].Port != 9080 {
			return fmt.Errorf("service %+v", s.Spec)
		}
		return nil
	})
	eventually(t, ctx, "the EndpointSlice in the informer's cache", func() error {
		s, err := slices.EndpointSlices(ns).Get("reviews-abc")
		if err != nil {
			return err
		}
		if s.Labels[discoveryv1.LabelServiceName] != "reviews" || s.Endpoints[0].Addresses[0] != "10.1.0.7" {
			return fmt.Errorf("slice %+v", s)
		}
		return nil
	})
	eventually(t, ctx, "the Pod, with its IP, in the informer's cache", func() error {
		p, err := pods.Pods(ns).Get("reviews-v1-0")
		if err != nil {
			return err
		}
		if p.Status.PodIP != "10.1.0.7" || p.Spec.ServiceAccountName != "reviews" || p.Labels["version"] != "v1" {
			return fmt.Errorf("pod status %+v, service account %q", p.Status, p.Spec.ServiceAccountName)
		}
		return nil
	})
}

// eventually polls f until it returns nil or ctx ends.
func eventually(t testing.TB, ctx context.Context, what string, f func() error) {
	t.Helper()
	var err error
	for {
		if err = f(); err == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: %v", what, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}
