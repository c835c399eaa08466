package query_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"go.opentelemetry.io/contrib/propagators/b3"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/zipkin"
	otelprop "go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/glassmesh/glassmesh/telemetry/receiver"
	"github.com/glassmesh/glassmesh/telemetry/receiver/receivertest"
	"github.com/glassmesh/glassmesh/tracing/propagation"
	"github.com/glassmesh/glassmesh/tracing/query"
	"github.com/glassmesh/glassmesh/tracing/store"
)

// mesh is a trace store fed by the receivers and read by the query API.
type mesh struct {
	grpcAddr, otlpURL, zipkinURL string
	api                          string // base URL of the query API
}

func startMesh(t *testing.T) mesh {
	t.Helper()
	st := store.NewMemory(0)
	in := receivertest.ServeTraces(t, receiver.TracesConfig{}, st)
	out := http.NewServeMux()
	query.New(st, nil).Register(out)
	api := httptest.NewServer(out)
	t.Cleanup(api.Close)
	return mesh{grpcAddr: in.GRPCAddr, otlpURL: in.OTLPURL, zipkinURL: in.ZipkinURL, api: api.URL}
}

// provider is one service's tracer provider exporting synchronously.
func provider(t *testing.T, service string, exp sdktrace.SpanExporter) *sdktrace.TracerProvider {
	t.Helper()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp),
		sdktrace.WithResource(resource.NewSchemaless(semconv.ServiceName(service))))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return tp
}

// bookinfo sends one productpage → reviews → ratings trace starting at t0:
// productpage over OTLP/gRPC, reviews over OTLP/HTTP, ratings (which
// speaks B3) over Zipkin. It returns the trace id.
func (m mesh) bookinfo(t *testing.T, t0 time.Time, user string) trace.TraceID {
	t.Helper()
	ctx := context.Background()
	ge, err := otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(m.grpcAddr), otlptracegrpc.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	he, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(m.otlpURL))
	if err != nil {
		t.Fatal(err)
	}
	ze, err := zipkin.New(m.zipkinURL)
	if err != nil {
		t.Fatal(err)
	}
	pp, rv, rt := provider(t, "productpage", ge), provider(t, "reviews", he), provider(t, "ratings", ze)
	mp, b3p := propagation.Default(), b3.New(b3.WithInjectEncoding(b3.B3MultipleHeader))
	at := func(ms int) trace.SpanStartEventOption {
		return trace.WithTimestamp(t0.Add(time.Duration(ms) * time.Millisecond))
	}
	end := func(s trace.Span, ms int) { s.End(trace.WithTimestamp(t0.Add(time.Duration(ms) * time.Millisecond))) }

	ctx, root := pp.Tracer("pp").Start(ctx, "GET /productpage", at(0), trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attribute.String("user", user)))
	cctx, call := pp.Tracer("pp").Start(ctx, "reviews.Get", at(5), trace.WithSpanKind(trace.SpanKindClient))
	h := http.Header{}
	mp.Inject(cctx, otelprop.HeaderCarrier(h)) // W3C and B3 on the wire
	sctx, srv := rv.Tracer("rv").Start(mp.Extract(context.Background(), otelprop.HeaderCarrier(h)), "reviews.Get", at(6), trace.WithSpanKind(trace.SpanKindServer))
	cctx, call2 := rv.Tracer("rv").Start(sctx, "ratings.Get", at(10), trace.WithSpanKind(trace.SpanKindClient))
	h = http.Header{}
	mp.Inject(cctx, otelprop.HeaderCarrier(h))
	sctx, srv2 := rt.Tracer("rt").Start(b3p.Extract(context.Background(), otelprop.HeaderCarrier(h)), "ratings.Get", at(11), trace.WithSpanKind(trace.SpanKindServer))
	_, db := rt.Tracer("rt").Start(sctx, "db.query", at(12), trace.WithAttributes(attribute.String("db.system", "sqlite")))
	db.SetStatus(codes.Error, "table locked")
	end(db, 300)
	end(srv2, 310)
	end(call2, 312)
	end(srv, 315)
	end(call, 316)
	end(root, 320)
	for _, tp := range []*sdktrace.TracerProvider{pp, rv, rt} {
		if err := tp.ForceFlush(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	return root.SpanContext().TraceID()
}

// get fetches path from the API, decoding a JSON body into v (when not
// nil), and returns the status and the raw body.
func (m mesh) get(t *testing.T, path string, v any) (int, string) {
	t.Helper()
	resp, err := http.Get(m.api + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if v != nil && resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("%s: %v in %s", path, err, b)
		}
	}
	return resp.StatusCode, string(b)
}

// Jaeger UI JSON, as a client decodes it.
type (
	jTraces struct {
		Data   []jTrace `json:"data"`
		Errors any      `json:"errors"`
	}
	jTrace struct {
		TraceID   string `json:"traceID"`
		Spans     []jSpan
		Processes map[string]struct {
			ServiceName string `json:"serviceName"`
		} `json:"processes"`
	}
	jSpan struct {
		SpanID        string `json:"spanID"`
		OperationName string `json:"operationName"`
		References    []struct {
			RefType, TraceID, SpanID string
		} `json:"references"`
		StartTime, Duration uint64
		ProcessID           string `json:"processID"`
		Tags                []struct {
			Key   string
			Value any
		} `json:"tags"`
	}
)
