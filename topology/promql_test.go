package topology

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql"

	"github.com/glassmesh/glassmesh/telemetry/metrics"

	"github.com/prometheus/prometheus/rules"
)

// fixtureStorage writes the fixture through the real metrics Aggregator
// into a temp-dir TSDB.
func fixtureStorage(t testing.TB) *metrics.Storage {
	t.Helper()
	st, err := metrics.OpenStorage(metrics.StorageConfig{DataDir: t.TempDir()}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	agg, err := metrics.NewAggregator(metrics.AggregatorConfig{}, st, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := agg.ConsumeRequests(ctx, requests(fixtureCalls(), time.Now())); err != nil {
		t.Fatal(err)
	}
	if err := agg.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	return st
}

// flushTime is when the Aggregator wrote the fixture: queries exactly
// then need no rate() extrapolation at the end of the window (the
// Aggregator's zero sample pins the start).
func flushTime(t testing.TB, q rules.QueryFunc) time.Time {
	t.Helper()
	v, err := q(context.Background(), "max(timestamp(istio_requests_total))", time.Now())
	if err != nil || len(v) != 1 {
		t.Fatalf("flush time: %v %v", v, err)
	}
	return time.UnixMilli(int64(v[0].F * 1000))
}

// tsdbFixture is a query function over the fixture's TSDB and the flush time.
func tsdbFixture(t testing.TB) (rules.QueryFunc, time.Time) {
	t.Helper()
	st := fixtureStorage(t)
	eng := promql.NewEngine(promql.EngineOpts{MaxSamples: 1e7, Timeout: time.Minute, LookbackDelta: 5 * time.Minute})
	q := rules.EngineQueryFunc(eng, st.Queryable())
	return q, flushTime(t, q)
}

func TestPromQLPathAgreesWithMemory(t *testing.T) {
	q, at := tsdbFixture(t)
	g, err := New(Config{}, q, fixtureSpans(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	g.now = func() time.Time { return at }
	g.started = at.Add(-time.Hour)
	if err := g.ConsumeRequests(context.Background(), requests(fixtureCalls(), at.Add(-30*time.Second))); err != nil {
		t.Fatal(err)
	}
	for _, query := range []string{"graphType=workload", "graphType=app", "graphType=versionedApp", "graphType=service",
		"graphType=workload&injectServiceNodes=true&responseTime=99", "graphType=app&rateTcp=total&rateGrpc=received&responseTime=50",
		"namespaces=bookinfo&boxBy=app", "namespaces=other",
		"graphType=workload&responseTime=avg&throughputType=request&rateGrpc=sent", "rateTcp=none&rateGrpc=total&appenders=",
		"appenders=deadNode,health&rateTcp=received"} {
		t.Run(query, func(t *testing.T) {
			o := mustOptions(t, query)
			o.QueryTime = at
			mem := buildGraph(t, g, o, pathMemory)
			prom := buildGraph(t, g, o, pathPromQL)
			compareGraphs(t, mem, prom)
		})
	}
	t.Run("the workload graph from PromQL has the fixture's numbers", func(t *testing.T) {
		o := mustOptions(t, "graphType=workload")
		o.QueryTime = at
		prom := buildGraph(t, g, o, pathPromQL)
		_, _, nodes, edges := summary(prom)
		checkFixtureTraffic(t, nodes, edges)
	})
}

// compareGraphs checks two graphs have the same elements and the same
// numbers within ±1%.
func compareGraphs(t *testing.T, a, b *Cytoscape) {
	t.Helper()
	an, ae, _, aEdges := summary(a)
	bn, be, _, bEdges := summary(b)
	if !equalStrings(an, bn) || !equalStrings(ae, be) {
		t.Fatalf("elements differ:\n%q\n%q\nvs\n%q\n%q", an, ae, bn, be)
	}
	for name, x := range aEdges {
		y := bEdges[name]
		for k, v := range x.Traffic.Rates {
			closeStrings(t, name+" "+k, v, y.Traffic.Rates[k])
		}
		if len(x.Traffic.Rates) != len(y.Traffic.Rates) {
			t.Errorf("%s rates %v vs %v", name, x.Traffic.Rates, y.Traffic.Rates)
		}
		closeStrings(t, name+" responseTime", x.ResponseTime, y.ResponseTime)
		closeStrings(t, name+" throughput", x.Throughput, y.Throughput)
		if x.IsMTLS != y.IsMTLS || x.HealthStatus != y.HealthStatus {
			t.Errorf("%s isMTLS/health %q/%q vs %q/%q", name, x.IsMTLS, x.HealthStatus, y.IsMTLS, y.HealthStatus)
		}
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func closeStrings(t *testing.T, what, a, b string) {
	t.Helper()
	if a == b {
		return
	}
	if a == "" || b == "" {
		t.Errorf("%s: %q vs %q", what, a, b)
		return
	}
	near(t, what, b, mustFloat(a))
}
