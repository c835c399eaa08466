package store_test

import (
	"context"
	"testing"

	"go.opentelemetry.io/collector/pdata/pcommon"

	"github.com/glassmesh/glassmesh/tracing/store"
	"github.com/glassmesh/glassmesh/tracing/store/storetest"
)

func TestMemoryConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) (store.Reader, store.Writer) {
		m := store.NewMemory(0)
		return m, m
	})
}

func TestMemoryEvictsOldestTraces(t *testing.T) {
	f := storetest.NewFixture()
	m := store.NewMemory(6)
	for _, b := range f.Batches() {
		if err := m.WriteTraces(context.Background(), b); err != nil {
			t.Fatal(err)
		}
	}
	// 12 spans written, 6 kept: trace 1 (5) and 2 (3) were written first.
	for _, id := range []pcommon.TraceID{f.T1, f.T2} {
		if n, _ := storetest.GetSpans(t, m, store.TraceRequest{TraceID: id}); n != 0 {
			t.Errorf("trace %v kept %d spans after eviction", id, n)
		}
	}
	if n, _ := storetest.GetSpans(t, m, store.TraceRequest{TraceID: f.T3}); n != 3 {
		t.Errorf("trace 3 has %d spans", n)
	}
}
