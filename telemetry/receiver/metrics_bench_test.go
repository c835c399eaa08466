package receiver

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/timestamp"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
)

// benchSeries is how many series each benchmark request carries, one
// sample each, like a remote-write batch or an SDK export.
const benchSeries = 1000

func benchDB(b *testing.B) *tsdb.DB {
	db, err := tsdb.Open(b.TempDir(), slog.New(slog.DiscardHandler), nil, tsdb.DefaultOptions(), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = db.Close() })
	return db
}

func benchIngest(b *testing.B, db *tsdb.DB) *MetricsReceiver {
	in, err := NewMetricsReceiver(MetricsConfig{}, db, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	return in
}

func benchLabels(i int) labels.Labels {
	return labels.FromStrings("__name__", "bench_requests_total", "job", "bench", "pod", fmt.Sprintf("pod-%d", i))
}

// BenchmarkTSDBAppendLimit appends the benchmark batch straight to the
// TSDB: the ceiling the receivers below are measured against.
func BenchmarkTSDBAppendLimit(b *testing.B) {
	db := benchDB(b)
	ls := make([]labels.Labels, benchSeries)
	for i := range ls {
		ls[i] = benchLabels(i)
	}
	t0 := timestamp.FromTime(time.Now())
	b.ResetTimer()
	for n := range b.N {
		app := db.AppenderV2(context.Background())
		for i := range ls {
			if _, err := app.Append(0, ls[i], 0, t0+int64(n), float64(n), nil, nil, storage.AOptions{}); err != nil {
				b.Fatal(err)
			}
		}
		if err := app.Commit(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*benchSeries)/b.Elapsed().Seconds(), "samples/s")
}

// BenchmarkRemoteWriteReceive posts snappy remote-write 1.0 batches
// through the receiver (limiter, decode, append, commit).
func BenchmarkRemoteWriteReceive(b *testing.B) {
	h := benchIngest(b, benchDB(b)).RemoteWriteHandler()
	t0 := timestamp.FromTime(time.Now())
	req := &prompb.WriteRequest{Timeseries: make([]prompb.TimeSeries, benchSeries)}
	for i := range req.Timeseries {
		benchLabels(i).Range(func(l labels.Label) {
			req.Timeseries[i].Labels = append(req.Timeseries[i].Labels, prompb.Label{Name: l.Name, Value: l.Value})
		})
		req.Timeseries[i].Samples = []prompb.Sample{{}}
	}
	b.ResetTimer()
	for n := range b.N {
		b.StopTimer()
		for i := range req.Timeseries {
			req.Timeseries[i].Samples[0] = prompb.Sample{Timestamp: t0 + int64(n), Value: float64(n)}
		}
		raw, err := req.Marshal()
		if err != nil {
			b.Fatal(err)
		}
		r := httptest.NewRequest(http.MethodPost, "/api/v1/write", bytes.NewReader(snappy.Encode(nil, raw)))
		r.Header.Set("Content-Type", rw1ContentType)
		r.Header.Set("Content-Encoding", "snappy")
		w := httptest.NewRecorder()
		b.StartTimer()
		h.ServeHTTP(w, r)
		if w.Code != http.StatusNoContent {
			b.Fatalf("%d %s", w.Code, w.Body)
		}
	}
	b.ReportMetric(float64(b.N*benchSeries)/b.Elapsed().Seconds(), "samples/s")
}

// BenchmarkOTLPGRPCReceive exports gauge batches through the gRPC
// receiver's Export (limiter, translation, append, commit); the gRPC
// transport and decode are not included.
func BenchmarkOTLPGRPCReceive(b *testing.B) {
	srv := benchIngest(b, benchDB(b)).OTLPGRPC()
	t0 := time.Now()
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", "bench")
	g := rm.ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	g.SetName("bench.queue.depth")
	dps := g.SetEmptyGauge().DataPoints()
	for i := range benchSeries {
		dps.AppendEmpty().Attributes().PutStr("pod", fmt.Sprintf("pod-%d", i))
	}
	req := pmetricotlp.NewExportRequestFromMetrics(md)
	b.ResetTimer()
	for n := range b.N {
		ts := pcommon.NewTimestampFromTime(t0.Add(time.Duration(n) * time.Millisecond))
		for i := range dps.Len() {
			dps.At(i).SetTimestamp(ts)
			dps.At(i).SetDoubleValue(float64(n))
		}
		if _, err := srv.Export(context.Background(), req); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*benchSeries)/b.Elapsed().Seconds(), "datapoints/s")
}
