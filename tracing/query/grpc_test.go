package query_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/glassmesh/glassmesh/tracing/query/jaegerpb/expressionv1"
	"github.com/glassmesh/glassmesh/tracing/query/jaegerpb/storagev2"
	"github.com/glassmesh/glassmesh/tracing/store"
)

// newCall is a structured filter (service.name = "reviews").
func newCall() *expressionv1.Call {
	return &expressionv1.Call{Op: "eq"}
}

func TestStorageGRPCGetTracesStreamsTheWholeTrace(t *testing.T) {
	f := newFixture(t)
	c := startStorageGRPC(t, f.st)
	ctx := context.Background()

	stream, err := c.traces.GetTraces(ctx, &storagev2.GetTracesRequest{Query: []*storagev2.GetTraceParams{
		{TraceId: f.bookinfo[:]},
		{TraceId: []byte("not stored here!")}, // skipped
		{TraceId: f.healthz[:], StartTime: timestamppb.New(f.t0), EndTime: timestamppb.New(f.t0.Add(time.Hour))},
	}})
	got, err := recvAll(t, stream, err)
	if err != nil {
		t.Fatal(err)
	}
	if ids := got.traceIDs(t); !slices.Equal(ids, []pcommon.TraceID{f.bookinfo, f.healthz}) {
		t.Fatalf("traces %v, want bookinfo then healthz", ids)
	}
	spans := map[string]ptrace.Span{} // service/name/kind → span
	for _, td := range got.traces {
		forSpans(td, func(svc string, sp ptrace.Span) {
			if sp.TraceID() == f.bookinfo {
				spans[svc+" "+sp.Name()+" "+sp.Kind().String()] = sp
			}
		})
	}
	if len(spans) != 5 {
		t.Fatalf("bookinfo came back with %d spans, want 5: %v", len(spans), spans)
	}
	for child, parent := range map[string]string{
		"reviews reviews.Reviews/Get Server":     "productpage reviews.Reviews/Get Client",
		"ratings ratings.Ratings/Get Server":     "reviews ratings.Ratings/Get Client",
		"productpage reviews.Reviews/Get Client": "productpage GET /productpage Server",
	} {
		if spans[child].ParentSpanID() != spans[parent].SpanID() {
			t.Errorf("%s: parent %v, want %s (%v)", child, spans[child].ParentSpanID(), parent, spans[parent].SpanID())
		}
	}
	ra := spans["ratings ratings.Ratings/Get Server"]
	if v, _ := ra.Attributes().Get("stars"); v.Int() != 5 || ra.Status().Code() != ptrace.StatusCodeError {
		t.Errorf("ratings span lost its attributes or status: %v %v", ra.Attributes().AsRaw(), ra.Status().Code())
	}
	if d := ra.EndTimestamp().AsTime().Sub(ra.StartTimestamp().AsTime()); d != 50*time.Millisecond {
		t.Errorf("ratings span lasts %v, want 50ms", d)
	}

	t.Run("a trace outside the time window asked for is not found", func(t *testing.T) {
		stream, err := c.traces.GetTraces(ctx, &storagev2.GetTracesRequest{Query: []*storagev2.GetTraceParams{
			{TraceId: f.bookinfo[:], StartTime: timestamppb.New(f.t0.Add(time.Hour))},
		}})
		got, err := recvAll(t, stream, err)
		if err != nil || len(got.msgs) != 0 {
			t.Fatalf("got %d messages, err %v; want an empty stream", len(got.msgs), err)
		}
	})
	t.Run("no trace found is an empty stream", func(t *testing.T) {
		stream, err := c.traces.GetTraces(ctx, &storagev2.GetTracesRequest{Query: []*storagev2.GetTraceParams{{TraceId: []byte("not stored here!")}}})
		got, err := recvAll(t, stream, err)
		if err != nil || len(got.msgs) != 0 {
			t.Fatalf("got %d messages, err %v; want an empty stream", len(got.msgs), err)
		}
	})
}

func TestStorageGRPCSplitsTracesLargerThanAClientMessage(t *testing.T) {
	b := newTrace(7)
	t0 := time.Now().Add(-time.Hour)
	big := strings.Repeat("x", 300<<10)
	for i := range 20 { // 20 × 300 KiB: 6 MiB, over grpc-go's 4 MiB receive limit
		b.span("reviews", fmt.Sprintf("op%d", i), ptrace.SpanKindInternal, byte(i+1), 0, t0, time.Millisecond).
			Attributes().PutStr("payload", big)
	}
	f := newFixture(t)
	if err := f.st.WriteTraces(context.Background(), b.td); err != nil {
		t.Fatal(err)
	}
	c := startStorageGRPC(t, f.st)
	stream, err := c.traces.GetTraces(context.Background(), &storagev2.GetTracesRequest{Query: []*storagev2.GetTraceParams{{TraceId: b.id[:]}}})
	got, err := recvAll(t, stream, err)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, td := range got.traces {
		n += td.SpanCount()
	}
	if len(got.msgs) < 2 || n != 20 || len(got.traceIDs(t)) != 1 {
		t.Fatalf("%d messages with %d spans; want the 20 spans of one trace over several messages", len(got.msgs), n)
	}
}

func TestStorageGRPCServicesAndOperations(t *testing.T) {
	f := newFixture(t)
	c := startStorageGRPC(t, f.st)
	ctx := context.Background()
	svcs, err := c.traces.GetServices(ctx, &storagev2.GetServicesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"productpage", "ratings", "reviews"}; !slices.Equal(svcs.GetServices(), want) {
		t.Fatalf("services %v, want %v", svcs.GetServices(), want)
	}
	for _, tc := range []struct {
		name, service, kind string
		want                []string
	}{
		{"every operation of a service comes with its span kind", "reviews", "",
			[]string{"ratings.Ratings/Get client", "reviews.Reviews/Get server"}},
		{"a span kind selects the operations of that kind", "productpage", "server",
			[]string{"GET /healthz server", "GET /productpage server"}},
		{"OTLP's spelling of a span kind is understood", "productpage", "SPAN_KIND_CLIENT",
			[]string{"reviews.Reviews/Get client"}},
		{"a service without spans has no operations", "details", "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := c.traces.GetOperations(ctx, &storagev2.GetOperationsRequest{Service: tc.service, SpanKind: tc.kind})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, op := range resp.GetOperations() {
				got = append(got, op.GetName()+" "+op.GetSpanKind())
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("operations %q, want %q", got, tc.want)
			}
		})
	}
}

// str, boolean and integer are query attribute values.
func str(s string) *storagev2.AnyValue {
	return &storagev2.AnyValue{Value: &storagev2.AnyValue_StringValue{StringValue: s}}
}

func boolean(b bool) *storagev2.AnyValue {
	return &storagev2.AnyValue{Value: &storagev2.AnyValue_BoolValue{BoolValue: b}}
}

func integer(i int64) *storagev2.AnyValue {
	return &storagev2.AnyValue{Value: &storagev2.AnyValue_IntValue{IntValue: i}}
}

func TestStorageGRPCFindTracesByEveryParameter(t *testing.T) {
	f := newFixture(t)
	c := startStorageGRPC(t, f.st)
	ctx := context.Background()
	hour := timestamppb.New(f.t0.Add(-time.Hour))
	for _, tc := range []struct {
		name string
		q    *storagev2.TraceQueryParameters
		want []pcommon.TraceID
	}{
		{"every trace of a service, newest first", &storagev2.TraceQueryParameters{ServiceName: "productpage"}, []pcommon.TraceID{f.healthz, f.bookinfo}},
		{"no service searches every service", &storagev2.TraceQueryParameters{}, []pcommon.TraceID{f.healthz, f.bookinfo}},
		{"a service deeper in the trace finds it", &storagev2.TraceQueryParameters{ServiceName: "ratings"}, []pcommon.TraceID{f.bookinfo}},
		{"operation", &storagev2.TraceQueryParameters{ServiceName: "productpage", OperationName: "GET /healthz"}, []pcommon.TraceID{f.healthz}},
		{"string attribute", &storagev2.TraceQueryParameters{Attributes: []*storagev2.KeyValue{{Key: "user", Value: str("jason")}}}, []pcommon.TraceID{f.bookinfo}},
		{"int attribute", &storagev2.TraceQueryParameters{Attributes: []*storagev2.KeyValue{{Key: "stars", Value: integer(5)}}}, []pcommon.TraceID{f.bookinfo}},
		{"error=true as a bool", &storagev2.TraceQueryParameters{ServiceName: "ratings", Attributes: []*storagev2.KeyValue{{Key: "error", Value: boolean(true)}}}, []pcommon.TraceID{f.bookinfo}},
		{"error=true as a string", &storagev2.TraceQueryParameters{Attributes: []*storagev2.KeyValue{{Key: "error", Value: str("true")}}}, []pcommon.TraceID{f.bookinfo}},
		{"attributes must hold on one span", &storagev2.TraceQueryParameters{Attributes: []*storagev2.KeyValue{{Key: "user", Value: str("jason")}, {Key: "stars", Value: integer(5)}}}, nil},
		{"span.kind", &storagev2.TraceQueryParameters{ServiceName: "reviews", Attributes: []*storagev2.KeyValue{{Key: "span.kind", Value: str("client")}}}, []pcommon.TraceID{f.bookinfo}},
		{"an unmatched attribute finds nothing", &storagev2.TraceQueryParameters{Attributes: []*storagev2.KeyValue{{Key: "user", Value: str("bob")}}}, nil},
		{"start_time_min", &storagev2.TraceQueryParameters{StartTimeMin: timestamppb.New(f.t0.Add(time.Minute))}, []pcommon.TraceID{f.healthz}},
		{"start_time_max", &storagev2.TraceQueryParameters{StartTimeMin: hour, StartTimeMax: timestamppb.New(f.t0.Add(time.Minute))}, []pcommon.TraceID{f.bookinfo}},
		{"duration_min", &storagev2.TraceQueryParameters{ServiceName: "productpage", DurationMin: durationpb.New(90 * time.Millisecond)}, []pcommon.TraceID{f.bookinfo}},
		{"duration_max", &storagev2.TraceQueryParameters{ServiceName: "productpage", DurationMax: durationpb.New(10 * time.Millisecond)}, []pcommon.TraceID{f.healthz}},
		{"duration range", &storagev2.TraceQueryParameters{ServiceName: "reviews", DurationMin: durationpb.New(65 * time.Millisecond), DurationMax: durationpb.New(75 * time.Millisecond)}, []pcommon.TraceID{f.bookinfo}},
		{"search_depth keeps the newest", &storagev2.TraceQueryParameters{ServiceName: "productpage", SearchDepth: 1}, []pcommon.TraceID{f.healthz}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stream, err := c.traces.FindTraces(ctx, &storagev2.FindTracesRequest{Query: tc.q})
			got, err := recvAll(t, stream, err)
			if err != nil {
				t.Fatal(err)
			}
			if ids := got.traceIDs(t); !slices.Equal(ids, tc.want) {
				t.Fatalf("FindTraces found %v, want %v", ids, tc.want)
			}
			ids, err := c.traces.FindTraceIDs(ctx, &storagev2.FindTraceIDsRequest{Query: tc.q})
			if err != nil {
				t.Fatal(err)
			}
			var gotIDs []pcommon.TraceID
			for _, id := range ids.GetTraceIds() {
				gotIDs = append(gotIDs, pcommon.TraceID(id.GetTraceId()))
			}
			if !slices.Equal(gotIDs, tc.want) || ids.GetNextPageToken() != "" {
				t.Fatalf("FindTraceIDs found %v (next page %q), want %v", gotIDs, ids.GetNextPageToken(), tc.want)
			}
		})
	}
	t.Run("a found id's start hint finds the trace with GetTraces", func(t *testing.T) {
		ids, err := c.traces.FindTraceIDs(ctx, &storagev2.FindTraceIDsRequest{Query: &storagev2.TraceQueryParameters{ServiceName: "ratings"}})
		if err != nil || len(ids.GetTraceIds()) != 1 || ids.GetTraceIds()[0].GetStart() == nil {
			t.Fatalf("FindTraceIDs: %v, %v", ids, err)
		}
		found := ids.GetTraceIds()[0]
		stream, err := c.traces.GetTraces(ctx, &storagev2.GetTracesRequest{Query: []*storagev2.GetTraceParams{{TraceId: found.GetTraceId(), StartTime: found.GetStart()}}})
		got, err := recvAll(t, stream, err)
		if err != nil || len(got.traceIDs(t)) != 1 {
			t.Fatalf("GetTraces with the hint: %d traces, %v", len(got.traces), err)
		}
	})
	t.Run("a page size without a token is one page", func(t *testing.T) {
		ids, err := c.traces.FindTraceIDs(ctx, &storagev2.FindTraceIDsRequest{Query: &storagev2.TraceQueryParameters{
			ServiceName: "productpage", Pagination: &storagev2.Pagination{PageSize: 1},
		}})
		if err != nil || len(ids.GetTraceIds()) != 1 || ids.GetNextPageToken() != "" {
			t.Fatalf("got %v, %v; want one id and no next page", ids, err)
		}
	})
}

func TestStorageGRPCDependenciesAndCapabilities(t *testing.T) {
	f := newFixture(t)
	c := startStorageGRPC(t, f.st)
	ctx := context.Background()
	resp, err := c.deps.GetDependencies(ctx, &storagev2.GetDependenciesRequest{
		StartTime: timestamppb.New(f.t0.Add(-time.Hour)), EndTime: timestamppb.New(f.t0.Add(time.Hour)),
	})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range resp.GetDependencies() {
		got = append(got, fmt.Sprintf("%s→%s×%d", d.GetParent(), d.GetChild(), d.GetCallCount()))
	}
	slices.Sort(got)
	if want := []string{"productpage→reviews×1", "reviews→ratings×1"}; !slices.Equal(got, want) {
		t.Fatalf("dependencies %v, want %v", got, want)
	}
	resp, err = c.deps.GetDependencies(ctx, &storagev2.GetDependenciesRequest{
		StartTime: timestamppb.New(f.t0.Add(time.Hour)), EndTime: timestamppb.New(f.t0.Add(2 * time.Hour)),
	})
	if err != nil || len(resp.GetDependencies()) != 0 {
		t.Fatalf("a window without calls gave %v, %v", resp.GetDependencies(), err)
	}

	// Jaeger falls back to FindTraces + its own aggregation on UNIMPLEMENTED.
	sums, err := c.traces.FindTraceSummaries(ctx, &storagev2.FindTraceSummariesRequest{Query: &storagev2.TraceQueryParameters{}})
	if err == nil {
		_, err = sums.Recv()
	}
	if status.Code(err) != codes.Unimplemented {
		t.Fatalf("FindTraceSummaries: %v, want Unimplemented", err)
	}

	caps, err := c.caps.GetCapabilities(ctx, &storagev2.GetCapabilitiesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if s := caps.GetSearch(); !s.GetWithoutServiceName() || !s.GetSameSpanConjunction() || s.GetPaginated() || s.GetSpanSearch() || s.GetFilter() != nil {
		t.Fatalf("capabilities %v", s)
	}
}

func TestStorageGRPCBadArgumentsAreInvalidArgument(t *testing.T) {
	f := newFixture(t)
	c := startStorageGRPC(t, f.st)
	ctx := context.Background()
	now := timestamppb.New(f.t0)
	later := timestamppb.New(f.t0.Add(time.Hour))
	findTraces := func(q *storagev2.TraceQueryParameters) func() error {
		return func() error {
			stream, err := c.traces.FindTraces(ctx, &storagev2.FindTracesRequest{Query: q})
			_, err = recvAll(t, stream, err)
			return err
		}
	}
	findIDs := func(q *storagev2.TraceQueryParameters) func() error {
		return func() error {
			_, err := c.traces.FindTraceIDs(ctx, &storagev2.FindTraceIDsRequest{Query: q})
			return err
		}
	}
	getTraces := func(q ...*storagev2.GetTraceParams) func() error {
		return func() error {
			stream, err := c.traces.GetTraces(ctx, &storagev2.GetTracesRequest{Query: q})
			_, err = recvAll(t, stream, err)
			return err
		}
	}
	for _, tc := range []struct {
		name, field string
		call        func() error
	}{
		{"a trace id of 8 bytes", "query[0].trace_id", getTraces(&storagev2.GetTraceParams{TraceId: []byte{1, 2, 3, 4, 5, 6, 7, 8}})},
		{"an all-zero trace id", "query[1].trace_id", getTraces(&storagev2.GetTraceParams{TraceId: f.bookinfo[:]}, &storagev2.GetTraceParams{TraceId: make([]byte, 16)})},
		{"a trace window ending before it starts", "query[0].end_time", getTraces(&storagev2.GetTraceParams{TraceId: f.bookinfo[:], StartTime: later, EndTime: now})},
		{"operations without a service", "service", func() error {
			_, err := c.traces.GetOperations(ctx, &storagev2.GetOperationsRequest{})
			return err
		}},
		{"an unknown span kind", "span_kind", func() error {
			_, err := c.traces.GetOperations(ctx, &storagev2.GetOperationsRequest{Service: "reviews", SpanKind: "server-side"})
			return err
		}},
		{"a search without its query", "query", findTraces(nil)},
		{"a negative search depth", "query.search_depth", findTraces(&storagev2.TraceQueryParameters{SearchDepth: -1})},
		{"a start window ending before it starts", "query.start_time_max", findIDs(&storagev2.TraceQueryParameters{StartTimeMin: later, StartTimeMax: now})},
		{"an invalid timestamp", "query.start_time_min", findTraces(&storagev2.TraceQueryParameters{StartTimeMin: &timestamppb.Timestamp{Nanos: -1}})},
		{"a negative duration", "query.duration_min", findTraces(&storagev2.TraceQueryParameters{DurationMin: durationpb.New(-time.Second)})},
		{"a maximum duration below the minimum", "query.duration_max", findIDs(&storagev2.TraceQueryParameters{DurationMin: durationpb.New(time.Second), DurationMax: durationpb.New(time.Millisecond)})},
		{"an attribute without a key", "query.attributes[0].key", findTraces(&storagev2.TraceQueryParameters{Attributes: []*storagev2.KeyValue{{Value: str("x")}}})},
		{"a structured filter", "query.filter", findTraces(&storagev2.TraceQueryParameters{Filter: newCall()})},
		{"pagination on FindTraces", "query.pagination", findTraces(&storagev2.TraceQueryParameters{Pagination: &storagev2.Pagination{PageSize: 1}})},
		{"pagination with a search depth", "query.pagination", findIDs(&storagev2.TraceQueryParameters{SearchDepth: 5, Pagination: &storagev2.Pagination{PageSize: 1}})},
		{"a page without a size", "query.pagination.page_size", findIDs(&storagev2.TraceQueryParameters{Pagination: &storagev2.Pagination{}})},
		{"a page token this backend never issued", "query.pagination.page_token", findIDs(&storagev2.TraceQueryParameters{Pagination: &storagev2.Pagination{PageSize: 1, PageToken: "abc"}})},
		{"dependencies without an end", "end_time", func() error {
			_, err := c.deps.GetDependencies(ctx, &storagev2.GetDependenciesRequest{StartTime: now})
			return err
		}},
		{"dependencies ending before they start", "end_time", func() error {
			_, err := c.deps.GetDependencies(ctx, &storagev2.GetDependenciesRequest{StartTime: later, EndTime: now})
			return err
		}},
	} {
		t.Run(tc.name+" is refused with the field and reason", func(t *testing.T) {
			st := status.Convert(tc.call())
			if st.Code() != codes.InvalidArgument || !strings.HasPrefix(st.Message(), tc.field+": ") {
				t.Fatalf("got %v %q, want InvalidArgument about %s", st.Code(), st.Message(), tc.field)
			}
			var br *errdetails.BadRequest
			for _, d := range st.Details() {
				if b, ok := d.(*errdetails.BadRequest); ok {
					br = b
				}
			}
			if br == nil || len(br.GetFieldViolations()) != 1 || br.GetFieldViolations()[0].GetField() != tc.field {
				t.Fatalf("BadRequest detail %v, want one violation of %s", br, tc.field)
			}
		})
	}
}

// unavailable is a Reader whose shared store is down.
type unavailable struct{ store.Reader }

func (unavailable) Services(context.Context) ([]string, error) {
	return nil, fmt.Errorf("trace store http://jaeger:16686: GET /api/v3/services: connection refused: %w", store.ErrUnavailable)
}

func TestStorageGRPCSaysUnavailableWhenTheSharedStoreIs(t *testing.T) {
	c := startStorageGRPC(t, unavailable{})
	_, err := c.traces.GetServices(context.Background(), &storagev2.GetServicesRequest{})
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "trace store http://jaeger:16686") {
		t.Fatalf("GetServices: %v, want Unavailable naming the store", err)
	}
}
