package durable

import (
	"context"
	"flag"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/glassmesh/glassmesh/tracing/store"
	"github.com/glassmesh/glassmesh/tracing/store/storetest"
)

// latencyTraces sizes BenchmarkLatency's store; 0 skips it (it is large:
// make bench runs it with 1,250,000 traces, 10M spans).
var latencyTraces = flag.Int("bench-latency-traces", 0, "traces (8 spans each) in BenchmarkLatency's store; 0 skips it")

// BenchmarkLatency fills one durable store with -bench-latency-traces
// traces (in blocks of 12,800 traces and a head), then reports the p50 and
// p99 latency of trace-by-id lookups and of searches.
func BenchmarkLatency(b *testing.B) {
	if *latencyTraces == 0 {
		b.Skip("set -bench-latency-traces")
	}
	start := time.Now()
	d := benchStore(b, *latencyTraces)
	b.Logf("filled %d spans in %s", *latencyTraces*8, time.Since(start).Round(time.Second))
	rng := rand.New(rand.NewPCG(3, 4))
	b.Run("trace-by-id", func(b *testing.B) {
		lat := make([]time.Duration, 0, 2000)
		for range 2000 {
			id := storetest.TraceID(rng.IntN(*latencyTraces))
			t0 := time.Now()
			n := 0
			for tds, err := range d.GetTraces(context.Background(), store.TraceRequest{TraceID: id}) {
				if err != nil {
					b.Fatal(err)
				}
				n += tds[0].SpanCount()
			}
			lat = append(lat, time.Since(t0))
			if n != 8 {
				b.Fatalf("%d spans", n)
			}
		}
		reportPercentiles(b, lat)
	})
	searches := []store.TraceQuery{
		{Service: "reviews", Limit: 20},
		{Service: "reviews", Attributes: map[string]string{"user.id": "user-7"}, Limit: 20},
		{Service: "ratings", Operation: "/ratings.ratings/Get", DurationMin: 90 * time.Millisecond, Limit: 20},
		{Attributes: map[string]string{"error": "true"}, Limit: 20},
	}
	b.Run("search", func(b *testing.B) {
		lat := make([]time.Duration, 0, 400)
		for i := range 400 {
			t0 := time.Now()
			for _, err := range d.FindTraceIDs(context.Background(), searches[i%len(searches)]) {
				if err != nil {
					b.Fatal(err)
				}
			}
			lat = append(lat, time.Since(t0))
		}
		reportPercentiles(b, lat)
	})
}

func reportPercentiles(b *testing.B, lat []time.Duration) {
	slices.Sort(lat)
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))]) / 1e6 }
	b.ReportMetric(q(0.5), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
	b.ReportMetric(float64(*latencyTraces*8), "stored-spans")
}
