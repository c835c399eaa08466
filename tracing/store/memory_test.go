package store

import (
	"context"
	"testing"

	"go.opentelemetry.io/collector/pdata/pcommon"
)

func TestMemoryConformance(t *testing.T) {
	testReaderWriter(t, func(t *testing.T) (Reader, Writer) {
		m := NewMemory(0)
		return m, m
	})
}

func TestMemoryEvictsOldestTraces(t *testing.T) {
	f := newFixture()
	m := NewMemory(6)
	for _, b := range f.batches() {
		if err := m.WriteTraces(context.Background(), b); err != nil {
			t.Fatal(err)
		}
	}
	// 12 spans written, 6 kept: trace 1 (5) and 2 (3) were written first.
	for _, id := range []pcommon.TraceID{f.t1, f.t2} {
		if n, _ := getSpans(t, m, TraceRequest{TraceID: id}); n != 0 {
			t.Errorf("trace %v kept %d spans after eviction", id, n)
		}
	}
	if n, _ := getSpans(t, m, TraceRequest{TraceID: f.t3}); n != 3 {
		t.Errorf("trace 3 has %d spans", n)
	}
}
