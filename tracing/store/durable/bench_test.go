package durable

import (
	"context"
	"flag"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/glassmesh/glassmesh/tracing/store"
	"github.com/glassmesh/glassmesh/tracing/store/storetest"
)

const benchTracesPerBatch = 64 // 512 spans per WriteTraces, like an OTLP exporter batch

// BenchmarkWrite measures durable, indexed ingest of realistic spans
// (8 per trace, 10 attributes, ~430 B/span as OTLP protobuf).
func BenchmarkWrite(b *testing.B) {
	d := openTest(b, Config{DataDir: b.TempDir()})
	g := storetest.NewGen(time.Now())
	batch := g.Batch(0, benchTracesPerBatch)
	var m ptrace.ProtoMarshaler
	spans := batch.SpanCount()
	b.SetBytes(int64(m.TracesSize(batch)))
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		storetest.Renumber(batch, i*benchTracesPerBatch)
		if err := d.WriteTraces(context.Background(), batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*spans)/b.Elapsed().Seconds(), "spans/s")
	b.ReportMetric(float64(m.TracesSize(batch))/float64(spans), "B/span")
}

// BenchmarkWriteParallel is BenchmarkWrite from one writer per core.
func BenchmarkWriteParallel(b *testing.B) {
	d := openTest(b, Config{DataDir: b.TempDir()})
	var next atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		batch := storetest.NewGen(time.Now()).Batch(0, benchTracesPerBatch)
		for pb.Next() {
			storetest.Renumber(batch, int(next.Add(1))*benchTracesPerBatch)
			if err := d.WriteTraces(context.Background(), batch); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N*benchTracesPerBatch*8)/b.Elapsed().Seconds(), "spans/s")
}

// renumberTraces gives the traces of a generated batch the ids of traces
// first, first+1, ... (spans of one trace are adjacent, 8 per trace).

// benchStore returns a store holding traces generated traces: all but the
// last 10% in blocks of 100k spans, the rest in the head.
func benchStore(b *testing.B, traces int) *Store {
	b.Helper()
	d := openTest(b, Config{DataDir: b.TempDir()})
	b.Cleanup(func() { _ = d.Close() })
	g := storetest.NewGen(time.Now().Add(-time.Hour))
	for i := 0; i*benchTracesPerBatch < traces; i++ {
		first := i * benchTracesPerBatch
		if err := d.WriteTraces(context.Background(), g.Batch(i, benchTracesPerBatch)); err != nil {
			b.Fatal(err)
		}
		if first < traces*9/10 && (first+benchTracesPerBatch)%12_800 < benchTracesPerBatch {
			d.Cut()
		}
	}
	return d
}

// benchTraces sizes the pre-filled store of the read benchmarks.
var benchTraces = flag.Int("bench-traces", 50_000, "traces (8 spans each) in the read benchmarks' store")

// BenchmarkGetTrace reads random traces by id from a store of 400k spans
// (-bench-traces 50000: 9 blocks and a head).
func BenchmarkGetTrace(b *testing.B) {
	d := benchStore(b, *benchTraces)
	rng := rand.New(rand.NewPCG(1, 2))
	b.ResetTimer()
	for b.Loop() {
		id := storetest.TraceID(rng.IntN(*benchTraces))
		n := 0
		for tds, err := range d.GetTraces(context.Background(), store.TraceRequest{TraceID: id}) {
			if err != nil {
				b.Fatal(err)
			}
			n += tds[0].SpanCount()
		}
		if n != 8 {
			b.Fatalf("%d spans", n)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "traces/s")
}

// BenchmarkFindTraces searches a store of 400k spans (-bench-traces).
func BenchmarkFindTraces(b *testing.B) {
	d := benchStore(b, *benchTraces)
	queries := map[string]store.TraceQuery{
		"service":                   {Service: "reviews", Limit: 20},
		"service+attribute":         {Service: "reviews", Attributes: map[string]string{"user.id": "user-7"}, Limit: 20},
		"service+operation+minDur":  {Service: "ratings", Operation: "/ratings.ratings/Get", DurationMin: 90 * time.Millisecond, Limit: 20},
		"error+high-card attribute": {Attributes: map[string]string{"error": "true", "request.id": "0000000000000064-0003"}, Limit: 20},
	}
	for name, q := range queries {
		b.Run(name, func(b *testing.B) {
			found := 0
			for b.Loop() {
				found = 0
				for f, err := range d.FindTraceIDs(context.Background(), q) {
					if err != nil {
						b.Fatal(err)
					}
					found += len(f)
				}
			}
			if found == 0 {
				b.Fatal("nothing found")
			}
			b.ReportMetric(float64(found), "traces/op")
		})
	}
}
