package durable

import (
	"slices"
	"testing"
	"time"

	"github.com/glassmesh/glassmesh/tracing/store"
	"github.com/glassmesh/glassmesh/tracing/store/storetest"
)

// The head's WAL records are decoded on every core when the store opens;
// they must still be applied as written: every trace whole, and searches
// answering exactly as before the restart.
func TestDurableReplayOfManyRecordsKeepsEveryTraceAndTheOrder(t *testing.T) {
	cfg := Config{DataDir: t.TempDir()}
	d := openTest(t, cfg)
	g := storetest.NewGen(time.Now().Add(-time.Minute))
	const batches, perBatch = 400, 3
	for i := range batches {
		storetest.WriteAll(t, d, g.Batch(i, perBatch))
	}
	q := store.TraceQuery{Limit: 50}
	before := storetest.FindIDs(t, d, q)
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	d = openTest(t, cfg)
	for i := range batches * perBatch {
		if n, _ := storetest.GetSpans(t, d, store.TraceRequest{TraceID: storetest.TraceID(i)}); n != 8 {
			t.Fatalf("trace %d after replay: %d spans, want 8", i, n)
		}
	}
	if after := storetest.FindIDs(t, d, q); !slices.Equal(before, after) {
		t.Errorf("search after replay differs:\n%v\nbefore:\n%v", after, before)
	}
}
