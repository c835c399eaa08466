package durable

import (
	"bytes"
	"context"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/glassmesh/glassmesh/tracing/store"
	"github.com/glassmesh/glassmesh/tracing/store/storetest"
)

// WriteTraces must leave the caller's batch as it was, and store the
// spans whole.
func TestWriteTracesLeavesTheBatchWhole(t *testing.T) {
	d := openTest(t, Config{})
	td := storetest.NewGen(time.Now().Add(-time.Minute)).Batch(0, 16)
	var m ptrace.ProtoMarshaler
	before, err := m.MarshalTraces(td)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.WriteTraces(context.Background(), td); err != nil {
		t.Fatal(err)
	}
	after, err := m.MarshalTraces(td)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Fatal("the batch changed during WriteTraces")
	}
	stored := 0
	for tds, err := range d.GetTraces(context.Background(), store.TraceRequest{TraceID: storetest.TraceID(3)}) {
		if err != nil {
			t.Fatal(err)
		}
		for _, tr := range tds {
			stored += tr.SpanCount()
			sp := tr.ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0)
			if sp.Name() == "" || sp.Attributes().Len() == 0 {
				t.Fatalf("stored an emptied span: %q with %d attributes", sp.Name(), sp.Attributes().Len())
			}
		}
	}
	if stored == 0 {
		t.Fatal("trace 3 not stored")
	}
}
