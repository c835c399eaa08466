package store

import (
	"context"
	"flag"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

const benchTracesPerBatch = 64 // 512 spans per WriteTraces, like an OTLP exporter batch

// BenchmarkWrite measures durable, indexed ingest of realistic spans
// (8 per trace, 10 attributes, ~430 B/span as OTLP protobuf).
func BenchmarkWrite(b *testing.B) {
	d, err := Open(Config{DataDir: b.TempDir()}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	g := newGen(time.Now())
	batch := g.batch(0, benchTracesPerBatch)
	var m ptrace.ProtoMarshaler
	spans := batch.SpanCount()
	b.SetBytes(int64(m.TracesSize(batch)))
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		renumberTraces(batch, i*benchTracesPerBatch)
		if err := d.WriteTraces(context.Background(), batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*spans)/b.Elapsed().Seconds(), "spans/s")
	b.ReportMetric(float64(m.TracesSize(batch))/float64(spans), "B/span")
}

// BenchmarkWriteParallel is BenchmarkWrite from one writer per core.
func BenchmarkWriteParallel(b *testing.B) {
	d, err := Open(Config{DataDir: b.TempDir()}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	var next atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		batch := newGen(time.Now()).batch(0, benchTracesPerBatch)
		for pb.Next() {
			renumberTraces(batch, int(next.Add(1))*benchTracesPerBatch)
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
func renumberTraces(td ptrace.Traces, first int) {
	i := 0
	forEachSpanMut(td, func(sp ptrace.Span) {
		sp.SetTraceID(genTraceID(first + i/8))
		i++
	})
}

// benchStore returns a store holding traces generated traces: all but the
// last 10% in blocks of 100k spans, the rest in the head.
func benchStore(b *testing.B, traces int) *Durable {
	b.Helper()
	d, err := Open(Config{DataDir: b.TempDir()}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = d.Close() })
	g := newGen(time.Now().Add(-time.Hour))
	for i := 0; i*benchTracesPerBatch < traces; i++ {
		first := i * benchTracesPerBatch
		if err := d.WriteTraces(context.Background(), g.batch(i, benchTracesPerBatch)); err != nil {
			b.Fatal(err)
		}
		if first < traces*9/10 && (first+benchTracesPerBatch)%12_800 < benchTracesPerBatch {
			d.cutNow()
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
		id := genTraceID(rng.IntN(*benchTraces))
		n := 0
		for tds, err := range d.GetTraces(context.Background(), TraceRequest{TraceID: id}) {
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
	queries := map[string]TraceQuery{
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

// BenchmarkForwardHTTP measures writing and forwarding to an OTLP/HTTP
// target that discards what it gets: spans/s through both, the forwarder
// reading the WAL, decoding and re-encoding the spans.
func BenchmarkForwardHTTP(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	defer srv.Close()
	d, err := Open(Config{DataDir: b.TempDir(), Forward: ForwardConfig{Targets: []ForwardTarget{{URL: srv.URL}}}}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	batch := newGen(time.Now()).batch(0, benchTracesPerBatch)
	forwarded := d.m.fwdSpans.WithLabelValues(srv.URL)
	for i := 0; b.Loop(); i++ {
		renumberTraces(batch, i*benchTracesPerBatch)
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
