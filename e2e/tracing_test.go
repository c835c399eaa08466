package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/zipkin"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"
)

// tracer returns a tracer of service that exports synchronously, so a
// span's End returns once glassmesh acknowledged it.
func tracer(t *testing.T, service string, exp sdktrace.SpanExporter) trace.Tracer {
	t.Helper()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp),
		sdktrace.WithResource(resource.NewSchemaless(semconv.ServiceName(service))))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return tp.Tracer("e2e")
}

type jaegerTrace struct {
	Data []struct {
		TraceID string `json:"traceID"`
		Spans   []struct {
			SpanID        string `json:"spanID"`
			OperationName string `json:"operationName"`
			ProcessID     string `json:"processID"`
			References    []struct {
				RefType string `json:"refType"`
				SpanID  string `json:"spanID"`
			} `json:"references"`
		} `json:"spans"`
		Processes map[string]struct {
			ServiceName string `json:"serviceName"`
		} `json:"processes"`
	} `json:"data"`
}

func (in *instance) trace(t *testing.T, id string) (jaegerTrace, int) {
	t.Helper()
	resp, err := http.Get("http://" + in.HTTPAddr + "/api/traces/" + id)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var jt jaegerTrace
	if resp.StatusCode == 200 {
		if err := json.Unmarshal(body, &jt); err != nil {
			t.Fatalf("trace %s: %v: %s", id, err, body)
		}
	}
	return jt, resp.StatusCode
}

// TestTracesFromOTLPAndZipkin sends one trace through two protocols (OTLP
// from productpage and reviews, Zipkin from ratings), reads it back through
// the Jaeger API, and checks it survives kill -9 right after the acks.
func TestTracesFromOTLPAndZipkin(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "mesh.yaml"), telemetryMesh)
	dataDir := t.TempDir()
	gm := startIn(t, dir, dataDir)
	ctx := context.Background()

	otlp, err := otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(gm.GRPCAddr), otlptracegrpc.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	zk, err := zipkin.New("http://" + gm.ZipkinAddr + "/api/v2/spans")
	if err != nil {
		t.Fatal(err)
	}
	ctx, root := tracer(t, "productpage", otlp).Start(ctx, "GET /productpage", trace.WithSpanKind(trace.SpanKindServer))
	cctx, call := tracer(t, "productpage", otlp).Start(ctx, "reviews.Get", trace.WithSpanKind(trace.SpanKindClient))
	rctx, srv := tracer(t, "reviews", otlp).Start(cctx, "reviews.Get", trace.WithSpanKind(trace.SpanKindServer))
	_, rate := tracer(t, "ratings", zk).Start(rctx, "ratings.Get", trace.WithSpanKind(trace.SpanKindServer))
	time.Sleep(2 * time.Millisecond)
	rate.End()
	srv.End()
	call.End()
	root.End()
	id := root.SpanContext().TraceID().String()

	check := func(t *testing.T, in *instance) {
		var jt jaegerTrace
		eventually(t, 10*time.Second, func() error {
			var code int
			if jt, code = in.trace(t, id); code != 200 || len(jt.Data) != 1 || len(jt.Data[0].Spans) != 4 {
				return fmt.Errorf("trace %s: HTTP %d, %+v", id, code, jt)
			}
			return nil
		})
		tr := jt.Data[0]
		var services []string
		roots := 0
		for _, s := range tr.Spans {
			services = append(services, tr.Processes[s.ProcessID].ServiceName)
			if len(s.References) == 0 {
				roots++
			}
		}
		sort.Strings(services)
		if fmt.Sprint(services) != "[productpage productpage ratings reviews]" || roots != 1 {
			t.Fatalf("services %v, %d roots; want productpage×2, ratings, reviews and one root", services, roots)
		}
	}
	t.Run("the Jaeger API returns the whole trace", func(t *testing.T) { check(t, gm) })
	t.Run("a missing trace is Jaeger's 404 and a bad id 400", func(t *testing.T) {
		if _, code := gm.trace(t, "00000000000000000000000000000abc"); code != 404 {
			t.Errorf("missing trace: HTTP %d, want 404", code)
		}
		if _, code := gm.trace(t, "not-hex"); code != 400 {
			t.Errorf("bad id: HTTP %d, want 400", code)
		}
	})
	t.Run("acknowledged spans survive kill -9", func(t *testing.T) {
		_, late := tracer(t, "details", otlp).Start(ctx, "details.Get")
		late.End() // acknowledged: WithSyncer returns after the export answered
		gm.kill()
		t0 := time.Now()
		gm2 := startIn(t, dir, dataDir)
		t.Logf("restarted in %s", time.Since(t0))
		eventually(t, 10*time.Second, func() error {
			jt, _ := gm2.trace(t, id)
			if len(jt.Data) != 1 || len(jt.Data[0].Spans) != 5 {
				return fmt.Errorf("after restart: %+v", jt)
			}
			return nil
		})
	})
}

// TestTracesExportToAnotherGlassmesh forwards accepted spans from one
// glassmesh to a second one (as it would to Jaeger or Tempo) with
// --traces.export-otlp.
func TestTracesExportToAnotherGlassmesh(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "mesh.yaml"), telemetryMesh)
	downstream := start(t, dir)
	edge := start(t, dir, "--traces.export-otlp", "grpc://"+downstream.GRPCAddr)

	otlp, err := otlptracegrpc.New(context.Background(), otlptracegrpc.WithEndpoint(edge.GRPCAddr), otlptracegrpc.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	ctx, root := tracer(t, "productpage", otlp).Start(context.Background(), "GET /productpage")
	_, child := tracer(t, "reviews", otlp).Start(ctx, "reviews.Get")
	child.End()
	root.End()
	id := root.SpanContext().TraceID().String()
	eventually(t, 30*time.Second, func() error {
		jt, code := downstream.trace(t, id)
		if code != 200 || len(jt.Data) != 1 || len(jt.Data[0].Spans) != 2 {
			return fmt.Errorf("downstream has HTTP %d %+v", code, jt)
		}
		return nil
	})
}
