package topology

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/glassmesh/glassmesh/telemetry/metrics"
)

// copyIstioSeries appends every istio_* sample of from to app, in one
// commit, as a remote-write of another mesh's Prometheus would.
func copyIstioSeries(t *testing.T, from storage.Queryable, app storage.AppendableV2) {
	t.Helper()
	q, err := from.Querier(0, time.Now().Add(time.Hour).UnixMilli())
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	ss := q.Select(context.Background(), false, nil, labels.MustNewMatcher(labels.MatchRegexp, labels.MetricName, "istio_.*"))
	a := app.AppenderV2(context.Background())
	n := 0
	for ss.Next() {
		s := ss.At()
		it := s.Iterator(nil)
		for it.Next() == chunkenc.ValFloat {
			ts, v := it.At()
			if _, err := a.Append(0, s.Labels(), 0, ts, v, nil, nil, storage.AOptions{}); err != nil {
				t.Fatal(err)
			}
			n++
		}
	}
	if err := ss.Err(); err != nil || n == 0 {
		t.Fatalf("copied %d samples: %v", n, err)
	}
	if err := a.Commit(); err != nil {
		t.Fatal(err)
	}
}

func TestGraphLearnsFromPushedIstioMetrics(t *testing.T) {
	src := fixtureStorage(t) // another mesh's metrics
	dst, err := metrics.OpenStorage(metrics.StorageConfig{DataDir: t.TempDir()}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dst.Close() })
	eng := promql.NewEngine(promql.EngineOpts{MaxSamples: 1e7, Timeout: time.Minute, LookbackDelta: 5 * time.Minute})
	q := rules.EngineQueryFunc(eng, dst.Queryable())
	g, err := New(Config{}, q, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	at := flushTime(t, rules.EngineQueryFunc(eng, src.Queryable()))
	g.now = func() time.Time { return at }
	g.started = at.Add(-time.Hour) // the memory covers the window: only a push moves the graph to PromQL
	o := mustOptions(t, "graphType=workload")
	o.QueryTime = at
	if n, e, _, _ := summary(buildGraph(t, g, o, pathAuto)); len(n) != 0 || len(e) != 0 {
		t.Fatalf("a graph before any traffic: %d nodes, %d edges", len(n), len(e))
	}
	// Series appended around the graph (the aggregator's own) change nothing.
	copyIstioSeries(t, src.Queryable(), dst.AppendableV2())
	if n, _, _, _ := summary(buildGraph(t, g, o, pathAuto)); len(n) != 0 {
		t.Fatalf("the graph read the TSDB before any push: %v", n)
	}
	push := func(name string) {
		a := g.WatchAppends(dst.AppendableV2()).AppenderV2(context.Background())
		if _, err := a.Append(0, labels.FromStrings(labels.MetricName, name, "component", "proxy"), 0, at.UnixMilli(), 1, nil, nil, storage.AOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := a.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	// Other pushed metrics change nothing either.
	push("up")
	if n, _, _, _ := summary(buildGraph(t, g, o, pathAuto)); len(n) != 0 {
		t.Fatalf("a pushed non-Istio series moved the graph to the TSDB: %v", n)
	}
	// One pushed Istio sample (through the receivers' appendable) moves
	// the graph to the TSDB, which holds the other mesh's traffic.
	push("istio_build")
	got := buildGraph(t, g, o, pathAuto)
	if _, e, _, _ := summary(got); len(e) == 0 {
		t.Fatal("pushed Istio metrics drew no edge")
	}
	compareGraphs(t, got, buildGraph(t, g, o, pathPromQL))
}
