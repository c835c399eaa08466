package query

import (
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/glassmesh/glassmesh/tracing/query/jaegerpb/storagev2"
)

func FuzzGRPCTraceQuery(f *testing.F) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, q := range []*storagev2.TraceQueryParameters{
		{ServiceName: "a", OperationName: "b", SearchDepth: 5, StartTimeMin: timestamppb.New(t0), StartTimeMax: timestamppb.New(t0.Add(time.Hour)),
			DurationMin: durationpb.New(time.Millisecond), DurationMax: durationpb.New(time.Second),
			Attributes: []*storagev2.KeyValue{{Key: "error", Value: &storagev2.AnyValue{Value: &storagev2.AnyValue_BoolValue{BoolValue: true}}}}},
		{Pagination: &storagev2.Pagination{PageSize: 3}},
		{Attributes: []*storagev2.KeyValue{{Key: "k", Value: &storagev2.AnyValue{Value: &storagev2.AnyValue_ArrayValue{ArrayValue: &storagev2.ArrayValue{
			Values: []*storagev2.AnyValue{{Value: &storagev2.AnyValue_IntValue{IntValue: 1}}},
		}}}}}},
	} {
		b, err := proto.Marshal(q)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, true)
	}
	f.Fuzz(func(t *testing.T, b []byte, paginate bool) {
		q := &storagev2.TraceQueryParameters{}
		if proto.Unmarshal(b, q) != nil {
			return
		}
		tq, err := traceQuery(q, paginate)
		if err != nil {
			if _, ok := err.(*badArgument); !ok {
				t.Fatalf("error %v is not a bad argument", err)
			}
			return
		}
		if tq.Limit < 0 || tq.DurationMin < 0 || tq.DurationMax < 0 || tq.DurationMax > 0 && tq.DurationMax < tq.DurationMin {
			t.Fatalf("accepted bounds %+v", tq)
		}
		if !tq.StartMin.IsZero() && !tq.StartMax.IsZero() && tq.StartMax.Before(tq.StartMin) {
			t.Fatalf("accepted a window ending before it starts: %+v", tq)
		}
		if _, ok := tq.Attributes[""]; ok {
			t.Fatal("accepted an attribute without a key")
		}
		if q.GetPagination() != nil && (!paginate || q.GetPagination().GetPageToken() != "") {
			t.Fatalf("accepted pagination %v (paginate %v)", q.GetPagination(), paginate)
		}
	})
}

func FuzzGRPCTraceRequests(f *testing.F) {
	for _, r := range []*storagev2.GetTracesRequest{
		{Query: []*storagev2.GetTraceParams{{TraceId: make([]byte, 16)}}},
		{Query: []*storagev2.GetTraceParams{{TraceId: []byte("0123456789abcdef"), StartTime: timestamppb.New(time.Unix(1, 0)), EndTime: timestamppb.New(time.Unix(2, 0))}}},
	} {
		b, err := proto.Marshal(r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r := &storagev2.GetTracesRequest{}
		if proto.Unmarshal(b, r) != nil {
			return
		}
		reqs, err := traceRequests(r.GetQuery())
		if err != nil {
			return
		}
		for i, req := range reqs {
			if req.TraceID.IsEmpty() || string(req.TraceID[:]) != string(r.GetQuery()[i].GetTraceId()) {
				t.Fatalf("query %d: accepted id %v from %x", i, req.TraceID, r.GetQuery()[i].GetTraceId())
			}
			if !req.Start.IsZero() && !req.End.IsZero() && req.End.Before(req.Start) {
				t.Fatalf("query %d: accepted a window ending before it starts", i)
			}
		}
	})
}

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
			msgs, err := tracesData(p)
			if err != nil || len(msgs) != 1 {
				t.Fatalf("per %d: %d messages, %v", per, len(msgs), err)
			}
			b, err := proto.Marshal(msgs[0])
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
	if msgs, err := tracesData(ptrace.NewTraces()); err != nil || len(msgs) != 0 {
		t.Fatalf("an empty chunk gave %d messages, %v; want none", len(msgs), err)
	}
}
