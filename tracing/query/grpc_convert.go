package query

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	grpcproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/glassmesh/glassmesh/tracing/query/jaegerpb/storagev2"
	"github.com/glassmesh/glassmesh/tracing/store"
)

// maxChunkBytes bounds one streamed TracesData message. grpc-go clients,
// Jaeger's among them, refuse messages over 4 MiB unless configured
// otherwise, so a bigger chunk of a trace is split by spans.
const maxChunkBytes = 3 << 20

// badArgument is an invalid request field: the gRPC status it becomes is
// InvalidArgument with the reason in the message and a BadRequest detail.
type badArgument struct {
	field  string
	reason string
}

func (e *badArgument) Error() string { return e.field + ": " + e.reason }

func badArg(field, format string, args ...any) error {
	return &badArgument{field: field, reason: fmt.Sprintf(format, args...)}
}

// invalidArgumentStatus turns a badArgument into its gRPC status.
func invalidArgumentStatus(e *badArgument) *status.Status {
	st := status.New(codes.InvalidArgument, e.Error())
	if d, err := st.WithDetails(&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{
		{Field: e.field, Description: e.reason},
	}}); err == nil {
		return d
	}
	return st
}

// traceRequests converts GetTraces' parameters: every trace id must be 16
// bytes and not all zero, and a given window must not end before it starts.
func traceRequests(qs []*storagev2.GetTraceParams) ([]store.TraceRequest, error) {
	reqs := make([]store.TraceRequest, 0, len(qs))
	for i, q := range qs {
		field := fmt.Sprintf("query[%d]", i)
		if q == nil {
			return nil, badArg(field, "is null")
		}
		var req store.TraceRequest
		if len(q.GetTraceId()) != len(req.TraceID) {
			return nil, badArg(field+".trace_id", "must be %d bytes, got %d", len(req.TraceID), len(q.GetTraceId()))
		}
		copy(req.TraceID[:], q.GetTraceId())
		if req.TraceID.IsEmpty() {
			return nil, badArg(field+".trace_id", "must not be all zeros")
		}
		var err error
		if req.Start, err = optionalTime(q.GetStartTime(), field+".start_time"); err != nil {
			return nil, err
		}
		if req.End, err = optionalTime(q.GetEndTime(), field+".end_time"); err != nil {
			return nil, err
		}
		if !req.Start.IsZero() && !req.End.IsZero() && req.End.Before(req.Start) {
			return nil, badArg(field+".end_time", "is before start_time")
		}
		reqs = append(reqs, req)
	}
	return reqs, nil
}

// optionalTime is ts as a time, the zero time when ts is absent.
func optionalTime(ts *timestamppb.Timestamp, field string) (time.Time, error) {
	if ts == nil {
		return time.Time{}, nil
	}
	if err := ts.CheckValid(); err != nil {
		return time.Time{}, badArg(field, "%v", err)
	}
	return ts.AsTime(), nil
}

// optionalDuration is d as a non-negative duration, 0 when d is absent.
func optionalDuration(d *durationpb.Duration, field string) (time.Duration, error) {
	if d == nil {
		return 0, nil
	}
	if err := d.CheckValid(); err != nil {
		return 0, badArg(field, "%v", err)
	}
	v := d.AsDuration()
	if v < 0 {
		return 0, badArg(field, "must not be negative, got %v", v)
	}
	return v, nil
}

// traceQuery converts FindTraces' and FindTraceIDs' parameters into a
// store.TraceQuery. glassmesh does not advertise structured filters or
// pagination (see capabilities), so a filter is refused, and so is a page
// token; a page size alone is served as one page (the limit), as the proto
// asks of a backend that cannot paginate. paginate says whether the RPC
// accepts Pagination at all (FindTraces does not).
func traceQuery(q *storagev2.TraceQueryParameters, paginate bool) (store.TraceQuery, error) {
	var tq store.TraceQuery
	if q == nil {
		return tq, badArg("query", "is required")
	}
	if q.GetFilter() != nil {
		return tq, badArg("query.filter", "structured filters are not supported; use service_name, operation_name, attributes and durations")
	}
	if err := searchLimit(q, paginate, &tq); err != nil {
		return tq, err
	}
	tq.Service, tq.Operation = q.GetServiceName(), q.GetOperationName()
	var err error
	if tq.StartMin, err = optionalTime(q.GetStartTimeMin(), "query.start_time_min"); err != nil {
		return tq, err
	}
	if tq.StartMax, err = optionalTime(q.GetStartTimeMax(), "query.start_time_max"); err != nil {
		return tq, err
	}
	if !tq.StartMin.IsZero() && !tq.StartMax.IsZero() && tq.StartMax.Before(tq.StartMin) {
		return tq, badArg("query.start_time_max", "is before start_time_min")
	}
	if tq.DurationMin, err = optionalDuration(q.GetDurationMin(), "query.duration_min"); err != nil {
		return tq, err
	}
	if tq.DurationMax, err = optionalDuration(q.GetDurationMax(), "query.duration_max"); err != nil {
		return tq, err
	}
	if tq.DurationMax > 0 && tq.DurationMax < tq.DurationMin {
		return tq, badArg("query.duration_max", "is below duration_min")
	}
	tq.Attributes, err = attributes(q.GetAttributes())
	return tq, err
}

// searchLimit sets tq.Limit from search_depth or a one-page Pagination.
func searchLimit(q *storagev2.TraceQueryParameters, paginate bool, tq *store.TraceQuery) error {
	if q.GetSearchDepth() < 0 {
		return badArg("query.search_depth", "must not be negative, got %d", q.GetSearchDepth())
	}
	tq.Limit = int(q.GetSearchDepth()) // 0: the store's default
	p := q.GetPagination()
	switch {
	case p == nil:
		return nil
	case !paginate:
		return badArg("query.pagination", "FindTraces is not paginated; use search_depth")
	case q.GetSearchDepth() != 0:
		return badArg("query.pagination", "is mutually exclusive with search_depth")
	case p.GetPageSize() == 0:
		return badArg("query.pagination.page_size", "is required")
	case p.GetPageToken() != "":
		return badArg("query.pagination.page_token", "this backend does not paginate, so it issued no token")
	}
	tq.Limit = int(min(p.GetPageSize(), 1<<31-1))
	return nil
}

// attributes converts the query attributes into the store's string form:
// a value compares as pcommon's AsString of it, the way the store compares
// stored attributes, so bool true matches "true" (and error=true the error
// status). A key without a value is skipped, as Jaeger does.
func attributes(kvs []*storagev2.KeyValue) (map[string]string, error) {
	if len(kvs) == 0 {
		return nil, nil
	}
	m := make(map[string]string, len(kvs))
	for i, kv := range kvs {
		if kv.GetValue() == nil || kv.GetValue().GetValue() == nil {
			continue
		}
		if kv.GetKey() == "" {
			return nil, badArg(fmt.Sprintf("query.attributes[%d].key", i), "is empty")
		}
		v := pcommon.NewValueEmpty()
		setValue(v, kv.GetValue(), 0)
		m[kv.GetKey()] = v.AsString()
	}
	return m, nil
}

// maxValueDepth bounds the nesting of array and kvlist query values, so a
// hostile request cannot make the conversion recurse without end; deeper
// values are cut off (left empty).
const maxValueDepth = 32

// setValue copies the proto AnyValue av into v.
func setValue(v pcommon.Value, av *storagev2.AnyValue, depth int) {
	if depth > maxValueDepth {
		return
	}
	switch x := av.GetValue().(type) {
	case *storagev2.AnyValue_StringValue:
		v.SetStr(x.StringValue)
	case *storagev2.AnyValue_BoolValue:
		v.SetBool(x.BoolValue)
	case *storagev2.AnyValue_IntValue:
		v.SetInt(x.IntValue)
	case *storagev2.AnyValue_DoubleValue:
		v.SetDouble(x.DoubleValue)
	case *storagev2.AnyValue_BytesValue:
		v.SetEmptyBytes().FromRaw(x.BytesValue)
	case *storagev2.AnyValue_ArrayValue:
		s := v.SetEmptySlice()
		for _, e := range x.ArrayValue.GetValues() {
			setValue(s.AppendEmpty(), e, depth+1)
		}
	case *storagev2.AnyValue_KvlistValue:
		m := v.SetEmptyMap()
		for _, kv := range x.KvlistValue.GetValues() {
			setValue(m.PutEmpty(kv.GetKey()), kv.GetValue(), depth+1)
		}
	}
}

// messageParts splits one chunk of a trace into the parts sent as one
// message each: none for an empty chunk (the proto forbids empty
// messages), the chunk itself when it encodes to at most maxChunkBytes,
// else parts by span count (a single span larger than that is sent whole).
func messageParts(td ptrace.Traces) []ptrace.Traces {
	n := td.SpanCount()
	if n == 0 {
		return nil
	}
	size := (&ptrace.ProtoMarshaler{}).TracesSize(td)
	if size <= maxChunkBytes || n == 1 {
		return []ptrace.Traces{td}
	}
	parts := size/maxChunkBytes + 1
	var out []ptrace.Traces
	for _, part := range splitSpans(td, (n+parts-1)/parts) {
		out = append(out, messageParts(part)...)
	}
	return out
}

// encodeTraces encodes td as OTLP protobuf: as a TracesData, since pdata's
// ExportTraceServiceRequest has the same wire form.
func encodeTraces(td ptrace.Traces) ([]byte, error) {
	b, err := (&ptrace.ProtoMarshaler{}).MarshalTraces(td)
	if err != nil {
		return nil, fmt.Errorf("encoding spans: %w", err)
	}
	return b, nil
}

// toTracesData converts td to the generated OTLP message through the wire
// format: the slow but codec-independent way to send it.
func toTracesData(td ptrace.Traces) (*tracev1.TracesData, error) {
	b, err := encodeTraces(td)
	if err != nil {
		return nil, err
	}
	msg := &tracev1.TracesData{}
	if err := proto.Unmarshal(b, msg); err != nil {
		return nil, fmt.Errorf("decoding spans as OTLP TracesData: %w", err)
	}
	return msg, nil
}

// encodedTraces is a TracesData already encoded. pdata registers itself as
// grpc-go's "proto" codec and sends any value with these methods as its
// bytes, which saves decoding pdata's encoding into generated structs only
// to encode them again; rawSendWorks checks that the codec in place does.
type encodedTraces []byte

// SizeProto is the encoded size.
func (e encodedTraces) SizeProto() int { return len(e) }

// MarshalProto copies the encoding into b, which has SizeProto bytes.
func (e encodedTraces) MarshalProto(b []byte) int { return copy(b, e) }

// UnmarshalProto refuses: encodedTraces is only ever sent.
func (encodedTraces) UnmarshalProto([]byte) error {
	return errors.New("encodedTraces is send-only")
}

// rawSendWorks reports whether grpc-go's registered "proto" codec sends an
// encodedTraces as its bytes (pdata's codec does; grpc-go's own refuses).
func rawSendWorks() bool {
	c := encoding.GetCodecV2(grpcproto.Name)
	if c == nil {
		return false
	}
	probe := encodedTraces{0x0a, 0x00} // one empty resource_spans
	bufs, err := c.Marshal(probe)
	if err != nil {
		return false
	}
	defer bufs.Free()
	return bytes.Equal(bufs.Materialize(), probe)
}

// splitSpans splits td into parts of at most per spans each (per ≥ 1),
// each keeping its spans' resources and scopes.
func splitSpans(td ptrace.Traces, per int) []ptrace.Traces {
	var parts []ptrace.Traces
	var cur ptrace.Traces
	var curSS ptrace.SpanSlice
	count := per // forces a new part on the first span
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		rs := rss.At(i)
		for j := 0; j < rs.ScopeSpans().Len(); j++ {
			ss := rs.ScopeSpans().At(j)
			open := false // whether curSS belongs to (rs, ss)
			for k := 0; k < ss.Spans().Len(); k++ {
				if count == per {
					cur, count, open = ptrace.NewTraces(), 0, false
					parts = append(parts, cur)
				}
				if !open {
					drs := cur.ResourceSpans().AppendEmpty()
					rs.Resource().CopyTo(drs.Resource())
					drs.SetSchemaUrl(rs.SchemaUrl())
					dss := drs.ScopeSpans().AppendEmpty()
					ss.Scope().CopyTo(dss.Scope())
					dss.SetSchemaUrl(ss.SchemaUrl())
					curSS, open = dss.Spans(), true
				}
				ss.Spans().At(k).CopyTo(curSS.AppendEmpty())
				count++
			}
		}
	}
	return parts
}

// spanKind normalizes GetOperations' span_kind to the store's lower-case
// names, also taking OTLP's enum spelling (SPAN_KIND_SERVER) and any case,
// so a caller spelling it differently is not refused for it.
func spanKind(k string) (string, error) {
	norm := strings.TrimPrefix(strings.ToLower(k), "span_kind_")
	if norm == "unspecified" {
		norm = ""
	}
	if !validSpanKind(norm) {
		return "", badArg("span_kind", "%q is not one of server, client, producer, consumer, internal", k)
	}
	return norm, nil
}

// dependencyWindow is GetDependencies' [start_time, end_time), both required.
func dependencyWindow(req *storagev2.GetDependenciesRequest) (start, end time.Time, err error) {
	if req.GetStartTime() == nil {
		return start, end, badArg("start_time", "is required")
	}
	if req.GetEndTime() == nil {
		return start, end, badArg("end_time", "is required")
	}
	if start, err = optionalTime(req.GetStartTime(), "start_time"); err != nil {
		return start, end, err
	}
	if end, err = optionalTime(req.GetEndTime(), "end_time"); err != nil {
		return start, end, err
	}
	if end.Before(start) {
		return start, end, badArg("end_time", "is before start_time")
	}
	return start, end, nil
}
