package receiver_test

import (
	"context"
	"fmt"
	"testing"

	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/glassmesh/glassmesh/telemetry/receiver"
)

// discard is a TracesWriter that keeps nothing.
type discard struct{}

func (discard) WriteTraces(context.Context, ptrace.Traces) error { return nil }

// realisticBatch is 100 traces of 8 spans with 10 attributes each.
func realisticBatch() ptraceotlp.ExportRequest {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "reviews")
	ss := rs.ScopeSpans().AppendEmpty().Spans()
	for tr := range 100 {
		for sp := range 8 {
			s := ss.AppendEmpty()
			s.SetTraceID([16]byte{0: byte(tr), 15: 1})
			s.SetSpanID([8]byte{0: byte(sp), 7: 1})
			s.SetName(fmt.Sprint("op", sp))
			s.SetStartTimestamp(1_700_000_000_000_000_000)
			s.SetEndTimestamp(1_700_000_000_010_000_000)
			for a := range 10 {
				s.Attributes().PutStr(fmt.Sprint("attr.", a), "value-of-moderate-length")
			}
		}
	}
	return ptraceotlp.NewExportRequestFromTraces(td)
}

// BenchmarkOTLPGRPCExport is the receiver's OTLP/gRPC path (decode, id
// checks, answer) without a store, against BenchmarkOTLPUnmarshal, its
// floor.
func BenchmarkOTLPGRPCExport(b *testing.B) {
	s := startTraceReceiver(b, receiver.TracesConfig{}, discard{})
	conn, err := grpc.NewClient(s.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	client := ptraceotlp.NewGRPCClient(conn)
	req := realisticBatch()
	n := req.Traces().SpanCount()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := client.Export(context.Background(), req); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "spans/s")
}

// BenchmarkOTLPUnmarshal is pdata's decoding of the same batch.
func BenchmarkOTLPUnmarshal(b *testing.B) {
	req := realisticBatch()
	raw, _ := req.MarshalProto()
	n := req.Traces().SpanCount()
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		r := ptraceotlp.NewExportRequest()
		if err := r.UnmarshalProto(raw); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "spans/s")
}
