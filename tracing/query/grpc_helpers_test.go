package query_test

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

	"github.com/glassmesh/glassmesh/tracing/query"
	"github.com/glassmesh/glassmesh/tracing/query/jaegerpb/storagev2"
	"github.com/glassmesh/glassmesh/tracing/store"
)

// storageClients are real gRPC clients of the remote storage API.
type storageClients struct {
	traces storagev2.TraceReaderClient
	deps   storagev2.DependencyReaderClient
	caps   storagev2.CapabilitiesClient
}

// startStorageGRPC serves the remote storage API over st on 127.0.0.1:0
// and dials it.
func startStorageGRPC(t testing.TB, st store.Reader) storageClients {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	query.NewStorageGRPC(st, nil).RegisterGRPC(gs)
	done := make(chan struct{})
	go func() { defer close(done); _ = gs.Serve(lis) }()
	t.Cleanup(func() { gs.Stop(); <-done })
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return storageClients{storagev2.NewTraceReaderClient(conn), storagev2.NewDependencyReaderClient(conn), storagev2.NewCapabilitiesClient(conn)}
}

// traceBuilder writes spans of one trace, one resource per service.
type traceBuilder struct {
	td  ptrace.Traces
	id  pcommon.TraceID
	res map[string]ptrace.SpanSlice
}

func newTrace(id byte) *traceBuilder {
	return &traceBuilder{td: ptrace.NewTraces(), id: pcommon.TraceID{15: id, 0: 0xab}, res: map[string]ptrace.SpanSlice{}}
}

// span adds a span of service; span ids are (trace id, n).
func (b *traceBuilder) span(service, name string, kind ptrace.SpanKind, n, parent byte, start time.Time, d time.Duration) ptrace.Span {
	spans, ok := b.res[service]
	if !ok {
		rs := b.td.ResourceSpans().AppendEmpty()
		rs.Resource().Attributes().PutStr("service.name", service)
		spans = rs.ScopeSpans().AppendEmpty().Spans()
		b.res[service] = spans
	}
	sp := spans.AppendEmpty()
	sp.SetTraceID(b.id)
	sp.SetSpanID(pcommon.SpanID{0: b.id[15], 7: n})
	if parent != 0 {
		sp.SetParentSpanID(pcommon.SpanID{0: b.id[15], 7: parent})
	}
	sp.SetName(name)
	sp.SetKind(kind)
	sp.SetStartTimestamp(pcommon.NewTimestampFromTime(start))
	sp.SetEndTimestamp(pcommon.NewTimestampFromTime(start.Add(d)))
	return sp
}

// fixture is a store holding a 3-service bookinfo trace at t0 and a
// one-span health check trace ten minutes later.
type fixture struct {
	st                *store.Memory
	t0                time.Time
	bookinfo, healthz pcommon.TraceID
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	t0 := time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)
	b := newTrace(1)
	b.span("productpage", "GET /productpage", ptrace.SpanKindServer, 1, 0, t0, 100*time.Millisecond)
	b.span("productpage", "reviews.Reviews/Get", ptrace.SpanKindClient, 2, 1, t0.Add(time.Millisecond), 80*time.Millisecond)
	rv := b.span("reviews", "reviews.Reviews/Get", ptrace.SpanKindServer, 3, 2, t0.Add(2*time.Millisecond), 70*time.Millisecond)
	rv.Attributes().PutStr("user", "jason")
	b.span("reviews", "ratings.Ratings/Get", ptrace.SpanKindClient, 4, 3, t0.Add(3*time.Millisecond), 60*time.Millisecond)
	ra := b.span("ratings", "ratings.Ratings/Get", ptrace.SpanKindServer, 5, 4, t0.Add(4*time.Millisecond), 50*time.Millisecond)
	ra.Attributes().PutInt("stars", 5)
	ra.Status().SetCode(ptrace.StatusCodeError)
	h := newTrace(2)
	h.span("productpage", "GET /healthz", ptrace.SpanKindServer, 1, 0, t0.Add(10*time.Minute), time.Millisecond)
	st := store.NewMemory(0)
	for _, td := range []ptrace.Traces{b.td, h.td} {
		if err := st.WriteTraces(context.Background(), td); err != nil {
			t.Fatal(err)
		}
	}
	return fixture{st: st, t0: t0, bookinfo: b.id, healthz: h.id}
}

// streamed is what a TracesData stream carried: the messages, and their
// spans decoded back into pdata.
type streamed struct {
	msgs   []*tracev1.TracesData
	traces []ptrace.Traces
}

func recvAll(t *testing.T, stream grpc.ServerStreamingClient[tracev1.TracesData], err error) (streamed, error) {
	t.Helper()
	var out streamed
	if err != nil {
		return out, err
	}
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		b, err := proto.Marshal(msg)
		if err != nil {
			t.Fatal(err)
		}
		td, err := (&ptrace.ProtoUnmarshaler{}).UnmarshalTraces(b)
		if err != nil {
			t.Fatal(err)
		}
		out.msgs, out.traces = append(out.msgs, msg), append(out.traces, td)
	}
}

// traceIDs lists the trace of each message, failing when a message mixes
// traces or is empty (both forbidden by the proto).
func (s streamed) traceIDs(t *testing.T) []pcommon.TraceID {
	t.Helper()
	var ids []pcommon.TraceID
	for i, td := range s.traces {
		seen := map[pcommon.TraceID]bool{}
		forSpans(td, func(_ string, sp ptrace.Span) { seen[sp.TraceID()] = true })
		if len(seen) != 1 {
			t.Fatalf("message %d holds spans of %d traces, want exactly 1", i, len(seen))
		}
		for id := range seen {
			if len(ids) == 0 || ids[len(ids)-1] != id {
				ids = append(ids, id)
			}
		}
	}
	return ids
}

func forSpans(td ptrace.Traces, fn func(service string, sp ptrace.Span)) {
	for _, rs := range td.ResourceSpans().All() {
		svc, _ := rs.Resource().Attributes().Get("service.name")
		for _, ss := range rs.ScopeSpans().All() {
			for _, sp := range ss.Spans().All() {
				fn(svc.AsString(), sp)
			}
		}
	}
}
