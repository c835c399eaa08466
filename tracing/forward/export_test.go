package forward

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/glassmesh/glassmesh/tracing/store/storetest"
)

func TestExportURLConvention(t *testing.T) {
	for _, c := range []struct{ in, kind, target string }{
		{"http://tempo:4318", "http", "http://tempo:4318/v1/traces"},
		{"http://tempo:4318/", "http", "http://tempo:4318/v1/traces"},
		{"https://otlp.example.com/otlp/v1/traces", "http", "https://otlp.example.com/otlp/v1/traces"},
		{"grpc://jaeger:4317", "grpc", "jaeger:4317"},
		{"jaeger:4317", "grpc", "jaeger:4317"},
		{"[::1]:4317", "grpc", "[::1]:4317"},
	} {
		kind, target, err := parseExportURL(c.in)
		if err != nil || kind != c.kind || target != c.target {
			t.Errorf("parseExportURL(%q) = %q, %q, %v; want %q, %q", c.in, kind, target, err, c.kind, c.target)
		}
	}
	for _, bad := range []string{"", "tempo", "ftp://x:1", "http://", "grpc://x:1/path", "x:notaport"} {
		if _, _, err := parseExportURL(bad); err == nil {
			t.Errorf("parseExportURL(%q) accepted", bad)
		}
	}
}

func TestRetryAfterTakesSecondsOrADate(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Duration{
		"": 0, "3": 3 * time.Second, "-1": 0, "soon": 0,
		now.Add(time.Minute).Format(http.TimeFormat): time.Minute,
	} {
		if got := retryAfter(in, now); got != want {
			t.Errorf("retryAfter(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestConfigValidateNamesTheKey(t *testing.T) {
	for _, c := range []Config{
		{Targets: []Target{{URL: "nope"}}},
		{Targets: []Target{{URL: "http://a:1"}, {URL: "http://a:1"}}},
		{MaxLag: -1},
		{MinBackoff: time.Second, MaxBackoff: time.Millisecond},
	} {
		if err := c.Validate(); err == nil || !strings.HasPrefix(err.Error(), "traces.forward.") {
			t.Errorf("Validate(%+v) = %v", c, err)
		}
	}
}

// otlpGRPC is the second real receiver: the collector's OTLP/gRPC service.
type otlpGRPC struct {
	ptraceotlp.UnimplementedGRPCServer
	mu    sync.Mutex
	spans []spanKey
}

func (o *otlpGRPC) Export(_ context.Context, req ptraceotlp.ExportRequest) (ptraceotlp.ExportResponse, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.spans = append(o.spans, spanKeys(req.Traces())...)
	return ptraceotlp.NewExportResponse(), nil
}

func (o *otlpGRPC) received() []spanKey {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]spanKey(nil), o.spans...)
}

func TestForwardOverOTLPGRPC(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, recv := grpc.NewServer(), &otlpGRPC{}
	ptraceotlp.RegisterGRPCServer(srv, recv)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	addr := lis.Addr().String()
	d := openForwarding(t, t.TempDir(), Target{URL: "grpc://" + addr}, Target{URL: addr})
	writeGen(t, d, storetest.NewGen(time.Now()), 0, 10)
	storetest.WaitFor(t, "both targets", func() bool { return len(recv.received()) >= 1600 })
	got := map[spanKey]int{}
	for _, k := range recv.received() {
		got[k]++
	}
	if len(got) != 800 {
		t.Fatalf("%d distinct spans arrived, want 800", len(got))
	}
	for k, n := range got {
		if n != 2 {
			t.Fatalf("span %v arrived %d times, want once per target", k, n)
		}
	}
}

// grpcAnswer is an OTLP/gRPC server that answers every request the same.
type grpcAnswer struct {
	ptraceotlp.UnimplementedGRPCServer
	err      error
	rejected int64
}

func (g *grpcAnswer) Export(context.Context, ptraceotlp.ExportRequest) (ptraceotlp.ExportResponse, error) {
	resp := ptraceotlp.NewExportResponse()
	resp.PartialSuccess().SetRejectedSpans(g.rejected)
	return resp, g.err
}

func serveGRPC(t *testing.T, srv ptraceotlp.GRPCServer) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	ptraceotlp.RegisterGRPCServer(s, srv)
	go func() { _ = s.Serve(lis) }()
	t.Cleanup(s.Stop)
	return lis.Addr().String()
}

// exportOnce sends one generated trace with exp and closes it.
func exportOnce(t *testing.T, exp Exporter) *ExportError {
	t.Helper()
	defer exp.(interface{ Close() error }).Close()
	err := exp.Export(context.Background(), storetest.NewGen(time.Now()).Batch(0, 1))
	var xe *ExportError
	if err != nil && !errors.As(err, &xe) {
		t.Fatalf("Export = %v, not an *ExportError", err)
	}
	return xe
}

func TestExportersClassifyErrors(t *testing.T) {
	unavailable, _ := status.New(codes.Unavailable, "busy").WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(2 * time.Second)})
	for _, c := range []struct {
		name      string
		grpc      *grpcAnswer
		http      func(w http.ResponseWriter)
		permanent bool
		rejected  int64
		after     time.Duration
	}{
		{name: "gRPC UNAVAILABLE with RetryInfo is retried after its delay", grpc: &grpcAnswer{err: unavailable.Err()}, after: 2 * time.Second},
		{name: "gRPC RESOURCE_EXHAUSTED without RetryInfo (message too large) is permanent",
			grpc: &grpcAnswer{err: status.Error(codes.ResourceExhausted, "too large")}, permanent: true},
		{name: "gRPC INVALID_ARGUMENT is permanent", grpc: &grpcAnswer{err: status.Error(codes.InvalidArgument, "bad")}, permanent: true},
		{name: "gRPC partial success is permanent for the rejected spans", grpc: &grpcAnswer{rejected: 2}, permanent: true, rejected: 2},
		{name: "HTTP 503 with Retry-After is retried after it", http: func(w http.ResponseWriter) {
			w.Header().Set("Retry-After", "7")
			w.WriteHeader(http.StatusServiceUnavailable)
		}, after: 7 * time.Second},
		{name: "HTTP 429 is retried", http: func(w http.ResponseWriter) { w.WriteHeader(http.StatusTooManyRequests) }},
		{name: "HTTP 500 is retried", http: func(w http.ResponseWriter) { w.WriteHeader(http.StatusInternalServerError) }},
		{name: "HTTP 400 is permanent", http: func(w http.ResponseWriter) { w.WriteHeader(http.StatusBadRequest) }, permanent: true},
		{name: "HTTP partial success is permanent for the rejected spans", http: func(w http.ResponseWriter) {
			resp := ptraceotlp.NewExportResponse()
			resp.PartialSuccess().SetRejectedSpans(3)
			b, _ := resp.MarshalProto()
			_, _ = w.Write(b)
		}, permanent: true, rejected: 3},
	} {
		t.Run(c.name, func(t *testing.T) {
			var exp Exporter
			if c.grpc != nil {
				g, err := NewGRPCExporter(serveGRPC(t, c.grpc))
				if err != nil {
					t.Fatal(err)
				}
				exp = g
			} else {
				srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { c.http(w) }))
				t.Cleanup(srv.Close)
				exp = NewHTTPExporter(srv.URL + "/v1/traces")
			}
			xe := exportOnce(t, exp)
			if xe == nil || xe.Permanent != c.permanent || xe.Rejected != c.rejected || xe.RetryAfter != c.after {
				t.Errorf("Export = %+v; want permanent %v, rejected %d, after %v", xe, c.permanent, c.rejected, c.after)
			}
		})
	}
}

func TestTargetLabelsHideSecrets(t *testing.T) {
	for in, want := range map[string]string{
		"https://user:secret@tempo:443/otlp/v1/traces?api_key=k": "https://user:xxxxx@tempo:443/otlp/v1/traces",
		"jaeger:4317": "jaeger:4317",
	} {
		if got := redactURL(in); got != want {
			t.Errorf("redactURL(%q) = %q, want %q", in, got, want)
		}
	}
}
