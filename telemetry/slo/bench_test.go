package slo

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/glassmesh/glassmesh/control/model"
	"github.com/glassmesh/glassmesh/telemetry/metrics"
	"github.com/glassmesh/glassmesh/telemetry/metrics/promapi/promapitest"
)

// BenchmarkRuleEvaluation is the cost of one evaluation of the rule groups
// of 1,000 availability SLOs, each on its own service with 10 minutes of
// traffic (an OK and a failing series, samples every 10s), through the
// real storage and engine. It reports the cost per SLO. store=http
// evaluates the same rules as the leader of several replicas does on their
// shared store (metrics.RemoteQuery over HTTP): the store here is
// Prometheus's own HTTP API and engine (web/api/v1, as glassmesh serves
// it) over the same TSDB, so the difference is the round trips and JSON.
func BenchmarkRuleEvaluation(b *testing.B) {
	const n = 1000
	e := newEnv(b)
	now := time.Now().Truncate(time.Second)
	var slos []*model.SLO
	var cs []counter
	for i := range n {
		svc := fmt.Sprintf("svc-%04d", i)
		s := testSLO(svc+"-availability", 99.9, 30*24*time.Hour, model.Indicator{Availability: &model.AvailabilityIndicator{}})
		s.Spec.Service = svc
		slos = append(slos, s)
		sel := fmt.Sprintf(`reporter="source",source_workload="client",destination_service_name=%q,destination_service_namespace="default"`, svc)
		cs = append(cs,
			counter{`istio_requests_total{` + sel + `,response_code="200"}`, 10},
			counter{`istio_requests_total{` + sel + `,response_code="503"}`, 0.1})
	}
	e.appendCounters(b, now, cs...)
	eval := func(b *testing.B, groups []*rules.Group) {
		cpu0 := cpuTime()
		for i := 0; b.Loop(); i++ {
			ts := now.Add(time.Duration(i) * 10 * time.Second)
			for _, g := range groups {
				g.Eval(context.Background(), ts)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1e6, "ms/round")
		b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/1e3/float64(b.N), "cpu-ms/round")
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n/1e6, "ms/slo")
	}
	b.Run("store=local", func(b *testing.B) {
		eval(b, loadGroups(b, testEngine(b), e.st.DB(), Generate(slos), 10*time.Second))
	})
	b.Run("store=http", func(b *testing.B) {
		srv := promapitest.Serve(b, metrics.BackendFromDB(e.st.DB()), e.eng)
		remote, err := metrics.NewRemoteQuery(metrics.RemoteQueryConfig{URL: srv.URL})
		if err != nil {
			b.Fatal(err)
		}
		eval(b, loadGroupsQuerying(b, remote.Query, e.st.DB(), Generate(slos), 10*time.Second))
	})
}

// benchHistoryStep is the rollup step of BenchmarkIncrementalEvaluation's
// history: 5m rather than the default 1m, so that 12 weeks of rollups of
// 1,000 SLOs (48M samples) can be written before the run. A window's
// start is read from one chunk per series either way.
const benchHistoryStep = 5 * time.Minute

// BenchmarkIncrementalEvaluation is the cost of one round of the
// incremental engine for the 1,000 SLOs of BenchmarkRuleEvaluation, on
// the same raw traffic (an OK and a failing series per service, samples
// every 10s), with window=30d and window=84d (12 weeks) SLOs whose
// rollups already hold the whole window of history, written as a TSDB
// block the way compaction leaves old data. A round counts the last step
// from the raw series (two queries for all availability SLOs), appends
// 2,000 counter samples, reads every window's start (5m ... 3d and the
// SLO window) and computes every budget.
func BenchmarkIncrementalEvaluation(b *testing.B) {
	for _, window := range []time.Duration{30 * 24 * time.Hour, 84 * 24 * time.Hour} {
		b.Run("window="+promDuration(window), func(b *testing.B) { benchIncremental(b, 1000, window) })
	}
}

func benchIncremental(b *testing.B, n int, window time.Duration) {
	step := benchHistoryStep
	now := time.Now().Truncate(step)
	dir := b.TempDir()
	slos := make([]*model.SLO, 0, n)
	for i := range n {
		s := testSLO(fmt.Sprintf("svc-%04d-availability", i), 99.9, window, model.Indicator{Availability: &model.AvailabilityIndicator{}})
		s.Spec.Service = fmt.Sprintf("svc-%04d", i)
		slos = append(slos, s)
	}
	histEnd := now.Add(-15 * time.Minute)
	writeRollupHistory(b, filepath.Join(dir, "metrics"), slos, histEnd.Add(-window-time.Hour), histEnd, step)
	st, err := metrics.OpenStorage(metrics.StorageConfig{DataDir: dir, Retention: 2 * window}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = st.Close() })
	e := &env{st: st, eng: newEnv(b).eng}
	// The raw traffic of the benchmark's rounds: from 10 minutes before
	// now to 11 steps later (55m: the TSDB takes no samples more than an
	// hour behind its newest, and the rounds write at now, now+step...).
	// Rounds beyond that count no new traffic; run at most 10.
	appendRaw(b, e, slos, now.Add(-10*time.Minute), now.Add(11*step))
	eng, err := NewEngine(EngineConfig{Step: step}, e.eng.QueryFunc(st.Queryable()), st.Appendable(), st.Queryable(), nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	eng.SetSLOs(slos)
	// The first round reads the stored counters and counts the gap
	// since the history's end.
	if err := eng.Round(context.Background(), now); err != nil {
		b.Fatal(err)
	}
	i := 0
	cpu0 := cpuTime()
	for b.Loop() {
		i++
		if err := eng.Round(context.Background(), now.Add(time.Duration(i)*step)); err != nil {
			b.Fatal(err)
		}
	}
	bud, ok := eng.Budget(ID(slos[0]))
	if !ok || bud.Coverage < 1 || bud.Remaining == nil {
		b.Fatalf("budget %+v: the history should cover the window", bud)
	}
	perRound := float64(b.Elapsed().Nanoseconds()) / float64(b.N) / 1e6
	b.ReportMetric(perRound, "ms/round")
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/1e3/float64(b.N), "cpu-ms/round")
	b.ReportMetric(perRound/float64(n), "ms/slo")
}

// writeRollupHistory writes the SLOs' rollup counters every step over
// [from, to] as one TSDB block in dir: 1% of 10 requests a second fail.
func writeRollupHistory(b *testing.B, dir string, slos []*model.SLO, from, to time.Time, step time.Duration) {
	b.Helper()
	w, err := tsdb.NewBlockWriter(slog.New(slog.DiscardHandler), dir, 2*to.Sub(from).Milliseconds()+1) // commits go back in time: the head takes samples half a block behind its newest
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	ctx := context.Background()
	for _, s := range slos {
		app := w.Appender(ctx)
		errs, total := eventLabels(s, eventError), eventLabels(s, eventTotal)
		var re, rt storage.SeriesRef
		for k := 0; !from.Add(time.Duration(k) * step).After(to); k++ {
			ts := from.Add(time.Duration(k) * step).UnixMilli()
			secs := float64(k) * step.Seconds()
			if re, err = app.Append(re, errs, ts, 0.1*secs); err != nil {
				b.Fatal(err)
			}
			if rt, err = app.Append(rt, total, ts, 10*secs); err != nil {
				b.Fatal(err)
			}
		}
		if err := app.Commit(); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := w.Flush(ctx); err != nil {
		b.Fatal(err)
	}
}

// appendRaw writes each SLO's service's OK and failing request counters
// every 10s over [from, to], as BenchmarkRuleEvaluation's traffic.
func appendRaw(b *testing.B, e *env, slos []*model.SLO, from, to time.Time) {
	b.Helper()
	app := e.st.Appendable().Appender(context.Background())
	for _, s := range slos {
		sel := fmt.Sprintf(`reporter="source",source_workload="client",destination_service_name=%q,destination_service_namespace="default"`, s.Spec.Service)
		for _, c := range []counter{{`istio_requests_total{` + sel + `,response_code="200"}`, 10}, {`istio_requests_total{` + sel + `,response_code="503"}`, 0.1}} {
			lbls, err := parseSeries(c.series)
			if err != nil {
				b.Fatal(err)
			}
			var ref storage.SeriesRef
			for ts := from; !ts.After(to); ts = ts.Add(10 * time.Second) {
				if ref, err = app.Append(ref, lbls, ts.UnixMilli(), c.perSecond*ts.Sub(from).Seconds()); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	if err := app.Commit(); err != nil {
		b.Fatal(err)
	}
}

// cpuTime is the process's user and system CPU time so far: on a shared
// machine a round's CPU cost says more than its wall time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
