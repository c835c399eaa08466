package receiver

import (
	"context"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
)

// TestOTLPFromTheOTelSDK sends metrics with the OpenTelemetry Go SDK's own
// OTLP exporters, gRPC and HTTP, as an instrumented app would.
func TestOTLPFromTheOTelSDK(t *testing.T) {
	e := newIngestEnv(t, ingestEnvOptions{})
	ctx := context.Background()
	exporters := []struct {
		name string
		new  func() (sdkmetric.Exporter, error)
	}{
		{"grpc", func() (sdkmetric.Exporter, error) {
			return otlpmetricgrpc.New(ctx, otlpmetricgrpc.WithEndpoint(otlpGRPCServe(t, e)), otlpmetricgrpc.WithInsecure())
		}},
		{"http", func() (sdkmetric.Exporter, error) {
			return otlpmetrichttp.New(ctx, otlpmetrichttp.WithEndpointURL(e.srv.URL+OTLPMetricsPath))
		}},
	}
	for _, ex := range exporters {
		t.Run("the "+ex.name+" exporter's counter and histogram are queryable", func(t *testing.T) {
			exp, err := ex.new()
			if err != nil {
				t.Fatal(err)
			}
			mp := sdkmetric.NewMeterProvider(
				sdkmetric.WithReader(sdkmetric.NewPeriodicReader(exp, sdkmetric.WithInterval(time.Hour))),
				sdkmetric.WithResource(resource.NewSchemaless(
					attribute.String("service.name", "sdk-"+ex.name), attribute.String("service.instance.id", "pod-1"))),
			)
			m := mp.Meter("glassmesh/test")
			orders, err := m.Int64Counter("orders")
			if err != nil {
				t.Fatal(err)
			}
			latency, err := m.Float64Histogram("latency", metric.WithUnit("ms"), metric.WithExplicitBucketBoundaries(10, 100))
			if err != nil {
				t.Fatal(err)
			}
			orders.Add(ctx, 5, metric.WithAttributes(attribute.String("region", "eu")))
			latency.Record(ctx, 42)
			if err := mp.ForceFlush(ctx); err != nil {
				t.Fatalf("flush: %v", err)
			}
			if err := mp.Shutdown(ctx); err != nil {
				t.Fatalf("shutdown: %v", err)
			}
			job := `job="sdk-` + ex.name + `"`
			if got := e.query(t, `orders_total{`+job+`}`); got[`{__name__="orders_total", instance="pod-1", `+job+`, region="eu"}`] != "5" {
				t.Fatalf("orders_total = %v", got)
			}
			if got := e.query(t, `latency_milliseconds_bucket{`+job+`,le="100"}`); len(got) != 1 {
				t.Fatalf("latency bucket = %v", got)
			}
		})
	}
}
