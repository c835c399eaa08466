package xds

import (
	"context"
	"flag"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
)

// fanoutClients adds a BenchmarkFanout size, e.g. -xds.fanout=10000.
var fanoutClients = flag.Int("xds.fanout", 0, "extra client count for BenchmarkFanout")

const (
	fanoutServices  = 100
	fanoutEndpoints = 10
	fanoutConns     = 32 // clients share this many gRPC connections
)

// fanoutBackend is a control plane under benchmark.
type fanoutBackend interface {
	register(g *grpc.Server)
	// set serves m to the nodes; it returns once the backend took it.
	set(m mesh, gen int, nodes []string) error
	stop()
}

// linearBackend is this package's Server.
type linearBackend struct{ s *Server }

func (l linearBackend) register(g *grpc.Server) { l.s.Register(g) }
func (l linearBackend) set(m mesh, _ int, _ []string) error {
	return l.s.Update(m.snapshot())
}
func (l linearBackend) stop() { l.s.Stop() }

// snapshotBackend is go-control-plane's SnapshotCache (non-ADS mode, so it
// answers by-name requests one by one), one snapshot per node holding every
// resource, one version for all types: the plain way to use it.
type snapshotBackend struct {
	sc     cache.SnapshotCache
	cancel context.CancelFunc
	srv    serverv3.Server
}

func newSnapshotBackend() *snapshotBackend {
	ctx, cancel := context.WithCancel(context.Background())
	sc := cache.NewSnapshotCache(false, cache.IDHash{}, nil)
	return &snapshotBackend{sc: sc, cancel: cancel, srv: serverv3.NewServer(ctx, sc, nil)}
}

func (b *snapshotBackend) register(g *grpc.Server) {
	discovery.RegisterAggregatedDiscoveryServiceServer(g, b.srv)
}

func (b *snapshotBackend) set(m mesh, gen int, nodes []string) error {
	res := m.resources()
	byType := make(map[resource.Type][]types.Resource, len(res))
	for t, byName := range res {
		for _, r := range byName {
			byType[t] = append(byType[t], r)
		}
	}
	for _, id := range nodes {
		snap, err := cache.NewSnapshot("v"+strconv.Itoa(gen), byType)
		if err != nil {
			return err
		}
		if err := b.sc.SetSnapshot(context.Background(), id, snap); err != nil {
			return err
		}
	}
	return nil
}

func (b *snapshotBackend) stop() { b.cancel() }

// fanoutCounters are shared by every benchmark client.
type fanoutCounters struct {
	ready     atomic.Int64 // clients that ACKed a response of every type
	rdsAcks   atomic.Int64 // RDS responses ACKed, all clients
	rdsWant   atomic.Int64 // signal done when rdsAcks reaches this
	responses atomic.Int64
	done      chan struct{}
	// bytes sums the responses' sizes when countBytes is set.
	countBytes bool
	bytes      atomic.Int64
}

// runFanoutClient subscribes to names (shared by every client, so the
// clients' own memory stays out of the figures) and ACKs each response at
// once, until the stream ends.
func runFanoutClient(st grpc.BidiStreamingClient[discovery.DiscoveryRequest, discovery.DiscoveryResponse], node string, names map[string][]string, c *fanoutCounters) {
	for i, typ := range allTypes {
		req := &discovery.DiscoveryRequest{TypeUrl: typ, ResourceNames: names[typ]}
		if i == 0 {
			req.Node = proxylessNode(node)
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
		if c.countBytes {
			c.bytes.Add(int64(proto.Size(r)))
		}
		typ := r.GetTypeUrl()
		ack := &discovery.DiscoveryRequest{TypeUrl: typ, ResourceNames: names[typ], VersionInfo: r.GetVersionInfo(), ResponseNonce: r.GetNonce()}
		if st.Send(ack) != nil {
			return
		}
		c.responses.Add(1)
		if !seen[typ] {
			if seen[typ] = true; len(seen) == len(allTypes) {
				c.ready.Add(1)
			}
		}
		if typ == resource.RouteType && c.rdsAcks.Add(1) == c.rdsWant.Load() {
			c.done <- struct{}{}
		}
	}
}

func BenchmarkFanout(b *testing.B) {
	sizes := []int{100, 1000}
	if *fanoutClients > 0 {
		sizes = append(sizes, *fanoutClients)
	}
	for _, n := range sizes {
		b.Run(fmt.Sprintf("linear/clients=%d", n), func(b *testing.B) {
			benchFanout(b, linearBackend{New(Config{}, nil, nil)}, n)
		})
		b.Run(fmt.Sprintf("snapshotcache/clients=%d", n), func(b *testing.B) {
			benchFanout(b, newSnapshotBackend(), n)
		})
	}
}

// heapStats collects garbage and reads the heap's in-use spans and live
// bytes.
func heapStats() (inuse, live uint64) {
	runtime.GC()
	runtime.GC() // the second empties the sync.Pools' victim caches
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse, ms.HeapAlloc
}

// perClient is the heap growth between two heapStats per client; it
// includes the benchmark clients' own streams (they run in this process).
func perClient(before, after uint64, n int) float64 {
	return float64(after-min(before, after)) / float64(n)
}

// benchFanout connects n clients to backend over a few shared connections,
// then times weight changes until every client has ACKed the new route.
// Everything it starts is stopped before it returns: the framework calls it
// more than once per result, and a previous round's clients must not skew
// the heap figures.
func benchFanout(b *testing.B, backend fanoutBackend, n int) {
	weights := make([]uint32, fanoutServices)
	for i := range weights {
		weights[i] = 100
	}
	m := mesh{Services: fanoutServices, Endpoints: fanoutEndpoints, Port: 8080,
		Weight: func(i int) uint32 { return weights[i] }}
	nodes := make([]string, n)
	for i := range nodes {
		nodes[i] = fmt.Sprintf("bench-%05d", i)
	}
	names := make(map[string][]string, len(allTypes))
	for _, typ := range allTypes {
		names[typ] = m.names(typ)
	}
	// The baseline is taken before the first config is set: what a
	// backend keeps per node (the SnapshotCache a snapshot) counts.
	inuse0, live0 := heapStats()
	if err := backend.set(m, 0, nodes); err != nil {
		b.Fatal(err)
	}
	addr, stop := serveBench(b, backend)
	defer stop()
	c, disconnect := connectFanout(b, addr, nodes, func(int) map[string][]string { return names }, false)
	defer disconnect()
	inuse1, live1 := heapStats()

	base := c.responses.Load()
	b.ResetTimer()
	var updates time.Duration
	for i := range b.N {
		weights[i%fanoutServices] = uint32(1 + (i/fanoutServices)%99)
		updates += timeUpdate(b, c, n, func() error { return backend.set(m, i+1, nodes) })
	}
	b.StopTimer()
	time.Sleep(200 * time.Millisecond) // let trailing responses of other types land
	b.ReportMetric(float64(updates.Microseconds())/1000/float64(b.N), "ms/update")
	b.ReportMetric(float64(n), "clients")
	b.ReportMetric(perClient(inuse0, inuse1, n), "heap-inuse-B/client")
	b.ReportMetric(perClient(live0, live1, n), "heap-live-B/client")
	b.ReportMetric(float64(c.responses.Load()-base)/float64(n)/float64(b.N), "resp/client/update")
}

// timeUpdate runs set and waits until each of the n clients has ACKed one
// more route configuration.
func timeUpdate(b *testing.B, c *fanoutCounters, n int, set func() error) time.Duration {
	c.rdsWant.Add(int64(n))
	start := time.Now()
	if err := set(); err != nil {
		b.Fatal(err)
	}
	select {
	case <-c.done:
	case <-time.After(2 * time.Minute):
		b.Fatalf("%d of %d clients ACKed the update", c.rdsAcks.Load()-(c.rdsWant.Load()-int64(n)), n)
	}
	return time.Since(start)
}

// connectFanout starts one client per node, subscribed to names(i), over a
// few shared connections and waits until all are in sync; countBytes makes
// them sum the responses' sizes. disconnect ends them and waits.
func connectFanout(b *testing.B, addr string, nodes []string, names func(i int) map[string][]string, countBytes bool) (c *fanoutCounters, disconnect func()) {
	c = &fanoutCounters{done: make(chan struct{}, 1), countBytes: countBytes}
	c.rdsWant.Store(int64(len(nodes)))
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	conns := make([]*grpc.ClientConn, 0, min(len(nodes), fanoutConns))
	disconnect = func() {
		cancel()
		for _, cc := range conns {
			_ = cc.Close()
		}
		wg.Wait()
	}
	for range cap(conns) {
		cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithInitialWindowSize(1<<20), grpc.WithInitialConnWindowSize(1<<24))
		if err != nil {
			disconnect()
			b.Fatal(err)
		}
		conns = append(conns, cc)
	}
	for i, id := range nodes {
		st, err := discovery.NewAggregatedDiscoveryServiceClient(conns[i%len(conns)]).StreamAggregatedResources(ctx)
		if err != nil {
			disconnect()
			b.Fatal(err)
		}
		wg.Go(func() { runFanoutClient(st, id, names(i), c) })
	}
	if err := waitSynced(c, len(nodes)); err != nil {
		disconnect()
		b.Fatal(err)
	}
	return c, disconnect
}

// waitSynced waits until every client has ACKed its first response of
// every type.
func waitSynced(c *fanoutCounters, n int) error {
	deadline := time.Now().Add(5 * time.Minute)
	for c.ready.Load() < int64(n) || c.rdsAcks.Load() < int64(n) {
		if time.Now().After(deadline) {
			return fmt.Errorf("only %d of %d clients synced", c.ready.Load(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	select {
	case <-c.done: // the initial sync's signal
	default:
	}
	return nil
}

// serveBench serves backend on loopback; stop ends it and waits.
func serveBench(b *testing.B, backend fanoutBackend) (addr string, stop func()) {
	g := grpc.NewServer()
	backend.register(g)
	addr, stopGRPC := serve(b, g)
	return addr, func() {
		backend.stop()
		stopGRPC()
	}
}
