package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
)

// selfMetric is the value of an unlabelled metric on glassmesh's /metrics.
func (in *instance) selfMetric(t testing.TB, name string) (float64, error) {
	t.Helper()
	resp, err := http.Get("http://" + in.HTTPAddr + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, name+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	return 0, fmt.Errorf("no metric %s", name)
}

// TestShortRetention: with --traces.block-duration and
// --metrics.block-duration well under short retentions, heads are cut into
// blocks and the blocks deleted while glassmesh runs (what keeps the soak's
// data dir flat), and a trace past its retention is gone.
func TestShortRetention(t *testing.T) {
	dir := t.TempDir()
	gm := start(t, dir, "--traces.block-duration", "1s", "--retention.traces", "2s",
		"--metrics.block-duration", "1s", "--retention.metrics", "3s")
	ctx := context.Background()

	// A steady flow of OTLP metrics keeps the TSDB head moving.
	exp, err := otlpmetricgrpc.New(ctx, otlpmetricgrpc.WithEndpoint(gm.GRPCAddr), otlpmetricgrpc.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewPeriodicReader(exp, sdkmetric.WithInterval(200*time.Millisecond))))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	counter, err := mp.Meter("e2e").Int64Counter("retention_ticks")
	if err != nil {
		t.Fatal(err)
	}
	counter.Add(ctx, 1)

	otlp, err := otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(gm.GRPCAddr), otlptracegrpc.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	_, span := tracer(t, "productpage", otlp).Start(ctx, "GET /productpage")
	span.End() // acknowledged: the tracer exports synchronously
	id := span.SpanContext().TraceID().String()
	if _, code := gm.trace(t, id); code != http.StatusOK {
		t.Fatalf("trace %s right after its ack: HTTP %d", id, code)
	}

	eventually(t, 60*time.Second, func() error {
		counter.Add(ctx, 1)
		if _, code := gm.trace(t, id); code != http.StatusNotFound {
			return fmt.Errorf("trace %s past its retention: HTTP %d, want 404", id, code)
		}
		for _, m := range []string{"glassmesh_trace_store_blocks_cut_total", "glassmesh_trace_store_retention_deleted_blocks_total",
			"prometheus_tsdb_compactions_total", "prometheus_tsdb_time_retentions_total"} {
			v, err := gm.selfMetric(t, m)
			if err != nil {
				return err
			}
			if v == 0 {
				return fmt.Errorf("%s is still 0", m)
			}
		}
		return nil
	})
}
