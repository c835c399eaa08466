package e2e

import (
	"context"
	"fmt"
	"io"
	"log/slog"
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
	"github.com/glassmesh/glassmesh/e2e/prometheustest"
	"github.com/glassmesh/glassmesh/telemetry/grpcreport"
)

// canaryBackend is a reviews version that can be made to fail.
type canaryBackend struct {
	port    int
	failing atomic.Bool
}

func newCanaryBackend(t testing.TB, version string) *canaryBackend {
	t.Helper()
	b := &canaryBackend{}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	demo.Register(srv, "reviews", func(context.Context, *structpb.Struct) (*structpb.Struct, error) {
		if b.failing.Load() {
			return nil, status.Error(codes.Unavailable, "reviews-"+version+" is broken")
		}
		return structpb.NewStruct(map[string]any{"version": version})
	})
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	b.port = lis.Addr().(*net.TCPAddr).Port
	return b
}

// canaryMesh is reviews v1 (stable, 100) and v3 (the canary), an
// availability SLO and a canary with the given interval, steps and
// minRequests.
func canaryMesh(p1, p3 int, interval string, steps string, minRequests int) string {
	return reviewsService + fmt.Sprintf(`---
apiVersion: glassmesh.io/v1alpha1
kind: Workload
metadata: {name: reviews-v1, namespace: default, labels: {app: reviews, version: v1}}
spec: {serviceAccount: reviews, endpoints: [{address: 127.0.0.1, ports: {grpc: %d}}]}
---
apiVersion: glassmesh.io/v1alpha1
kind: Workload
metadata: {name: reviews-v3, namespace: default, labels: {app: reviews, version: v3}}
spec: {serviceAccount: reviews, endpoints: [{address: 127.0.0.1, ports: {grpc: %d}}]}
---
apiVersion: glassmesh.io/v1alpha1
kind: Workload
metadata: {name: productpage, namespace: default, labels: {app: productpage, version: v1}}
spec: {serviceAccount: productpage}
---
apiVersion: glassmesh.io/v1alpha1
kind: TrafficRoute
metadata: {name: reviews, namespace: default}
spec:
  service: reviews
  subsets: [{name: v1, labels: {version: v1}}, {name: v3, labels: {version: v3}}]
  rules:
    - destinations: [{subset: v1, weight: 100}]
---
apiVersion: glassmesh.io/v1alpha1
kind: SLO
metadata: {name: reviews-availability, namespace: default}
spec: {service: reviews, objective: 99, indicator: {availability: {}}}
---
apiVersion: glassmesh.io/v1alpha1
kind: Canary
metadata: {name: reviews, namespace: default}
spec:
  route: reviews
  stable: v1
  canary: v3
  steps: %s
  interval: %s
  minRequests: %d
  maxInconclusive: 1000
  gates: [{slo: reviews-availability}]
`, p1, p3, steps, interval, minRequests)
}

// clientTraffic calls reviews through glassmesh's xDS with grpc-go's real
// xDS client, reporting every call to glassmesh as productpage does in
// the demo, and remembers which version answered the last calls.
type clientTraffic struct {
	mu     sync.Mutex
	recent []string // versions of the last answers ("error" for failures)
}

func startClientTraffic(t testing.TB, gm *instance, rps float64) *clientTraffic {
	t.Helper()
	rep, err := grpcreport.NewReporter(grpcreport.Config{Target: gm.GRPCAddr, IP: "127.0.0.1", Instance: "productpage-0",
		Namespace: "default", Workload: "productpage", Labels: map[string]string{"app": "productpage", "version": "v1"},
		FlushInterval: 200 * time.Millisecond}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	cc := xdsClient(t, gm.GRPCAddr, "productpage", demo.Target("reviews"), grpc.WithUnaryInterceptor(rep.UnaryClientInterceptor()))
	ct := &clientTraffic{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done; rep.Close() })
	go func() {
		defer close(done)
		tick := time.NewTicker(time.Duration(float64(time.Second) / rps))
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
			out, err := demo.Call(cctx, cc, "reviews", nil, grpc.WaitForReady(true))
			ccancel()
			v := "error"
			if err == nil {
				v = out.Fields["version"].GetStringValue()
			}
			ct.mu.Lock()
			ct.recent = append(ct.recent, v)
			if len(ct.recent) > 20 {
				ct.recent = ct.recent[1:]
			}
			ct.mu.Unlock()
		}
	}()
	return ct
}

// allAt reports whether the last 20 calls were all answered by version.
func (ct *clientTraffic) allAt(version string) bool {
	ct.mu.Lock()
	defer ct.mu.Unlock()
	if len(ct.recent) < 20 {
		return false
	}
	for _, v := range ct.recent {
		if v != version {
			return false
		}
	}
	return true
}

// answered reports whether any of the last calls was answered by version.
func (ct *clientTraffic) answered(version string) bool {
	ct.mu.Lock()
	defer ct.mu.Unlock()
	return slices.Contains(ct.recent, version)
}

// waitAllAt waits until the last 20 calls were all answered by version.
func (ct *clientTraffic) waitAllAt(t testing.TB, version string, within time.Duration) {
	t.Helper()
	eventually(t, within, func() error {
		if !ct.allAt(version) {
			return fmt.Errorf("client traffic not all at %s yet", version)
		}
		return nil
	})
}

// waitAnswered waits until version answers some of the calls.
func (ct *clientTraffic) waitAnswered(t testing.TB, version string, within time.Duration) {
	t.Helper()
	eventually(t, within, func() error {
		if !ct.answered(version) {
			return fmt.Errorf("no %s answers yet", version)
		}
		return nil
	})
}

// canaryStatus is what the tests read of /api/canaries/{ns}/{name}.
type canaryStatus struct {
	State     string            `json:"state"`
	Step      int               `json:"step"`
	Weights   map[string]uint32 `json:"weights"`
	Decisions []struct {
		At       time.Time `json:"at"`
		Verdict  string    `json:"verdict"`
		Reason   string    `json:"reason"`
		Requests float64   `json:"requests"`
		Gates    []struct {
			Gate      string   `json:"gate"`
			Value     *float64 `json:"value"`
			Threshold float64  `json:"threshold"`
			Verdict   string   `json:"verdict"`
		} `json:"gates"`
	} `json:"decisions"`
}

func (c canaryStatus) verdicts() string {
	var v []string
	for _, d := range c.Decisions {
		v = append(v, d.Verdict)
	}
	return strings.Join(v, ",")
}

func (in *instance) canary(t testing.TB) canaryStatus {
	t.Helper()
	var st canaryStatus
	in.getJSON(t, "/api/canaries/default/reviews", &st)
	return st
}

// servedWeights is reviews' last rule as /api/mesh/config serves it (what
// the xDS server was given).
func (in *instance) servedWeights(t testing.TB) map[string]uint32 {
	t.Helper()
	var cfg struct {
		Resources struct {
			TrafficRoutes []struct {
				Spec struct {
					Rules []struct {
						Destinations []struct {
							Subset string
							Weight uint32
						}
					}
				}
			}
		}
	}
	in.getJSON(t, "/api/mesh/config", &cfg)
	out := map[string]uint32{}
	rules := cfg.Resources.TrafficRoutes[0].Spec.Rules
	for _, d := range rules[len(rules)-1].Destinations {
		out[d.Subset] = d.Weight
	}
	return out
}

func (in *instance) waitCanary(t testing.TB, within time.Duration, ok func(canaryStatus) bool) canaryStatus {
	t.Helper()
	var st canaryStatus
	eventually(t, within, func() error {
		if st = in.canary(t); ok(st) {
			return nil
		}
		return fmt.Errorf("canary %s at step %d, decisions %s", st.State, st.Step, st.verdicts())
	})
	return st
}

func TestCanary(t *testing.T) {
	t.Run("a healthy canary walks every step and ends with all traffic", func(t *testing.T) {
		v1, v3 := newCanaryBackend(t, "v1"), newCanaryBackend(t, "v3")
		dir := t.TempDir()
		writeFile(t, filepath.Join(dir, "mesh.yaml"), canaryMesh(v1.port, v3.port, "2s", "[20, 50, 100]", 10))
		gm := start(t, dir)
		ct := startClientTraffic(t, gm, 40)
		st := gm.waitCanary(t, 60*time.Second, func(s canaryStatus) bool { return s.State == "succeeded" })
		if got := st.verdicts(); !strings.HasPrefix(got, "start,") || strings.Count(got, "advance") != 2 || !strings.HasSuffix(got, ",promote") || strings.Contains(got, "rollback") {
			t.Errorf("verdicts = %s, want start, (holds), two advances, promote", got)
		}
		ct.waitAllAt(t, "v3", 30*time.Second)
		if w := gm.servedWeights(t); w["v3"] != 100 || w["v1"] != 0 {
			t.Errorf("served weights = %v, want v3 100", w)
		}
	})

	t.Run("a canary that starts failing is rolled back at once, and its record says why", func(t *testing.T) {
		v1, v3 := newCanaryBackend(t, "v1"), newCanaryBackend(t, "v3")
		dir := t.TempDir()
		// A 10 s interval, as the rollback target assumes.
		writeFile(t, filepath.Join(dir, "mesh.yaml"), canaryMesh(v1.port, v3.port, "10s", "[50, 100]", 10))
		gm := start(t, dir)
		ct := startClientTraffic(t, gm, 40)
		// Let the canary's traffic flow, then break it mid-step.
		eventually(t, 30*time.Second, func() error {
			if ct.allAt("v1") || ct.allAt("v3") || !ct.answered("v3") {
				return fmt.Errorf("traffic not split between v1 and v3 yet")
			}
			return nil
		})
		v3.failing.Store(true)
		broke := time.Now()
		st := gm.waitCanary(t, 75*time.Second, func(s canaryStatus) bool { return s.State == "rolled-back" })
		toState := time.Since(broke)
		// The status records the decision, then the push serves it.
		eventually(t, 10*time.Second, func() error {
			if w := gm.servedWeights(t); w["v1"] != 100 || w["v3"] != 0 {
				return fmt.Errorf("served weights after rollback = %v, want v1 100", w)
			}
			return nil
		})
		ct.waitAllAt(t, "v1", 30*time.Second)
		t.Logf("first failing request -> weights at stable %s, -> client traffic at stable %s", toState.Round(time.Millisecond), time.Since(broke).Round(time.Millisecond))
		d := st.Decisions[len(st.Decisions)-1]
		if d.Verdict != "rollback" || len(d.Gates) != 1 || d.Gates[0].Gate != "slo reviews-availability" || d.Gates[0].Verdict != "fail" ||
			d.Gates[0].Value == nil || *d.Gates[0].Value <= d.Gates[0].Threshold || !strings.Contains(d.Reason, "slo reviews-availability") {
			t.Errorf("rollback record = %+v", d)
		}
		if !strings.Contains(strings.Join(strings.Split(st.verdicts(), ","), " "), "start") || strings.Contains(st.verdicts(), "promote") {
			t.Errorf("verdicts = %s", st.verdicts())
		}
	})

	t.Run("a canary with too little traffic holds and never advances", func(t *testing.T) {
		v1, v3 := newCanaryBackend(t, "v1"), newCanaryBackend(t, "v3")
		dir := t.TempDir()
		writeFile(t, filepath.Join(dir, "mesh.yaml"), canaryMesh(v1.port, v3.port, "1s", "[20, 50, 100]", 500))
		gm := start(t, dir)
		startClientTraffic(t, gm, 20)
		st := gm.waitCanary(t, 60*time.Second, func(s canaryStatus) bool { return strings.Count(s.verdicts(), "hold") >= 4 })
		if st.State != "progressing" || st.Step != 1 || strings.Contains(st.verdicts(), "advance") || strings.Contains(st.verdicts(), "rollback") {
			t.Errorf("canary = %s at step %d, verdicts %s; want holds at step 1", st.State, st.Step, st.verdicts())
		}
		if w := gm.servedWeights(t); w["v3"] != 20 {
			t.Errorf("served weights = %v, want the first step's 20 for v3", w)
		}
	})

	t.Run("a bad canary is a config error with file:line and the last good config keeps serving", func(t *testing.T) {
		v1, v3 := newCanaryBackend(t, "v1"), newCanaryBackend(t, "v3")
		dir := t.TempDir()
		good := canaryMesh(v1.port, v3.port, "1h", "[20, 50, 100]", 10)
		writeFile(t, filepath.Join(dir, "mesh.yaml"), good)
		gm := start(t, dir)
		bad := strings.Replace(strings.Replace(good, "steps: [20, 50, 100]", "steps: [20, 10, 120]", 1),
			"gates: [{slo: reviews-availability}]", "gates: [{slo: nope}, {query: 'rate(x[$interval]', max: 1}]", 1)
		writeFile(t, filepath.Join(dir, "mesh.yaml"), bad)
		var cfg struct {
			Errors []struct {
				File    string
				Line    int
				Path    string
				Message string
			}
		}
		eventually(t, 30*time.Second, func() error {
			gm.getJSON(t, "/api/mesh/config", &cfg)
			if len(cfg.Errors) != 4 {
				return fmt.Errorf("errors: %+v", cfg.Errors)
			}
			return nil
		})
		for i, want := range []string{"spec.steps[1]", "spec.steps[2]", "spec.gates[0].slo", "spec.gates[1].query"} {
			if e := cfg.Errors[i]; e.Path != want || e.Line == 0 || !strings.HasSuffix(e.File, "mesh.yaml") {
				t.Errorf("error %d = %+v, want one at %s with its line", i, e, want)
			}
		}
		if w := gm.servedWeights(t); w["v3"] != 20 || w["v1"] != 80 {
			t.Errorf("served weights = %v, want the running canary's first step", w)
		}
	})

	t.Run("a restarted glassmesh resumes the canary where it was", func(t *testing.T) {
		v1, v3 := newCanaryBackend(t, "v1"), newCanaryBackend(t, "v3")
		dir, data := t.TempDir(), t.TempDir()
		writeFile(t, filepath.Join(dir, "mesh.yaml"), canaryMesh(v1.port, v3.port, "3s", "[10, 20, 30, 40, 100]", 10))
		gm := startIn(t, dir, data)
		startClientTraffic(t, gm, 40)
		before := gm.waitCanary(t, 60*time.Second, func(s canaryStatus) bool { return s.Step >= 2 })
		gm.kill()
		gm2 := startIn(t, dir, data)
		after := gm2.canary(t)
		if after.State != "progressing" || after.Step < before.Step || len(after.Decisions) < len(before.Decisions) {
			t.Fatalf("after restart: %s at step %d with %d decisions; before: step %d with %d decisions",
				after.State, after.Step, len(after.Decisions), before.Step, len(before.Decisions))
		}
		if w := gm2.servedWeights(t); w["v3"] != before.Weights["v3"] && w["v3"] != after.Weights["v3"] {
			t.Errorf("served weights after restart = %v, want the canary's (before: %v)", w, before.Weights)
		}
	})
}

// BenchmarkCanaryRollback measures, per run, the time from the first
// failing canary request to the served weights being back at stable, and to
// the client's traffic being back at stable, at two canary intervals, and
// with the gates reading a shared store (Debian's Prometheus, through
// remote-write and --metrics.query-url) as several replicas do.
func BenchmarkCanaryRollback(b *testing.B) {
	for _, c := range []struct {
		name, interval string
		store          bool
	}{{"interval=10s", "10s", false}, {"interval=30s", "30s", false}, {"interval=10s/store=prometheus", "10s", true}} {
		b.Run(c.name, func(b *testing.B) {
			var toWeights, toTraffic []time.Duration
			for range b.N {
				w, tr := rollbackOnce(b, c.interval, c.store)
				toWeights, toTraffic = append(toWeights, w), append(toTraffic, tr)
			}
			slices.Sort(toWeights)
			slices.Sort(toTraffic)
			b.ReportMetric(toWeights[len(toWeights)/2].Seconds(), "p50-s-to-weights")
			b.ReportMetric(toWeights[len(toWeights)-1].Seconds(), "max-s-to-weights")
			b.ReportMetric(toTraffic[len(toTraffic)/2].Seconds(), "p50-s-to-traffic")
			b.ReportMetric(toTraffic[len(toTraffic)-1].Seconds(), "max-s-to-traffic")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// rollbackOnce runs one canary to its first step, breaks it, and times the
// rollback. glassmesh runs with the default 5 s --metrics.interval; with
// store, it remote-writes (default 1 s batch deadline) to a fresh
// Prometheus and its gates query that.
func rollbackOnce(b *testing.B, interval string, store bool) (toWeights, toTraffic time.Duration) {
	b.StopTimer()
	defer b.StartTimer()
	v1, v3 := newCanaryBackend(b, "v1"), newCanaryBackend(b, "v3")
	dir := b.TempDir()
	writeFile(b, filepath.Join(dir, "mesh.yaml"), canaryMesh(v1.port, v3.port, interval, "[50, 100]", 10))
	args := []string{"--metrics.interval", "5s"}
	if store {
		prom := prometheustest.Start(b)
		args = append(args, "--remote-write-url", prom+"/api/v1/write", "--metrics.query-url", prom)
	}
	gm := start(b, dir, args...)
	defer gm.stop()
	ct := startClientTraffic(b, gm, 40)
	ct.waitAnswered(b, "v3", 60*time.Second)
	v3.failing.Store(true)
	broke := time.Now()
	gm.waitCanary(b, 120*time.Second, func(s canaryStatus) bool { return s.State == "rolled-back" })
	toWeights = time.Since(broke)
	ct.waitAllAt(b, "v1", 60*time.Second)
	return toWeights, time.Since(broke)
}
