package xds

import (
	"maps"
	"testing"

	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/glassmesh/glassmesh/control/translate"
)

// The hasher walks only the maps it does not serve already, and forgets
// what no served map holds any more.
func TestHasherWalksOnlyNewMaps(t *testing.T) {
	m := mesh{Services: 20, Endpoints: 2, Port: 8080}
	snap := m.snapshot()
	hs := newHasher()
	h, err := hs.hashAll(snap)
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, byName := range snap.ByName {
		total += len(byName)
	}
	if len(h.added) != total {
		t.Fatalf("first snapshot: %d resources hashed, want all %d", len(h.added), total)
	}
	hs.keep(h)
	consistent := func() {
		t.Helper()
		n := 0
		for _, c := range hs.valid {
			n += c
		}
		if n != len(hs.served) {
			t.Fatalf("%d encodings counted for %d served resources", n, len(hs.served))
		}
	}
	consistent()

	// The same maps in a new snapshot: nothing to walk, nothing new.
	same := &translate.Snapshot{ByName: maps.Clone(snap.ByName), Sidecars: snap.Sidecars}
	h, err = hs.hashAll(same)
	if err != nil {
		t.Fatal(err)
	}
	if len(h.fresh) != 0 || len(h.added) != 0 {
		t.Fatalf("the same maps again: %d maps walked, %d resources new, want none", len(h.fresh), len(h.added))
	}
	hs.keep(h)

	// One route changed, in a new route map: that map alone is walked, the
	// changed route alone is new, and the old one is forgotten once kept.
	changed := m
	changed.Weight = func(i int) uint32 { return map[bool]uint32{true: 30, false: 100}[i == 3] }
	routes := maps.Clone(snap.ByName[resource.RouteType])
	old := routes[m.routeName(3)]
	routes[m.routeName(3)] = changed.snapshot().ByName[resource.RouteType][m.routeName(3)]
	next := &translate.Snapshot{ByName: maps.Clone(snap.ByName), Sidecars: snap.Sidecars}
	next.ByName[resource.RouteType] = routes
	h, err = hs.hashAll(next)
	if err != nil {
		t.Fatal(err)
	}
	if len(h.fresh) != 1 || len(h.added) != 1 {
		t.Fatalf("one route changed: %d maps walked, %d resources new, want 1 and 1", len(h.fresh), len(h.added))
	}
	if n, err := h.validate(); err != nil || n != 1 {
		t.Fatalf("validated %d (%v), want 1", n, err)
	}
	// Not kept yet: the served state is the last one.
	if _, ok := hs.served[old]; !ok {
		t.Fatal("hashAll changed the served state before keep")
	}
	hs.keep(h)
	if _, ok := hs.served[old]; ok {
		t.Error("the replaced route is still held after keep")
	}
	if _, ok := hs.served[routes[m.routeName(3)]]; !ok {
		t.Error("the new route is not served after keep")
	}
	if len(hs.served) != total {
		t.Errorf("%d resources served, want %d", len(hs.served), total)
	}
	consistent()
}
