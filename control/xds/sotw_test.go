package xds

import (
	"slices"
	"strings"
	"testing"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	routeservice "github.com/envoyproxy/go-control-plane/envoy/service/route/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/types/known/anypb"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var allTypes = []string{resource.ListenerType, resource.RouteType, resource.ClusterType, resource.EndpointType}

// names decodes the resources of a response and returns their names, sorted.
func names(t testing.TB, resources []*anypb.Any) []string {
	t.Helper()
	var out []string
	for _, a := range resources {
		m, err := a.UnmarshalNew()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, cache.GetResourceName(m))
	}
	slices.Sort(out)
	return out
}

// subscribeAll subscribes c to the first n resources of every type of m by
// name and accepts the answers.
func subscribeAll(t *testing.T, c *adsClient, m mesh, n int) {
	t.Helper()
	for _, typ := range allTypes {
		c.subscribe(typ, m.names(typ)[:n]...)
		r := c.recvType(typ)
		if got := len(r.GetResources()); got != n {
			t.Fatalf("%s: got %d resources, want %d", typ, got, n)
		}
		c.ack(r)
	}
}

func newTestServer(t *testing.T, cfg Config) (*Server, *prometheus.Registry, string) {
	t.Helper()
	reg := prometheus.NewRegistry()
	s := New(cfg, nil, reg)
	return s, reg, startServer(t, s)
}

func TestSotWWeightChangeSendsOnlyThatRoute(t *testing.T) {
	m := mesh{Services: 3, Endpoints: 2, Port: 8080}
	s, _, addr := newTestServer(t, Config{})
	if err := s.Update(m.snapshot()); err != nil {
		t.Fatal(err)
	}
	cc := dial(t, addr)
	all := newADSClient(t, cc, proxylessNode("all"))
	first := newADSClient(t, cc, proxylessNode("first"))
	subscribeAll(t, all, m, 3)
	subscribeAll(t, first, m, 1)
	all.quiet(200 * time.Millisecond)
	first.quiet(0)

	m.Weight = func(i int) uint32 {
		if i == 2 {
			return 80
		}
		return 100
	}
	if err := s.Update(m.snapshot()); err != nil {
		t.Fatal(err)
	}
	r := all.recvType(resource.RouteType)
	if got := names(t, r.GetResources()); !slices.Equal(got, []string{m.routeName(2)}) {
		t.Fatalf("RDS push carried %v, want only %s", got, m.routeName(2))
	}
	var rc routev3.RouteConfiguration
	if err := r.GetResources()[0].UnmarshalTo(&rc); err != nil {
		t.Fatal(err)
	}
	if w := rc.GetVirtualHosts()[0].GetRoutes()[0].GetRoute().GetWeightedClusters().GetClusters()[0].GetWeight().GetValue(); w != 80 {
		t.Fatalf("weight %d, want 80", w)
	}
	all.ack(r)
	all.quiet(300 * time.Millisecond)
	first.quiet(0)

	t.Run("an identical snapshot pushes nothing", func(t *testing.T) {
		all, first := all.on(t), first.on(t)
		if err := s.Update(m.snapshot()); err != nil {
			t.Fatal(err)
		}
		all.quiet(300 * time.Millisecond)
		first.quiet(0)
	})
}

func TestSotWRejectedVersionIsNotResent(t *testing.T) {
	m := mesh{Services: 3, Endpoints: 2, Port: 8080}
	s, _, addr := newTestServer(t, Config{})
	if err := s.Update(m.snapshot()); err != nil {
		t.Fatal(err)
	}
	c := newADSClient(t, dial(t, addr), proxylessNode("nacker"))
	pushes := func(typ string) float64 { return testutil.ToFloat64(s.metrics.pushes.WithLabelValues(typeLabel(typ))) }

	for _, typ := range allTypes {
		c.subscribe(typ, m.names(typ)...)
		c.nack(c.recvType(typ), "rejected "+typeLabel(typ))
	}
	c.quiet(500 * time.Millisecond)
	for _, typ := range allTypes {
		if n := pushes(typ); n != 1 {
			t.Errorf("%s: %v responses after a rejected first one, want 1", typ, n)
		}
	}

	for step, w := range []uint32{70, 60, 50} {
		m.Weight = func(i int) uint32 {
			if i == 0 {
				return w
			}
			return 100
		}
		if err := s.Update(m.snapshot()); err != nil {
			t.Fatal(err)
		}
		r := c.recvType(resource.RouteType)
		if got := names(t, r.GetResources()); !slices.Equal(got, []string{m.routeName(0)}) {
			t.Fatalf("push carried %v, want %s", got, m.routeName(0))
		}
		c.nack(r, "still bad")
		c.quiet(300 * time.Millisecond)
		if n := pushes(resource.RouteType); n != float64(step+2) {
			t.Fatalf("after %d changes: %v RDS responses, want %d", step+1, n, step+2)
		}
		ts := statusOf(t, s, "nacker").Types[resource.RouteType]
		if ts.NACK == nil || ts.NACK.Nonce != r.GetNonce() || ts.NACK.Version != r.GetVersionInfo() || ts.NACK.Error != "still bad" {
			t.Fatalf("status %+v does not record the NACK of %s/%s", ts, r.GetVersionInfo(), r.GetNonce())
		}
		if ts.Acked != "" || ts.Sent != r.GetVersionInfo() {
			t.Fatalf("status %+v: want nothing acked and %s sent", ts, r.GetVersionInfo())
		}
	}
	if n := testutil.ToFloat64(s.metrics.nacks.WithLabelValues("rds")); n != 4 {
		t.Fatalf("nacks_total{type=rds} = %v, want 4", n)
	}
}

func TestSotWAckedThenRejected(t *testing.T) {
	m := mesh{Services: 2, Endpoints: 1, Port: 8080}
	s, _, addr := newTestServer(t, Config{})
	if err := s.Update(m.snapshot()); err != nil {
		t.Fatal(err)
	}
	c := newADSClient(t, dial(t, addr), proxylessNode("n"))
	c.subscribe(resource.ListenerType, m.names(resource.ListenerType)...)
	first := c.recvType(resource.ListenerType)
	c.ack(first)
	// A new listener set: LDS is full-state, so both come again.
	snap := m.snapshot()
	snap.ByName[resource.ListenerType][m.listenerName(1)] = apiListener(m.listenerName(1), "elsewhere")
	if err := s.Update(snap); err != nil {
		t.Fatal(err)
	}
	r := c.recvType(resource.ListenerType)
	if len(r.GetResources()) != 2 {
		t.Fatalf("full-state LDS push had %d listeners, want 2", len(r.GetResources()))
	}
	c.nack(r, "no such route")
	c.quiet(500 * time.Millisecond)
	ts := statusOf(t, s, "n").Types[resource.ListenerType]
	if ts.Acked != first.GetVersionInfo() || ts.Sent != r.GetVersionInfo() || ts.NACK == nil || ts.NACK.Version != r.GetVersionInfo() {
		t.Fatalf("status %+v, want acked %s, sent and rejected %s", ts, first.GetVersionInfo(), r.GetVersionInfo())
	}
}

func TestPerTypeServiceStream(t *testing.T) {
	m := mesh{Services: 2, Endpoints: 1, Port: 8080}
	s, _, addr := newTestServer(t, Config{})
	if err := s.Update(m.snapshot()); err != nil {
		t.Fatal(err)
	}
	cc := dial(t, addr)
	st, err := routeservice.NewRouteDiscoveryServiceClient(cc).StreamRoutes(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Send(&discovery.DiscoveryRequest{Node: proxylessNode("rds-only"), ResourceNames: []string{m.routeName(1)}}); err != nil {
		t.Fatal(err)
	}
	r, err := st.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if got := names(t, r.GetResources()); !slices.Equal(got, []string{m.routeName(1)}) {
		t.Fatalf("got %v", got)
	}
	if err := st.Send(&discovery.DiscoveryRequest{ResourceNames: []string{m.routeName(1)}, VersionInfo: r.GetVersionInfo(), ResponseNonce: r.GetNonce()}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return statusOf(t, s, "rds-only").Types[resource.RouteType].Acked == r.GetVersionInfo() })
}

// statusOf finds one proxy in s.Proxies().
func statusOf(t testing.TB, s *Server, id string) ProxyStatus {
	t.Helper()
	for _, p := range s.Proxies() {
		if p.ID == id {
			return p
		}
	}
	t.Fatalf("proxy %q not in %+v", id, s.Proxies())
	return ProxyStatus{}
}

// waitFor polls cond for up to 5s.
func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestTypesWithoutResources(t *testing.T) {
	m := mesh{Services: 1, Endpoints: 1, Port: 8080}
	s, _, addr := newTestServer(t, Config{})
	if err := s.Update(m.snapshot()); err != nil {
		t.Fatal(err)
	}
	cc := dial(t, addr)

	t.Run("a known type with no resources is answered empty", func(t *testing.T) {
		c := newADSClient(t, cc, proxylessNode("secrets"))
		c.subscribe(resource.SecretType, "default")
		if r := c.recvType(resource.SecretType); len(r.GetResources()) != 0 {
			t.Fatalf("%d secrets, want none", len(r.GetResources()))
		}
		c.subscribe(resource.RouteType, m.routeName(0))
		c.recvType(resource.RouteType)
	})

	t.Run("an unknown type ends the stream", func(t *testing.T) {
		st, err := discovery.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Send(&discovery.DiscoveryRequest{Node: proxylessNode("odd"), TypeUrl: "type.googleapis.com/no.Such"}); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Recv(); err == nil || !strings.Contains(err.Error(), "unknown resource type") {
			t.Fatalf("Recv: %v", err)
		}
	})
}
