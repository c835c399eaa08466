package receiver_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/glassmesh/glassmesh/telemetry/receiver"
	"github.com/glassmesh/glassmesh/telemetry/receiver/receivertest"
	"github.com/glassmesh/glassmesh/telemetry/record"
)

// emit sends a parent and a child span through exp.
func emit(t *testing.T, exp sdktrace.SpanExporter) {
	t.Helper()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	ctx, parent := tp.Tracer("t").Start(context.Background(), "parent")
	_, child := tp.Tracer("t").Start(ctx, "child")
	child.End()
	parent.End()
	if err := tp.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestOTLPExportersReachTheWriter(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		exp  func(s receivertest.Traces) (sdktrace.SpanExporter, error)
	}{
		{"gRPC", func(s receivertest.Traces) (sdktrace.SpanExporter, error) {
			return otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(s.GRPCAddr), otlptracegrpc.WithInsecure())
		}},
		{"HTTP protobuf gzip", func(s receivertest.Traces) (sdktrace.SpanExporter, error) {
			return otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(s.OTLPURL), otlptracehttp.WithCompression(otlptracehttp.GzipCompression))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := &spanWriter{}
			exp, err := tt.exp(startTraceReceiver(t, receiver.TracesConfig{}, w))
			if err != nil {
				t.Fatal(err)
			}
			emit(t, exp)
			got := w.byName()
			p, c := got["parent"], got["child"]
			if len(got) != 2 || c.ParentSpanID() != p.SpanID() || c.TraceID() != p.TraceID() {
				t.Fatalf("got %d spans, child parent %s, parent %s", len(got), c.ParentSpanID(), p.SpanID())
			}
		})
	}
}

// request builds an OTLP request of n spans; bad of them have no span id.
func request(n, bad int) ptraceotlp.ExportRequest {
	td := ptrace.NewTraces()
	ss := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans()
	for i := range n {
		s := ss.AppendEmpty()
		s.SetName(fmt.Sprint("s", i))
		s.SetTraceID([16]byte{15: 1})
		if i >= bad {
			s.SetSpanID([8]byte{7: byte(i + 1)})
		}
	}
	return ptraceotlp.NewExportRequestFromTraces(td)
}

func gz(t *testing.T, b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, _ = zw.Write(b)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func post(t *testing.T, url, ct, enc string, body []byte) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	req.Header.Set("Content-Type", ct)
	if enc != "" {
		req.Header.Set("Content-Encoding", enc)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestOTLPHTTPAnswers(t *testing.T) {
	w := &spanWriter{}
	s := startTraceReceiver(t, receiver.TracesConfig{}, w)
	pb, _ := request(3, 1).MarshalProto()
	js, _ := request(3, 0).MarshalJSON()
	tests := []struct {
		name, ct, enc string
		body          []byte
		code          int
		want          string
	}{
		{"JSON gzip is accepted", "application/json", "gzip", gz(t, js), 200, `{}`},
		{"a span without id is a partial success", "application/x-protobuf", "", pb, 200, "1 spans rejected"},
		{"malformed protobuf is 400 with the reason", "application/x-protobuf", "", []byte{0xff, 0xff}, 400, "malformed OTLP traces"},
		{"malformed JSON is 400 in JSON", "application/json", "", []byte(`{"resourceSpans":[{`), 400, `"code":3`},
		{"bad gzip is 400", "application/json", "gzip", []byte("nope"), 400, "gzip"},
		{"an unknown content type is 415", "text/plain", "", js, 415, "Content-Type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := post(t, s.OTLPURL, tt.ct, tt.enc, tt.body)
			if resp.StatusCode != tt.code || !strings.Contains(body, tt.want) {
				t.Fatalf("got %d %q, want %d containing %q", resp.StatusCode, body, tt.code, tt.want)
			}
		})
	}
	if n := w.count(); n != 3 { // both requests use span ids 1 to 3
		t.Fatalf("writer got %d distinct spans, want 3", n)
	}
}

func TestOverloadedWriterPushesBack(t *testing.T) {
	w := &spanWriter{}
	w.setErr(fmt.Errorf("wal full: %w", record.ErrOverloaded))
	s := startTraceReceiver(t, receiver.TracesConfig{RetryAfter: 2 * time.Second}, w)
	pb, _ := request(2, 0).MarshalProto()
	resp, _ := post(t, s.OTLPURL, "application/x-protobuf", "", pb)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "2" {
		t.Errorf("OTLP/HTTP: %d Retry-After %q, want 429 and 2", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	resp, _ = post(t, s.ZipkinURL, "application/json", "", []byte(`[{"traceId":"1","id":"2"}]`))
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "2" {
		t.Errorf("Zipkin: %d Retry-After %q, want 429 and 2", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	conn, err := grpc.NewClient(s.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_, err = ptraceotlp.NewGRPCClient(conn).Export(context.Background(), request(2, 0))
	if status.Code(err) != codes.ResourceExhausted || len(status.Convert(err).Details()) != 1 {
		t.Errorf("gRPC: %v, want RESOURCE_EXHAUSTED with RetryInfo", err)
	}
	w.setErr(errors.New("disk on fire"))
	_, err = ptraceotlp.NewGRPCClient(conn).Export(context.Background(), request(2, 0))
	if status.Code(err) != codes.Unavailable {
		t.Errorf("gRPC with a failing store: %v, want UNAVAILABLE", err)
	}
}

func TestOTLPGRPCPartialSuccess(t *testing.T) {
	w := &spanWriter{}
	s := startTraceReceiver(t, receiver.TracesConfig{}, w)
	conn, err := grpc.NewClient(s.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	resp, err := ptraceotlp.NewGRPCClient(conn).Export(context.Background(), request(4, 2))
	if err != nil || resp.PartialSuccess().RejectedSpans() != 2 || w.count() != 2 {
		t.Fatalf("err %v, rejected %d, written %d", err, resp.PartialSuccess().RejectedSpans(), w.count())
	}
}

func TestConfigValidateNamesTheKey(t *testing.T) {
	_, err := receiver.NewTraceReceiver(receiver.TracesConfig{MaxRequests: -1}, &spanWriter{}, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "receiver.traces.max-requests") {
		t.Fatalf("got %v", err)
	}
}

// blockingWriter holds every write until release is closed.
type blockingWriter struct {
	entered chan struct{}
	release chan struct{}
}

func (w *blockingWriter) WriteTraces(ctx context.Context, _ ptrace.Traces) error {
	w.entered <- struct{}{}
	select {
	case <-w.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func TestRequestsBeyondMaxRequestsArePushedBack(t *testing.T) {
	w := &blockingWriter{entered: make(chan struct{}, 1), release: make(chan struct{})}
	s := startTraceReceiver(t, receiver.TracesConfig{MaxRequests: 1, QueueWait: 10 * time.Millisecond}, w)
	pb, _ := request(1, 0).MarshalProto()
	done := make(chan int)
	go func() {
		resp, err := http.Post(s.OTLPURL, "application/x-protobuf", bytes.NewReader(pb))
		if err != nil {
			done <- 0
			return
		}
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	<-w.entered
	resp, body := post(t, s.ZipkinURL, "application/json", "", []byte(`[{"traceId":"1","id":"2"}]`))
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Errorf("second request: %d %q, want 429 with Retry-After", resp.StatusCode, body)
	}
	close(w.release)
	if code := <-done; code != http.StatusOK {
		t.Errorf("first request: %d, want 200", code)
	}
}

// A writer's overload error that says when to come back sets Retry-After.
func TestOverloadedWriterSaysWhenToComeBack(t *testing.T) {
	w := &spanWriter{}
	w.setErr(&record.Overloaded{What: "trace store", RetryAfter: 5 * time.Second})
	s := startTraceReceiver(t, receiver.TracesConfig{RetryAfter: 2 * time.Second}, w)
	pb, _ := request(2, 0).MarshalProto()
	resp, _ := post(t, s.OTLPURL, "application/x-protobuf", "", pb)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "5" {
		t.Errorf("OTLP/HTTP: %d Retry-After %q, want 429 and the writer's 5", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
}
