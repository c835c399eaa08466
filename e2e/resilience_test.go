package e2e

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/glassmesh/glassmesh/demo"
)

// The resilience tests check spec.trafficPolicy with grpc-go's real xDS
// client: what glassmesh puts in proxyless clusters and routes must change
// what the client does, not only pass validation.

// resilienceMesh is reviews with one workload per port (versions a, b, c,
// ...), a subset "all" holding them all that takes every call, and the
// given trafficPolicy, written as a YAML flow mapping.
func resilienceMesh(policy string, ports ...int) string {
	var b strings.Builder
	b.WriteString(reviewsService)
	for i, p := range ports {
		v := string(rune('a' + i))
		fmt.Fprintf(&b, `---
apiVersion: glassmesh.io/v1alpha1
kind: Workload
metadata: {name: reviews-%s, namespace: default, labels: {app: reviews, version: %s}}
spec: {serviceAccount: reviews, endpoints: [{address: 127.0.0.1, ports: {grpc: %d}}]}
`, v, v, p)
	}
	fmt.Fprintf(&b, `---
apiVersion: glassmesh.io/v1alpha1
kind: TrafficRoute
metadata: {name: reviews, namespace: default}
spec:
  service: reviews
  subsets: [{name: all, labels: {app: reviews}}]
  rules:
    - destinations: [{subset: all, weight: 100}]
  trafficPolicy: %s
`, policy)
	return b.String()
}

// startResilience writes mesh to a new config directory, starts glassmesh
// on it (with extra flags) and checks that the mesh loaded without errors.
func startResilience(t *testing.T, mesh string, extra ...string) *instance {
	t.Helper()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "mesh.yaml"), mesh)
	gm := start(t, dir, extra...)
	var st meshConfig
	gm.getJSON(t, "/api/mesh/config", &st)
	if len(st.Errors) != 0 {
		t.Fatalf("mesh errors: %+v", st.Errors)
	}
	return gm
}

// recentCalls is a copy of the client's last answers.
func (ct *clientTraffic) recentCalls() []string {
	ct.mu.Lock()
	defer ct.mu.Unlock()
	return slices.Clone(ct.recent)
}

// clean reports whether the client's last 20 calls all succeeded.
func (ct *clientTraffic) clean() bool {
	r := ct.recentCalls()
	return len(r) == 20 && !slices.Contains(r, "error")
}

func TestResilienceOutlierDetection(t *testing.T) {
	const (
		interval = time.Second
		base     = 5 * time.Second
	)
	// With one endpoint of three failing every call, success rates are
	// 1, 1 and 0: mean 2/3, stdev √2/3, so the default stdevFactor (1.9)
	// asks for a success rate below -0.23 and never ejects; 1.0 does.
	for _, tc := range []struct{ name, algorithm string }{
		{"failurePercentage", "failurePercentage: {threshold: 50, minimumHosts: 3, requestVolume: 10}"},
		{"successRate", "successRate: {stdevFactor: 1000, minimumHosts: 3, requestVolume: 10}"},
	} {
		t.Run("with "+tc.name+" grpc-go ejects the failing endpoint of three and takes it back healed after baseEjectionTime", func(t *testing.T) {
			a, b, c := newCanaryBackend(t, "a"), newCanaryBackend(t, "b"), newCanaryBackend(t, "c")
			c.failing.Store(true)
			policy := fmt.Sprintf("{outlierDetection: {interval: %s, baseEjectionTime: %s, maxEjectionPercent: 33, %s}}", interval, base, tc.algorithm)
			gm := startResilience(t, resilienceMesh(policy, a.port, b.port, c.port))
			began := time.Now()
			ct := startClientTraffic(t, gm, 100)

			// Ejection needs one full interval of calls, then the next sweep:
			// about 2s once traffic flows.
			ct.waitAnswered(t, "error", 30*time.Second)
			failing := time.Now()
			worst := 0 // most failures seen in 20 calls before ejection
			eventually(t, 10*(interval+interval), func() error {
				if !ct.clean() {
					r := ct.recentCalls()
					worst = max(worst, strings.Count(strings.Join(r, " "), "error"))
					return fmt.Errorf("last calls still fail: %v", r)
				}
				return nil
			})
			ejected := time.Now()
			t.Logf("%s: c ejected %s after the client's first failed call (%s after it started); up to %d of 20 calls failed before, none after",
				tc.name, ejected.Sub(failing).Round(10*time.Millisecond), ejected.Sub(began).Round(10*time.Millisecond), worst)
			// While c is out, every call succeeds.
			time.Sleep(base / 5)
			if r := ct.recentCalls(); slices.Contains(r, "error") || slices.Contains(r, "c") {
				t.Fatalf("%s after ejection: last calls %v, want only a and b", base/5, r)
			}

			// Healed, c is back at the first sweep after baseEjectionTime.
			c.failing.Store(false)
			ct.waitAnswered(t, "c", 5*(base+interval))
			back := time.Since(ejected)
			t.Logf("%s: healed c answered again %s after its ejection was seen (baseEjectionTime %s, interval %s)", tc.name,
				back.Round(10*time.Millisecond), base, interval)
			if back < base/2 {
				t.Fatalf("c answered %s after ejection, before baseEjectionTime %s", back, base)
			}
			if r := ct.recentCalls(); slices.Contains(r, "error") {
				t.Fatalf("calls fail after c returned: %v", r)
			}
		})
	}
}

func TestResilienceConsistentHash(t *testing.T) {
	ports := []int{backend(t, "reviews", "a"), backend(t, "reviews", "b"), backend(t, "reviews", "c")}
	// A mixed-case name: gRPC metadata keys are lower-case, and so must be
	// the header grpc-go hashes.
	gm := startResilience(t, resilienceMesh("{loadBalancer: {consistentHash: {httpHeaderName: X-User}}}", ports...))
	cc := xdsClient(t, gm.GRPCAddr, "productpage", demo.Target("reviews"))

	users := make([]string, 30)
	for i := range users {
		users[i] = fmt.Sprintf("user-%d", i)
	}
	home := map[string]string{} // user → the version that answered
	t.Run("calls with the same header value all land on one endpoint", func(t *testing.T) {
		for _, u := range users {
			got := split(t, cc, 20, "x-user", u)
			if len(got) != 1 {
				t.Fatalf("x-user %s: answers %v, want one version", u, got)
			}
			for v := range got {
				home[u] = v
			}
		}
	})
	t.Run("different header values spread over more than one endpoint", func(t *testing.T) {
		spread := map[string]int{}
		for _, v := range home {
			spread[v]++
		}
		t.Logf("%d users over endpoints: %v", len(home), spread)
		if len(spread) < 2 {
			t.Fatalf("all %d users on one endpoint: %v", len(home), spread)
		}
	})
	t.Run("another client channel sends each value to the same endpoint", func(t *testing.T) {
		other := xdsClient(t, gm.GRPCAddr, "ratings", demo.Target("reviews"))
		for _, u := range users {
			got := split(t, other, 5, "x-user", u)
			if got[home[u]] != 5 {
				t.Fatalf("x-user %s: second channel got %v, first channel %s", u, got, home[u])
			}
		}
	})
}

// heldBackend is a reviews endpoint whose calls, while hold is set, wait
// until release is closed.
type heldBackend struct {
	port     int
	hold     atomic.Bool
	inflight atomic.Int32
	release  chan struct{}
}

func newHeldBackend(t *testing.T) *heldBackend {
	t.Helper()
	b := &heldBackend{release: make(chan struct{})}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	demo.Register(srv, "reviews", func(ctx context.Context, _ *structpb.Struct) (*structpb.Struct, error) {
		b.inflight.Add(1)
		defer b.inflight.Add(-1)
		if b.hold.Load() {
			select {
			case <-b.release:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		return structpb.NewStruct(map[string]any{"version": "a"})
	})
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	b.port = lis.Addr().(*net.TCPAddr).Port
	return b
}

func TestResilienceMaxRequests(t *testing.T) {
	const limit = 2
	be := newHeldBackend(t)
	gm := startResilience(t, resilienceMesh(fmt.Sprintf("{connectionPool: {http: {http2MaxRequests: %d}}}", limit), be.port))
	cc := xdsClient(t, gm.GRPCAddr, "productpage", demo.Target("reviews"))
	split(t, cc, 5) // the client has its clusters

	be.hold.Store(true)
	var wg sync.WaitGroup
	held := make(chan error, limit)
	for range limit {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			_, err := demo.Call(ctx, cc, "reviews", nil, grpc.WaitForReady(true))
			held <- err
		}()
	}
	release := sync.OnceFunc(func() { close(be.release) })
	t.Cleanup(func() { release(); wg.Wait() })
	eventually(t, 10*time.Second, func() error {
		if n := be.inflight.Load(); n != limit {
			return fmt.Errorf("%d calls in flight, want %d", n, limit)
		}
		return nil
	})

	t.Run("a call over http2MaxRequests fails at once with UNAVAILABLE", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		began := time.Now()
		// Even wait-for-ready: the circuit breaker drops, it does not queue.
		_, err := demo.Call(ctx, cc, "reviews", nil, grpc.WaitForReady(true))
		took := time.Since(began)
		if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "max requests") {
			t.Fatalf("call %d: got %v, want UNAVAILABLE max requests", limit+1, err)
		}
		t.Logf("refused in %s: %v", took.Round(time.Microsecond), err)
	})
	t.Run("the held calls succeed and the limit frees up", func(t *testing.T) {
		release()
		for range limit {
			if err := <-held; err != nil {
				t.Fatalf("held call: %v", err)
			}
		}
		if got := split(t, cc, 10); got["a"] != 10 {
			t.Fatalf("after release: %v", got)
		}
	})
}
