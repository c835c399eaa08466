package durable

import (
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"

	"github.com/glassmesh/glassmesh/tracing/store"
	"github.com/glassmesh/glassmesh/tracing/store/storetest"
)

// TestBlockPostingsSortedByConstruction checks the transposed postings
// against renumbering and sorting each list, on a head whose traces arrive
// in random id order, interleaved and repeated.
func TestBlockPostingsSortedByConstruction(t *testing.T) {
	h := newHead(5, "", time.Now())
	rng := rand.New(rand.NewPCG(1, 2))
	g := storetest.NewGen(time.Unix(1700000000, 0))
	for range 300 {
		n := rng.IntN(200)
		td := g.Batch(n, 1)
		h.add([]storedFrag{{id: storetest.TraceID(n), ref: fragRef{n: uint32(n)}}}, td)
	}
	order := make([]int32, len(h.traces))
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortFunc(order, func(a, b int32) int { return store.CompareTraceIDs(h.traces[a].id, h.traces[b].id) })
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

// TestDurableReadsVersion1Blocks opens a block written by the version 1
// format (one spans file, contiguous fragments; testdata/v1block holds the
// conformance fixture) next to new blocks.
func TestDurableReadsVersion1Blocks(t *testing.T) {
	cfg := Config{DataDir: t.TempDir(), Retention: 100 * 365 * 24 * time.Hour}
	dir := filepath.Join(cfg.DataDir, "traces", "blocks", "v1")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	copyDir(t, "testdata/v1block", dir)
	d := openTest(t, cfg)
	f := storetest.NewFixture()
	storetest.WriteAll(t, d, f.Batches()[0])
	d.Cut()
	if n := len(blockDirs(d)); n != 2 {
		t.Fatalf("%d blocks, want the old one and a new one", n)
	}
	total := 0
	for _, id := range []pcommon.TraceID{f.T1, f.T2, f.T3, f.T4} {
		n, _ := storetest.GetSpans(t, d, store.TraceRequest{TraceID: id})
		total += n
	}
	if want := 12 + f.Batches()[0].SpanCount(); total != want {
		t.Errorf("%d spans by id, want %d", total, want)
	}
	var found int
	for ids, err := range d.FindTraceIDs(t.Context(), store.TraceQuery{Service: "db"}) {
		if err != nil {
			t.Fatal(err)
		}
		found += len(ids)
	}
	if found == 0 {
		t.Error("search found nothing in the version 1 block")
	}
}

// The head reads fragments from its mapping of the WAL, and from the file
// past the end of the mapping.
func TestHeadReadsInAndPastItsMapping(t *testing.T) {
	d := openTest(t, Config{})
	d.wmu.Lock()
	d.head.mapBytes = 8192 // a few traces' worth
	d.wmu.Unlock()
	g := storetest.NewGen(time.Now().Add(-time.Minute))
	storetest.WriteAll(t, d, g.Batch(0, 10), g.Batch(1, 10))
	d.head.mu.RLock()
	mapped := len(d.head.maps)
	d.head.mu.RUnlock()
	if mapped != 1 {
		t.Fatalf("%d segments mapped, want 1", mapped)
	}
	for i := range 20 {
		if n, _ := storetest.GetSpans(t, d, store.TraceRequest{TraceID: storetest.TraceID(i)}); n != 8 {
			t.Errorf("trace %d: %d spans, want 8", i, n)
		}
	}
}
