package query

import (
	"testing"
	"time"

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
