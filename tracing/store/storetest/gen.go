package storetest

import (
	"encoding/binary"
	"fmt"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/glassmesh/glassmesh/tracing/store"
)

// Gen makes realistic traces: 8 spans over 4 services, ~10 attributes
// each, about 430 bytes per span as OTLP protobuf.
type Gen struct {
	base time.Time
}

// NewGen makes a generator whose trace n starts at base + n ms.
func NewGen(base time.Time) *Gen { return &Gen{base: base} }

var genServices = []string{"productpage", "reviews", "ratings", "details"}

// TraceID is the id of the n-th generated trace.
func TraceID(n int) pcommon.TraceID {
	var id pcommon.TraceID
	binary.BigEndian.PutUint64(id[:8], 0xfeed)
	binary.BigEndian.PutUint64(id[8:], uint64(n))
	return id
}

// Batch returns traces [i*n, i*n+n), each 8 spans.
func (g *Gen) Batch(i, n int) ptrace.Traces {
	td := ptrace.NewTraces()
	for k := range n {
		g.Trace(td, i*n+k, 8)
	}
	return td
}

// Trace appends trace number n of spans spans to td.
func (g *Gen) Trace(td ptrace.Traces, n, spans int) {
	id := TraceID(n)
	start := g.base.Add(time.Duration(n) * time.Millisecond)
	for s := range spans {
		svc := genServices[s%len(genServices)]
		rs := td.ResourceSpans().AppendEmpty()
		ra := rs.Resource().Attributes()
		ra.PutStr("service.name", svc)
		ra.PutStr("service.version", "v1")
		ra.PutStr("k8s.namespace.name", "default")
		ss := rs.ScopeSpans().AppendEmpty()
		ss.Scope().SetName("otelgrpc")
		sp := ss.Spans().AppendEmpty()
		sp.SetTraceID(id)
		var sid pcommon.SpanID
		binary.BigEndian.PutUint32(sid[:4], uint32(n))
		binary.BigEndian.PutUint32(sid[4:], uint32(s+1))
		sp.SetSpanID(sid)
		if s > 0 {
			binary.BigEndian.PutUint32(sid[4:], uint32((s+1)/2))
			sp.SetParentSpanID(sid)
		}
		sp.SetName(fmt.Sprintf("/%s.%s/Get", svc, svc))
		sp.SetKind(ptrace.SpanKind(2 + s%2))
		at := start.Add(time.Duration(s) * time.Millisecond)
		sp.SetStartTimestamp(pcommon.NewTimestampFromTime(at))
		sp.SetEndTimestamp(pcommon.NewTimestampFromTime(at.Add(time.Duration(1+n%100) * time.Millisecond)))
		a := sp.Attributes()
		a.PutStr("rpc.system", "grpc")
		a.PutStr("rpc.service", svc)
		a.PutStr("rpc.method", "Get")
		a.PutInt("rpc.grpc.status_code", int64(n%7))
		a.PutStr("net.peer.name", svc+".default.svc.cluster.local")
		a.PutInt("net.peer.port", 9080)
		a.PutStr("user.id", fmt.Sprintf("user-%d", n%50))
		a.PutStr("request.id", fmt.Sprintf("%016x-%04d", n, s))
		a.PutStr("http.user_agent", "grpc-go/1.85.0")
		a.PutInt("message.size", int64(100+n%1000))
		if n%10 == 0 {
			sp.Status().SetCode(ptrace.StatusCodeError)
		}
	}
}

// Renumber gives the spans of td, 8 per trace as Batch makes them, the
// trace ids of traces first, first+1, ..., so a batch can be written again
// as new traces.
func Renumber(td ptrace.Traces, first int) {
	i := 0
	store.ForEachSpan(td, func(_ string, _ pcommon.Map, sp ptrace.Span) {
		sp.SetTraceID(TraceID(first + i/8))
		i++
	})
}
