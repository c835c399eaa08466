package push

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resource "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/glassmesh/glassmesh/control/model"
	"github.com/glassmesh/glassmesh/control/naming"
	"github.com/glassmesh/glassmesh/control/source"
	"github.com/glassmesh/glassmesh/control/translate"
	"github.com/glassmesh/glassmesh/control/xds"
)

// The config loop end to end: a file save until the last of N proxyless
// clients has ACKed the changed route, through the real file watcher.

var (
	pushClients = flag.String("push.clients", "1000", "comma-separated client counts for BenchmarkConfigPush")
	pushPeerMax = flag.Int("push.peer-max", 5000, "run go-control-plane's SnapshotCache only up to this many clients (it takes minutes a change beyond)")
	pushCPU     = flag.String("push.cpuprofile", "", "profile the control plane's CPU during the changes into this path + .BACKEND")
	pushHeap    = flag.String("push.heapprofile", "", "write the control plane's heap profiles to this path + .BACKEND once the clients are in sync")
)

const (
	pushServices  = 100
	pushEndpoints = 10 // per subset; two subsets per service
	pushConns     = 32 // clients share this many gRPC connections
)

// meshFile is the benchmark's config: pushServices services, each with
// two versions of pushEndpoints endpoints and a route weighting them.
func meshFile(weights []int) []byte {
	var b strings.Builder
	for i := range pushServices {
		fmt.Fprintf(&b, `apiVersion: glassmesh.io/v1alpha1
kind: Service
metadata: {name: svc-%[1]d}
spec:
  ports: [{name: grpc, port: 9080, protocol: GRPC}]
  selector: {app: svc-%[1]d}
---
apiVersion: glassmesh.io/v1alpha1
kind: TrafficRoute
metadata: {name: svc-%[1]d}
spec:
  service: svc-%[1]d
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
  rules: [{destinations: [{subset: v1, weight: %[2]d}, {subset: v2, weight: %[3]d}]}]
`, i, weights[i], 100-weights[i])
		for _, v := range []string{"v1", "v2"} {
			fmt.Fprintf(&b, "---\napiVersion: glassmesh.io/v1alpha1\nkind: Workload\nmetadata: {name: svc-%d-%s, labels: {app: svc-%d, version: %s}}\nspec:\n  endpoints:\n", i, v, i, v)
			for j := range pushEndpoints {
				fmt.Fprintf(&b, "    - {address: 10.%d.%d.%d, ports: {grpc: 9080}}\n", i/250, i%250, j+map[string]int{"v1": 1, "v2": 101}[v])
			}
		}
		b.WriteString("---\n")
	}
	return []byte(b.String())
}

// subscriptions are the names every client asks for, as grpc-go does when
// it dials every service: each listener, its route, the clusters the route
// names and their load assignments.
func subscriptions() map[string][]string {
	out := map[string][]string{}
	for i := range pushServices {
		fqdn := fmt.Sprintf("svc-%d.default.svc.cluster.local", i)
		out[resource.ListenerType] = append(out[resource.ListenerType], fqdn+":9080")
		out[resource.RouteType] = append(out[resource.RouteType], fqdn+":9080")
		for _, s := range []string{"", "v1", "v2"} {
			c := fmt.Sprintf("outbound|9080|%s|%s", s, fqdn)
			out[resource.ClusterType] = append(out[resource.ClusterType], c)
			out[resource.EndpointType] = append(out[resource.EndpointType], c)
		}
	}
	return out
}

var pushTypes = []string{resource.ListenerType, resource.RouteType, resource.ClusterType, resource.EndpointType}

// pushBackend is a control plane fed by the file source.
type pushBackend interface {
	register(g *grpc.Server)
	apply(r model.Result) []source.ObjectStatus
	stop()
}

// glassmeshBackend is the config loop as glassmesh runs it.
type glassmeshBackend struct {
	store  *source.Store
	pusher *Pusher
	xds    *xds.Server
}

func newGlassmeshBackend() *glassmeshBackend {
	s := xds.New(xds.Config{}, nil, nil)
	return &glassmeshBackend{store: source.NewStore(slog.New(slog.DiscardHandler), nil), pusher: New(Config{XDS: s}, nil), xds: s}
}

func (g *glassmeshBackend) register(gs *grpc.Server) { g.xds.Register(gs) }
func (g *glassmeshBackend) apply(r model.Result) []source.ObjectStatus {
	aside, _ := g.store.Apply(r, g.pusher.Push)
	return aside
}
func (g *glassmeshBackend) stop() { g.xds.Stop() }

// snapshotCacheBackend is the plain go-control-plane way: the same
// translation, a snapshot per node with one version for every type.
type snapshotCacheBackend struct {
	sc     cache.SnapshotCache
	srv    serverv3.Server
	cancel context.CancelFunc
	nodes  []string
	gen    int
}

func newSnapshotCacheBackend(nodes []string) *snapshotCacheBackend {
	ctx, cancel := context.WithCancel(context.Background())
	sc := cache.NewSnapshotCache(false, cache.IDHash{}, nil)
	return &snapshotCacheBackend{sc: sc, srv: serverv3.NewServer(ctx, sc, nil), cancel: cancel, nodes: nodes}
}

func (b *snapshotCacheBackend) register(g *grpc.Server) {
	discovery.RegisterAggregatedDiscoveryServiceServer(g, b.srv)
}

func (b *snapshotCacheBackend) apply(r model.Result) []source.ObjectStatus {
	if r.Mesh == nil {
		return nil
	}
	snap, err := translate.Translate(r.Mesh, translate.Options{})
	if err != nil {
		panic(err)
	}
	byType := map[resource.Type][]types.Resource{}
	for t, byName := range snap.ByName {
		for _, res := range byName {
			byType[t] = append(byType[t], res)
		}
	}
	b.gen++
	for _, id := range b.nodes {
		s, err := cache.NewSnapshot("v"+strconv.Itoa(b.gen), byType)
		if err != nil {
			panic(err)
		}
		if err := b.sc.SetSnapshot(context.Background(), id, s); err != nil {
			panic(err)
		}
	}
	return nil
}

func (b *snapshotCacheBackend) stop() { b.cancel() }

// acks counts the clients' responses and RDS ACKs.
type acks struct {
	rds       atomic.Int64
	want      atomic.Int64
	done      chan struct{}
	responses atomic.Int64 // of every type
	ready     atomic.Int64 // clients that had a response of every type
}

// quiet waits until every client had every type and nothing has been
// received for half a second: the initial sync, or a change's last
// responses, is over.
func (a *acks) quiet(tb testing.TB, n int) {
	last, since := int64(-1), time.Now()
	for deadline := time.Now().Add(5 * time.Minute); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if r := a.responses.Load(); r != last {
			last, since = r, time.Now()
		}
		if a.ready.Load() == int64(n) && time.Since(since) > 500*time.Millisecond {
			return
		}
	}
	tb.Fatalf("not quiet after 5m: %d of %d clients had every type", a.ready.Load(), n)
}

func runClient(st grpc.BidiStreamingClient[discovery.DiscoveryRequest, discovery.DiscoveryResponse], node string, names map[string][]string, a *acks) {
	for i, typ := range pushTypes {
		req := &discovery.DiscoveryRequest{TypeUrl: typ, ResourceNames: names[typ]}
		if i == 0 {
			req.Node = &corev3.Node{Id: node, Metadata: &structpb.Struct{Fields: map[string]*structpb.Value{
				naming.NodeMetaGenerator: structpb.NewStringValue(naming.GeneratorGRPC),
			}}}
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
		a.responses.Add(1)
		if !seen[typ] {
			if seen[typ] = true; len(seen) == len(pushTypes) {
				a.ready.Add(1)
			}
		}
		if typ == resource.RouteType && a.rds.Add(1) == a.want.Load() {
			a.done <- struct{}{}
		}
	}
}

func BenchmarkConfigPush(b *testing.B) {
	for _, f := range strings.Split(*pushClients, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			b.Fatal(err)
		}
		for _, backend := range []string{"glassmesh", "snapshotcache"} {
			if backend == "snapshotcache" && n > *pushPeerMax {
				continue
			}
			b.Run(fmt.Sprintf("%s/clients=%d", backend, n), func(b *testing.B) { benchConfigPush(b, backend, n) })
		}
	}
}

func benchNodes(n int) []string {
	nodes := make([]string, n)
	for i := range nodes {
		nodes[i] = fmt.Sprintf("bench-%05d", i)
	}
	return nodes
}

// The control plane under test runs in a process of its own (this test
// binary again, as TestPushServerProcess), so that its memory and CPU are
// its own and not the clients'. It prints "ready ADDR", then answers each
// "stats" line on its stdin with one "stats" line of pushStats, and stops
// when its stdin closes.
const (
	envPushBackend = "GLASSMESH_PUSH_BACKEND"
	envPushDir     = "GLASSMESH_PUSH_DIR"
	envPushNodes   = "GLASSMESH_PUSH_NODES"
)

// pushStats is what the control-plane process says of itself.
type pushStats struct {
	loop    time.Duration // spent in the loop (apply) so far
	applied int64         // meshes applied so far
	heap    uint64        // live heap after a GC
	cpu     time.Duration // user+system CPU so far
	rss     uint64        // resident set now
	maxRSS  uint64        // peak resident set
}

func TestPushServerProcess(t *testing.T) {
	backendName := os.Getenv(envPushBackend)
	if backendName == "" {
		t.Skip("the control-plane process of BenchmarkConfigPush; runs only when it starts it")
	}
	n, err := strconv.Atoi(os.Getenv(envPushNodes))
	if err != nil {
		t.Fatal(err)
	}
	var backend pushBackend
	switch backendName {
	case "glassmesh":
		backend = newGlassmeshBackend()
	case "snapshotcache":
		backend = newSnapshotCacheBackend(benchNodes(n))
	default:
		t.Fatalf("unknown backend %q", backendName)
	}
	var loop atomic.Int64
	var applied atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait(); backend.stop() }()
	src := source.NewFile(source.FileConfig{Path: os.Getenv(envPushDir)}, slog.New(slog.DiscardHandler))
	wg.Go(func() {
		_ = src.Run(ctx, func(r model.Result) []source.ObjectStatus {
			start := time.Now()
			out := backend.apply(r)
			loop.Add(int64(time.Since(start)))
			applied.Add(1)
			return out
		})
	})
	for applied.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	g := grpc.NewServer()
	backend.register(g)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	wg.Go(func() { _ = g.Serve(lis) })
	defer g.Stop()
	fmt.Printf("ready %s\n", lis.Addr())
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		if path, ok := strings.CutPrefix(in.Text(), "heap "); ok {
			f, err := os.Create(path)
			if err != nil {
				t.Fatal(err)
			}
			runtime.GC()
			if err := pprof.WriteHeapProfile(f); err != nil {
				t.Fatal(err)
			}
			f.Close()
			continue
		}
		if path, ok := strings.CutPrefix(in.Text(), "cpu "); ok {
			f, err := os.Create(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := pprof.StartCPUProfile(f); err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			defer pprof.StopCPUProfile()
			continue
		}
		var ru syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		fmt.Printf("stats %d %d %d %d %d %d\n", loop.Load(), applied.Load(), heapInuse(),
			time.Duration(ru.Utime.Nano()+ru.Stime.Nano()), residentBytes(), uint64(ru.Maxrss)<<10)
	}
}

// residentBytes is this process's resident set (VmRSS).
func residentBytes() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// pushServer is the parent's handle on the control-plane process.
type pushServer struct {
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  *bufio.Scanner
	addr string
}

func startPushServer(b *testing.B, backend, dir string, n int) *pushServer {
	cmd := exec.Command(os.Args[0], "-test.run=^TestPushServerProcess$", "-test.bench=^$")
	cmd.Env = append(os.Environ(), envPushBackend+"="+backend, envPushDir+"="+dir, envPushNodes+"="+strconv.Itoa(n))
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	s := &pushServer{cmd: cmd, in: in, out: bufio.NewScanner(out)}
	b.Cleanup(s.stop)
	for s.out.Scan() {
		if addr, ok := strings.CutPrefix(s.out.Text(), "ready "); ok {
			s.addr = addr
			return s
		}
	}
	b.Fatalf("the control-plane process ended before it was ready: %v", s.out.Err())
	return nil
}

func (s *pushServer) stats(b *testing.B) pushStats {
	if _, err := io.WriteString(s.in, "stats\n"); err != nil {
		b.Fatal(err)
	}
	for s.out.Scan() {
		rest, ok := strings.CutPrefix(s.out.Text(), "stats ")
		if !ok {
			continue
		}
		var st pushStats
		if _, err := fmt.Sscan(rest, &st.loop, &st.applied, &st.heap, &st.cpu, &st.rss, &st.maxRSS); err != nil {
			b.Fatal(err)
		}
		return st
	}
	b.Fatalf("the control-plane process ended: %v", s.out.Err())
	return pushStats{}
}

func (s *pushServer) stop() {
	s.in.Close()
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
	}
}

// benchConfigPush starts the control plane (backend) on a mesh file,
// connects n clients, and times single-weight edits of the file until
// every client ACKed.
func benchConfigPush(b *testing.B, backend string, n int) {
	dir := b.TempDir()
	path := filepath.Join(dir, "mesh.yaml")
	weights := make([]int, pushServices)
	for i := range weights {
		weights[i] = 100
	}
	write := func() {
		tmp := filepath.Join(dir, ".mesh.yaml.tmp")
		if err := os.WriteFile(tmp, meshFile(weights), 0o644); err != nil {
			b.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			b.Fatal(err)
		}
	}
	write()
	srv := startPushServer(b, backend, dir, n)
	idle := srv.stats(b)

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	a := &acks{done: make(chan struct{}, 1)}
	a.want.Store(int64(n))
	names := subscriptions()
	var conns []*grpc.ClientConn
	defer func() {
		cancel()
		for _, cc := range conns {
			cc.Close()
		}
	}()
	for range min(n, pushConns) {
		cc, err := grpc.NewClient(srv.addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithInitialWindowSize(1<<20), grpc.WithInitialConnWindowSize(1<<24))
		if err != nil {
			b.Fatal(err)
		}
		conns = append(conns, cc)
	}
	for i, id := range benchNodes(n) {
		st, err := discovery.NewAggregatedDiscoveryServiceClient(conns[i%len(conns)]).StreamAggregatedResources(ctx)
		if err != nil {
			b.Fatal(err)
		}
		wg.Go(func() { runClient(st, id, names, a) })
	}
	select {
	case <-a.done:
	case <-time.After(5 * time.Minute):
		b.Fatalf("only %d of %d clients synced", a.rds.Load(), n)
	}
	a.quiet(b, n)
	synced := srv.stats(b)
	if *pushHeap != "" {
		if _, err := fmt.Fprintf(srv.in, "heap %s.%s\n", *pushHeap, backend); err != nil {
			b.Fatal(err)
		}
	}

	if *pushCPU != "" {
		if _, err := fmt.Fprintf(srv.in, "cpu %s.%s\n", *pushCPU, backend); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	var total, worst time.Duration
	for i := range b.N {
		weights[i%pushServices] = 1 + (i/pushServices)%99
		a.want.Add(int64(n))
		start := time.Now()
		write()
		select {
		case <-a.done:
		case <-time.After(2 * time.Minute):
			b.Fatalf("%d of %d clients ACKed the change", a.rds.Load()-(a.want.Load()-int64(n)), n)
		}
		took := time.Since(start)
		total += took
		worst = max(worst, took)
	}
	b.StopTimer()
	a.quiet(b, n) // the ACKs of the last change are the loop's work too
	end := srv.stats(b)
	changes := float64(max(end.applied-synced.applied, 1))
	perClient := func(from, to uint64) float64 { return float64(to-min(from, to)) / 1024 / float64(n) }
	b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "ms/change")
	b.ReportMetric(float64(worst.Microseconds())/1000, "max-ms")
	b.ReportMetric(float64(end.loop-synced.loop)/1e6/changes, "loop-ms/change")
	b.ReportMetric(float64(end.cpu-synced.cpu)/1e6/float64(b.N), "cpu-ms/change")
	b.ReportMetric(perClient(idle.heap, synced.heap), "heap-KB/client")
	b.ReportMetric(perClient(idle.rss, synced.rss), "rss-KB/client")
	b.ReportMetric(float64(end.maxRSS)/(1<<20), "peak-rss-MB")
	b.ReportMetric(float64(source.DefaultDebounce.Milliseconds()), "debounce-ms")
}

func heapInuse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// BenchmarkLoop is the control plane's own work for one single-route
// change of the benchmark mesh, no clients: reading the file, containing,
// translating, validating and updating the caches.
func BenchmarkLoop(b *testing.B) {
	dir := b.TempDir()
	path := filepath.Join(dir, "mesh.yaml")
	weights := make([]int, pushServices)
	for i := range weights {
		weights[i] = 100
	}
	g := newGlassmeshBackend()
	defer g.stop()
	write := func() {
		if err := os.WriteFile(path, meshFile(weights), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	write()
	var cache model.ParseCache // as the file source reads
	first, _ := model.LoadManifestsCached(dir, source.ImportManifests, &cache)
	g.apply(first)
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		weights[i%pushServices] = 1 + (i/pushServices)%99
		write()
		b.StartTimer()
		r, _ := model.LoadManifestsCached(dir, source.ImportManifests, &cache)
		if aside := g.apply(r); len(aside) > 0 {
			b.Fatal(aside)
		}
	}
}
