package receiver

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/timestamp"
	"github.com/prometheus/prometheus/tsdb"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// FuzzOTLPGRPCExport drives the gRPC receiver's own glue (limiter,
// appender wrapper, error classification) with whatever pdata decodes
// from arbitrary bytes. The decoders themselves are pdata's and
// Prometheus's, fuzzed upstream. Any answer but OK or InvalidArgument,
// or a panic, is a bug.
func FuzzOTLPGRPCExport(f *testing.F) {
	now := timestamp.FromTime(time.Now())
	for _, req := range []pmetricotlp.ExportRequest{otlpTestRequest(now), otlpDeltaRequest(now)} {
		b, err := req.MarshalProto()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	db, err := tsdb.Open(f.TempDir(), slog.New(slog.DiscardHandler), nil, tsdb.DefaultOptions(), nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = db.Close() })
	reg := prometheus.NewRegistry()
	srv := &otlpMetricsGRPC{
		limiter: newInflightLimiter(4, 64<<20, time.Second, nil, reg),
		conv:    newOTLPConverter(db, config.DefaultOTLPConfig, defaultLookbackDelta, slog.New(slog.DiscardHandler), reg),
		results: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "fuzz_results_total"}, []string{"receiver", "code"}),
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		req := pmetricotlp.NewExportRequest()
		if err := req.UnmarshalProto(data); err != nil {
			return
		}
		_, err := srv.Export(context.Background(), req)
		if c := status.Code(err); c != codes.OK && c != codes.InvalidArgument {
			t.Fatalf("Export answered %v", err)
		}
	})
}
