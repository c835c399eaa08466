package receiver

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/tap"

	"github.com/glassmesh/glassmesh/telemetry/admission"
	"github.com/glassmesh/glassmesh/telemetry/pipeline"
)

// fullBudget is a real budget this test process is always over: 1 MiB.
func fullBudget(t *testing.T) *admission.Budget {
	t.Helper()
	b, err := admission.New(admission.Config{Limit: 1 << 20, RetryAfter: 3 * time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type discardSpans struct{ n int }

func (d *discardSpans) WriteTraces(_ context.Context, td ptrace.Traces) error {
	d.n += td.SpanCount()
	return nil
}

func TestOverMemoryBudgetALSStreamsEndWithResourceExhausted(t *testing.T) {
	rec := &recorder{}
	conn := serve(t, Config{Memory: fullBudget(t)}, newPipeline(t, pipeline.Config{}, rec))
	err := stream(context.Background(), conn, sourceMessages())
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "memory budget") {
		t.Fatalf("got %v, want RESOURCE_EXHAUSTED naming the memory budget", err)
	}
	checkRetryInfo(t, err, 3*time.Second)
	if rec.Len() != 0 {
		t.Errorf("%d requests recorded from a refused stream", rec.Len())
	}
}

func TestOverMemoryBudgetTraceRequestsGet429(t *testing.T) {
	w := &discardSpans{}
	r, err := NewTraceReceiver(TracesConfig{Memory: fullBudget(t)}, w, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		handler http.Handler
		ct      string
		body    []byte
	}{
		{"OTLP/HTTP", r.OTLPHandler(), contentTypeProtobuf, otlpBody(t)},
		{"Zipkin", r.ZipkinHandler(), contentTypeJSON, []byte(`[{"traceId":"4bf92f3577b34da6a3ce929d0e0e4736","id":"00f067aa0ba902b7","name":"get"}]`)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(tc.body))
			req.Header.Set("Content-Type", tc.ct)
			rr := httptest.NewRecorder()
			tc.handler.ServeHTTP(rr, req)
			if rr.Code != http.StatusTooManyRequests || rr.Header().Get("Retry-After") != "3" {
				t.Fatalf("got %d, Retry-After %q; want 429, 3", rr.Code, rr.Header().Get("Retry-After"))
			}
			if !strings.Contains(rr.Body.String(), "memory budget") {
				t.Errorf("the answer %q does not name the memory budget", rr.Body)
			}
		})
	}
	if w.n != 0 {
		t.Errorf("%d spans written while over budget", w.n)
	}
}

func TestOverMemoryBudgetOTLPGRPCIsRefusedBeforeDecoding(t *testing.T) {
	mem := fullBudget(t)
	r, err := NewTraceReceiver(TracesConfig{Memory: mem}, &discardSpans{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	for _, withTap := range []bool{false, true} {
		var opts []grpc.ServerOption
		if withTap {
			opts = append(opts, grpc.InTapHandle(MemoryTap(mem)))
		}
		srv := grpc.NewServer(opts...)
		r.RegisterGRPC(srv)
		if withTap {
			lis, _ = net.Listen("tcp", "127.0.0.1:0")
		}
		go func() { _ = srv.Serve(lis) }()
		conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		req := ptraceotlp.NewExportRequest()
		_ = req.UnmarshalProto(otlpBody(t))
		_, err = ptraceotlp.NewGRPCClient(conn).Export(context.Background(), req)
		if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "memory budget") {
			t.Errorf("tap %v: got %v, want RESOURCE_EXHAUSTED naming the memory budget", withTap, err)
		} else {
			checkRetryInfo(t, err, 3*time.Second)
		}
		conn.Close()
		srv.Stop()
	}
}

func TestMemoryTapRefusesOnlyIngest(t *testing.T) {
	h := MemoryTap(fullBudget(t))
	for method, refused := range map[string]bool{
		"/envoy.service.accesslog.v3.AccessLogService/StreamAccessLogs":                    true,
		"/envoy.service.metrics.v3.MetricsService/StreamMetrics":                           true,
		"/opentelemetry.proto.collector.trace.v1.TraceService/Export":                      true,
		"/opentelemetry.proto.collector.metrics.v1.MetricsService/Export":                  true,
		"/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources": false,
		"/envoy.service.secret.v3.SecretDiscoveryService/StreamSecrets":                    false,
	} {
		_, err := h(context.Background(), &tap.Info{FullMethodName: method})
		if got := err != nil; got != refused {
			t.Errorf("%s: refused %v, want %v", method, got, refused)
		}
	}
	if MemoryTap(nil) != nil {
		t.Error("a tap without a budget")
	}
}

func otlpBody(t *testing.T) []byte {
	t.Helper()
	td := ptrace.NewTraces()
	s := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	s.SetTraceID([16]byte{1})
	s.SetSpanID([8]byte{1})
	s.SetName("get")
	b, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestOverMemoryBudgetMetricsPushGets429(t *testing.T) {
	lim := newInflightLimiter(4, 64<<20, time.Second, fullBudget(t), nil)
	reached := false
	h := lim.wrapHTTP(receiverRemoteWrite, http.HandlerFunc(func(http.ResponseWriter, *http.Request) { reached = true }))
	rr := httptest.NewRecorder()
	h.ServeHTTP(rr, httptest.NewRequest(http.MethodPost, RemoteWritePath, strings.NewReader("body")))
	if rr.Code != http.StatusTooManyRequests || rr.Header().Get("Retry-After") != "3" || !strings.Contains(rr.Body.String(), "memory budget") {
		t.Errorf("got %d, Retry-After %q, %q; want 429, 3, the memory budget", rr.Code, rr.Header().Get("Retry-After"), rr.Body)
	}
	if reached {
		t.Error("the handler ran over budget")
	}
	// The refusal gave back its request slot.
	lim.mu.Lock()
	defer lim.mu.Unlock()
	if lim.requests != 0 || lim.bytes != 0 {
		t.Errorf("%d requests, %d bytes still held", lim.requests, lim.bytes)
	}
}
