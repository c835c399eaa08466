package metrics

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/glassmesh/glassmesh/telemetry/record"
)

// benchRequests returns n requests spread over sets distinct HTTP label
// sets, each with its own string copies as a decoder would produce them.
func benchRequests(n, sets int) []record.Request {
	reqs := make([]record.Request, n)
	for i := range reqs {
		s := i % sets
		r := httpReq(record.ReporterSource, 200, time.Duration(1+i%500)*time.Millisecond)
		r.Source.Workload = fmt.Sprintf("productpage-v%d", s%7)
		r.Dest.Workload = fmt.Sprintf("reviews-%d", s/7)
		r.Dest.Version = fmt.Sprintf("v%d", s/7)
		r.ResponseCode = []int{200, 200, 200, 503, 404}[s%5]
		r.RequestBytes, r.ResponseBytes = uint64(i%4096), uint64(i%65536)
		if i%10 == 0 {
			r.TraceID = fmt.Sprintf("%032x", i)
		}
		reqs[i] = r
	}
	return reqs
}

// BenchmarkConsume measures the hot path: requests/s into 1000 label sets
// from as many goroutines as GOMAXPROCS, in batches of 100 as receivers
// hand them over.
func BenchmarkConsume(b *testing.B) {
	for _, sets := range []int{10, 1000} {
		b.Run(fmt.Sprintf("sets=%d", sets), func(b *testing.B) {
			e := newTestEnv(b, b.TempDir(), AggregatorConfig{})
			reqs := benchRequests(10_000, sets)
			const batch = 100
			var next atomic.Int64
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				ctx := context.Background()
				for pb.Next() {
					i := int(next.Add(batch)) % (len(reqs) - batch)
					if err := e.agg.ConsumeRequests(ctx, reqs[i:i+batch]); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N*batch)/time.Since(start).Seconds(), "requests/s")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/request")
		})
	}
}

// BenchmarkFlush measures one interval's flush of every series (all label
// sets changed) and reports memory per active series: the Aggregator's
// own, the Aggregator plus the TSDB head after the first flush (total),
// and both after the b.N flushes (end: head chunks hold b.N samples).
func BenchmarkFlush(b *testing.B) {
	for _, series := range []int{10_000, 100_000} {
		b.Run(fmt.Sprintf("series=%d", series), func(b *testing.B) {
			sets := series / httpSeries
			series := sets * httpSeries
			e := newTestEnv(b, b.TempDir(), AggregatorConfig{})
			reqs := benchRequests(sets, sets)
			base := heapInUse()
			consume(b, e.agg, reqs...)
			aggBytes := heapInUse() - base
			at := time.Now()
			if err := e.agg.flushAt(context.Background(), at); err != nil {
				b.Fatal(err)
			}
			totalBytes := heapInUse() - base
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				b.StopTimer()
				consume(b, e.agg, reqs...)
				b.StartTimer()
				if err := e.agg.flushAt(context.Background(), at.Add(time.Duration(i+1)*time.Second)); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			steadyBytes := heapInUse() - base
			b.ReportMetric(float64(b.N*series)/b.Elapsed().Seconds(), "samples/s")
			b.ReportMetric(float64(steadyBytes)/float64(series), "end-bytes/series")
			b.ReportMetric(float64(aggBytes)/float64(series), "agg-bytes/series")
			b.ReportMetric(float64(aggBytes)/float64(sets), "agg-bytes/labelset")
			b.ReportMetric(float64(totalBytes)/float64(series), "total-bytes/series")
		})
	}
}

// heapInUse returns the live heap after a full collection.
func heapInUse() int64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// BenchmarkRestore measures what a restart adds: seeding the Aggregator
// from the newest sample of every stored istio_* series.
func BenchmarkRestore(b *testing.B) {
	const series = 100_000
	sets := series / httpSeries
	e := newTestEnv(b, b.TempDir(), AggregatorConfig{})
	reqs := benchRequests(sets, sets)
	at := time.Now()
	for i := range 3 {
		consume(b, e.agg, reqs...)
		if err := e.agg.flushAt(context.Background(), at.Add(time.Duration(i)*time.Second)); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for range b.N {
		agg, err := NewAggregator(AggregatorConfig{}, e.st, nil, nil)
		if err != nil {
			b.Fatal(err)
		}
		if got := agg.sets[kindHTTP].Load(); got != int64(sets) {
			b.Fatalf("restored %d label sets, want %d", got, sets)
		}
	}
	b.ReportMetric(float64(b.N*sets*httpSeries)/b.Elapsed().Seconds(), "series/s")
}
