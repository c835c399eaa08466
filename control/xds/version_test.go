package xds

import (
	"fmt"
	"log/slog"
	"testing"
	"time"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/envoyproxy/go-control-plane/pkg/server/stream/v3"

	"github.com/glassmesh/glassmesh/control/translate"
)

// typedCache predicts the version go-control-plane's LinearCache gives its
// next update (the push clock stamps it before any client can see it). The
// prediction leans on how LinearCache counts; a library bump that changes
// it must fail here, not silently mistime every push. Every shard must
// answer the same version.
func TestTypedCachePredictsLinearCacheVersions(t *testing.T) {
	m := mesh{Services: 3, Endpoints: 1, Port: 8080}
	c := newCaches(slogAdapter{l: slog.New(slog.DiscardHandler)}, "test-")
	tc := c.newTypedCache(resource.RouteType, nil, nil, 3)
	snap := m.snapshot()
	hs := newHasher()
	for round := range 3 {
		var predicted string
		res := map[string]types.Resource{}
		for name, r := range snap.ByName[resource.RouteType] {
			res[name] = r
		}
		if round > 0 { // change one route, so there is something to apply
			changed := m
			changed.Weight = func(int) uint32 { return uint32(10 * round) }
			res[m.routeName(0)] = changed.snapshot().ByName[resource.RouteType][m.routeName(0)]
		}
		h, err := hs.hashAll(&translate.Snapshot{ByName: translate.Resources{resource.RouteType: res}})
		if err != nil {
			t.Fatal(err)
		}
		hs.keep(h)
		if err := tc.apply(res, h, func(v string) { predicted = v }); err != nil {
			t.Fatal(err)
		}
		for i, lc := range tc.shards {
			req := &discovery.DiscoveryRequest{TypeUrl: resource.RouteType, ResourceNames: m.names(resource.RouteType)}
			ch := make(chan cache.Response, 1)
			sub := stream.NewSotwSubscription(req.ResourceNames, false)
			cancel, err := lc.CreateWatch(req, sub, ch)
			if err != nil {
				t.Fatal(err)
			}
			select {
			case resp := <-ch:
				got, err := resp.GetVersion()
				if err != nil {
					t.Fatal(err)
				}
				if got != predicted {
					t.Fatalf("round %d: shard %d answers version %q, typedCache predicted %q", round, i, got, predicted)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("no response")
			}
			if cancel != nil {
				cancel()
			}
		}
	}
}

// A node is always served by the same shard, and the nodes spread over
// all of them.
func TestTypedCacheShardsByNode(t *testing.T) {
	c := newCaches(slogAdapter{l: slog.New(slog.DiscardHandler)}, "test-")
	tc := c.newTypedCache(resource.RouteType, nil, nil, 4)
	used := map[int]bool{}
	for i := range 200 {
		id := fmt.Sprintf("node-%d", i)
		lc := tc.shard(id)
		if tc.shard(id) != lc {
			t.Fatalf("node %s moved between shards", id)
		}
		used[lc] = true
	}
	if len(used) != len(tc.shards) {
		t.Errorf("200 nodes used %d of %d shards", len(used), len(tc.shards))
	}
}
