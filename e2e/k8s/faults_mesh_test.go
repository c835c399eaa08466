//go:build faults

package k8s

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/xds"
	"google.golang.org/protobuf/types/known/structpb"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"

	"github.com/glassmesh/glassmesh/demo"
	"github.com/glassmesh/glassmesh/e2e/k8s/kubetest"
	sidecarconfig "github.com/glassmesh/glassmesh/sidecar-config"
)

// The fixture of the API-server fault case (faults_test.go): a mesh of
// real backends behind EndpointSlices, grpc-go xDS clients calling them
// without pause, and what each glassmesh replica logs and serves, with
// times.

// meshBackend serves app answering {"version": version} on a free port of
// ip; it stops when the test ends.
func meshBackend(t *testing.T, ip, app, version string) int {
	t.Helper()
	lis, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	demo.Register(srv, app, func(context.Context, *structpb.Struct) (*structpb.Struct, error) {
		return structpb.NewStruct(map[string]any{"version": version})
	})
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	return lis.Addr().(*net.TCPAddr).Port
}

// meshService creates Service app (one grpc port, 9080) in ns.
func meshService(t *testing.T, cs kubernetes.Interface, ns, app string) {
	t.Helper()
	if _, err := cs.CoreV1().Services(ns).Create(context.Background(), &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: app, Namespace: ns},
		Spec: corev1.ServiceSpec{Selector: map[string]string{"app": app},
			Ports: []corev1.ServicePort{{Name: "grpc", Port: 9080}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// meshPod creates a running pod of app-version at ip, as a kubelet would
// report it, and its EndpointSlice app-version pointing at port.
func meshPod(t *testing.T, cs kubernetes.Interface, ns, ip, app, version string, port int) {
	t.Helper()
	ctx := context.Background()
	name := app + "-" + version + "-5d8f9-abcde"
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns,
			Labels: map[string]string{"app": app, "version": version, "pod-template-hash": "5d8f9"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: app + "-" + version + "-5d8f9",
				UID: types.UID(fmt.Sprintf("00000000-0000-0000-0000-%012x", len(app)*100+len(version))), Controller: ptr.To(true)}}},
		Spec: corev1.PodSpec{ServiceAccountName: app, Containers: []corev1.Container{{Name: "app", Image: "example/" + app}}},
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
		ObjectMeta:  metav1.ObjectMeta{Name: app + "-" + version, Namespace: ns, Labels: map[string]string{discoveryv1.LabelServiceName: app}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{{Addresses: []string{ip}, Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(true)},
			TargetRef: &corev1.ObjectReference{Kind: "Pod", Name: name, Namespace: ns}}},
		Ports: []discoveryv1.EndpointPort{{Name: ptr.To("grpc"), Port: ptr.To(int32(port)), Protocol: ptr.To(corev1.ProtocolTCP)}},
	}
	if _, err := cs.DiscoveryV1().EndpointSlices(ns).Create(ctx, slice, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// moveEndpoint points EndpointSlice app-v1 at port, through the API server.
func moveEndpoint(ctx context.Context, cs kubernetes.Interface, ns, app string, port int) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		es, err := cs.DiscoveryV1().EndpointSlices(ns).Get(ctx, app+"-v1", metav1.GetOptions{})
		if err != nil {
			return err
		}
		es.Ports[0].Port = ptr.To(int32(port))
		_, err = cs.DiscoveryV1().EndpointSlices(ns).Update(ctx, es, metav1.UpdateOptions{})
		return err
	})
}

// xdsApp is one proxyless app: one grpc-go xDS client (its own bootstrap
// and ADS stream) to one glassmesh replica, with a channel per service.
type xdsApp struct {
	name    string
	builder resolver.Builder
}

func newXDSApp(t *testing.T, name, grpcAddr, ns string) *xdsApp {
	t.Helper()
	b, err := sidecarconfig.ProxylessBootstrapFor(sidecarconfig.NodeInfo{Namespace: ns, Workload: "productpage", Instance: name,
		IP: "127.0.0.1", Labels: map[string]string{"app": "productpage"}}, sidecarconfig.BootstrapOptions{XDSAddr: grpcAddr})
	if err != nil {
		t.Fatal(err)
	}
	builder, err := xds.NewXDSResolverWithConfigForTesting(b)
	if err != nil {
		t.Fatal(err)
	}
	return &xdsApp{name: name, builder: builder}
}

// dial opens a channel to service app in ns through the app's xDS client.
func (a *xdsApp) dial(t *testing.T, app, ns string) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient("xds:///"+app+"."+ns+":9080", grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithResolvers(a.builder))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// caller calls one service without pause (a call every 20 ms) and counts
// what answered.
type caller struct {
	name string

	mu       sync.Mutex
	ok, fail int
	errs     []string             // the first few failures, with times
	firstBy  map[string]time.Time // when each answering version first answered
	lastSeen string
}

// callLoop starts calling app over cc until the test ends. A call waits
// for a ready connection for at most 5 s: a client that lost its routes or
// endpoints fails it.
func callLoop(t *testing.T, name string, cc *grpc.ClientConn, app string) *caller {
	c := &caller{name: name, firstBy: map[string]time.Time{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
			out, err := demo.Call(cctx, cc, app, nil, grpc.WaitForReady(true))
			ccancel()
			if ctx.Err() != nil {
				return
			}
			c.note(out, err)
			select {
			case <-ctx.Done():
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	return c
}

func (c *caller) note(out *structpb.Struct, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		c.fail++
		if len(c.errs) < 5 {
			c.errs = append(c.errs, time.Now().Format("15:04:05.000")+" "+err.Error())
		}
		return
	}
	c.ok++
	v := out.Fields["version"].GetStringValue()
	if _, ok := c.firstBy[v]; !ok {
		c.firstBy[v] = time.Now()
	}
	c.lastSeen = v
}

// counts is how many calls succeeded and failed so far.
func (c *caller) counts() (ok, fail int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ok, c.fail
}

// answeredBy says when version first answered (zero: not yet).
func (c *caller) answeredBy(version string) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.firstBy[version]
}

func (c *caller) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return fmt.Sprintf("%s: %d ok, %d failed %v", c.name, c.ok, c.fail, c.errs)
}

// logEvent is one line a replica logged that the case looks at.
type logEvent struct {
	At      time.Time
	Msg     string
	Verdict string
	Step    int
}

// replicaLog keeps a replica's leadership changes and canary decisions.
type replicaLog struct {
	mu     sync.Mutex
	events []logEvent
}

// show is startGlassmesh's line filter: it records the lines the case
// reads and has them shown in the test's log.
func (l *replicaLog) show(line string) bool {
	if !strings.Contains(line, "canary decision") && !strings.Contains(line, "leading") && !strings.Contains(line, "following") &&
		!strings.Contains(line, "leader elected") {
		return false
	}
	var e struct {
		Time    time.Time
		Msg     string
		Verdict string
		Step    int
	}
	if json.Unmarshal([]byte(line), &e) == nil {
		l.mu.Lock()
		l.events = append(l.events, logEvent{At: e.Time, Msg: e.Msg, Verdict: e.Verdict, Step: e.Step})
		l.mu.Unlock()
	}
	return true
}

// decisions lists the canary decisions logged in [from, to).
func (l *replicaLog) decisions(from, to time.Time) []logEvent {
	return l.find(from, to, func(e logEvent) bool { return e.Msg == "canary decision" })
}

// took lists when the replica logged taking the lead in [from, to).
func (l *replicaLog) took(from, to time.Time) []logEvent {
	return l.find(from, to, func(e logEvent) bool { return strings.HasPrefix(e.Msg, "leading:") })
}

func (l *replicaLog) find(from, to time.Time, f func(logEvent) bool) []logEvent {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []logEvent
	for _, e := range l.events {
		if !e.At.Before(from) && e.At.Before(to) && f(e) {
			out = append(out, e)
		}
	}
	return out
}

// weightChange is the canary's weight in a replica's served config, from At.
type weightChange struct {
	At time.Time
	V2 int64
}

// weightWatch polls a replica's served weights of reviews every 100 ms and
// keeps every change.
type weightWatch struct {
	mu      sync.Mutex
	changes []weightChange
}

func watchWeights(t *testing.T, r *replica, ns string) *weightWatch {
	w := &weightWatch{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			if got, err := r.servedWeights(ns); err == nil {
				w.mu.Lock()
				if n := len(w.changes); n == 0 || w.changes[n-1].V2 != got["v2"] {
					w.changes = append(w.changes, weightChange{At: time.Now(), V2: got["v2"]})
				}
				w.mu.Unlock()
			}
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	return w
}

// between lists the changes in [from, to).
func (w *weightWatch) between(from, to time.Time) []weightChange {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []weightChange
	for _, c := range w.changes {
		if !c.At.Before(from) && c.At.Before(to) {
			out = append(out, c)
		}
	}
	return out
}

// decreases lists every change that lowered the canary's weight.
func (w *weightWatch) decreases() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for i := 1; i < len(w.changes); i++ {
		if w.changes[i].V2 < w.changes[i-1].V2 {
			out = append(out, fmt.Sprintf("%s: %d → %d", w.changes[i].At.Format("15:04:05.000"), w.changes[i-1].V2, w.changes[i].V2))
		}
	}
	return out
}

// last is the weight served now.
func (w *weightWatch) last() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.changes) == 0 {
		return -1
	}
	return w.changes[len(w.changes)-1].V2
}

// writeKubeconfig writes a kubeconfig for cfg into the test's temp dir.
func writeKubeconfig(t *testing.T, name string, api *kubetest.Restartable, addr string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := kubetest.WriteKubeconfig(path, api.ConfigFor(addr)); err != nil {
		t.Fatal(err)
	}
	return path
}

// apiserverLog is a file for the restartable API server's log lines,
// shown by name when the test fails.
func apiserverLog(t *testing.T) *os.File {
	t.Helper()
	f, err := os.CreateTemp("", "kube-apiserver-faults-*.log")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		f.Close()
		if t.Failed() {
			t.Logf("kube-apiserver (restartable) log: %s", f.Name())
		} else {
			os.Remove(f.Name())
		}
	})
	return f
}
