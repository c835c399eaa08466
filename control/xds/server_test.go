package xds

import (
	"context"
	"strings"
	"testing"
	"time"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/glassmesh/glassmesh/control/translate"
)

func TestUpdateRejectsBrokenSnapshots(t *testing.T) {
	m := mesh{Services: 2, Endpoints: 1, Port: 8080}
	for name, tc := range map[string]struct {
		corrupt func(*translate.Snapshot)
		want    string
	}{
		"a resource filed under another name": {func(s *translate.Snapshot) {
			s.ByName[resource.RouteType]["route-svc-0"] = m.route(1)
		}, `is named "route-svc-1" inside`},
		"a nil resource": {func(s *translate.Snapshot) {
			s.ByName[resource.ClusterType]["x"] = nil
		}, "is nil"},
		"a route in a sidecar view": {func(s *translate.Snapshot) {
			s.Sidecars = map[string]translate.Resources{"": {resource.RouteType: {"route-svc-0": m.route(0)}}}
		}, "not served per workload"},
		"a resource Envoy would reject": {func(s *translate.Snapshot) {
			s.ByName[resource.RouteType]["route-svc-1"].(*routev3.RouteConfiguration).VirtualHosts[0].Domains = nil
		}, `route-svc-1": invalid RouteConfiguration.VirtualHosts[0]: embedded message failed validation`},
	} {
		t.Run(name, func(t *testing.T) {
			s, _, addr := newTestServer(t, Config{})
			if err := s.Update(m.snapshot()); err != nil {
				t.Fatal(err)
			}
			c := newADSClient(t, dial(t, addr), proxylessNode("n"))
			c.subscribe(resource.RouteType, m.names(resource.RouteType)...)
			c.ack(c.recv())

			// A weight change that must not ship with the broken part.
			changed := m
			changed.Weight = func(int) uint32 { return 50 }
			bad := changed.snapshot()
			tc.corrupt(bad)
			err := s.Update(bad)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Update: %v, want an error containing %q", err, tc.want)
			}
			c.quiet(200 * time.Millisecond)
		})
	}
}

func TestMetricsCountPushesAcksAndLatency(t *testing.T) {
	m := mesh{Services: 2, Endpoints: 1, Port: 8080}
	s, reg, addr := newTestServer(t, Config{})
	if err := s.Update(m.snapshot()); err != nil {
		t.Fatal(err)
	}
	c := newADSClient(t, dial(t, addr), proxylessNode("n"))
	subscribeAll(t, c, m, 2)
	m.Weight = func(int) uint32 { return 10 }
	if err := s.Update(m.snapshot()); err != nil {
		t.Fatal(err)
	}
	c.ack(c.recvType(resource.RouteType))
	waitFor(t, func() bool { return testutil.ToFloat64(s.metrics.acks.WithLabelValues("rds")) == 2 })

	want := `
# HELP glassmesh_xds_connected_proxies Proxies (distinct node ids) with at least one open xDS stream, by flavour (envoy|proxyless).
# TYPE glassmesh_xds_connected_proxies gauge
glassmesh_xds_connected_proxies{flavour="envoy"} 0
glassmesh_xds_connected_proxies{flavour="proxyless"} 1
# HELP glassmesh_xds_pushes_total xDS responses sent, by resource type.
# TYPE glassmesh_xds_pushes_total counter
glassmesh_xds_pushes_total{type="cds"} 1
glassmesh_xds_pushes_total{type="eds"} 1
glassmesh_xds_pushes_total{type="lds"} 1
glassmesh_xds_pushes_total{type="rds"} 2
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "glassmesh_xds_connected_proxies", "glassmesh_xds_pushes_total"); err != nil {
		t.Fatal(err)
	}
	// Only the push an Update caused is timed, not the initial answers.
	for _, typ := range []string{"lds", "rds", "cds", "eds"} {
		want := uint64(0)
		if typ == "rds" {
			want = 1
		}
		var out dto.Metric
		if err := s.metrics.pushLatency.WithLabelValues(typ).(prometheus.Histogram).Write(&out); err != nil {
			t.Fatal(err)
		}
		if got := out.GetHistogram().GetSampleCount(); got != want {
			t.Fatalf("%s push latencies observed: %d, want %d", typ, got, want)
		}
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP glassmesh_xds_nacks_total Responses rejected by proxies, by resource type.
# TYPE glassmesh_xds_nacks_total counter
glassmesh_xds_nacks_total{type="cds"} 0
glassmesh_xds_nacks_total{type="eds"} 0
glassmesh_xds_nacks_total{type="lds"} 0
glassmesh_xds_nacks_total{type="rds"} 0
`), "glassmesh_xds_nacks_total"); err != nil {
		t.Fatal(err)
	}
}

func TestStopEndsStreamsWithoutLeaks(t *testing.T) {
	t.Run("serve", func(t *testing.T) {
		m := mesh{Services: 2, Endpoints: 1, Port: 8080}
		s, _, addr := newTestServer(t, Config{SendTimeout: time.Second})
		if err := s.Update(m.snapshot()); err != nil {
			t.Fatal(err)
		}
		cc := dial(t, addr)
		c := newADSClient(t, cc, proxylessNode("sotw"))
		subscribeAll(t, c, m, 2)
		d := newDeltaClient(t, cc, proxylessNode("delta"))
		d.send(&discovery.DeltaDiscoveryRequest{TypeUrl: resource.RouteType, ResourceNamesSubscribe: m.names(resource.RouteType)})
		d.recv()
		s.Stop()
		// Streams end; a new one is refused.
		waitFor(t, func() bool { return len(s.Proxies()) == 0 })
		st, err := discovery.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Recv(); err == nil || !strings.Contains(err.Error(), "stopping") {
			t.Fatalf("a stream after Stop: %v", err)
		}
	})
	goleak.VerifyNone(t)
}

// Only encodings not served yet are validated: an update costs what it
// changed, and a resource that came back is checked again.
func TestUpdateValidatesOnlyWhatChanged(t *testing.T) {
	m := mesh{Services: 50, Endpoints: 2, Port: 8080}
	s := New(Config{}, nil, nil)
	defer s.Stop()
	checked := func(snap *translate.Snapshot) int {
		t.Helper()
		s.caches.updateMu.Lock()
		defer s.caches.updateMu.Unlock()
		h, err := s.hasher.hashAll(snap)
		if err != nil {
			t.Fatal(err)
		}
		n, err := h.validate()
		s.hasher.keep(h)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := checked(m.snapshot()); n != 200 {
		t.Errorf("first snapshot: %d validated, want all 200", n)
	}
	if n := checked(m.snapshot()); n != 0 {
		t.Errorf("the same snapshot again: %d validated, want 0", n)
	}
	changed := m
	changed.Weight = func(i int) uint32 { return map[bool]uint32{true: 50, false: 100}[i == 7] }
	if n := checked(changed.snapshot()); n != 1 {
		t.Errorf("one weight changed: %d validated, want 1", n)
	}
	if n := checked(m.snapshot()); n != 1 {
		t.Errorf("the old weight back: %d validated, want 1 (it was dropped)", n)
	}
}
