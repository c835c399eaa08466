package query_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/glassmesh/glassmesh/tracing/query/jaegerpb/storagev2"
	"github.com/glassmesh/glassmesh/tracing/store"
)

// BenchmarkStorageGRPCGetTraces reads a 200-span trace through the remote
// storage API (pdata → OTLP proto → wire → client), reporting spans/s.
func BenchmarkStorageGRPCGetTraces(b *testing.B) {
	tb := newTrace(3)
	t0 := time.Now().Add(-time.Hour)
	for i := range 200 {
		sp := tb.span(fmt.Sprintf("svc%d", i%5), fmt.Sprintf("op%d", i%20), ptrace.SpanKindServer, byte(i+1), 0, t0, time.Millisecond)
		for j := range 10 {
			sp.Attributes().PutStr(fmt.Sprintf("attr.%d", j), "some realistic attribute value")
		}
	}
	st := store.NewMemory(0)
	if err := st.WriteTraces(context.Background(), tb.td); err != nil {
		b.Fatal(err)
	}
	c := startStorageGRPC(b, st)
	req := &storagev2.GetTracesRequest{Query: []*storagev2.GetTraceParams{{TraceId: tb.id[:]}}}
	b.ResetTimer()
	for b.Loop() {
		stream, err := c.traces.GetTraces(context.Background(), req)
		if err != nil {
			b.Fatal(err)
		}
		for {
			if _, err := stream.Recv(); err != nil {
				break
			}
		}
	}
	b.ReportMetric(float64(200*b.N)/b.Elapsed().Seconds(), "spans/s")
}
