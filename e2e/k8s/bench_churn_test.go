package k8s

// BenchmarkKubernetesChurn (issue 18): endpoint churn on a 1,000-service
// mesh, as rolling deployments and failing readiness probes cause it, with
// 1,000 proxyless clients connected: what the glassmesh process spends on
// it and how soon a client sees a change.

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

var churnProfile = flag.String("churn.cpuprofile", "", "write the glassmesh process's CPU profile of the churn's first 5 s here")

const (
	churnRate       = 100 // EndpointSlice updates per second
	churnPerClient  = 10  // services each client dials
	churnProbeCount = churnPerClient
)

// churnCluster is service i's cluster name (no TrafficRoute: one cluster).
func churnCluster(i int) string {
	return fmt.Sprintf("outbound|%d||%s.%s.svc.cluster.local", benchPort, benchMemApp(i).name, benchMemNS)
}

// churnNames are what client c subscribes to: the listener, route,
// cluster and endpoints of services c … c+9 (mod 1,000), as a proxyless
// app that dials ten services does.
func churnNames(c int) map[string][]string {
	names := map[string][]string{}
	for k := range churnPerClient {
		i := (c + k) % benchMemServices
		a := benchMemApp(i)
		names[benchLDS] = append(names[benchLDS], fmt.Sprintf("%s.%s:%d", a.name, benchMemNS, benchPort))
		names[benchRDS] = append(names[benchRDS], fmt.Sprintf("%s.%s.svc.cluster.local:%d", a.name, benchMemNS, benchPort))
		names[benchCDS] = append(names[benchCDS], churnCluster(i))
		names[benchEDS] = append(names[benchEDS], churnCluster(i))
	}
	return names
}

// churnEndpoints is the EndpointSlice endpoints of service i with pod 0
// ready or not.
func churnEndpoints(i int, ready0 bool) []discoveryv1.Endpoint {
	a := benchMemApp(i)
	out := make([]discoveryv1.Endpoint, a.pods)
	for j := range out {
		out[j] = discoveryv1.Endpoint{Addresses: []string{a.ip(j)},
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(j != 0 || ready0)},
			TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: a.ns, Name: a.podName(j)}}
	}
	return out
}

// churnProbe is client 0: it decodes its load assignments and notes when
// service i's endpoint count first matches what was last written.
type churnProbe struct {
	mu      sync.Mutex
	want    map[string]int       // cluster → endpoints after the last write
	written map[string]time.Time // cluster → when it was written
	have    map[string]int       // cluster → endpoints last received
	lags    []time.Duration
}

func (p *churnProbe) wrote(cluster string, endpoints int, at time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.want[cluster], p.written[cluster] = endpoints, at
	if p.have[cluster] == endpoints { // seen before the write returned
		p.lags = append(p.lags, 0)
		delete(p.written, cluster)
	}
}

func (p *churnProbe) received(r *discovery.DiscoveryResponse) {
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, a := range r.GetResources() {
		var cla endpointv3.ClusterLoadAssignment
		if a.UnmarshalTo(&cla) != nil {
			continue
		}
		n := 0
		for _, l := range cla.GetEndpoints() {
			n += len(l.GetLbEndpoints())
		}
		c := cla.GetClusterName()
		p.have[c] = n
		if at, ok := p.written[c]; ok && p.want[c] == n {
			p.lags = append(p.lags, now.Sub(at))
			delete(p.written, c)
		}
	}
}

// cpuTime is the user+system CPU time of process pid so far.
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command (which may hold spaces): state is field 3,
	// utime and stime fields 14 and 15, in clock ticks (USER_HZ, 100).
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond, nil
}

// metricValue sums the samples of a metric on a /metrics page.
func metricValue(t testing.TB, url, name string) float64 {
	v, _, err := readMetric(url, name)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// BenchmarkKubernetesChurn: 100 EndpointSlice updates a second (pod 0 of
// the next service turns unready or ready again), on the informer
// benchmark's mesh of 1,000 services × 10 pods, served by a glassmesh
// process to 1,000 proxyless clients that each dial 10 services. One
// iteration is one second of churn.
func BenchmarkKubernetesChurn(b *testing.B) {
	b.Run(fmt.Sprintf("services=%d/clients=%d/updates-per-s=%d", benchMemServices, benchClients, churnRate), func(b *testing.B) {
		_, cs, _ := benchClient(b)
		benchRemovePushMesh(b) // the informers list every namespace
		benchEnsureMemMesh(b)
		p := startGlassmesh(b, "bench: glassmesh", nil, "--source", "kubernetes", "--kubeconfig", server.Kubeconfig,
			"--kubernetes.namespaces", benchMemNS, "--leader-elect=false")
		pid := p.cmd.Process.Pid
		ready := make([]bool, benchMemServices) // pod 0's state as last written
		for i := range ready {
			ready[i] = true
		}
		// The mesh may carry unready pods of an earlier run: write the
		// probe's services ready and wait for them below.
		ctx := context.Background()
		for i := range churnProbeCount {
			if err := churnPatch(ctx, cs, i, true); err != nil {
				b.Fatal(err)
			}
		}

		probe := &churnProbe{want: map[string]int{}, written: map[string]time.Time{}, have: map[string]int{}}
		var responses atomic.Int64
		var synced atomic.Int64
		cctx, cancel := context.WithCancel(ctx)
		var wg sync.WaitGroup
		var conns []*grpc.ClientConn
		defer func() {
			cancel()
			for _, cc := range conns {
				_ = cc.Close()
			}
			wg.Wait()
		}()
		for range benchConns {
			cc, err := grpc.NewClient(p.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				b.Fatal(err)
			}
			conns = append(conns, cc)
		}
		began := time.Now()
		for c := range benchClients {
			st, err := discovery.NewAggregatedDiscoveryServiceClient(conns[c%len(conns)]).StreamAggregatedResources(cctx)
			if err != nil {
				b.Fatal(err)
			}
			wg.Go(func() {
				benchADS(st, benchNode(benchMemNS, c), churnNames(c), func(r *discovery.DiscoveryResponse, ready bool) {
					responses.Add(1)
					if ready {
						synced.Add(1)
					}
					if c == 0 && r.GetTypeUrl() == benchEDS {
						probe.received(r)
					}
				})
			})
		}
		within(b, 5*time.Minute, "every client has every resource type", func() error {
			if n := synced.Load(); n < benchClients {
				return fmt.Errorf("%d of %d clients synced", n, benchClients)
			}
			probe.mu.Lock()
			defer probe.mu.Unlock()
			for i := range churnProbeCount {
				if n := probe.have[churnCluster(i)]; n != benchMemPods {
					return fmt.Errorf("the probe has %d endpoints of %s, want %d", n, churnCluster(i), benchMemPods)
				}
			}
			return nil
		})
		// Every type seen once may still be the empty answer before the
		// first model: wait until the initial sync has stopped sending.
		within(b, 5*time.Minute, "the initial sync is over", func() error {
			n := responses.Load()
			time.Sleep(time.Second)
			if m := responses.Load(); m != n {
				return fmt.Errorf("%d responses in the last second", m-n)
			}
			return nil
		})
		b.Logf("%d clients in sync after %s", benchClients, time.Since(began).Round(10*time.Millisecond))
		metrics := "http://" + p.httpAddr + "/metrics"

		// The churn: a writer per in-flight update, fed at churnRate.
		type update struct {
			i     int
			ready bool
		}
		work := make(chan update, churnRate)
		var written, failed atomic.Int64
		var writers sync.WaitGroup
		for range 8 {
			writers.Go(func() {
				for u := range work {
					if err := churnPatch(ctx, cs, u.i, u.ready); err != nil {
						failed.Add(1)
						b.Log(err)
						continue
					}
					if u.i < churnProbeCount {
						probe.wrote(churnCluster(u.i), benchMemPods-map[bool]int{true: 0, false: 1}[u.ready], time.Now())
					}
					written.Add(1)
				}
			})
		}
		reloads0 := metricValue(b, metrics, "glassmesh_config_reloads_total")
		cpu0, err := cpuTime(pid)
		if err != nil {
			b.Fatal(err)
		}
		resp0 := responses.Load()
		if *churnProfile != "" {
			go func() {
				resp, err := http.Get("http://" + p.httpAddr + "/debug/pprof/profile?seconds=5")
				if err != nil {
					b.Log(err)
					return
				}
				defer resp.Body.Close()
				page, _ := io.ReadAll(resp.Body)
				_ = os.WriteFile(*churnProfile, page, 0o644)
			}()
		}
		start := time.Now()
		next, behind := 0, 0
		tick := time.NewTicker(time.Second / churnRate)
		b.ResetTimer()
		for b.Loop() {
			for range churnRate {
				<-tick.C
				i := next % benchMemServices
				next++
				ready[i] = !ready[i]
				select {
				case work <- update{i, ready[i]}:
				default:
					behind++
					work <- update{i, ready[i]}
				}
			}
		}
		tick.Stop()
		close(work)
		writers.Wait()
		wall := time.Since(start)
		b.StopTimer()
		cpu1, err := cpuTime(pid)
		if err != nil {
			b.Fatal(err)
		}
		// Every probe service converges to what was last written.
		within(b, time.Minute, "the probe has the last written endpoints", func() error {
			probe.mu.Lock()
			defer probe.mu.Unlock()
			for i := range churnProbeCount {
				want := benchMemPods - map[bool]int{true: 0, false: 1}[ready[i]]
				if n := probe.have[churnCluster(i)]; n != want {
					return fmt.Errorf("the probe has %d endpoints of %s, want %d", n, churnCluster(i), want)
				}
			}
			return nil
		})
		// Leave the mesh as the informer benchmark expects it: all ready.
		benchParallel(b, "churn: every pod ready again", benchMemServices, 16, func(i int) error {
			if ready[i] {
				return nil
			}
			return churnPatch(ctx, cs, i, true)
		})
		reloads := metricValue(b, metrics, "glassmesh_config_reloads_total") - reloads0
		probe.mu.Lock()
		lags := slices.Clone(probe.lags)
		probe.mu.Unlock()
		if len(lags) == 0 {
			b.Fatal("no probe update measured")
		}
		slices.Sort(lags)
		ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
		cpu := cpu1 - cpu0
		b.ReportMetric(cpu.Seconds()/wall.Seconds(), "cores")
		b.ReportMetric(ms(cpu)/float64(max(written.Load(), 1)), "cpu-ms/update")
		b.ReportMetric(float64(written.Load())/wall.Seconds(), "updates/s")
		b.ReportMetric(reloads/wall.Seconds(), "rebuilds/s")
		b.ReportMetric(ms(lags[len(lags)/2]), "p50-ms")
		b.ReportMetric(ms(lags[len(lags)-1]), "max-ms")
		b.ReportMetric(float64(responses.Load()-resp0)/wall.Seconds(), "responses/s")
		b.ReportMetric(float64(failed.Load()+int64(behind)), "late-or-failed")
	})
}

// churnPatch writes service i's EndpointSlice with pod 0 ready or not.
func churnPatch(ctx context.Context, cs kubernetes.Interface, i int, ready0 bool) error {
	a := benchMemApp(i)
	patch, err := json.Marshal(map[string]any{"endpoints": churnEndpoints(i, ready0)})
	if err != nil {
		return err
	}
	_, err = cs.DiscoveryV1().EndpointSlices(a.ns).Patch(ctx, a.name+"-x7k2p", types.MergePatchType, patch, metav1.PatchOptions{})
	return err
}
