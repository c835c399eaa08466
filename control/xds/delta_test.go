package xds

import (
	"slices"
	"testing"
	"time"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/types/known/anypb"
)

func deltaNames(t *testing.T, r *discovery.DeltaDiscoveryResponse) []string {
	t.Helper()
	as := make([]*anypb.Any, 0, len(r.GetResources()))
	for _, res := range r.GetResources() {
		as = append(as, res.GetResource())
	}
	return names(t, as)
}

func TestDeltaSendsChangesAndRemovals(t *testing.T) {
	m := mesh{Services: 3, Endpoints: 2, Port: 8080}
	s, _, addr := newTestServer(t, Config{})
	if err := s.Update(m.snapshot()); err != nil {
		t.Fatal(err)
	}
	cc := dial(t, addr)
	c := newDeltaClient(t, cc, proxylessNode("delta"))
	bystander := newDeltaClient(t, cc, proxylessNode("bystander"))
	c.send(&discovery.DeltaDiscoveryRequest{TypeUrl: resource.RouteType, ResourceNamesSubscribe: m.names(resource.RouteType)})
	r := c.recv()
	if got := deltaNames(t, r); !slices.Equal(got, m.names(resource.RouteType)) {
		t.Fatalf("initial routes %v", got)
	}
	c.ack(r)
	bystander.send(&discovery.DeltaDiscoveryRequest{TypeUrl: resource.EndpointType, ResourceNamesSubscribe: m.names(resource.EndpointType)[:1]})
	bystander.ack(bystander.recv())
	c.quiet(200 * time.Millisecond)

	t.Run("a change sends only the changed resource", func(t *testing.T) {
		c, bystander := c.on(t), bystander.on(t)
		m.Weight = func(i int) uint32 {
			if i == 1 {
				return 90
			}
			return 100
		}
		if err := s.Update(m.snapshot()); err != nil {
			t.Fatal(err)
		}
		r = c.recv()
		if got := deltaNames(t, r); !slices.Equal(got, []string{m.routeName(1)}) || len(r.GetRemovedResources()) != 0 {
			t.Fatalf("got %v removed %v, want only %s", got, r.GetRemovedResources(), m.routeName(1))
		}
		c.ack(r)
		c.quiet(200 * time.Millisecond)
		bystander.quiet(0)
	})
	acked := statusOf(t, s, "delta").Types[resource.RouteType].Acked

	t.Run("a deletion is a removed_resources entry", func(t *testing.T) {
		c, bystander := c.on(t), bystander.on(t)
		snap := m.snapshot()
		delete(snap.ByName[resource.RouteType], m.routeName(2))
		if err := s.Update(snap); err != nil {
			t.Fatal(err)
		}
		r = c.recv()
		if len(r.GetResources()) != 0 || !slices.Equal(r.GetRemovedResources(), []string{m.routeName(2)}) {
			t.Fatalf("got %v removed %v, want %s removed", deltaNames(t, r), r.GetRemovedResources(), m.routeName(2))
		}
		bystander.quiet(200 * time.Millisecond)
	})

	t.Run("a NACK is recorded and not answered", func(t *testing.T) {
		c := c.on(t)
		c.send(&discovery.DeltaDiscoveryRequest{TypeUrl: resource.RouteType, ResponseNonce: r.GetNonce(),
			ErrorDetail: &status.Status{Code: 3, Message: "route-svc-2 is still used"}})
		c.quiet(500 * time.Millisecond)
		ts := statusOf(t, s, "delta").Types[resource.RouteType]
		want := NACKStatus{Version: r.GetSystemVersionInfo(), Nonce: r.GetNonce(), Error: "route-svc-2 is still used"}
		if ts.NACK == nil || ts.NACK.Version != want.Version || ts.NACK.Nonce != want.Nonce || ts.NACK.Error != want.Error || ts.NACK.At.IsZero() {
			t.Fatalf("NACK %+v, want %+v", ts.NACK, want)
		}
		if ts.Acked != acked || ts.Sent != r.GetSystemVersionInfo() {
			t.Fatalf("status %+v: want acked %s, sent %s", ts, acked, r.GetSystemVersionInfo())
		}
	})
}
