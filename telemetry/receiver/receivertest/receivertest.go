// Package receivertest serves telemetry/receiver's trace receiver for
// tests: its gRPC services on a loopback port, its OTLP/HTTP and Zipkin
// handlers on an httptest server, both stopped when the test ends.
package receivertest

import (
	"net"
	"net/http"
	"net/http/httptest"
	"testing"

	"google.golang.org/grpc"

	"github.com/glassmesh/glassmesh/telemetry/receiver"
)

// Traces is where a running trace receiver listens.
type Traces struct {
	GRPCAddr  string // OTLP/gRPC
	OTLPURL   string // OTLP/HTTP traces
	ZipkinURL string // Zipkin v2 spans
}

// ServeTraces runs a TraceReceiver of cfg writing to w until t ends.
func ServeTraces(t testing.TB, cfg receiver.TracesConfig, w receiver.TracesWriter) Traces {
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
	return Traces{GRPCAddr: lis.Addr().String(), OTLPURL: hs.URL + receiver.OTLPTracesPath, ZipkinURL: hs.URL + receiver.ZipkinSpansPath}
}
