package receiver_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"go.opentelemetry.io/collector/pdata/ptrace"
	"google.golang.org/grpc"

	"github.com/glassmesh/glassmesh/telemetry/receiver"
)

// spanWriter records what the receiver writes; err, when set, is returned
// instead.
type spanWriter struct {
	mu    sync.Mutex
	spans map[string]ptrace.Span // by span id
	svc   map[string]string      // span id -> service.name
	err   error
}

func (w *spanWriter) WriteTraces(_ context.Context, td ptrace.Traces) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return w.err
	}
	if w.spans == nil {
		w.spans, w.svc = map[string]ptrace.Span{}, map[string]string{}
	}
	for _, rs := range td.ResourceSpans().All() {
		svc, _ := rs.Resource().Attributes().Get("service.name")
		for _, ss := range rs.ScopeSpans().All() {
			for _, s := range ss.Spans().All() {
				c := ptrace.NewSpan()
				s.CopyTo(c)
				w.spans[s.SpanID().String()] = c
				w.svc[s.SpanID().String()] = svc.Str()
			}
		}
	}
	return nil
}

func (w *spanWriter) setErr(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.err = err
}

func (w *spanWriter) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.spans)
}

// byName returns the recorded spans by name (the last one of each).
func (w *spanWriter) byName() map[string]ptrace.Span {
	w.mu.Lock()
	defer w.mu.Unlock()
	m := map[string]ptrace.Span{}
	for _, s := range w.spans {
		m[s.Name()] = s
	}
	return m
}

// traceServers runs r's gRPC service and both HTTP handlers.
type traceServers struct {
	grpcAddr string
	otlpURL  string
	zipkin   string
}

func startTraceReceiver(t testing.TB, cfg receiver.TracesConfig, w receiver.TracesWriter) traceServers {
	t.Helper()
	r, err := receiver.NewTraceReceiver(cfg, w, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	r.RegisterGRPC(gs)
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	mux := http.NewServeMux()
	mux.Handle(receiver.OTLPTracesPath, r.OTLPHandler())
	mux.Handle(receiver.ZipkinSpansPath, r.ZipkinHandler())
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	return traceServers{grpcAddr: lis.Addr().String(), otlpURL: hs.URL + receiver.OTLPTracesPath, zipkin: hs.URL + receiver.ZipkinSpansPath}
}
