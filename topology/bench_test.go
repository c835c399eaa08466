package topology

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/glassmesh/glassmesh/telemetry/metrics"
	"github.com/glassmesh/glassmesh/telemetry/metrics/promapi/promapitest"
	"github.com/glassmesh/glassmesh/telemetry/record"

	"github.com/prometheus/prometheus/rules"
)

// syntheticMesh is SyntheticRequests for each minute of the last 10m.
func syntheticMesh(n int, now time.Time) [][]record.Request {
	var batches [][]record.Request
	for m := range 10 {
		batches = append(batches, SyntheticRequests(n, m, now.Add(-time.Duration(m)*time.Minute-5*time.Second)))
	}
	return batches
}

func benchGraph(b testing.TB, n int) (*Graph, time.Time) {
	b.Helper()
	now := fixtureNow
	g, err := New(Config{}, nil, nil, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	g.now = func() time.Time { return now }
	g.started = now.Add(-time.Hour)
	for _, batch := range syntheticMesh(n, now) {
		if err := g.ConsumeRequests(context.Background(), batch); err != nil {
			b.Fatal(err)
		}
	}
	return g, now
}

// timeEach runs op as the benchmark's loop, after collecting the setup's
// garbage (it is not the measured path's cost), and reports p50/p99 in ms
// and the process's CPU time per iteration.
func timeEach(b *testing.B, op func()) {
	runtime.GC()
	b.ReportAllocs()
	b.ResetTimer()
	var lat []time.Duration
	cpu0 := processCPU()
	for b.Loop() {
		start := time.Now()
		op()
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))]) / 1e6 }
	b.ReportMetric(q(0.5), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
	b.ReportMetric(float64(processCPU()-cpu0)/1e6/float64(len(lat)), "cpu-ms")
}

// BenchmarkGraph is one /api/namespaces/graph computation (every
// namespace, workload graph, default appenders, 10m) from memory, to its
// JSON.
func BenchmarkGraph(b *testing.B) {
	for _, n := range []int{100, 1000, 10000} {
		b.Run(fmt.Sprintf("services=%d", n), func(b *testing.B) {
			g, now := benchGraph(b, n)
			o := DefaultOptions()
			o.QueryTime = now
			timeEach(b, func() {
				body, err := g.buildFrom(context.Background(), o, pathMemory)
				if err != nil || len(body) < 4*n*100 {
					b.Fatalf("%v: %d bytes", err, len(body))
				}
			})
			b.ReportMetric(float64(4*n), "edges")
		})
	}
}

// BenchmarkStreamUpdate is one broadcaster tick that found a change:
// build, canonical form, compare, encode and frame the event.
func BenchmarkStreamUpdate(b *testing.B) {
	for _, n := range []int{100, 1000, 10000} {
		b.Run(fmt.Sprintf("services=%d", n), func(b *testing.B) {
			g, _ := benchGraph(b, n)
			o := DefaultOptions()
			o.Refresh = time.Nanosecond // no cache hits: every tick computes
			bc := &broadcaster{g: g, key: o.key(), o: o, subs: map[*subscriber]struct{}{}}
			timeEach(b, func() {
				if bc.tick(context.Background(), nil) == nil {
					b.Fatal("no graph")
				}
			})
			b.ReportMetric(float64(bc.last.size()), "event-bytes")
		})
	}
}

// BenchmarkGraphPromQL is the fallback path: the synthetic mesh written
// through the metrics Aggregator into a TSDB, the graph built from
// PromQL (the same rates Kiali queries).
func BenchmarkGraphPromQL(b *testing.B) {
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprintf("services=%d", n), func(b *testing.B) {
			st, err := metrics.OpenStorage(metrics.StorageConfig{DataDir: b.TempDir()}, nil, nil)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = st.Close() })
			agg, err := metrics.NewAggregator(metrics.AggregatorConfig{}, st, nil, nil)
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			for _, batch := range syntheticMesh(n, time.Now()) {
				if err := agg.ConsumeRequests(ctx, batch); err != nil {
					b.Fatal(err)
				}
			}
			if err := agg.Flush(ctx); err != nil {
				b.Fatal(err)
			}
			eng, err := metrics.NewEngine(metrics.EngineConfig{Dir: b.TempDir()}, slog.New(slog.DiscardHandler), nil)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = eng.Close() })
			local := rules.EngineQueryFunc(eng.PromQL(), st.Queryable())
			// The shared store of several replicas (--metrics.query-url):
			// here Prometheus's own HTTP API and engine over the same TSDB,
			// so the difference is the round trips and JSON.
			srv := promapitest.Serve(b, st.Backend(), eng)
			remote, err := metrics.NewRemoteQuery(metrics.RemoteQueryConfig{URL: srv.URL})
			if err != nil {
				b.Fatal(err)
			}
			for _, store := range []struct {
				name string
				q    rules.QueryFunc
			}{{"local", local}, {"http", remote.Query}} {
				b.Run("store="+store.name, func(b *testing.B) {
					g, err := New(Config{PreferQuerier: true}, store.q, nil, nil, nil)
					if err != nil {
						b.Fatal(err)
					}
					o := DefaultOptions()
					o.QueryTime = time.Now()
					timeEach(b, func() {
						body, err := g.buildFrom(ctx, o, pathPromQL)
						if err != nil || len(body) < 4*n*100 {
							b.Fatalf("%v: %d bytes", err, len(body))
						}
					})
				})
			}
		})
	}
}

// countingWriter is a ResponseWriter that counts the body instead of
// keeping it: a connection writes it out in pieces, while
// httptest.ResponseRecorder's growing buffer copied 37 MB bodies several
// times and charged that to the handler.
type countingWriter struct {
	h    http.Header
	code int
	n    int
}

func (w *countingWriter) Header() http.Header { return w.h }

func (w *countingWriter) WriteHeader(code int) { w.code = code }

func (w *countingWriter) Write(p []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	w.n += len(p)
	return len(p), nil
}

// BenchmarkGraphHTTP is a whole GET /api/namespaces/graph that finds no
// cached graph (the first caller of its parameters in a refresh
// interval): parameters, build from memory and the JSON body.
func BenchmarkGraphHTTP(b *testing.B) {
	for _, n := range []int{100, 1000, 10000} {
		b.Run(fmt.Sprintf("services=%d", n), func(b *testing.B) {
			g, now := benchGraph(b, n)
			url := PathGraph + "?queryTime=" + strconv.FormatInt(now.Unix(), 10)
			size := 0
			timeEach(b, func() {
				g.cache = resultCache{} // no cached graph: the first caller's cost
				w := &countingWriter{h: http.Header{}}
				g.serveGraph(w, httptest.NewRequest(http.MethodGet, url, nil))
				if w.code != http.StatusOK {
					b.Fatalf("status %d", w.code)
				}
				size = w.n
			})
			b.ReportMetric(float64(size), "body-bytes")
		})
	}
}
