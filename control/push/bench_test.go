package push

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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
	pushHeap    = flag.String("push.heapprofile", "", "write a heap profile here once the clients are in sync (the last backend run)")
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

// acks counts the clients' RDS ACKs.
type acks struct {
	rds  atomic.Int64
	want atomic.Int64
	done chan struct{}
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
	for {
		r, err := st.Recv()
		if err != nil {
			return
		}
		typ := r.GetTypeUrl()
		if st.Send(&discovery.DiscoveryRequest{TypeUrl: typ, ResourceNames: names[typ], VersionInfo: r.GetVersionInfo(), ResponseNonce: r.GetNonce()}) != nil {
			return
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
		nodes := make([]string, n)
		for i := range nodes {
			nodes[i] = fmt.Sprintf("bench-%05d", i)
		}
		b.Run(fmt.Sprintf("glassmesh/clients=%d", n), func(b *testing.B) { benchConfigPush(b, newGlassmeshBackend(), nodes) })
		b.Run(fmt.Sprintf("snapshotcache/clients=%d", n), func(b *testing.B) { benchConfigPush(b, newSnapshotCacheBackend(nodes), nodes) })
	}
}

// benchConfigPush runs the file source into backend, connects the clients,
// and times single-weight edits of the file until every client ACKed.
func benchConfigPush(b *testing.B, backend pushBackend, nodes []string) {
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
	inuse0 := heapInuse()

	// The loop: the file source calls backend.apply; loop time is spent
	// there (contain, translate, validate, update).
	var loop atomic.Int64
	var applied atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait(); backend.stop() }()
	src := source.NewFile(source.FileConfig{Path: dir}, slog.New(slog.DiscardHandler))
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
		b.Fatal(err)
	}
	wg.Go(func() { _ = g.Serve(lis) })
	defer g.Stop()
	a := &acks{done: make(chan struct{}, 1)}
	a.want.Store(int64(len(nodes)))
	names := subscriptions()
	cctx, ccancel := context.WithCancel(ctx)
	defer ccancel()
	var conns []*grpc.ClientConn
	defer func() {
		ccancel()
		for _, cc := range conns {
			cc.Close()
		}
	}()
	for range min(len(nodes), pushConns) {
		cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithInitialWindowSize(1<<20), grpc.WithInitialConnWindowSize(1<<24))
		if err != nil {
			b.Fatal(err)
		}
		conns = append(conns, cc)
	}
	for i, id := range nodes {
		st, err := discovery.NewAggregatedDiscoveryServiceClient(conns[i%len(conns)]).StreamAggregatedResources(cctx)
		if err != nil {
			b.Fatal(err)
		}
		wg.Go(func() { runClient(st, id, names, a) })
	}
	select {
	case <-a.done:
	case <-time.After(5 * time.Minute):
		b.Fatalf("only %d of %d clients synced", a.rds.Load(), len(nodes))
	}
	inuse1 := heapInuse()
	if *pushHeap != "" {
		f, err := os.Create(*pushHeap)
		if err != nil {
			b.Fatal(err)
		}
		if err := pprof.WriteHeapProfile(f); err != nil {
			b.Fatal(err)
		}
		f.Close()
	}

	loop.Store(0)
	applies := applied.Load()
	b.ResetTimer()
	var total, worst time.Duration
	for i := range b.N {
		weights[i%pushServices] = 1 + (i/pushServices)%99
		a.want.Add(int64(len(nodes)))
		start := time.Now()
		write()
		select {
		case <-a.done:
		case <-time.After(2 * time.Minute):
			b.Fatalf("%d of %d clients ACKed the change", a.rds.Load()-(a.want.Load()-int64(len(nodes))), len(nodes))
		}
		took := time.Since(start)
		total += took
		worst = max(worst, took)
	}
	b.StopTimer()
	b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "ms/change")
	b.ReportMetric(float64(worst.Microseconds())/1000, "max-ms")
	b.ReportMetric(float64(loop.Load())/1e6/float64(max(applied.Load()-applies, 1)), "loop-ms/change")
	b.ReportMetric(float64(inuse1-min(inuse0, inuse1))/float64(len(nodes)), "heap-B/client")
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
