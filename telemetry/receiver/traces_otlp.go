package receiver

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/glassmesh/glassmesh/telemetry/record"
)

// OTLPTracesPath is where OTLPHandler is mounted on --otlp-http-addr.
const OTLPTracesPath = "/v1/traces"

// Content types of OTLP/HTTP.
const (
	contentTypeProtobuf = "application/x-protobuf"
	contentTypeJSON     = "application/json"
)

// RegisterGRPC registers the OTLP trace service
// (opentelemetry.proto.collector.trace.v1.TraceService) on s; cmd calls it
// for the --otlp-grpc-addr server and for the --grpc-addr one.
func (r *TraceReceiver) RegisterGRPC(s *grpc.Server) {
	g := &otlpGRPC{r: r}
	registerOTLPTraces(s, r.cfg.Memory, g.exportEncoded)
}

// otlpGRPC is the OTLP/gRPC trace service.
type otlpGRPC struct {
	ptraceotlp.UnimplementedGRPCServer
	r *TraceReceiver
}

// Export writes the request's spans and answers once they are durable.
func (g *otlpGRPC) Export(ctx context.Context, req ptraceotlp.ExportRequest) (ptraceotlp.ExportResponse, error) {
	return g.exportEncoded(ctx, req, nil)
}

// exportEncoded is Export given the request's protobuf too (nil: none).
func (g *otlpGRPC) exportEncoded(ctx context.Context, req ptraceotlp.ExportRequest, raw []byte) (ptraceotlp.ExportResponse, error) {
	if err := g.r.acquire(ctx); err != nil {
		g.r.m.refused.WithLabelValues("otlp_grpc", "overloaded").Add(float64(req.Traces().SpanCount()))
		return ptraceotlp.NewExportResponse(), g.r.grpcStatus(err).Err()
	}
	defer g.r.release()
	resp, err := g.r.export(ctx, "otlp_grpc", req, raw)
	if err != nil {
		return resp, g.r.grpcStatus(err).Err()
	}
	return resp, nil
}

// export is Export for both transports; the caller holds a slot. raw is
// the request's protobuf, when there is one.
func (r *TraceReceiver) export(ctx context.Context, transport string, req ptraceotlp.ExportRequest, raw []byte) (ptraceotlp.ExportResponse, error) {
	resp := ptraceotlp.NewExportResponse()
	rejected, why, err := r.writeEncoded(ctx, transport, req.Traces(), raw)
	if err != nil {
		return resp, err
	}
	if rejected > 0 {
		resp.PartialSuccess().SetRejectedSpans(int64(rejected))
		resp.PartialSuccess().SetErrorMessage(why)
	}
	return resp, nil
}

// grpcStatus maps a write error to the status OTLP clients act on.
func (r *TraceReceiver) grpcStatus(err error) *status.Status {
	switch {
	case r.overloaded(err):
		return exhausted(err.Error(), record.RetryAfter(err, r.cfg.RetryAfter))
	case notReady(err):
		return notReadyStatus(err, r.cfg.RetryAfter)
	case record.IsStorageFull(err):
		return storageFullStatus(err, r.cfg.RetryAfter)
	case errors.Is(err, context.Canceled):
		return status.New(codes.Canceled, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.New(codes.DeadlineExceeded, err.Error())
	default:
		r.logger.Warn("writing spans failed", "err", err)
		return status.New(codes.Unavailable, "writing spans failed: "+err.Error())
	}
}

// OTLPHandler serves OTLP/HTTP trace export (POST, protobuf or JSON,
// optionally gzip), answering like the collector's otlpreceiver: 200 with
// an ExportTraceServiceResponse in the request's encoding, 400 with a
// google.rpc.Status for malformed input, 429 with Retry-After when over
// capacity, 507 with Retry-After when the data dir is full, 503 when the
// store failed.
func (r *TraceReceiver) OTLPHandler() http.Handler {
	return http.HandlerFunc(r.serveOTLP)
}

func (r *TraceReceiver) serveOTLP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeOTLPError(w, contentTypeJSON, http.StatusMethodNotAllowed, codes.Unimplemented, "method "+req.Method+" not allowed, use POST")
		return
	}
	ct, _, _ := mime.ParseMediaType(req.Header.Get("Content-Type"))
	if ct != contentTypeProtobuf && ct != contentTypeJSON {
		writeOTLPError(w, contentTypeJSON, http.StatusUnsupportedMediaType, codes.InvalidArgument,
			fmt.Sprintf("unsupported Content-Type %q, use %s or %s", ct, contentTypeProtobuf, contentTypeJSON))
		return
	}
	release, err := r.admit(req)
	if err != nil {
		r.writeHTTPWriteError(w, ct, err)
		return
	}
	defer release()
	body, code, err := r.readBody(req)
	if err != nil {
		writeOTLPError(w, ct, code, codes.InvalidArgument, err.Error())
		return
	}
	otlpReq := ptraceotlp.NewExportRequest()
	var raw []byte
	if ct == contentTypeJSON {
		err = otlpReq.UnmarshalJSON(body)
	} else {
		err, raw = otlpReq.UnmarshalProto(body), body
	}
	if err != nil {
		writeOTLPError(w, ct, http.StatusBadRequest, codes.InvalidArgument, "malformed OTLP traces: "+err.Error())
		return
	}
	resp, err := r.export(req.Context(), "otlp_http", otlpReq, raw)
	if err != nil {
		r.writeHTTPWriteError(w, ct, err)
		return
	}
	var out []byte
	if ct == contentTypeJSON {
		out, err = resp.MarshalJSON()
	} else {
		out, err = resp.MarshalProto()
	}
	if err != nil {
		writeOTLPError(w, ct, http.StatusInternalServerError, codes.Internal, err.Error())
		return
	}
	w.Header().Set("Content-Type", ct)
	_, _ = w.Write(out)
}

// admit takes a request slot and the memory budget's share of req's body
// (charged at its Content-Length), or says why not. Both are taken
// before the body is read, so they bound the memory of bodies too.
func (r *TraceReceiver) admit(req *http.Request) (release func(), err error) {
	if err := r.acquire(req.Context()); err != nil {
		return nil, err
	}
	releaseMem, err := r.cfg.Memory.Admit(max(req.ContentLength, 0))
	if err != nil {
		r.release()
		return nil, err
	}
	return func() { releaseMem(); r.release() }, nil
}

// retryAfterSeconds is a Retry-After header's value: whole seconds,
// rounded up, at least 1.
func retryAfterSeconds(d time.Duration) string {
	return strconv.Itoa(max(1, int((d+time.Second-1)/time.Second)))
}

// writeHTTPWriteError answers a failed write: 429 and Retry-After when
// overloaded, 503 (retryable) otherwise, with Retry-After while the
// store opens.
// overloaded, 507 and Retry-After when the data dir is full, 503
// (retryable) otherwise.
func (r *TraceReceiver) writeHTTPWriteError(w http.ResponseWriter, ct string, err error) {
	if record.IsStorageFull(err) {
		w.Header().Set("Retry-After", retryAfterSeconds(record.RetryAfter(err, r.cfg.RetryAfter)))
		writeOTLPError(w, ct, http.StatusInsufficientStorage, codes.ResourceExhausted, storageFullMessage(err))
		return
	}
	st := r.grpcStatus(err)
	code := http.StatusServiceUnavailable
	switch st.Code() {
	case codes.ResourceExhausted:
		code = http.StatusTooManyRequests
		w.Header().Set("Retry-After", retryAfterSeconds(record.RetryAfter(err, r.cfg.RetryAfter)))
	case codes.Unavailable:
		if notReady(err) {
			w.Header().Set("Retry-After", retryAfterSeconds(record.RetryAfter(err, r.cfg.RetryAfter)))
		}
	case codes.Canceled, codes.DeadlineExceeded:
		code = http.StatusRequestTimeout
	}
	writeOTLPError(w, ct, code, st.Code(), st.Message())
}

// readBody reads the (decompressed) body, at most MaxRequestBytes of it.
// On error it returns the HTTP status to answer.
func (r *TraceReceiver) readBody(req *http.Request) ([]byte, int, error) {
	var rd io.Reader = req.Body
	switch enc := req.Header.Get("Content-Encoding"); enc {
	case "", "identity":
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(req.Body)
		if err != nil {
			return nil, http.StatusBadRequest, fmt.Errorf("bad gzip body: %w", err)
		}
		defer zr.Close()
		rd = zr
	default:
		return nil, http.StatusUnsupportedMediaType, fmt.Errorf("unsupported Content-Encoding %q, use gzip or none", enc)
	}
	body, err := io.ReadAll(io.LimitReader(rd, r.cfg.MaxRequestBytes+1))
	if err != nil {
		return nil, http.StatusBadRequest, fmt.Errorf("reading body: %w", err)
	}
	if int64(len(body)) > r.cfg.MaxRequestBytes {
		return nil, http.StatusRequestEntityTooLarge, fmt.Errorf("body larger than %d bytes", r.cfg.MaxRequestBytes)
	}
	return body, 0, nil
}

// writeOTLPError writes a google.rpc.Status in the request's encoding, as
// the OTLP/HTTP spec asks.
func writeOTLPError(w http.ResponseWriter, ct string, httpCode int, code codes.Code, msg string) {
	st := status.New(code, msg).Proto()
	var out []byte
	if ct == contentTypeProtobuf {
		out, _ = proto.Marshal(st)
	} else {
		ct = contentTypeJSON
		out, _ = protojson.Marshal(st)
	}
	w.Header().Set("Content-Type", ct)
	w.WriteHeader(httpCode)
	_, _ = w.Write(out)
}
