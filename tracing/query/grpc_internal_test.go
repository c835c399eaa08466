package query

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	"github.com/glassmesh/glassmesh/tracing/query/jaegerpb/storagev2"
	"github.com/glassmesh/glassmesh/tracing/store"
)

func TestTracesDataKeepsEverySpanWithItsResourceAndScope(t *testing.T) {
	td := ptrace.NewTraces()
	for _, svc := range []string{"reviews", "ratings"} {
		rs := td.ResourceSpans().AppendEmpty()
		rs.Resource().Attributes().PutStr("service.name", svc)
		for _, scope := range []string{"otelgrpc", "manual"} {
			ss := rs.ScopeSpans().AppendEmpty()
			ss.Scope().SetName(scope)
			for i := range 3 {
				sp := ss.Spans().AppendEmpty()
				sp.SetTraceID(pcommon.TraceID{1})
				sp.SetSpanID(pcommon.SpanID{byte(len(svc)), byte(len(scope)), byte(i + 1)})
				sp.SetName(svc + "/" + scope)
			}
		}
	}
	for _, per := range []int{1, 2, 5, 12, 100} {
		parts := splitSpans(td, per)
		all := ptrace.NewTraces()
		for _, p := range parts {
			if p.SpanCount() > per || p.SpanCount() == 0 {
				t.Fatalf("per %d: a part of %d spans", per, p.SpanCount())
			}
			msg, err := toTracesData(p)
			if err != nil {
				t.Fatal(err)
			}
			b, err := proto.Marshal(msg)
			if err != nil {
				t.Fatal(err)
			}
			back, err := (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces(b)
			if err != nil {
				t.Fatal(err)
			}
			back.ResourceSpans().MoveAndAppendTo(all.ResourceSpans())
		}
		n := 0
		for _, rs := range all.ResourceSpans().All() {
			svc, _ := rs.Resource().Attributes().Get("service.name")
			for _, ss := range rs.ScopeSpans().All() {
				for _, sp := range ss.Spans().All() {
					if sp.Name() != svc.Str()+"/"+ss.Scope().Name() {
						t.Fatalf("per %d: span %s under %s/%s", per, sp.Name(), svc.Str(), ss.Scope().Name())
					}
					n++
				}
			}
		}
		if n != 12 {
			t.Fatalf("per %d: %d spans came back, want 12", per, n)
		}
	}
	if parts := messageParts(ptrace.NewTraces()); len(parts) != 0 {
		t.Fatalf("an empty chunk gave %d messages; want none", len(parts))
	}
	if parts := messageParts(td); len(parts) != 1 {
		t.Fatalf("a small chunk gave %d messages; want 1", len(parts))
	}
}

func TestBothSendPathsStreamTheSameMessages(t *testing.T) {
	if !rawSendWorks() {
		t.Fatal("the registered proto codec no longer sends encodedTraces as is (pdata's codec changed?): GetTraces falls back to the slower path")
	}
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "reviews")
	id := pcommon.TraceID{1, 2, 3}
	for i := range 3 {
		sp := rs.ScopeSpans().AppendEmpty().Spans().AppendEmpty()
		sp.SetTraceID(id)
		sp.SetSpanID(pcommon.SpanID{byte(i + 1)})
		sp.SetName("op")
		sp.SetStartTimestamp(pcommon.NewTimestampFromTime(time.Unix(1_800_000_000, 0)))
		sp.Attributes().PutInt("i", int64(i))
	}
	st := store.NewMemory(0)
	if err := st.WriteTraces(context.Background(), td); err != nil {
		t.Fatal(err)
	}
	var got [2][]*tracev1.TracesData
	for i, raw := range []bool{false, true} {
		g := NewStorageGRPC(st, nil)
		g.rawSend = raw
		got[i] = getTraces(t, g, id)
	}
	if len(got[0]) != 1 || len(got[0]) != len(got[1]) || !proto.Equal(got[0][0], got[1][0]) {
		t.Fatalf("generated messages %v\nencoded bytes %v", got[0], got[1])
	}
}

// getTraces asks a server running g for one trace.
func getTraces(t *testing.T, g *StorageGRPC, id pcommon.TraceID) []*tracev1.TracesData {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	g.RegisterGRPC(gs)
	go func() { _ = gs.Serve(lis) }()
	defer gs.Stop()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	stream, err := storagev2.NewTraceReaderClient(conn).GetTraces(context.Background(),
		&storagev2.GetTracesRequest{Query: []*storagev2.GetTraceParams{{TraceId: id[:]}}})
	if err != nil {
		t.Fatal(err)
	}
	var out []*tracev1.TracesData
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, msg)
	}
}
