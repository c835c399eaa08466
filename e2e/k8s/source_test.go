package k8s

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/xds"
	"google.golang.org/protobuf/types/known/structpb"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"

	"github.com/glassmesh/glassmesh/demo"
	"github.com/glassmesh/glassmesh/e2e/k8s/kubetest"
	sidecarconfig "github.com/glassmesh/glassmesh/sidecar-config"
)

// buildGlassmesh builds glassmesh once per test binary, in the main
// module (with its own go.sum).
var buildGlassmesh = sync.OnceValues(func() (string, error) {
	bin := filepath.Join(os.TempDir(), "glassmesh-k8s-e2e")
	build := exec.Command("go", "build", "-o", bin, "./cmd/glassmesh")
	build.Dir = "../.."
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

// glassmeshBinary is the path of the glassmesh built for these tests.
func glassmeshBinary(tb testing.TB) string {
	tb.Helper()
	bin, err := buildGlassmesh()
	if err != nil {
		tb.Fatal(err)
	}
	return bin
}

// process is a running `glassmesh run`.
type process struct {
	cmd                *exec.Cmd
	httpAddr, grpcAddr string
}

// startGlassmesh runs `glassmesh run ARGS` with a data dir of its own, free
// ports and JSON logs, and returns once it logged its addresses. Its WARN
// and ERROR lines, and the lines show picks (nil: none), go to tb's log,
// prefixed with name. It is killed when tb ends.
func startGlassmesh(tb testing.TB, name string, show func(line string) bool, args ...string) *process {
	tb.Helper()
	args = append([]string{"run", "--data-dir", tb.TempDir(), "--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0",
		"--otlp-grpc-addr", "", "--otlp-http-addr", "", "--zipkin-addr", "127.0.0.1:0", "--log.format", "json"}, args...)
	p := &process{cmd: exec.Command(glassmeshBinary(tb), args...)}
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	addrs := make(chan [2]string, 1)
	logged := make(chan struct{})
	tb.Cleanup(func() { _ = p.cmd.Process.Kill(); _ = p.cmd.Wait(); <-logged })
	go func() {
		defer close(logged) // no logging once tb has ended
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var l struct{ Msg, Level, HTTP, GRPC string }
			if json.Unmarshal(sc.Bytes(), &l) == nil && l.Msg == "glassmesh starting" {
				addrs <- [2]string{l.HTTP, l.GRPC}
			}
			if l.Level == "WARN" || l.Level == "ERROR" || (show != nil && show(sc.Text())) {
				tb.Logf("%s: %s", name, sc.Text())
			}
		}
	}()
	select {
	case a := <-addrs:
		p.httpAddr, p.grpcAddr = a[0], a[1]
	case <-time.After(60 * time.Second):
		tb.Fatalf("%s did not start", name)
	}
	return p
}

// runGlassmesh starts `glassmesh run --source kubernetes` on the test API
// server and returns its HTTP and gRPC addresses.
func runGlassmesh(t *testing.T, extra ...string) (httpAddr, grpcAddr string) {
	t.Helper()
	p := startGlassmesh(t, "glassmesh", nil, append([]string{"--source", "kubernetes", "--kubeconfig", server.Kubeconfig}, extra...)...)
	return p.httpAddr, p.grpcAddr
}

// within polls f until it returns nil, for at most d.
func within(t testing.TB, d time.Duration, what string, f func() error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	eventually(t, ctx, what, f)
}

// hostIP is an address of this machine outside the loopback range, which
// EndpointSlices refuse; the test's pods "run" there.
func hostIP(t *testing.T) string {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() && !n.IP.IsLinkLocalUnicast() {
			return n.IP.String()
		}
	}
	t.Skip("no non-loopback IPv4 address to run the test's pods on")
	return ""
}

// backend serves reviews answering with version on a free port of ip.
func backend(t *testing.T, ip, version string) int {
	t.Helper()
	lis, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	demo.Register(srv, "reviews", func(context.Context, *structpb.Struct) (*structpb.Struct, error) {
		return structpb.NewStruct(map[string]any{"version": version})
	})
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	return lis.Addr().(*net.TCPAddr).Port
}

// runningPod creates a pod of Deployment reviews-<version> at ip and sets
// its status as a kubelet would (there is none), with its own EndpointSlice
// of Service reviews pointing at port.
func runningPod(t *testing.T, cs kubernetes.Interface, ns, ip, version string, port int) {
	t.Helper()
	ctx := context.Background()
	name := "reviews-" + version + "-5d8f9-abcde"
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns,
			Labels: map[string]string{"app": "reviews", "version": version, "pod-template-hash": "5d8f9"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "reviews-" + version + "-5d8f9",
				UID: types.UID("00000000-0000-0000-0000-00000000000" + version[1:]), Controller: ptr.To(true)}}},
		Spec: corev1.PodSpec{ServiceAccountName: "reviews", Containers: []corev1.Container{{Name: "app", Image: "example/reviews"}}},
	}
	created, err := cs.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	created.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}}}
	if _, err := cs.CoreV1().Pods(ns).UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "reviews-" + version, Namespace: ns, Labels: map[string]string{discoveryv1.LabelServiceName: "reviews"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{{Addresses: []string{ip}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)},
			TargetRef: &corev1.ObjectReference{Kind: "Pod", Name: name, Namespace: ns}}},
		Ports: []discoveryv1.EndpointPort{{Name: ptr.To("grpc"), Port: ptr.To(int32(port)), Protocol: ptr.To(corev1.ProtocolTCP)}},
	}
	if _, err := cs.DiscoveryV1().EndpointSlices(ns).Create(ctx, slice, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

var trafficRoutes = schema.GroupVersionResource{Group: "glassmesh.io", Version: "v1alpha1", Resource: "trafficroutes"}

func route(ns string, v1, v2 int64) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "glassmesh.io/v1alpha1", "kind": "TrafficRoute",
		"metadata": map[string]any{"name": "reviews", "namespace": ns},
		"spec": map[string]any{
			"service": "reviews",
			"subsets": []any{map[string]any{"name": "v1", "labels": map[string]any{"version": "v1"}}, map[string]any{"name": "v2", "labels": map[string]any{"version": "v2"}}},
			"rules":   []any{map[string]any{"destinations": []any{map[string]any{"subset": "v1", "weight": v1}, map[string]any{"subset": "v2", "weight": v2}}}},
		},
	}}
}

// reviewsMesh installs the CRDs and makes a namespace of its own with
// Service reviews, running pods reviews-v1 and -v2 (serving on the ports
// port gives them) and TrafficRoute reviews with all traffic at v1.
func reviewsMesh(t *testing.T, port func(ip, version string) int) (kubernetes.Interface, dynamic.Interface, string) {
	t.Helper()
	if _, err := kubetest.InstallCRDs(context.Background(), server.Config, crdDir); err != nil {
		t.Fatal(err)
	}
	cs := kubernetes.NewForConfigOrDie(server.Config)
	dyn := dynamic.NewForConfigOrDie(server.Config)
	ns := newNamespace(t, cs)
	ctx := context.Background()
	if _, err := cs.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "reviews", Namespace: ns},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": "reviews"},
			Ports: []corev1.ServicePort{{Name: "grpc", Port: 9080}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ip := hostIP(t)
	runningPod(t, cs, ns, ip, "v1", port(ip, "v1"))
	runningPod(t, cs, ns, ip, "v2", port(ip, "v2"))
	if _, err := dyn.Resource(trafficRoutes).Namespace(ns).Create(ctx, route(ns, 100, 0), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return cs, dyn, ns
}

// TestKubernetesSourceDrivesXDS: Services, Pods, EndpointSlices and a
// TrafficRoute created through a real API server become the xDS that
// grpc-go's real client follows, and a live edit of the route moves its
// traffic; an invalid edit keeps the old routing.
func TestKubernetesSourceDrivesXDS(t *testing.T) {
	cs, dyn, ns := reviewsMesh(t, func(ip, version string) int { return backend(t, ip, version) })
	ctx := context.Background()
	// Other tests leave objects in their namespaces (no namespace controller
	// deletes them), some invalid on purpose: this mesh is this namespace.
	httpAddr, grpcAddr := runGlassmesh(t, "--kubernetes.namespaces", ns, "--leader-elect.namespace", ns)

	split := reviewsClient(t, grpcAddr, ns)
	began := time.Now()
	within(t, 60*time.Second, "first routing", func() error {
		if got := split(10); got["v1"] != 10 {
			return fmt.Errorf("calls %v, want all v1", got)
		}
		return nil
	})
	t.Logf("all traffic at v1 %s after glassmesh started", time.Since(began).Round(10*time.Millisecond))

	t.Run("a weight change through the API server moves the traffic", func(t *testing.T) {
		edited := time.Now()
		updateRoute(t, dyn, ns, 0, 100)
		within(t, 25*time.Second, "traffic at v2", func() error {
			if got := split(10); got["v2"] != 10 {
				return fmt.Errorf("calls %v, want all v2", got)
			}
			return nil
		})
		t.Logf("traffic at v2 %s after the update", time.Since(edited).Round(10*time.Millisecond))
	})
	t.Run("an invalid route keeps the last good routing, and /api/mesh/config names the object", func(t *testing.T) {
		updateRoute(t, dyn, ns, 30, 30) // weights sum to 60: the schema allows it, glassmesh does not
		want := regexp.MustCompile(`kubernetes:trafficroutes/` + ns + `/reviews`)
		within(t, 25*time.Second, "the bad route reported", func() error {
			resp, err := http.Get("http://" + httpAddr + "/api/mesh/config")
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			var st struct {
				Errors []struct{ File, Path, Message string }
			}
			if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
				return err
			}
			for _, e := range st.Errors {
				if want.MatchString(e.File) && strings.Contains(e.Message, "100") {
					return nil
				}
			}
			return fmt.Errorf("errors %+v", st.Errors)
		})
		if got := split(10); got["v2"] != 10 {
			t.Errorf("calls %v after the bad edit, want still all v2", got)
		}
	})
	t.Run("while the route is invalid, a new pod address reaches the client at once", func(t *testing.T) {
		// The route is set aside alone: its last good version (all v2)
		// serves, and the EndpointSlice change goes through.
		within(t, 25*time.Second, "the route listed as invalid, serving its last good version", func() error {
			resp, err := http.Get("http://" + httpAddr + "/api/mesh/config")
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			var st struct {
				InvalidObjects []struct{ Kind, Name, Origin, Serving string }
			}
			if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
				return err
			}
			if len(st.InvalidObjects) != 1 || st.InvalidObjects[0].Kind != "TrafficRoute" || st.InvalidObjects[0].Serving != "lastGood" ||
				st.InvalidObjects[0].Origin != "kubernetes:trafficroutes/"+ns+"/reviews" {
				return fmt.Errorf("invalid objects %+v", st.InvalidObjects)
			}
			return nil
		})
		moved := backend(t, hostIP(t), "v2-moved")
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			es, err := cs.DiscoveryV1().EndpointSlices(ns).Get(ctx, "reviews-v2", metav1.GetOptions{})
			if err != nil {
				return err
			}
			es.Ports[0].Port = ptr.To(int32(moved))
			_, err = cs.DiscoveryV1().EndpointSlices(ns).Update(ctx, es, metav1.UpdateOptions{})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		edited := time.Now()
		within(t, 25*time.Second, "traffic at the moved endpoint", func() error {
			if got := split(10); got["v2-moved"] != 10 {
				return fmt.Errorf("calls %v, want all at v2-moved", got)
			}
			return nil
		})
		t.Logf("the moved endpoint served %s after the EndpointSlice update", time.Since(edited).Round(10*time.Millisecond))
	})
	t.Run("the invalid route gets a Valid=False condition and a Warning Event naming the field", func(t *testing.T) {
		within(t, 25*time.Second, "the condition", func() error {
			c, _, err := validCondition(ctx, dyn, trafficRoutes, ns, "reviews")
			if err != nil {
				return err
			}
			if c["status"] != "False" || c["reason"] != "Invalid" || !strings.Contains(fmt.Sprint(c["message"]), "spec.rules[0].destinations") ||
				!strings.Contains(fmt.Sprint(c["message"]), "its last good version keeps serving") {
				return fmt.Errorf("condition %v", c)
			}
			return nil
		})
		within(t, 25*time.Second, "the Event", func() error {
			evs, err := cs.EventsV1().Events(ns).List(ctx, metav1.ListOptions{})
			if err != nil {
				return err
			}
			for _, e := range evs.Items {
				if e.Regarding.Kind == "TrafficRoute" && e.Regarding.Name == "reviews" && e.Type == corev1.EventTypeWarning &&
					e.Reason == "Invalid" && strings.Contains(e.Note, "spec.rules[0].destinations") {
					return nil
				}
			}
			return fmt.Errorf("no Warning Event for the route among %d events", len(evs.Items))
		})
		// Mended, it is Valid again.
		updateRoute(t, dyn, ns, 50, 50)
		within(t, 25*time.Second, "Valid=True", func() error {
			c, gen, err := validCondition(ctx, dyn, trafficRoutes, ns, "reviews")
			if err != nil {
				return err
			}
			if c["status"] != "True" || c["observedGeneration"] != gen {
				return fmt.Errorf("condition %v at generation %d", c, gen)
			}
			return nil
		})
	})
}

// updateRoute sets the weights of TrafficRoute reviews, reading it again
// when its resourceVersion moved between read and write: glassmesh writes
// its status meanwhile.
func updateRoute(t *testing.T, dyn dynamic.Interface, ns string, v1, v2 int64) {
	t.Helper()
	ctx := context.Background()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := dyn.Resource(trafficRoutes).Namespace(ns).Get(ctx, "reviews", metav1.GetOptions{})
		if err != nil {
			return err
		}
		r := route(ns, v1, v2)
		r.SetResourceVersion(cur.GetResourceVersion())
		_, err = dyn.Resource(trafficRoutes).Namespace(ns).Update(ctx, r, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// validCondition is the Valid condition glassmesh wrote on an object, and
// the object's generation.
func validCondition(ctx context.Context, dyn dynamic.Interface, gvr schema.GroupVersionResource, ns, name string) (map[string]any, int64, error) {
	u, err := dyn.Resource(gvr).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, 0, err
	}
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		if m, ok := c.(map[string]any); ok && m["type"] == "Valid" {
			return m, u.GetGeneration(), nil
		}
	}
	return nil, 0, fmt.Errorf("no Valid condition in %v", u.Object["status"])
}

// reviewsClient dials reviews in ns through glassmesh with grpc-go's real
// xDS client and returns a function making n calls and counting the
// answering versions.
func reviewsClient(t *testing.T, grpcAddr, ns string) func(n int) map[string]int {
	t.Helper()
	b, err := sidecarconfig.ProxylessBootstrapFor(sidecarconfig.NodeInfo{Namespace: ns, Workload: "productpage", Instance: "productpage-0",
		IP: "127.0.0.1", Labels: map[string]string{"app": "productpage"}}, sidecarconfig.BootstrapOptions{XDSAddr: grpcAddr})
	if err != nil {
		t.Fatal(err)
	}
	builder, err := xds.NewXDSResolverWithConfigForTesting(b)
	if err != nil {
		t.Fatal(err)
	}
	cc, err := grpc.NewClient("xds:///reviews."+ns+":9080", grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithResolvers(builder))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return func(n int) map[string]int {
		got := map[string]int{}
		for range n {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			out, err := demo.Call(ctx, cc, "reviews", nil, grpc.WaitForReady(true))
			cancel()
			if err != nil {
				got["error"]++
				continue
			}
			got[out.Fields["version"].GetStringValue()]++
		}
		return got
	}
}

// TestOneTeamsInvalidRouteDoesNotHoldAnother: two teams' namespaces, each
// with reviews v1/v2 and a TrafficRoute, through a real API server. Team
// a's route turns invalid: it keeps its last good routing, and team b's
// weight change still reaches grpc-go's client; mended, team a moves too.
func TestOneTeamsInvalidRouteDoesNotHoldAnother(t *testing.T) {
	_, dyn, nsA := reviewsMesh(t, func(ip, version string) int { return backend(t, ip, "a-"+version) })
	_, _, nsB := reviewsMesh(t, func(ip, version string) int { return backend(t, ip, "b-"+version) })
	httpAddr, grpcAddr := runGlassmesh(t, "--kubernetes.namespaces", nsA+","+nsB, "--leader-elect.namespace", nsA)
	callA, callB := reviewsClient(t, grpcAddr, nsA), reviewsClient(t, grpcAddr, nsB)
	all := func(call func(int) map[string]int, version string) func() error {
		return func() error {
			if got := call(10); got[version] != 10 {
				return fmt.Errorf("calls %v, want all %s", got, version)
			}
			return nil
		}
	}
	within(t, 60*time.Second, "team a at v1", all(callA, "a-v1"))
	within(t, 60*time.Second, "team b at v1", all(callB, "b-v1"))

	updateRoute(t, dyn, nsA, 30, 30) // weights sum to 60: the schema allows it, glassmesh does not
	within(t, 25*time.Second, "team a's route set aside", func() error {
		resp, err := http.Get("http://" + httpAddr + "/api/mesh/config")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var st struct {
			InvalidObjects []struct{ Kind, Namespace, Serving string }
		}
		if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
			return err
		}
		if len(st.InvalidObjects) != 1 || st.InvalidObjects[0].Namespace != nsA || st.InvalidObjects[0].Serving != "lastGood" {
			return fmt.Errorf("invalid objects %+v", st.InvalidObjects)
		}
		return nil
	})
	edited := time.Now()
	updateRoute(t, dyn, nsB, 0, 100)
	within(t, 25*time.Second, "team b at v2", all(callB, "b-v2"))
	t.Logf("team b's weight change served %s after the update, with team a's route invalid", time.Since(edited).Round(10*time.Millisecond))
	if got := callA(20); got["a-v1"] != 20 {
		t.Errorf("team a's calls %v, want its last good routing (all v1)", got)
	}
	updateRoute(t, dyn, nsA, 0, 100)
	within(t, 25*time.Second, "team a at v2 once mended", all(callA, "a-v2"))
}
