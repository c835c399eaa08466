package demo

import (
	"context"
	"log/slog"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/zipkin"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"google.golang.org/grpc"

	meshprop "github.com/glassmesh/glassmesh/tracing/propagation"
)

// TraceConfig says where an app sends its spans.
type TraceConfig struct {
	OTLPAddr  string // glassmesh's --grpc-addr (OTLP/gRPC); empty: no tracing
	ZipkinURL string // glassmesh's Zipkin endpoint; ratings uses it when set
}

// tracing is one app's tracer provider and the propagator it speaks.
type tracing struct {
	tp   *sdktrace.TracerProvider
	prop propagation.TextMapPropagator
}

// newTracing instruments an app the way real services differ: ratings is a
// Zipkin/B3 app (Zipkin exporter, B3 headers only), reviews is a proxy-like
// hop that reads and writes both W3C and B3 (glassmesh's mesh propagator),
// the rest speak W3C over OTLP. One trace still stitches end to end.
func newTracing(ctx context.Context, app App, cfg TraceConfig, logger *slog.Logger) (*tracing, error) {
	if cfg.OTLPAddr == "" {
		return nil, nil
	}
	var (
		exp  sdktrace.SpanExporter
		err  error
		prop propagation.TextMapPropagator = propagation.TraceContext{}
	)
	switch {
	case app.Service == "ratings" && cfg.ZipkinURL != "":
		exp, err = zipkin.New(cfg.ZipkinURL)
		if err == nil {
			prop, err = meshprop.New(meshprop.Config{Inject: []meshprop.Format{meshprop.B3Multi}})
		}
	case app.Service == "reviews":
		exp, err = otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(cfg.OTLPAddr), otlptracegrpc.WithInsecure())
		prop = meshprop.Default()
	default:
		exp, err = otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(cfg.OTLPAddr), otlptracegrpc.WithInsecure())
	}
	if err != nil {
		return nil, err
	}
	res := resource.NewSchemaless(semconv.ServiceName(app.Service), semconv.ServiceVersion(app.Version),
		semconv.ServiceInstanceID(appNode(app).Instance))
	tp := sdktrace.NewTracerProvider(sdktrace.WithResource(res),
		sdktrace.WithBatcher(exp, sdktrace.WithBatchTimeout(time.Second)))
	logger.Info("tracing", "service", app.Service, "exporter", exporterName(app, cfg))
	return &tracing{tp: tp, prop: prop}, nil
}

func exporterName(app App, cfg TraceConfig) string {
	if app.Service == "ratings" && cfg.ZipkinURL != "" {
		return "zipkin (B3)"
	}
	return "otlp"
}

// serverOptions instruments a gRPC server; nil when not tracing.
func (t *tracing) serverOptions() []grpc.ServerOption {
	if t == nil {
		return nil
	}
	return []grpc.ServerOption{grpc.StatsHandler(otelgrpc.NewServerHandler(
		otelgrpc.WithTracerProvider(t.tp), otelgrpc.WithPropagators(t.prop)))}
}

// dialOptions instruments a gRPC client; nil when not tracing.
func (t *tracing) dialOptions() []grpc.DialOption {
	if t == nil {
		return nil
	}
	return []grpc.DialOption{grpc.WithStatsHandler(otelgrpc.NewClientHandler(
		otelgrpc.WithTracerProvider(t.tp), otelgrpc.WithPropagators(t.prop)))}
}

// shutdown flushes the spans still buffered.
func (t *tracing) shutdown() {
	if t == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = t.tp.Shutdown(ctx)
}
