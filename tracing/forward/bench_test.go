package forward

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/glassmesh/glassmesh/tracing/store/storetest"
)

const benchTracesPerBatch = 64 // 512 spans per WriteTraces, like an OTLP exporter batch

// BenchmarkForwardHTTP measures writing and forwarding to an OTLP/HTTP
// target that discards what it gets: spans/s through both, the forwarder
// reading the WAL, decoding and re-encoding the spans.
func BenchmarkForwardHTTP(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	defer srv.Close()
	d := openRig(b, b.TempDir(), Config{Targets: []Target{{URL: srv.URL}}})
	batch := storetest.NewGen(time.Now()).Batch(0, benchTracesPerBatch)
	forwarded := d.fw.m.spans.WithLabelValues(srv.URL)
	for i := 0; b.Loop(); i++ {
		storetest.Renumber(batch, i*benchTracesPerBatch)
		if err := d.WriteTraces(context.Background(), batch); err != nil {
			b.Fatal(err)
		}
	}
	want := float64(b.N * benchTracesPerBatch * 8)
	for testutil.ToFloat64(forwarded) < want {
		time.Sleep(time.Millisecond)
	}
	b.ReportMetric(want/b.Elapsed().Seconds(), "spans/s")
}
