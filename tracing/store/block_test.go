package store

import (
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
)

// TestBlockPostingsSortedByConstruction checks the transposed postings
// against renumbering and sorting each list, on a head whose traces arrive
// in random id order, interleaved and repeated.
func TestBlockPostingsSortedByConstruction(t *testing.T) {
	h := newHead(5, time.Now())
	rng := rand.New(rand.NewPCG(1, 2))
	g := newGen(time.Unix(1700000000, 0))
	for range 300 {
		n := rng.IntN(200)
		td := g.batch(n, 1)
		h.add(genTraceID(n), td, []byte{byte(n)})
	}
	order := make([]int32, len(h.traces))
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortFunc(order, func(a, b int32) int { return compareIDs(h.traces[a].id, h.traces[b].id) })
	terms, lists := blockPostings(h, order)
	if want := slices.Sorted(maps.Keys(h.post)); !slices.Equal(terms, want) {
		t.Fatalf("terms %q, want %q", terms, want)
	}
	rank := make([]int32, len(order))
	for i, o := range order {
		rank[o] = int32(i)
	}
	for i, term := range terms {
		var want []int32
		for _, o := range *h.post[term] {
			want = append(want, rank[o])
		}
		slices.Sort(want)
		want = slices.Compact(want)
		if !slices.Equal(lists[i], want) {
			t.Errorf("term %q: %v, want %v", term, lists[i], want)
		}
	}
	if len(h.traces) < 100 || h.traces[0].id == (pcommon.TraceID{}) {
		t.Fatalf("fixture too small: %d traces", len(h.traces))
	}
}
