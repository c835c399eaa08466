package xds

import (
	"slices"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/glassmesh/glassmesh/control/naming"
	"github.com/glassmesh/glassmesh/control/translate"
)

// sidecarMesh is a by-name mesh plus sidecar views: reviews-v1 has an
// inbound listener and the shared outbound one; unknown workloads ("") get
// the outbound one only. The outbound listener is one object in both views.
func sidecarMesh(inboundPort uint32, extra map[string]translate.Resources) *translate.Snapshot {
	m := mesh{Services: 2, Endpoints: 1, Port: 8080}
	out := sidecarListener("outbound-8080", 15001)
	cluster := edsCluster(m.clusterName(0))
	snap := &translate.Snapshot{ByName: m.resources(), Sidecars: map[string]translate.Resources{
		"default/reviews-v1": {
			resource.ListenerType: {"inbound": sidecarListener("inbound", inboundPort), "outbound-8080": out},
			resource.ClusterType:  {m.clusterName(0): cluster, "inbound|9080||": edsCluster("inbound|9080||")},
		},
		"": {
			resource.ListenerType: {"outbound-8080": out},
			resource.ClusterType:  {m.clusterName(0): cluster},
		},
	}}
	for k, v := range extra {
		snap.Sidecars[k] = v
	}
	return snap
}

// ratingsView is a view of its own for ratings-v1, listeners only.
func ratingsView() map[string]translate.Resources {
	return map[string]translate.Resources{"default/ratings-v1": {
		resource.ListenerType: {"inbound": sidecarListener("inbound", 9081), "outbound-8080": sidecarListener("outbound-8080", 15001)},
	}}
}

// wildcard subscribes c to all listeners and clusters and returns their names.
func wildcard(t *testing.T, c *adsClient) (listeners, clusters []string) {
	t.Helper()
	c.subscribe(resource.ListenerType)
	l := c.recvType(resource.ListenerType)
	c.ack(l)
	c.subscribe(resource.ClusterType)
	cl := c.recvType(resource.ClusterType)
	c.ack(cl)
	return names(t, l.GetResources()), names(t, cl.GetResources())
}

// sidecars are four Envoy nodes: two of reviews-v1 (one named by metadata,
// one by its id), one of a workload not in the config, one of none.
type sidecars struct{ reviews, byID, ratings, anon *adsClient }

func (sc sidecars) on(t *testing.T) sidecars {
	return sidecars{sc.reviews.on(t), sc.byID.on(t), sc.ratings.on(t), sc.anon.on(t)}
}

func connectSidecars(t *testing.T, addr string) sidecars {
	cc := dial(t, addr)
	return sidecars{
		reviews: newADSClient(t, cc, envoyNode("default", "reviews-v1")),
		byID:    newADSClient(t, cc, &corev3.Node{Id: naming.NodeID("10.0.0.2", "reviews-v1", "default")}),
		ratings: newADSClient(t, cc, envoyNode("default", "ratings-v1")),
		anon:    newADSClient(t, cc, &corev3.Node{Id: "some-envoy"}),
	}
}

func TestEnvoyNodesGetTheirWorkloadsView(t *testing.T) {
	s, _, addr := newTestServer(t, Config{})
	if err := s.Update(sidecarMesh(9080, nil)); err != nil {
		t.Fatal(err)
	}
	sc := connectSidecars(t, addr)
	for name, tc := range map[string]struct {
		c         *adsClient
		listeners []string
	}{
		"a node naming its workload in metadata": {sc.reviews, []string{"inbound", "outbound-8080"}},
		"a node naming its workload in its id":   {sc.byID, []string{"inbound", "outbound-8080"}},
		"a workload not in the config":           {sc.ratings, []string{"outbound-8080"}},
		"a node with no workload":                {sc.anon, []string{"outbound-8080"}},
	} {
		t.Run(name, func(t *testing.T) {
			if l, _ := wildcard(t, tc.c.on(t)); !slices.Equal(l, tc.listeners) {
				t.Fatalf("listeners %v, want %v", l, tc.listeners)
			}
		})
	}

	t.Run("routes come by name from the shared caches", func(t *testing.T) {
		sc := sc.on(t)
		sc.reviews.subscribe(resource.RouteType, "route-svc-1")
		r := sc.reviews.recvType(resource.RouteType)
		if got := names(t, r.GetResources()); !slices.Equal(got, []string{"route-svc-1"}) {
			t.Fatalf("got %v", got)
		}
		sc.reviews.ack(r)
	})

	t.Run("status names each sidecar's workload", func(t *testing.T) {
		waitFor(t, func() bool {
			return statusOf(t, s, envoyNode("default", "reviews-v1").GetId()).Types[resource.RouteType].Acked != ""
		})
		p := statusOf(t, s, envoyNode("default", "reviews-v1").GetId())
		if p.Flavour != FlavourEnvoy || p.Namespace != "default" || p.Workload != "reviews-v1" {
			t.Fatalf("status %+v", p)
		}
	})
}

func TestSidecarViewsFollowTheConfig(t *testing.T) {
	s, _, addr := newTestServer(t, Config{})
	if err := s.Update(sidecarMesh(9080, nil)); err != nil {
		t.Fatal(err)
	}
	sc := connectSidecars(t, addr)
	for _, c := range []*adsClient{sc.reviews, sc.byID, sc.ratings, sc.anon} {
		wildcard(t, c)
	}

	t.Run("a workload added to the config moves to its own view", func(t *testing.T) {
		sc := sc.on(t)
		if err := s.Update(sidecarMesh(9080, ratingsView())); err != nil {
			t.Fatal(err)
		}
		// It has no clusters of its own now: the removal is a CDS push.
		got := sc.ratings.recvEach(resource.ListenerType, resource.ClusterType)
		l, cl := got[resource.ListenerType], got[resource.ClusterType]
		if got := names(t, l.GetResources()); !slices.Equal(got, []string{"inbound", "outbound-8080"}) {
			t.Fatalf("ratings listeners %v", got)
		}
		if len(cl.GetResources()) != 0 {
			t.Fatalf("ratings clusters %v, want none", names(t, cl.GetResources()))
		}
		sc.ratings.ack(l)
		sc.ratings.ack(cl)
		sc.reviews.quiet(300 * time.Millisecond)
		sc.anon.quiet(0)
	})

	t.Run("a change to one workload reaches only its nodes", func(t *testing.T) {
		sc := sc.on(t)
		if err := s.Update(sidecarMesh(9090, ratingsView())); err != nil {
			t.Fatal(err)
		}
		for _, c := range []*adsClient{sc.reviews, sc.byID} {
			l := c.recvType(resource.ListenerType)
			if len(l.GetResources()) != 2 {
				t.Fatalf("full-state LDS push had %d listeners, want 2", len(l.GetResources()))
			}
			c.ack(l)
		}
		sc.ratings.quiet(300 * time.Millisecond)
		sc.anon.quiet(0)
		sc.reviews.quiet(0)
	})
}

func TestUnusedViewsAreDropped(t *testing.T) {
	s, _, addr := newTestServer(t, Config{})
	if err := s.Update(sidecarMesh(9080, nil)); err != nil {
		t.Fatal(err)
	}
	views := func() int {
		s.caches.mu.RLock()
		defer s.caches.mu.RUnlock()
		return len(s.caches.views)
	}
	func() {
		cc := dial(t, addr)
		c := newADSClient(t, cc, envoyNode("default", "ghost"))
		wildcard(t, c)
		if n := views(); n != 3 {
			t.Fatalf("%d views with a ghost workload connected, want 3", n)
		}
		_ = cc.Close()
		waitFor(t, func() bool { return len(s.Proxies()) == 0 })
	}()
	if err := s.Update(sidecarMesh(9080, nil)); err != nil {
		t.Fatal(err)
	}
	if n := views(); n != 2 {
		t.Fatalf("%d views after the ghost left, want 2", n)
	}
}
