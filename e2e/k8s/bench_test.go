package k8s

// Benchmarks of issue 10's "Measure": the push time of a change made through
// the API server against the same change through the file source, and the
// memory of the Kubernetes source's informer caches. `make bench` runs them
// (bench/suites.go); `make test` does not (no -bench there).

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"github.com/glassmesh/glassmesh/control/model"
	"github.com/glassmesh/glassmesh/control/naming"
	"github.com/glassmesh/glassmesh/control/source"
	"github.com/glassmesh/glassmesh/control/source/kube"
	"github.com/glassmesh/glassmesh/e2e/k8s/kubetest"
)

const (
	benchServices = 100  // services of the push benchmark's mesh
	benchPods     = 10   // pods (endpoints) per service: 5 of v1, 5 of v2
	benchClients  = 1000 // simulated proxyless clients
	benchConns    = 32   // gRPC connections the clients share
	benchPort     = 9080
	benchPushNS   = "bench-push"

	benchMemServices = 1000
	benchMemPods     = 10 // per service: 10,000 pods
	benchMemNS       = "bench-informers"

	benchLDS = "type.googleapis.com/envoy.config.listener.v3.Listener"
	benchRDS = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
	benchCDS = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
	benchEDS = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
)

var benchTypes = []string{benchLDS, benchRDS, benchCDS, benchEDS}

var benchTrafficRoutes = schema.GroupVersionResource{Group: "glassmesh.io", Version: "v1alpha1", Resource: "trafficroutes"}

// benchClient is an API client for creating many objects fast.
func benchClient(b *testing.B) (*rest.Config, kubernetes.Interface, dynamic.Interface) {
	b.Helper()
	if server == nil {
		b.Fatal("no API server: TestMain did not start one")
	}
	cfg := rest.CopyConfig(server.Config)
	cfg.QPS, cfg.Burst = 5000, 10000
	return cfg, kubernetes.NewForConfigOrDie(cfg), dynamic.NewForConfigOrDie(cfg)
}

// benchParallel runs f(0..n-1) on workers goroutines and logs progress.
func benchParallel(b *testing.B, what string, n, workers int, f func(i int) error) {
	b.Helper()
	var next, done atomic.Int64
	var firstErr atomic.Pointer[error]
	start := time.Now()
	stop := make(chan struct{})
	go func() {
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				fmt.Fprintf(os.Stderr, "bench: %s: %d/%d after %s\n", what, done.Load(), n, time.Since(start).Round(time.Second))
			}
		}
	}()
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || firstErr.Load() != nil {
					return
				}
				if err := f(i); err != nil {
					firstErr.CompareAndSwap(nil, &err)
					return
				}
				done.Add(1)
			}
		})
	}
	wg.Wait()
	close(stop)
	if err := firstErr.Load(); err != nil {
		b.Fatalf("%s: %v", what, *err)
	}
	b.Logf("%s: %d in %s", what, n, time.Since(start).Round(100*time.Millisecond))
}

// benchEnsureNamespace creates namespace name unless it exists.
func benchEnsureNamespace(b *testing.B, cs kubernetes.Interface, name string) {
	b.Helper()
	_, err := cs.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		b.Fatal(err)
	}
}

// benchApp is one Service of a benchmark mesh with its pods, as a
// Deployment per version (ReplicaSet-owned pods) and one EndpointSlice.
type benchApp struct {
	ns, name string
	pods     int
	headless bool
	ip       func(j int) string // pod j's address
}

func (a benchApp) version(j int) string {
	if j < a.pods/2 {
		return "v1"
	}
	return "v2"
}

func (a benchApp) podName(j int) string {
	return fmt.Sprintf("%s-%s-5d8f9-%05d", a.name, a.version(j), j)
}

// create writes the Service, the pods (with the status a kubelet would
// report) and the EndpointSlice through the API server.
func (a benchApp) create(ctx context.Context, cs kubernetes.Interface) error {
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: a.name, Namespace: a.ns, Labels: map[string]string{"app": a.name}},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": a.name},
			Ports: []corev1.ServicePort{{Name: "grpc", Port: benchPort, Protocol: corev1.ProtocolTCP}}},
	}
	if a.headless {
		svc.Spec.ClusterIP = corev1.ClusterIPNone
	}
	if _, err := cs.CoreV1().Services(a.ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: a.name + "-x7k2p", Namespace: a.ns,
			Labels: map[string]string{discoveryv1.LabelServiceName: a.name, discoveryv1.LabelManagedBy: "glassmesh-bench"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr.To("grpc"), Port: ptr.To(int32(benchPort)), Protocol: ptr.To(corev1.ProtocolTCP)}},
	}
	for j := range a.pods {
		v := a.version(j)
		rs := a.name + "-" + v + "-5d8f9"
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: a.podName(j), Namespace: a.ns,
				Labels: map[string]string{"app": a.name, "version": v, "pod-template-hash": "5d8f9"},
				OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: rs,
					UID: types.UID(fmt.Sprintf("%s-%s", a.name, v)), Controller: ptr.To(true)}}},
			Spec: corev1.PodSpec{ServiceAccountName: a.name, Containers: []corev1.Container{{
				Name: "app", Image: "example/" + a.name + ":" + v,
				Ports: []corev1.ContainerPort{{Name: "grpc", ContainerPort: benchPort}},
				Env:   []corev1.EnvVar{{Name: "SERVICE", Value: a.name}, {Name: "VERSION", Value: v}},
			}}},
		}
		created, err := cs.CoreV1().Pods(a.ns).Create(ctx, pod, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			created, err = cs.CoreV1().Pods(a.ns).Get(ctx, pod.Name, metav1.GetOptions{})
		}
		if err != nil {
			return err
		}
		ip := a.ip(j)
		if created.Status.PodIP != ip {
			created.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}},
				Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}
			if _, err := cs.CoreV1().Pods(a.ns).UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
				return err
			}
		}
		slice.Endpoints = append(slice.Endpoints, discoveryv1.Endpoint{Addresses: []string{ip},
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)},
			TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: a.ns, Name: pod.Name}})
	}
	if _, err := cs.DiscoveryV1().EndpointSlices(a.ns).Create(ctx, slice, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	return nil
}

// ---- the push benchmark's mesh ----

// benchPushApp is service i of the push benchmark's mesh.
func benchPushApp(i int) benchApp {
	return benchApp{ns: benchPushNS, name: fmt.Sprintf("svc-%03d", i), pods: benchPods,
		ip: func(j int) string { return fmt.Sprintf("10.20.%d.%d", i, j+1) }}
}

// benchRouteYAML is the TrafficRoute of service i with weight w on v1 and
// the rest on v2, as a document of the file source.
func benchRouteYAML(i, w int) string {
	a := benchPushApp(i)
	return fmt.Sprintf(`apiVersion: glassmesh.io/v1alpha1
kind: TrafficRoute
metadata: {name: %[1]s, namespace: %[2]s}
spec:
  service: %[1]s
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
  rules:
    - destinations: [{subset: v1, weight: %[3]d}, {subset: v2, weight: %[4]d}]
`, a.name, a.ns, w, 100-w)
}

// benchRouteSpec is the same route's spec as a custom resource holds it.
func benchRouteSpec(i, w int) map[string]any {
	return map[string]any{
		"service": benchPushApp(i).name,
		"subsets": []any{map[string]any{"name": "v1", "labels": map[string]any{"version": "v1"}}, map[string]any{"name": "v2", "labels": map[string]any{"version": "v2"}}},
		"rules":   []any{benchRouteRule(w)},
	}
}

func benchRouteRule(w int) map[string]any {
	return map[string]any{"destinations": []any{map[string]any{"subset": "v1", "weight": int64(w)}, map[string]any{"subset": "v2", "weight": int64(100 - w)}}}
}

// benchNextWeight is the v1 weight of the k-th change: 1..49, never the
// initial 50 and never the weight the same service had 100 changes before.
func benchNextWeight(k int) int { return 1 + k%49 }

// benchPush holds the push benchmark's objects in the API server. The
// informer-memory benchmark removes them, so its caches hold its own
// objects only.
var benchPush struct {
	mu      sync.Mutex
	created bool
	changes int // changes made through the API server so far
}

func benchEnsurePushMesh(b *testing.B) {
	b.Helper()
	benchPush.mu.Lock()
	defer benchPush.mu.Unlock()
	if benchPush.created {
		return
	}
	cfg, cs, dyn := benchClient(b)
	ctx := context.Background()
	if _, err := kubetest.InstallCRDs(ctx, cfg, crdDir); err != nil {
		b.Fatal(err)
	}
	benchEnsureNamespace(b, cs, benchPushNS)
	benchParallel(b, "push mesh: services, pods, EndpointSlices, TrafficRoutes", benchServices, 16, func(i int) error {
		if err := benchPushApp(i).create(ctx, cs); err != nil {
			return err
		}
		name := benchPushApp(i).name
		obj := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "glassmesh.io/v1alpha1", "kind": "TrafficRoute",
			"metadata": map[string]any{"name": name, "namespace": benchPushNS},
			"spec":     benchRouteSpec(i, 50),
		}}
		if _, err := dyn.Resource(benchTrafficRoutes).Namespace(benchPushNS).Create(ctx, obj, metav1.CreateOptions{}); err != nil {
			if !apierrors.IsAlreadyExists(err) {
				return err
			}
			patch, _ := json.Marshal(map[string]any{"spec": benchRouteSpec(i, 50)})
			if _, err := dyn.Resource(benchTrafficRoutes).Namespace(benchPushNS).Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
				return err
			}
		}
		return nil
	})
	benchPush.created, benchPush.changes = true, 0
}

func benchRemovePushMesh(b *testing.B) {
	b.Helper()
	benchPush.mu.Lock()
	defer benchPush.mu.Unlock()
	_, cs, dyn := benchClient(b)
	ctx := context.Background()
	if _, err := cs.CoreV1().Namespaces().Get(ctx, benchPushNS, metav1.GetOptions{}); apierrors.IsNotFound(err) {
		return
	}
	all := metav1.ListOptions{}
	for _, err := range []error{
		cs.CoreV1().Pods(benchPushNS).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: ptr.To(int64(0))}, all),
		cs.DiscoveryV1().EndpointSlices(benchPushNS).DeleteCollection(ctx, metav1.DeleteOptions{}, all),
		dyn.Resource(benchTrafficRoutes).Namespace(benchPushNS).DeleteCollection(ctx, metav1.DeleteOptions{}, all),
	} {
		if err != nil && !apierrors.IsNotFound(err) {
			b.Fatal(err)
		}
	}
	benchParallel(b, "remove the push mesh's services", benchServices, 8, func(i int) error {
		err := cs.CoreV1().Services(benchPushNS).Delete(ctx, benchPushApp(i).name, metav1.DeleteOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return err
	})
	benchPush.created = false
}

// benchWriteMeshDir writes the push mesh as the file source reads it:
// services.yaml, workloads.yaml and routes.yaml (weights[i] on v1).
func benchWriteMeshDir(b *testing.B, dir string, weights []int) {
	b.Helper()
	var svcs, wls strings.Builder
	for i := range benchServices {
		a := benchPushApp(i)
		fmt.Fprintf(&svcs, "---\napiVersion: glassmesh.io/v1alpha1\nkind: Service\nmetadata: {name: %s, namespace: %s, labels: {app: %s}}\n"+
			"spec:\n  ports: [{name: grpc, port: %d, protocol: GRPC}]\n  selector: {app: %s}\n", a.name, a.ns, a.name, benchPort, a.name)
		for _, v := range []string{"v1", "v2"} {
			fmt.Fprintf(&wls, "---\napiVersion: glassmesh.io/v1alpha1\nkind: Workload\nmetadata: {name: %s-%s, namespace: %s, labels: {app: %s, version: %s}}\n"+
				"spec:\n  serviceAccount: %s\n  endpoints:\n", a.name, v, a.ns, a.name, v, a.name)
			for j := range a.pods {
				if a.version(j) == v {
					fmt.Fprintf(&wls, "    - {address: %s, ports: {grpc: %d}}\n", a.ip(j), benchPort)
				}
			}
		}
	}
	for name, body := range map[string]string{"services.yaml": svcs.String(), "workloads.yaml": wls.String()} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	if err := benchWriteRoutes(dir, weights); err != nil {
		b.Fatal(err)
	}
}

// benchWriteRoutes rewrites routes.yaml atomically, as editors and
// config-management tools do: a hidden temporary file renamed over it.
func benchWriteRoutes(dir string, weights []int) error {
	var sb strings.Builder
	for i, w := range weights {
		sb.WriteString("---\n")
		sb.WriteString(benchRouteYAML(i, w))
	}
	tmp := filepath.Join(dir, ".routes.yaml.tmp")
	if err := os.WriteFile(tmp, []byte(sb.String()), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, "routes.yaml"))
}

// ---- a glassmesh process ----

// benchRunGlassmesh starts `glassmesh run ARGS` and returns its xDS address;
// the process ends with the benchmark.
func benchRunGlassmesh(b *testing.B, args ...string) (grpcAddr string) {
	b.Helper()
	return startGlassmesh(b, "bench: glassmesh", nil, args...).grpcAddr
}

// ---- simulated proxyless clients ----

// benchFleet is n raw ADS clients subscribed by name to the push mesh's
// listeners, routes, clusters and endpoints, ACKing every response.
type benchFleet struct {
	n       int
	names   map[string][]string
	clients []*benchADSClient

	ready     atomic.Int64 // clients that had a response of every type
	responses atomic.Int64

	// An update: gen counts them; a client counts itself once per gen, on
	// the first RouteConfiguration version other than baseline it ACKs.
	gen      atomic.Int64
	baseline atomic.Pointer[string]
	updated  atomic.Int64
	done     chan struct{}

	// The probe (client 0) decodes what it receives, to check the content.
	probe struct {
		mu      sync.Mutex
		seen    map[string]map[string]bool // names per type
		bytes   int64                      // response bytes until in sync
		watch   string                     // route whose v1 weight is noted
		weights map[int64]int              // watch's v1 weight in the first new version, by gen
	}
}

type benchADSClient struct {
	rds     atomic.Pointer[string] // last RouteConfiguration version ACKed
	counted int64                  // last gen counted (client goroutine only)
}

func benchNames(ns string) map[string][]string {
	names := map[string][]string{}
	for i := range benchServices {
		a := benchPushApp(i)
		fqdn := a.name + "." + ns + ".svc.cluster.local"
		names[benchLDS] = append(names[benchLDS], fmt.Sprintf("%s.%s:%d", a.name, ns, benchPort))
		names[benchRDS] = append(names[benchRDS], fmt.Sprintf("%s:%d", fqdn, benchPort))
		for _, v := range []string{"v1", "v2"} {
			c := fmt.Sprintf("outbound|%d|%s|%s", benchPort, v, fqdn)
			names[benchCDS] = append(names[benchCDS], c)
			names[benchEDS] = append(names[benchEDS], c)
		}
	}
	return names
}

// benchNode is a proxyless client's node: an id of naming.NodeID's shape
// and grpc-go's generator.
func benchNode(ns string, i int) *corev3.Node {
	return &corev3.Node{Id: naming.NodeID(fmt.Sprintf("10.99.%d.%d", i/250, i%250+1), fmt.Sprintf("bench-client-%05d", i), ns),
		Metadata: &structpb.Struct{Fields: map[string]*structpb.Value{
			naming.NodeMetaNamespace:    structpb.NewStringValue(ns),
			naming.NodeMetaWorkloadName: structpb.NewStringValue("bench-client"),
			naming.NodeMetaGenerator:    structpb.NewStringValue(naming.GeneratorGRPC),
		}}}
}

// benchConnect starts n clients over benchConns connections to addr and
// waits until they are in sync; disconnect ends them.
func benchConnect(b *testing.B, addr, ns string, n int) (f *benchFleet, disconnect func()) {
	b.Helper()
	f = &benchFleet{n: n, names: benchNames(ns), done: make(chan struct{}, 1)}
	f.probe.seen = map[string]map[string]bool{}
	f.probe.weights = map[int64]int{}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var conns []*grpc.ClientConn
	disconnect = func() {
		cancel()
		for _, cc := range conns {
			_ = cc.Close()
		}
		wg.Wait()
	}
	for range min(n, benchConns) {
		cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithInitialWindowSize(1<<20), grpc.WithInitialConnWindowSize(1<<24),
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)))
		if err != nil {
			disconnect()
			b.Fatal(err)
		}
		conns = append(conns, cc)
	}
	for i := range n {
		c := &benchADSClient{}
		f.clients = append(f.clients, c)
		st, err := discovery.NewAggregatedDiscoveryServiceClient(conns[i%len(conns)]).StreamAggregatedResources(ctx)
		if err != nil {
			disconnect()
			b.Fatal(err)
		}
		wg.Go(func() { f.run(st, benchNode(ns, i), c, i == 0) })
	}
	if err := f.waitQuiet(5 * time.Minute); err != nil {
		disconnect()
		b.Fatal(err)
	}
	return f, disconnect
}

func (f *benchFleet) run(st grpc.BidiStreamingClient[discovery.DiscoveryRequest, discovery.DiscoveryResponse], node *corev3.Node, c *benchADSClient, probe bool) {
	benchADS(st, node, f.names, func(r *discovery.DiscoveryResponse, ready bool) {
		f.responses.Add(1)
		if ready {
			f.ready.Add(1)
		}
		var weight int
		if probe {
			weight = f.note(r)
		}
		if r.GetTypeUrl() != benchRDS {
			return
		}
		version := r.GetVersionInfo()
		c.rds.Store(&version)
		if g := f.gen.Load(); g > c.counted {
			if base := f.baseline.Load(); base != nil && version != *base {
				c.counted = g
				if probe {
					f.probe.mu.Lock()
					f.probe.weights[g] = weight
					f.probe.mu.Unlock()
				}
				if f.updated.Add(1) == int64(f.n) {
					f.done <- struct{}{}
				}
			}
		}
	})
}

// benchADS is a proxyless client on st: it asks for names as node, then
// ACKs every response and hands it to each, with ready true once (the
// first time it has had a response of every type), until the stream ends.
func benchADS(st grpc.BidiStreamingClient[discovery.DiscoveryRequest, discovery.DiscoveryResponse], node *corev3.Node,
	names map[string][]string, each func(r *discovery.DiscoveryResponse, ready bool)) {
	for i, typ := range benchTypes {
		req := &discovery.DiscoveryRequest{TypeUrl: typ, ResourceNames: names[typ]}
		if i == 0 {
			req.Node = node
		}
		if st.Send(req) != nil {
			return
		}
	}
	seen := map[string]bool{}
	for {
		r, err := st.Recv()
		if err != nil {
			return
		}
		typ := r.GetTypeUrl()
		if st.Send(&discovery.DiscoveryRequest{TypeUrl: typ, ResourceNames: names[typ], VersionInfo: r.GetVersionInfo(), ResponseNonce: r.GetNonce()}) != nil {
			return
		}
		ready := false
		if !seen[typ] {
			seen[typ] = true
			ready = len(seen) == len(benchTypes)
		}
		each(r, ready)
	}
}

// note records what the probe received; for a RouteConfiguration response
// it returns the v1 weight of the watched route in it, -1 when absent.
func (f *benchFleet) note(r *discovery.DiscoveryResponse) int {
	f.probe.mu.Lock()
	defer f.probe.mu.Unlock()
	typ := r.GetTypeUrl()
	if f.probe.seen[typ] == nil {
		f.probe.seen[typ] = map[string]bool{}
	}
	if f.gen.Load() == 0 {
		f.probe.bytes += int64(proto.Size(r))
	}
	weight := -1
	for _, a := range r.GetResources() {
		m, err := a.UnmarshalNew()
		if err != nil {
			continue
		}
		if named, ok := m.(interface{ GetName() string }); ok {
			f.probe.seen[typ][named.GetName()] = true
		} else if cla, ok := m.(*endpointv3.ClusterLoadAssignment); ok {
			f.probe.seen[typ][cla.GetClusterName()] = true
		}
		rc, ok := m.(*routev3.RouteConfiguration)
		if !ok {
			continue
		}
		if rc.GetName() != f.probe.watch {
			continue
		}
		for _, vh := range rc.GetVirtualHosts() {
			for _, rt := range vh.GetRoutes() {
				for _, wc := range rt.GetRoute().GetWeightedClusters().GetClusters() {
					if strings.Contains(wc.GetName(), "|v1|") {
						weight = int(wc.GetWeight().GetValue())
					}
				}
			}
		}
	}
	return weight
}

// complete says whether the probe has every resource it asked for.
func (f *benchFleet) complete() bool {
	f.probe.mu.Lock()
	defer f.probe.mu.Unlock()
	for _, typ := range benchTypes {
		if len(f.probe.seen[typ]) < len(f.names[typ]) {
			return false
		}
	}
	return true
}

// waitQuiet waits until every client is in sync at the same route version
// and nothing has been received for half a second.
func (f *benchFleet) waitQuiet(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	last, quietSince := int64(-1), time.Now()
	for {
		if r := f.responses.Load(); r != last {
			last, quietSince = r, time.Now()
		}
		if time.Since(quietSince) > 500*time.Millisecond && f.ready.Load() == int64(f.n) && f.complete() && f.sameRoutes() {
			return nil
		}
		if time.Now().After(deadline) {
			f.probe.mu.Lock()
			defer f.probe.mu.Unlock()
			have := map[string]int{}
			for t, s := range f.probe.seen {
				have[t[strings.LastIndex(t, ".")+1:]] = len(s)
			}
			return fmt.Errorf("clients not in sync after %s: %d of %d had every type; the probe has %v", timeout, f.ready.Load(), f.n, have)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (f *benchFleet) sameRoutes() bool {
	v := f.clients[0].rds.Load()
	if v == nil {
		return false
	}
	for _, c := range f.clients[1:] {
		if w := c.rds.Load(); w == nil || *w != *v {
			return false
		}
	}
	return true
}

// update times change until every client has ACKed a new route version,
// and checks that the probe's first new version carries weight w on the
// route named route.
func (f *benchFleet) update(b *testing.B, route string, w int, change func() error) time.Duration {
	b.Helper()
	f.probe.mu.Lock()
	f.probe.watch = route
	f.probe.mu.Unlock()
	f.baseline.Store(f.clients[0].rds.Load())
	f.updated.Store(0)
	g := f.gen.Add(1)
	start := time.Now()
	if err := change(); err != nil {
		b.Fatal(err)
	}
	select {
	case <-f.done:
	case <-time.After(2 * time.Minute):
		b.Fatalf("after 2m, %d of %d clients have a new route version", f.updated.Load(), f.n)
	}
	took := time.Since(start)
	f.probe.mu.Lock()
	got := f.probe.weights[g]
	f.probe.mu.Unlock()
	if got != w {
		b.Fatalf("the first new route version has v1 weight %d on %s, want %d", got, route, w)
	}
	return took
}

// BenchmarkKubernetesPush: one TrafficRoute weight change, through the API
// server (glassmesh --source kubernetes) or by rewriting the YAML file
// (glassmesh --config DIR), until 1,000 proxyless clients ACK the new
// RouteConfiguration.
func BenchmarkKubernetesPush(b *testing.B) {
	b.Run(fmt.Sprintf("source=kubernetes/clients=%d", benchClients), func(b *testing.B) {
		benchEnsurePushMesh(b)
		_, _, dyn := benchClient(b)
		// --leader-elect=false: this one replica leads (writes status), as a
		// single-replica install does, whatever Lease others left behind.
		addr := benchRunGlassmesh(b, "--source", "kubernetes", "--kubeconfig", server.Kubeconfig, "--kubernetes.namespaces", benchPushNS,
			"--leader-elect=false")
		benchPushRun(b, addr, func(i, w int) error {
			patch, _ := json.Marshal(map[string]any{"spec": map[string]any{"rules": []any{benchRouteRule(w)}}})
			_, err := dyn.Resource(benchTrafficRoutes).Namespace(benchPushNS).Patch(context.Background(), benchPushApp(i).name,
				types.MergePatchType, patch, metav1.PatchOptions{})
			return err
		}, &benchPush.changes)
	})
	b.Run(fmt.Sprintf("source=file/clients=%d", benchClients), func(b *testing.B) {
		dir := b.TempDir()
		weights := make([]int, benchServices)
		for i := range weights {
			weights[i] = 50
		}
		benchWriteMeshDir(b, dir, weights)
		addr := benchRunGlassmesh(b, "--config", dir)
		changes := 0
		benchPushRun(b, addr, func(i, w int) error {
			weights[i] = w
			return benchWriteRoutes(dir, weights)
		}, &changes)
	})
}

// benchPushRun connects the clients to the glassmesh at addr and times
// changes of route (k mod 100), k counting from *changes.
func benchPushRun(b *testing.B, addr string, change func(i, w int) error, changes *int) {
	began := time.Now()
	f, disconnect := benchConnect(b, addr, benchPushNS, benchClients)
	defer disconnect()
	b.Logf("%d clients in sync %s after glassmesh started; %d KiB each", benchClients, time.Since(began).Round(10*time.Millisecond), f.probe.bytes>>10)
	base := f.responses.Load()
	var times []time.Duration
	for b.Loop() {
		k := *changes
		*changes++
		i, w := k%benchServices, benchNextWeight(k)
		route := fmt.Sprintf("%s.%s.svc.cluster.local:%d", benchPushApp(i).name, benchPushNS, benchPort)
		times = append(times, f.update(b, route, w, func() error { return change(i, w) }))
		b.StopTimer()
		if err := f.waitQuiet(time.Minute); err != nil { // trailing responses land before the next change
			b.Fatal(err)
		}
		b.StartTimer()
	}
	var sum time.Duration
	for _, t := range times {
		sum += t
	}
	slices.Sort(times)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(sum)/float64(len(times)), "ms/update")
	b.ReportMetric(ms(times[len(times)/2]), "p50-ms")
	b.ReportMetric(ms(times[len(times)-1]), "max-ms")
	b.ReportMetric(float64(f.responses.Load()-base)/float64(f.n*len(times)), "resp/client/update")
	b.ReportMetric(float64(f.probe.bytes)/1024, "sync-KiB/client")
	b.ReportMetric(float64(f.n), "clients")
}

// ---- informer memory ----

// benchHeap collects garbage and reads the live heap.
func benchHeap() uint64 {
	runtime.GC()
	runtime.GC() // the second empties the sync.Pools' victim caches
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// benchMemApp is service i of the informer benchmark: headless, as the test
// API server's service CIDR is a /24 (fewer than 1,000 cluster IPs).
func benchMemApp(i int) benchApp {
	return benchApp{ns: benchMemNS, name: fmt.Sprintf("app-%04d", i), pods: benchMemPods, headless: true,
		ip: func(j int) string { p := i*benchMemPods + j; return fmt.Sprintf("10.64.%d.%d", p/250, p%250+1) }}
}

var benchMemOnce sync.Once

// benchEnsureMemMesh creates the informer benchmark's mesh once.
func benchEnsureMemMesh(b *testing.B) {
	cfg, cs, _ := benchClient(b)
	ctx := context.Background()
	benchMemOnce.Do(func() {
		if _, err := kubetest.InstallCRDs(ctx, cfg, crdDir); err != nil {
			b.Fatal(err)
		}
		benchEnsureNamespace(b, cs, benchMemNS)
		benchParallel(b, "informer mesh: 1,000 services × 10 pods, EndpointSlices", benchMemServices, 32, func(i int) error {
			return benchMemApp(i).create(ctx, cs)
		})
	})
}

// BenchmarkInformerMemory: the heap the Kubernetes source's informer caches
// take at 1,000 Services and 10,000 Pods (with 1,000 EndpointSlices), in
// this process: a live-heap reading before the source starts, one after
// its first model, and one after it stopped again.
func BenchmarkInformerMemory(b *testing.B) {
	b.Run(fmt.Sprintf("services=%d/pods=%d", benchMemServices, benchMemServices*benchMemPods), func(b *testing.B) {
		cfg, cs, _ := benchClient(b)
		ctx := context.Background()
		if _, err := kubetest.InstallCRDs(ctx, cfg, crdDir); err != nil {
			b.Fatal(err)
		}
		// The source's informers watch every namespace (scoping happens when
		// the model is built), so the push benchmark's objects would count.
		benchRemovePushMesh(b)
		benchEnsureMemMesh(b)
		// What the caches hold: everything in the cluster.
		counts := map[string]int{}
		pods, err := cs.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
		if err != nil {
			b.Fatal(err)
		}
		counts["pods"] = len(pods.Items)
		pods = nil
		svcs, err := cs.CoreV1().Services("").List(ctx, metav1.ListOptions{})
		if err != nil {
			b.Fatal(err)
		}
		counts["services"] = len(svcs.Items)
		svcs = nil
		eps, err := cs.DiscoveryV1().EndpointSlices("").List(ctx, metav1.ListOptions{})
		if err != nil {
			b.Fatal(err)
		}
		counts["slices"] = len(eps.Items)
		eps = nil
		b.Logf("the cluster holds %d services, %d pods, %d EndpointSlices", counts["services"], counts["pods"], counts["slices"])

		logger := slog.New(slog.NewTextHandler(io.Discard, nil))
		srcCfg := rest.CopyConfig(server.Config) // client-go's default QPS, as glassmesh run has
		var grown, freed, syncs []float64
		for b.Loop() {
			before := benchHeap()
			start := time.Now()
			rctx, cancel := context.WithCancel(ctx)
			k, err := kube.New(kube.Config{Rest: srcCfg, Namespaces: []string{benchMemNS}}, logger)
			if err != nil {
				b.Fatal(err)
			}
			type shape struct{ services, workloads, endpoints, errors int }
			first := make(chan shape, 1)
			errc := make(chan error, 1)
			go func() {
				errc <- k.Run(rctx, func(r model.Result) []source.ObjectStatus {
					s := shape{errors: len(r.Errors)}
					if r.Mesh != nil {
						s.services, s.workloads = len(r.Mesh.Services), len(r.Mesh.Workloads)
						for _, w := range r.Mesh.Workloads {
							s.endpoints += len(w.Spec.Endpoints)
						}
					}
					select {
					case first <- s:
					default:
					}
					return nil
				})
			}()
			var got shape
			select {
			case got = <-first:
			case err := <-errc:
				b.Fatalf("the source ended: %v", err)
			case <-time.After(5 * time.Minute):
				b.Fatal("no model from the Kubernetes source after 5m")
			}
			took := time.Since(start)
			if got.services != benchMemServices || got.endpoints != benchMemServices*benchMemPods || got.errors != 0 {
				b.Fatalf("first model: %+v, want %d services with %d endpoints and no errors", got, benchMemServices, benchMemServices*benchMemPods)
			}
			time.Sleep(500 * time.Millisecond) // let the list responses' buffers go
			after := benchHeap()
			runtime.KeepAlive(k)
			cancel()
			if err := <-errc; err != nil {
				b.Fatal(err)
			}
			k = nil
			time.Sleep(time.Second) // the informers' goroutines end
			stopped := benchHeap()
			b.Logf("model %+v in %s; live heap %.1f → %.1f MiB, %.1f MiB after the source stopped",
				got, took.Round(time.Millisecond), benchMiB(before), benchMiB(after), benchMiB(stopped))
			grown = append(grown, float64(after)-float64(before))
			freed = append(freed, float64(after)-float64(stopped))
			syncs = append(syncs, float64(took.Microseconds())/1000)
		}
		// Medians: the first start also grows the API server's own heap
		// in this process (its list paths), which later starts do not.
		median := func(xs []float64) float64 {
			slices.Sort(xs)
			return xs[len(xs)/2]
		}
		b.ReportMetric(median(grown)/(1<<20), "MiB")
		b.ReportMetric(median(freed)/(1<<20), "freed-MiB")
		b.ReportMetric(median(grown)/float64(counts["pods"]), "B/pod")
		b.ReportMetric(median(syncs), "sync-ms")
		b.ReportMetric(float64(counts["pods"]), "pods")
		b.ReportMetric(float64(counts["services"]), "services")
	})
}

func benchMiB(n uint64) float64 { return float64(n) / (1 << 20) }
