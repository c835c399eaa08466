package k8s

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/glassmesh/glassmesh/demo"
	"github.com/glassmesh/glassmesh/e2e/prometheustest"
	"github.com/glassmesh/glassmesh/telemetry/grpcreport"
)

var slos = schema.GroupVersionResource{Group: "glassmesh.io", Version: "v1alpha1", Resource: "slos"}

// reportingServer is one instance of reviews-v2 that reports each call it
// serves (grpcreport's server interceptor, as a proxyless app does) to one
// glassmesh replica, and fails calls while failing is set.
type reportingServer struct {
	addr    string
	failing atomic.Bool
	mu      sync.Mutex
	served  []time.Time
}

func startReportingServer(t *testing.T, ip, ns, replicaGRPC string) *reportingServer {
	t.Helper()
	rep, err := grpcreport.NewReporter(grpcreport.Config{Target: replicaGRPC, IP: ip, Instance: "reviews-v2-5d8f9-abcde",
		Namespace: ns, Workload: "reviews-v2", Labels: map[string]string{"app": "reviews", "version": "v2"},
		FlushInterval: 200 * time.Millisecond}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &reportingServer{addr: lis.Addr().String()}
	srv := grpc.NewServer(grpc.UnaryInterceptor(rep.UnaryServerInterceptor()))
	demo.Register(srv, "reviews", func(context.Context, *structpb.Struct) (*structpb.Struct, error) {
		s.mu.Lock()
		s.served = append(s.served, time.Now())
		s.mu.Unlock()
		if s.failing.Load() {
			return nil, status.Error(codes.Unavailable, "reviews-v2 is broken")
		}
		return structpb.NewStruct(map[string]any{"version": "v2"})
	})
	go srv.Serve(lis)
	t.Cleanup(func() { srv.Stop(); _ = rep.Close() })
	return s
}

// servedIn counts the calls served in [from, to].
func (s *reportingServer) servedIn(from, to time.Time) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, at := range s.served {
		if !at.Before(from) && !at.After(to) {
			n++
		}
	}
	return n
}

// drive calls the server every period until the test ends.
func (s *reportingServer) drive(t *testing.T, period time.Duration) {
	cc, err := grpc.NewClient(s.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait(); cc.Close() })
	wg.Go(func() {
		tick := time.NewTicker(period)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				_, _ = demo.Call(ctx, cc, "reviews", &structpb.Struct{})
			}
		}
	})
}

// promQuery runs an instant query on a Prometheus HTTP API, now or at the
// unix time at ("" for now).
func promQuery(base, q string, at ...string) ([]struct {
	Metric map[string]string
	Value  [2]any
}, error) {
	params := url.Values{"query": {q}}
	if len(at) > 0 {
		params.Set("time", at[0])
	}
	resp, err := http.Get(base + "/api/v1/query?" + params.Encode())
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body struct {
		Status, Error string
		Data          struct {
			Result []struct {
				Metric map[string]string
				Value  [2]any
			}
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, err
	}
	if body.Status != "success" {
		return nil, fmt.Errorf("%s: %s", q, body.Error)
	}
	return body.Data.Result, nil
}

// alertOf is an alert as /api/v1/alerts lists it.
type alertOf struct {
	State    string
	ActiveAt time.Time
}

func (r *replica) alert(name string) (alertOf, error) {
	resp, err := http.Get("http://" + r.httpAddr + "/api/v1/alerts")
	if err != nil {
		return alertOf{}, err
	}
	defer resp.Body.Close()
	var body struct {
		Data struct {
			Alerts []struct {
				Labels   map[string]string
				State    string
				ActiveAt time.Time
			}
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return alertOf{}, err
	}
	for _, a := range body.Data.Alerts {
		if a.Labels["alertname"] == name {
			return alertOf{a.State, a.ActiveAt}, nil
		}
	}
	return alertOf{}, fmt.Errorf("%s: no alert %s", r.name, name)
}

// sloSLI reads the 5m SLI of the namespace's one SLO from a replica.
func (r *replica) sloSLI(ns string) (float64, error) {
	resp, err := http.Get("http://" + r.httpAddr + "/api/slos?namespace=" + ns)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var body struct {
		SLOs []struct{ SLI map[string]*float64 }
		Err  string `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return 0, err
	}
	if len(body.SLOs) != 1 || body.SLOs[0].SLI["5m"] == nil {
		return 0, fmt.Errorf("%s: /api/slos %+v %s", r.name, body.SLOs, body.Err)
	}
	return *body.SLOs[0].SLI["5m"], nil
}

// TestSharedStoreCanaryOnEveryReplicasReports: two replicas remote-write
// to one Prometheus (Debian's) and read it (--metrics.query-url), while the
// canary's reports are split between them, most to the follower. The
// leader's gates count both replicas' requests: a canary whose leader alone
// never sees minRequests advances; /api/slos agrees between replicas and
// with PromQL on the store. Then the leader is killed mid-canary: the other
// takes over, the rules go on in the same series and an alert firing before
// is firing after, with its original activeAt. The canary then fails on
// the calls reported to the new leader and is rolled back.
func TestSharedStoreCanaryOnEveryReplicasReports(t *testing.T) {
	prom := prometheustest.Start(t)
	ports := map[string]int{"v1": 19181, "v2": 19182}
	_, dyn, ns := reviewsMesh(t, func(_, version string) int { return ports[version] })
	ip := hostIP(t)
	ctx := context.Background()
	create := func(gvr schema.GroupVersionResource, kind, name string, spec map[string]any) {
		t.Helper()
		if _, err := dyn.Resource(gvr).Namespace(ns).Create(ctx, &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "glassmesh.io/v1alpha1", "kind": kind,
			"metadata": map[string]any{"name": name, "namespace": ns}, "spec": spec,
		}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	create(slos, "SLO", "reviews-availability", map[string]any{"service": "reviews", "objective": 99.0,
		"indicator": map[string]any{"availability": map[string]any{}}})

	rules := filepath.Join(t.TempDir(), "mesh.rules.yml")
	if err := os.WriteFile(rules, []byte(`groups:
  - name: mesh
    rules:
      - record: mesh:one
        expr: vector(1)
      - alert: CanaryServing
        expr: sum(rate(istio_requests_total{destination_workload="reviews-v2"}[30s])) > 0
        for: 5s
`), 0o644); err != nil {
		t.Fatal(err)
	}
	replicaArgs := []string{"--remote-write-url", prom + "/api/v1/write", "--metrics.query-url", prom,
		"--rules", rules, "--rules.interval", "1s", "--metrics.interval", "1s"}
	a := startReplica(t, "replica-a", ns, replicaArgs...)
	within(t, 60*time.Second, "replica-a leads", func() error {
		if ok, err := a.leader(); !ok {
			return fmt.Errorf("not leading (%v)", err)
		}
		return nil
	})
	b := startReplica(t, "replica-b", ns, replicaArgs...)

	// The canary's instances: a few calls a second reported to the leader,
	// ten times as many to the follower.
	toA := startReportingServer(t, ip, ns, a.grpcAddr)
	toB := startReportingServer(t, ip, ns, b.grpcAddr)
	toA.drive(t, 500*time.Millisecond)
	toB.drive(t, 50*time.Millisecond)

	// 20 steps of 10s, and 60 requests a verdict: the leader's own share
	// (2/s) never reaches it in a step.
	create(canaries, "Canary", "reviews", map[string]any{"route": "reviews", "stable": "v1", "canary": "v2",
		"steps":    steps(5, 100, 5),
		"interval": "10s", "minRequests": int64(60), "maxInconclusive": int64(20),
		"gates": []any{map[string]any{"slo": "reviews-availability"}}})

	var advanced decisionOf
	within(t, 120*time.Second, "an advance decided on both replicas' requests", func() error {
		st, err := a.canary(ns)
		if err != nil {
			return err
		}
		for _, d := range st.Decisions {
			if d.Verdict == "advance" {
				advanced = d
				return nil
			}
		}
		return fmt.Errorf("no advance yet: %s at step %d: %s", st.State, st.Step, st.Message)
	})
	window, _ := time.ParseDuration(advanced.Window)
	// A bound on what the leader alone was told in the window (and the
	// ten seconds before: the store's view lags behind).
	leaderShare := toA.servedIn(advanced.At.Add(-window-10*time.Second), advanced.At)
	t.Logf("advance on %.0f requests over %s; the leader was told of at most %d", advanced.Requests, advanced.Window, leaderShare)
	if advanced.Requests < 60 || advanced.Requests < 2*float64(leaderShare) {
		t.Errorf("the advance counted %.0f requests, the leader's own share was %d: not both replicas'", advanced.Requests, leaderShare)
	}

	// /api/slos: the leader's recordings in the store, the same from
	// either replica and as PromQL on the store says.
	within(t, 60*time.Second, "/api/slos agreeing between replicas and with the store", func() error {
		sa, errA := a.sloSLI(ns)
		sb, errB := b.sloSLI(ns)
		if err := errors.Join(errA, errB); err != nil {
			return err
		}
		r, err := promQuery(prom, `slo:sli_error:ratio_rate5m{sloth_service="reviews"}`)
		if err != nil || len(r) != 1 {
			return fmt.Errorf("the store's SLI: %v %v", r, err)
		}
		var sp float64
		fmt.Sscan(r[0].Value[1].(string), &sp)
		if r[0].Metric["replica"] != "" {
			return fmt.Errorf("the recording carries replica %q", r[0].Metric["replica"])
		}
		near := func(x, y float64) bool { return math.Abs(x-y) <= 0.02*math.Max(math.Abs(y), 1e-6) }
		if !near(sa, sp) || !near(sb, sp) {
			return fmt.Errorf("SLI 5m: replica-a %v, replica-b %v, store %v", sa, sb, sp)
		}
		return nil
	})

	// The graph at one instant: the same from either replica, and as the
	// store's PromQL counts the canary's calls.
	// (Once a minute of the calls is in the store.)
	within(t, 120*time.Second, "the graph agreeing between replicas and with the store", func() error {
		at := time.Now().Add(-10 * time.Second).Unix()
		r, err := promQuery(prom, `sum(rate(istio_requests_total{destination_workload="reviews-v2"}[1m]))`, fmt.Sprint(at))
		if err != nil || len(r) != 1 {
			return fmt.Errorf("the store's rate: %v %v", r, err)
		}
		var rp float64
		fmt.Sscan(r[0].Value[1].(string), &rp)
		if rp < 12 {
			return fmt.Errorf("the store's rate %.3f/s: not yet a minute of both replicas' ~22/s", rp)
		}
		ra, errA := a.graphRate(ns, at)
		rb, errB := b.graphRate(ns, at)
		if err := errors.Join(errA, errB); err != nil {
			return err
		}
		if ra != rb || math.Abs(ra-rp) > 0.02*rp {
			return fmt.Errorf("graph rates %.3f / %.3f, store %.3f: want them equal within 2%%", ra, rb, rp)
		}
		t.Logf("reviews-v2's calls/s at %d: graph on replica-a %.3f, on replica-b %.3f, PromQL on the store %.3f", at, ra, rb, rp)
		return nil
	})

	// The alert fires on the leader before the kill.
	var fired alertOf
	within(t, 60*time.Second, "CanaryServing firing on the leader", func() error {
		var err error
		fired, err = a.alert("CanaryServing")
		if err == nil && fired.State != "firing" {
			err = fmt.Errorf("CanaryServing is %s", fired.State)
		}
		return err
	})
	// ... and the store knows it fired (remote-write ships in batches).
	within(t, 60*time.Second, "CanaryServing firing in the store", func() error {
		r, err := promQuery(prom, `ALERTS{alertname="CanaryServing", alertstate="firing"}`)
		if err == nil && (len(r) != 1 || r[0].Metric["replica"] != "") {
			err = fmt.Errorf("the store's ALERTS: %+v, want one series without a replica label", r)
		}
		return err
	})
	if al, err := b.alert("CanaryServing"); err == nil {
		t.Fatalf("the follower evaluates alerts too: %+v", al)
	}

	// Kill the leader mid-canary: no hand-over, the lease must expire.
	before, err := a.canary(ns)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = a.cmd.Wait()
	killed := time.Now()
	t.Logf("killed the leader at step %d", before.Step)
	within(t, 60*time.Second, "replica-b leads", func() error {
		if ok, err := b.leader(); !ok {
			return fmt.Errorf("not leading (%v)", err)
		}
		return nil
	})
	t.Logf("replica-b leads %s after the kill", time.Since(killed).Round(10*time.Millisecond))
	within(t, 60*time.Second, "CanaryServing firing on the new leader since the old activeAt", func() error {
		al, err := b.alert("CanaryServing")
		if err != nil {
			return err
		}
		// ALERTS_FOR_STATE holds activeAt in whole seconds.
		if al.State != "firing" || al.ActiveAt.Unix() != fired.ActiveAt.Unix() {
			return fmt.Errorf("%s since %s, want firing since %s (restored from the store)", al.State, al.ActiveAt, fired.ActiveAt)
		}
		return nil
	})
	within(t, 60*time.Second, "the canary advancing under the new leader", func() error {
		st, err := b.canary(ns)
		if err != nil {
			return err
		}
		if st.Step <= before.Step || st.State != "progressing" {
			return fmt.Errorf("%s at step %d, killed at %d", st.State, st.Step, before.Step)
		}
		return nil
	})

	// The recording went on in one series (no replica label): its largest
	// gap is the lease's expiry, not the staleness period.
	var gap time.Duration
	series := 0
	for _, s := range promMatrix(t, prom, `mesh:one[2m]`) {
		series++
		for i := 1; i < len(s); i++ {
			gap = max(gap, s[i].Sub(s[i-1]))
		}
	}
	t.Logf("mesh:one: %d series, largest gap %s across the leader change", series, gap)
	if series != 1 || gap > 20*time.Second {
		t.Errorf("mesh:one: %d series, largest gap %s; want one series going on across the leader change", series, gap)
	}

	// Now the canary fails on the calls reported to replica-b only.
	toB.failing.Store(true)
	failed := time.Now()
	var st canaryOf
	within(t, 90*time.Second, "the canary rolled back", func() error {
		var err error
		if st, err = b.canary(ns); err != nil {
			return err
		}
		if st.State != "rolled-back" {
			return fmt.Errorf("%s at step %d: %s", st.State, st.Step, st.Message)
		}
		return nil
	})
	d := st.Decisions[len(st.Decisions)-1]
	t.Logf("rolled back %s after the canary started failing: %s", time.Since(failed).Round(100*time.Millisecond), d.Reason)
	if d.Verdict != "rollback" {
		t.Errorf("last decision %+v, want a rollback", d)
	}
}

// steps is from, from+by, ... to, as a Canary's steps.
func steps(from, to, by int64) []any {
	var out []any
	for s := from; s <= to; s += by {
		out = append(out, s)
	}
	return out
}

// graphRate sums the gRPC rates of the namespace's graph edges, as the
// replica's Kiali-compatible graph draws them over the minute before at.
func (r *replica) graphRate(ns string, at int64) (float64, error) {
	resp, err := http.Get(fmt.Sprintf("http://%s/api/namespaces/graph?namespaces=%s&graphType=workload&duration=60s&queryTime=%d", r.httpAddr, ns, at))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var g struct {
		Elements struct {
			Edges []struct {
				Data struct {
					Traffic struct {
						Rates map[string]string `json:"rates"`
					} `json:"traffic"`
				} `json:"data"`
			} `json:"edges"`
		} `json:"elements"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&g); err != nil {
		return 0, err
	}
	sum := 0.0
	for _, e := range g.Elements.Edges {
		var v float64
		fmt.Sscan(e.Data.Traffic.Rates["grpc"], &v)
		sum += v
	}
	return sum, nil
}

// decisionOf is a canary decision as the API shows it.
type decisionOf struct {
	At       time.Time
	Verdict  string
	Requests float64
	Window   string
	Reason   string
}

// canaryOf is a canary as the API shows it.
type canaryOf struct {
	State     string
	Step      int
	Message   string
	Decisions []decisionOf
}

func (r *replica) canary(ns string) (canaryOf, error) {
	var st canaryOf
	resp, err := http.Get("http://" + r.httpAddr + "/api/canaries/" + ns + "/reviews")
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("%s: GET canary: %s", r.name, resp.Status)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// promMatrix runs a range-selector query and returns each series' sample
// times, in order.
func promMatrix(t *testing.T, base, q string) [][]time.Time {
	t.Helper()
	resp, err := http.Get(base + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Data struct {
			Result []struct {
				Values [][2]any
			}
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	var out [][]time.Time
	for _, s := range body.Data.Result {
		var times []time.Time
		for _, v := range s.Values {
			sec, _ := v[0].(float64)
			times = append(times, time.UnixMilli(int64(sec*1000)))
		}
		sort.Slice(times, func(i, j int) bool { return times[i].Before(times[j]) })
		out = append(out, times)
	}
	return out
}
