//go:build faults

package k8s

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/glassmesh/glassmesh/e2e/k8s/kubetest"
)

// The leader election timings of the case's replicas, and what follows
// from them in cmd/glassmesh (leaseValidFor): a leader decides only while
// its last renewal started less than retry + renew/2 ago.
const (
	faultLease    = 3 * time.Second
	faultRenew    = 2 * time.Second
	faultRetry    = 500 * time.Millisecond
	faultValidFor = faultRetry + faultRenew/2
	// slack covers a decision whose evaluation began just before the lease
	// stopped being current, and log timestamps.
	faultSlack    = time.Second
	faultOutage   = 10 * time.Second
	faultPartTime = 30 * time.Second
)

// faultCase is two glassmesh replicas on a kube-apiserver that can be
// restarted, each reaching it through a link of its own that can be cut
// off, with a canary running and xDS clients calling every service through
// both replicas.
type faultCase struct {
	top      *testing.T // what outlives the subtests is registered here
	api      *kubetest.Restartable
	links    map[string]*kubetest.Link // by replica name, and "test" (the test's own client)
	cs       kubernetes.Interface
	dyn      dynamic.Interface
	ns, ip   string
	names    []string
	replicas map[string]*replica
	logs     map[string]*replicaLog
	weights  map[string]*weightWatch
	callers  map[string][]*caller // by replica
}

// TestFaultAPIServerRestartAndPartition: issue 21's "Kubernetes API
// server restart and 30 s partition". The API server stops for 10 s and
// comes back on the same address; then the leader is cut off from it for
// 30 s, twice (the path healed with what waited delivered late, then with
// every connection closed). Throughout, every xDS client's calls must
// succeed, no replica may decide on a lease it cannot renew, the other
// must take over and resume the canary from its status without repeating
// or skipping a step or lowering its weight, and a change made after each
// fault must reach every client.
func TestFaultAPIServerRestartAndPartition(t *testing.T) {
	f := newFaultCase(t)
	if !t.Run("API server restart", f.restart) {
		return
	}
	if !t.Run("30 s partition of the leader, healed", func(t *testing.T) { f.partition(t, false, "v1-healed") }) {
		return
	}
	t.Run("30 s partition of the leader, connections closed", func(t *testing.T) { f.partition(t, true, "v1-reconnected") })
	f.checkCanaryRecord(t)
	f.checkServing(t)
}

func newFaultCase(t *testing.T) *faultCase {
	logf := apiserverLog(t)
	ptb := kubetest.NewProcessTB("kube-apiserver-restartable", logf)
	began := time.Now()
	api, err := kubetest.StartRestartable(ptb, logf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { api.Close(); ptb.Close() })
	t.Logf("restartable kube-apiserver at %s up in %s", api.Addr, time.Since(began).Round(time.Millisecond))
	f := &faultCase{top: t, api: api, links: map[string]*kubetest.Link{}, names: []string{"replica-a", "replica-b"},
		replicas: map[string]*replica{}, logs: map[string]*replicaLog{}, weights: map[string]*weightWatch{}, callers: map[string][]*caller{}}
	for _, name := range append([]string{"test"}, f.names...) {
		l, err := kubetest.NewLink(api.Addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(l.Close)
		f.links[name] = l
	}
	cfg := api.ConfigFor(f.links["test"].Addr())
	if _, err := kubetest.InstallCRDs(context.Background(), cfg, crdDir); err != nil {
		t.Fatal(err)
	}
	f.cs, f.dyn = kubernetes.NewForConfigOrDie(cfg), dynamic.NewForConfigOrDie(cfg)
	f.ns, f.ip = newNamespace(t, f.cs), hostIP(t)
	f.mesh(t)
	for _, name := range f.names {
		f.startReplica(t, name)
		if name == f.names[0] {
			within(t, 60*time.Second, name+" leads", func() error {
				if ok, err := f.replicas[name].leader(); !ok {
					return fmt.Errorf("not leading (%v)", err)
				}
				return nil
			})
		}
	}
	within(t, 60*time.Second, "every client served through both replicas", func() error {
		for _, name := range f.names {
			for _, c := range f.callers[name] {
				if ok, _ := c.counts(); ok == 0 {
					return fmt.Errorf("%s", c)
				}
			}
		}
		return nil
	})
	within(t, 60*time.Second, "the canary at step 2", func() error {
		st, err := readCanary(context.Background(), f.dyn, f.ns)
		if err != nil || st.Step < 2 {
			return fmt.Errorf("step %d (%v)", st.Step, err)
		}
		return nil
	})
	t.Logf("set up in %s", time.Since(began).Round(time.Millisecond))
	return f
}

// mesh creates reviews (v1, v2; a TrafficRoute and a Canary over 50 steps
// of 4 s, which outlasts the case), ratings and details, each with a
// backend of its own behind an EndpointSlice.
func (f *faultCase) mesh(t *testing.T) {
	for _, app := range []string{"reviews", "ratings", "details"} {
		meshService(t, f.cs, f.ns, app)
		meshPod(t, f.cs, f.ns, f.ip, app, "v1", meshBackend(t, f.ip, app, "v1"))
	}
	meshPod(t, f.cs, f.ns, f.ip, "reviews", "v2", meshBackend(t, f.ip, "reviews", "v2"))
	ctx := context.Background()
	if _, err := f.dyn.Resource(trafficRoutes).Namespace(f.ns).Create(ctx, route(f.ns, 100, 0), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// No gates and no minimum of requests: what is tested is who decides
	// and that decisions carry over, not the gates.
	if _, err := f.dyn.Resource(canaries).Namespace(f.ns).Create(ctx, &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "glassmesh.io/v1alpha1", "kind": "Canary",
		"metadata": map[string]any{"name": "reviews", "namespace": f.ns},
		"spec": map[string]any{"route": "reviews", "stable": "v1", "canary": "v2", "steps": steps(2, 100, 2),
			"interval": "4s", "minRequests": int64(0), "maxInconclusive": int64(3)},
	}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// startReplica runs a replica whose kubeconfig points at its own link, and
// an app of xDS clients calling every service through it.
func (f *faultCase) startReplica(t *testing.T, name string) {
	log := &replicaLog{}
	kc := writeKubeconfig(t, name+".kubeconfig", f.api, f.links[name].Addr())
	p := startGlassmesh(t, name, log.show, "--source", "kubernetes", "--kubeconfig", kc, "--kubernetes.namespaces", f.ns,
		"--leader-elect.namespace", f.ns, "--leader-elect.identity", name,
		"--leader-elect.lease-duration", faultLease.String(), "--leader-elect.renew-deadline", faultRenew.String(),
		"--leader-elect.retry-period", faultRetry.String())
	r := &replica{process: p, name: name}
	f.replicas[name], f.logs[name] = r, log
	f.weights[name] = watchWeights(t, r, f.ns)
	app := newXDSApp(t, "productpage-"+name, p.grpcAddr, f.ns)
	for _, svc := range []string{"reviews", "ratings", "details"} {
		f.callers[name] = append(f.callers[name], callLoop(t, svc+" via "+name, app.dial(t, svc, f.ns), svc))
	}
}

// leader waits for exactly one replica to lead and names it and the other.
func (f *faultCase) leader(t *testing.T) (leader, other string) {
	t.Helper()
	within(t, 60*time.Second, "one leader", func() error {
		var leading []string
		for _, name := range f.names {
			ok, err := f.replicas[name].leader()
			if err != nil {
				return err
			}
			if ok {
				leading = append(leading, name)
			}
		}
		if len(leading) != 1 {
			return fmt.Errorf("leading: %v", leading)
		}
		leader = leading[0]
		return nil
	})
	for _, name := range f.names {
		if name != leader {
			other = name
		}
	}
	return leader, other
}

// noDecisions fails when replica name decided, or served another canary
// weight, in [from, to): it could not renew its lease then.
func (f *faultCase) noDecisions(t *testing.T, name string, from, to time.Time) {
	t.Helper()
	if d := f.logs[name].decisions(from, to); len(d) > 0 {
		t.Errorf("%s decided %+v between %s and %s, while it could not renew its lease", name, d, from.Format("15:04:05.000"), to.Format("15:04:05.000"))
	}
	if c := f.weights[name].between(from, to); len(c) > 0 {
		t.Errorf("%s changed its served weights %+v between %s and %s, while it could not renew its lease", name, c, from.Format("15:04:05.000"), to.Format("15:04:05.000"))
	}
}

// restart stops the API server for 10 s (etcd keeps running) and starts it
// again behind the same addresses.
func (f *faultCase) restart(t *testing.T) {
	// As when its process dies: every connection drops, and its address
	// refuses connections until it is back. (Its graceful shutdown would
	// wait up to a minute for requests in flight: it goes on meanwhile,
	// unreachable.)
	for _, l := range f.links {
		l.Down()
	}
	down := time.Now()
	stopped := f.api.Stop()

	// A client that connects during the outage gets the last known config.
	late := callLoop(f.top, "reviews via replica-a (connected during the outage)",
		newXDSApp(t, "productpage-late", f.replicas["replica-a"].grpcAddr, f.ns).dial(f.top, "reviews", f.ns), "reviews")
	f.callers["replica-a"] = append(f.callers["replica-a"], late)
	within(t, faultOutage*5, "the new client served during the outage", func() error {
		if ok, _ := late.counts(); ok == 0 {
			return fmt.Errorf("%s", late)
		}
		return nil
	})
	t.Logf("a client connecting %s into the outage was served", time.Since(down).Round(time.Millisecond))
	time.Sleep(time.Until(down.Add(faultOutage)))

	select {
	case <-stopped:
	default:
		t.Logf("the old kube-apiserver is still shutting down")
	}
	if err := f.api.Start(); err != nil {
		t.Fatal(err)
	}
	for _, l := range f.links {
		l.SetUpstream(f.api.Addr)
		if err := l.Up(); err != nil {
			t.Fatal(err)
		}
	}
	up := time.Now()
	t.Logf("kube-apiserver down for %s, started again in %s", up.Sub(down).Round(time.Millisecond), time.Since(down.Add(faultOutage)).Round(time.Millisecond))
	for _, name := range f.names {
		f.noDecisions(t, name, down.Add(faultValidFor+faultSlack), up)
	}

	leader, _ := f.leader(t)
	t.Logf("%s leads %s after the restart", leader, time.Since(up).Round(time.Millisecond))
	// Informers resync: an EndpointSlice change made now reaches every client.
	port := meshBackend(f.top, f.ip, "details", "v1-restarted")
	moved := time.Now()
	if err := moveEndpoint(context.Background(), f.cs, f.ns, "details", port); err != nil {
		t.Fatal(err)
	}
	f.reached(t, "details", "v1-restarted", moved, f.names...)
	within(t, 60*time.Second, "a canary decision after the restart", func() error {
		if d := f.logs[leader].decisions(up, time.Now().Add(time.Hour)); len(d) == 0 {
			return fmt.Errorf("none yet by %s", leader)
		}
		return nil
	})
	first := f.logs[leader].decisions(up, time.Now().Add(time.Hour))[0]
	t.Logf("%s's first canary decision %s after the restart: %s to step %d", leader, first.At.Sub(up).Round(time.Millisecond), first.Verdict, first.Step)
}

// reached waits until the clients of app through the replicas named answer
// with version, and logs how long after since each took.
func (f *faultCase) reached(t *testing.T, app, version string, since time.Time, names ...string) {
	t.Helper()
	for _, name := range names {
		for _, c := range f.callers[name] {
			if c.name != app+" via "+name {
				continue
			}
			within(t, 60*time.Second, version+" reaching "+c.name, func() error {
				if c.answeredBy(version).IsZero() {
					return fmt.Errorf("%s", c)
				}
				return nil
			})
			t.Logf("the %s change reached %s's clients %s after it was written", app, name, c.answeredBy(version).Sub(since).Round(time.Millisecond))
		}
	}
}

// partition blackholes the leader's link for 30 s, then heals it:
// delivering what waited, or (closeOnHeal) closing every connection first.
// version names the backend of the change made after the heal.
func (f *faultCase) partition(t *testing.T, closeOnHeal bool, version string) {
	leader, other := f.leader(t)
	before, err := readCanary(context.Background(), f.dyn, f.ns)
	if err != nil {
		t.Fatal(err)
	}
	link := f.links[leader]
	link.Blackhole()
	cut := time.Now()
	t.Logf("%s cut off from the API server at step %d (%d%%)", leader, before.Step, before.Weights["v2"])

	var took logEvent
	within(t, 60*time.Second, other+" takes the lead", func() error {
		e := f.logs[other].took(cut, time.Now().Add(time.Hour))
		if len(e) == 0 {
			return fmt.Errorf("%s has not taken the lead", other)
		}
		took = e[0]
		return nil
	})
	var first logEvent
	within(t, 60*time.Second, other+"'s first decision", func() error {
		d := f.logs[other].decisions(took.At, time.Now().Add(time.Hour))
		if len(d) == 0 {
			return fmt.Errorf("%s has not decided yet", other)
		}
		first = d[0]
		return nil
	})
	t.Logf("failover: %s leads %s after the cut (lease %s); its first decision (%s to step %d) %s after taking the lead, %s after the cut",
		other, took.At.Sub(cut).Round(time.Millisecond), faultLease, first.Verdict, first.Step,
		first.At.Sub(took.At).Round(time.Millisecond), first.At.Sub(cut).Round(time.Millisecond))
	if first.Step > before.Step+2 {
		t.Errorf("%s's first decision goes to step %d; the status said %d before the cut: it did not resume from it", other, first.Step, before.Step)
	}

	time.Sleep(time.Until(cut.Add(faultPartTime)))
	healing := time.Now()
	f.noDecisions(t, leader, cut.Add(faultValidFor+faultSlack), healing)
	if early := f.logs[leader].decisions(cut, cut.Add(faultValidFor+faultSlack)); len(early) > 0 {
		t.Logf("%s decided %+v in the first %s of the cut, before its lease lapsed (never served unless saved)", leader, early, faultValidFor+faultSlack)
	}
	mid, err := readCanary(context.Background(), f.dyn, f.ns)
	if err != nil {
		t.Fatal(err)
	}
	if mid.Step <= before.Step {
		t.Errorf("the canary stayed at step %d during the partition: %s did not resume it", mid.Step, other)
	}
	t.Logf("the canary went from step %d to %d during the partition; %s served %d%% throughout", before.Step, mid.Step, leader, f.weights[leader].last())
	if closeOnHeal {
		link.Cut()
	}
	link.Heal()
	healed := time.Now()

	// The partitioned replica follows the new leader again.
	within(t, 60*time.Second, leader+" serving the new leader's weights", func() error {
		st, err := readCanary(context.Background(), f.dyn, f.ns)
		if err != nil {
			return err
		}
		w, err := f.replicas[leader].servedWeights(f.ns)
		if err != nil {
			return err
		}
		if w["v2"] != st.Weights["v2"] {
			return fmt.Errorf("%s serves %v, the status says %v", leader, w, st.Weights)
		}
		if ok, _ := f.replicas[leader].leader(); ok {
			return fmt.Errorf("%s still leads", leader)
		}
		return nil
	})
	t.Logf("%s serves the new leader's weights %s after the heal (took %s)", leader, time.Since(healed).Round(time.Millisecond), healed.Sub(healing).Round(time.Millisecond))
	// A change made after the heal reaches its clients.
	port := meshBackend(f.top, f.ip, "ratings", version)
	changed := time.Now()
	if err := moveEndpoint(context.Background(), f.cs, f.ns, "ratings", port); err != nil {
		t.Fatal(err)
	}
	f.reached(t, "ratings", version, changed, leader, other)
}

// checkCanaryRecord reads the decisions both leaders recorded: one start,
// then advances one step at a time, never lowering the canary's weight.
func (f *faultCase) checkCanaryRecord(t *testing.T) {
	st, err := readCanary(context.Background(), f.dyn, f.ns)
	if err != nil {
		t.Fatal(err)
	}
	u, err := f.dyn.Resource(canaries).Namespace(f.ns).Get(context.Background(), "reviews", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	raw, _, _ := unstructured.NestedSlice(u.Object, "status", "decisions")
	prevStep, prevWeight, starts := 0, int64(-1), 0
	for i, d := range raw {
		m, _ := d.(map[string]any)
		verdict, _ := m["verdict"].(string)
		step, _, _ := unstructured.NestedInt64(m, "step")
		weight, _, _ := unstructured.NestedInt64(m, "weightsAfter", "v2")
		switch verdict {
		case "start":
			starts++
		case "advance":
			if prevStep != 0 && int(step) != prevStep+1 {
				t.Errorf("decision %d advances to step %d after step %d: a step repeated or skipped", i, step, prevStep)
			}
		case "hold":
		default:
			t.Errorf("decision %d is a %s: %v", i, verdict, m["reason"])
		}
		if weight < prevWeight {
			t.Errorf("decision %d lowers the canary's weight from %d to %d", i, prevWeight, weight)
		}
		prevStep, prevWeight = int(step), weight
	}
	if starts != 1 {
		t.Errorf("%d starts in the record, want 1", starts)
	}
	t.Logf("the canary at step %d of 50 (%s) after the faults, %d decisions recorded", st.Step, st.State, len(raw))
	for _, name := range f.names {
		if d := f.weights[name].decreases(); len(d) > 0 {
			t.Errorf("%s lowered the canary's served weight: %v", name, d)
		}
	}
}

// checkServing counts the calls: none may have failed, and both replicas
// must still run.
func (f *faultCase) checkServing(t *testing.T) {
	total, failed := 0, 0
	for _, name := range f.names {
		if resp, err := http.Get("http://" + f.replicas[name].httpAddr + "/healthz"); err != nil {
			t.Errorf("%s does not answer /healthz: %v", name, err)
		} else {
			resp.Body.Close()
		}
		for _, c := range f.callers[name] {
			ok, fail := c.counts()
			total, failed = total+ok+fail, failed+fail
			if fail > 0 {
				t.Errorf("calls failed: %s", c)
			}
		}
	}
	t.Logf("%d calls through both replicas, %d failed", total, failed)
}
