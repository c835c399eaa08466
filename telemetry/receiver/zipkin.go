package receiver

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"mime"
	"net/http"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/glassmesh/glassmesh/tracing/propagation"

	"github.com/glassmesh/glassmesh/telemetry/record"
)

// ZipkinSpansPath is where ZipkinHandler is mounted on --zipkin-addr.
const ZipkinSpansPath = "/api/v2/spans"

// unknownService names spans whose localEndpoint has no serviceName, as
// the OTel SDKs do.
const unknownService = "unknown_service"

// ZipkinHandler serves Zipkin v2 span ingestion: POST a JSON list of spans
// (application/json, the default) or a zipkin.proto3 ListOfSpans
// (application/x-protobuf), optionally gzip. It answers 202 like Zipkin
// once the spans are written, 400 with the reason for malformed input, 429
// with Retry-After when over capacity, 507 with Retry-After when the data
// dir is full.
//
// Zipkin ids may be 64 or 128 bits; 64-bit trace ids are zero padded. The
// server half of a shared span (kind SERVER, shared true, the same span id
// as its client half) gets a span id derived from the shared one and the
// client half as its parent, as Jaeger's Zipkin span-id deduper does, so
// both halves are kept; the derivation is deterministic, so retries stay
// idempotent. Spans of the server's service in the same request whose
// parent is the shared id become children of the server half.
func (r *TraceReceiver) ZipkinHandler() http.Handler {
	return http.HandlerFunc(r.serveZipkin)
}

func (r *TraceReceiver) serveZipkin(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method "+req.Method+" not allowed, use POST", http.StatusMethodNotAllowed)
		return
	}
	ct, _, _ := mime.ParseMediaType(req.Header.Get("Content-Type"))
	decode := decodeZipkinJSON
	switch ct {
	case "", contentTypeJSON:
	case contentTypeProtobuf:
		decode = decodeZipkinProto
	default:
		http.Error(w, fmt.Sprintf("unsupported Content-Type %q, use %s or %s", ct, contentTypeJSON, contentTypeProtobuf), http.StatusUnsupportedMediaType)
		return
	}
	release, err := r.admit(req)
	if err != nil {
		r.writeZipkinWriteError(w, err)
		return
	}
	defer release()
	body, code, err := r.readBody(req)
	if err != nil {
		http.Error(w, err.Error(), code)
		return
	}
	spans, err := decode(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	td, err := zipkinToTraces(spans)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if _, _, err := r.write(req.Context(), "zipkin", td); err != nil {
		r.writeZipkinWriteError(w, err)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

// writeZipkinWriteError answers a failed write in plain text.
func (r *TraceReceiver) writeZipkinWriteError(w http.ResponseWriter, err error) {
	if r.overloaded(err) {
		w.Header().Set("Retry-After", retryAfterSeconds(record.RetryAfter(err, r.cfg.RetryAfter)))
		http.Error(w, err.Error(), http.StatusTooManyRequests)
		return
	}
	if record.IsStorageFull(err) {
		writeStorageFull(w, err, r.cfg.RetryAfter)
		return
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		http.Error(w, err.Error(), http.StatusRequestTimeout)
		return
	}
	if notReady(err) {
		writeNotReady(w, err, r.cfg.RetryAfter)
		return
	}
	r.logger.Warn("writing Zipkin spans failed", "err", err)
	http.Error(w, "writing spans failed: "+err.Error(), http.StatusServiceUnavailable)
}

// zipkinToTraces translates Zipkin spans to OTLP, one resource per local
// service name. A span without valid ids fails the whole request, as in
// Zipkin.
func zipkinToTraces(spans []zipkinSpan) (ptrace.Traces, error) {
	td := ptrace.NewTraces()
	byService := map[string]ptrace.SpanSlice{}
	for i := range spans {
		zs := &spans[i]
		service := unknownService
		if zs.LocalEndpoint != nil && zs.LocalEndpoint.ServiceName != "" {
			service = zs.LocalEndpoint.ServiceName
		}
		out, ok := byService[service]
		if !ok {
			rs := td.ResourceSpans().AppendEmpty()
			rs.Resource().Attributes().PutStr("service.name", service)
			out = rs.ScopeSpans().AppendEmpty().Spans()
			byService[service] = out
		}
		if err := zipkinSpanTo(zs, out.AppendEmpty()); err != nil {
			return td, fmt.Errorf("span %d: %w", i, err)
		}
	}
	for _, out := range byService {
		reparentToServerHalves(out)
	}
	return td, nil
}

// reparentToServerHalves makes the spans of one service that name a
// shared id as their parent children of that service's server half, as
// Jaeger's span-id deduper does (children in later requests keep the
// shared id and so hang under the client half).
func reparentToServerHalves(spans ptrace.SpanSlice) {
	type key struct {
		trace  pcommon.TraceID
		shared pcommon.SpanID
	}
	var halves map[key]pcommon.SpanID
	for _, s := range spans.All() {
		if s.Kind() == ptrace.SpanKindServer && s.SpanID() == serverHalfID(s.TraceID(), s.ParentSpanID()) {
			if halves == nil {
				halves = map[key]pcommon.SpanID{}
			}
			halves[key{s.TraceID(), s.ParentSpanID()}] = s.SpanID()
		}
	}
	if halves == nil {
		return
	}
	for _, s := range spans.All() {
		if half, ok := halves[key{s.TraceID(), s.ParentSpanID()}]; ok && half != s.SpanID() {
			s.SetParentSpanID(half)
		}
	}
}

// zipkinSpanTo fills s from zs.
func zipkinSpanTo(zs *zipkinSpan, s ptrace.Span) error {
	traceID, err := propagation.TraceIDFromHex(zs.TraceID)
	if err != nil {
		return err
	}
	spanID, err := propagation.SpanIDFromHex(zs.ID)
	if err != nil {
		return err
	}
	s.SetTraceID(traceID)
	s.SetSpanID(spanID)
	if zs.ParentID != "" {
		parent, err := propagation.SpanIDFromHex(zs.ParentID)
		if err != nil {
			return fmt.Errorf("parent: %w", err)
		}
		s.SetParentSpanID(parent)
	}
	if zs.Shared && zs.Kind == "SERVER" {
		s.SetParentSpanID(spanID)
		s.SetSpanID(serverHalfID(traceID, spanID))
	}
	s.SetName(zs.Name)
	s.SetKind(zipkinKind(zs.Kind))
	start := pcommon.Timestamp(zs.Timestamp * 1000)
	s.SetStartTimestamp(start)
	s.SetEndTimestamp(start + pcommon.Timestamp(zs.Duration*1000))
	zipkinTagsTo(zs.Tags, s)
	if e := zs.RemoteEndpoint; e != nil {
		putEndpoint(e, s.Attributes())
	}
	for _, a := range zs.Annotations {
		ev := s.Events().AppendEmpty()
		ev.SetTimestamp(pcommon.Timestamp(a.Timestamp * 1000))
		ev.SetName(a.Value)
	}
	return nil
}

// serverHalfID derives the span id of a shared span's server half.
func serverHalfID(traceID pcommon.TraceID, shared pcommon.SpanID) pcommon.SpanID {
	h := fnv.New64a()
	_, _ = h.Write(traceID[:])
	_, _ = h.Write(shared[:])
	_, _ = h.Write([]byte("server"))
	var id pcommon.SpanID
	binary.BigEndian.PutUint64(id[:], h.Sum64()|1) // never all zeros
	return id
}

// zipkinKind maps a Zipkin kind to OTLP's; no kind is unspecified.
func zipkinKind(k string) ptrace.SpanKind {
	switch k {
	case "CLIENT":
		return ptrace.SpanKindClient
	case "SERVER":
		return ptrace.SpanKindServer
	case "PRODUCER":
		return ptrace.SpanKindProducer
	case "CONSUMER":
		return ptrace.SpanKindConsumer
	}
	return ptrace.SpanKindUnspecified
}

// zipkinTagsTo copies tags to attributes; the "error" tag (its value is
// the message) and the OTel exporter's otel.status_code and
// otel.status_description become the span status.
func zipkinTagsTo(tags map[string]string, s ptrace.Span) {
	attrs := s.Attributes()
	attrs.EnsureCapacity(len(tags))
	for k, v := range tags {
		switch k {
		case "error":
			s.Status().SetCode(ptrace.StatusCodeError)
			if v != "" && v != "true" {
				s.Status().SetMessage(v)
			}
		case "otel.status_code":
			switch v {
			case "ERROR":
				s.Status().SetCode(ptrace.StatusCodeError)
			case "OK":
				s.Status().SetCode(ptrace.StatusCodeOk)
			}
		case "otel.status_description":
			s.Status().SetMessage(v)
		default:
			attrs.PutStr(k, v)
		}
	}
}

// putEndpoint records the remote endpoint as OTel peer attributes.
func putEndpoint(e *zipkinEndpoint, attrs pcommon.Map) {
	if e.ServiceName != "" {
		attrs.PutStr("peer.service", e.ServiceName)
	}
	switch {
	case e.IPv6 != "":
		attrs.PutStr("network.peer.address", e.IPv6)
	case e.IPv4 != "":
		attrs.PutStr("network.peer.address", e.IPv4)
	}
	if e.Port != 0 {
		attrs.PutInt("network.peer.port", int64(e.Port))
	}
}
