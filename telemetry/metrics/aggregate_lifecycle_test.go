package metrics

import (
	"bytes"
	"context"
	"log/slog"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/glassmesh/glassmesh/telemetry/record"
)

func TestAggregatorContinuesAfterRestart(t *testing.T) {
	dir := t.TempDir()
	e := newTestEnv(t, dir, AggregatorConfig{})
	for range 5 {
		consume(t, e.agg, httpReq(record.ReporterSource, 200, 3*time.Millisecond))
	}
	consume(t, e.agg, tcpReq(10, 20, true, false))
	t1 := time.Now()
	if err := e.agg.flushAt(context.Background(), t1); err != nil {
		t.Fatal(err)
	}
	if err := e.st.Close(); err != nil {
		t.Fatal(err)
	}

	e = newTestEnv(t, dir, AggregatorConfig{})
	for range 3 {
		consume(t, e.agg, httpReq(record.ReporterSource, 200, 300*time.Millisecond))
	}
	consume(t, e.agg, tcpReq(1, 2, false, true))
	t2 := t1.Add(5 * time.Second)
	if err := e.agg.flushAt(context.Background(), t2); err != nil {
		t.Fatal(err)
	}
	for q, want := range map[string]float64{
		`sum(istio_requests_total)`:                                   8,
		`sum(increase(istio_requests_total[1m]))`:                     8,
		`sum(resets(istio_requests_total[1m]))`:                       0,
		`sum(resets(istio_request_duration_milliseconds_bucket[1m]))`: 0,
		`sum(istio_request_duration_milliseconds_count)`:              8,
		`sum(istio_request_duration_milliseconds_sum)`:                15 + 900,
		`sum(istio_request_duration_milliseconds_bucket{le="5.0"})`:   5,
		`sum(istio_request_duration_milliseconds_bucket{le="500.0"})`: 8,
		`sum(istio_tcp_sent_bytes_total)`:                             11,
		`sum(istio_tcp_connections_closed_total)`:                     1,
		`sum(resets(istio_tcp_sent_bytes_total[1m]))`:                 0,
		`count_over_time(istio_requests_total[1m])`:                   3, // zero, 5, 8: no second zero
	} {
		if got := e.value(t, q, t2); got != want {
			t.Errorf("%s = %v, want %v", q, got, want)
		}
	}
}

func TestAggregatorSeriesLimit(t *testing.T) {
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	e := newTestEnvLogger(t, t.TempDir(), AggregatorConfig{MaxSeriesPerMetric: 2}, logger)
	for i := range 5 {
		consume(t, e.agg, httpReq(record.ReporterSource, 200+i, time.Millisecond))
		consume(t, e.agg, httpReq(record.ReporterSource, 200+i, time.Millisecond)) // dropped twice
	}
	consume(t, e.agg, tcpReq(1, 1, true, false), with(tcpReq(1, 1, true, false), func(r *record.Request) { r.ResponseFlags = "DC" }),
		with(tcpReq(1, 1, true, false), func(r *record.Request) { r.ResponseFlags = "UT" }))
	at := time.Now()
	if err := e.agg.flushAt(context.Background(), at); err != nil {
		t.Fatal(err)
	}
	for q, want := range map[string]float64{
		`count(istio_requests_total)`:                      2,
		`sum(istio_requests_total)`:                        4,
		`count(istio_request_duration_milliseconds_count)`: 2,
		`count(istio_tcp_connections_opened_total)`:        2,
	} {
		if got := e.value(t, q, at); got != want {
			t.Errorf("%s = %v, want %v", q, got, want)
		}
	}
	for _, c := range []struct {
		metric string
		want   float64
	}{{MetricRequestsTotal, 6}, {MetricRequestDuration, 6}, {MetricResponseBytes, 6}, {MetricTCPSentBytes, 1}} {
		got := gathered(t, e.reg, "glassmesh_metrics_series_limited_total", c.metric)
		if got != c.want {
			t.Errorf("series_limited_total{metric=%q} = %v, want %v", c.metric, got, c.want)
		}
	}
	if got := testutil.ToFloat64(e.agg.m.consumed); got != 13 {
		t.Errorf("requests consumed = %v, want 13", got)
	}
	if n := strings.Count(logs.String(), "series limit reached"); n != 2 {
		t.Errorf("limit logged %d times, want once per kind (rate-limited):\n%s", n, logs.String())
	}
	if got := gathered(t, e.reg, "glassmesh_metrics_active_series", ""); got != float64(2*httpSeries+2*tcpSeries) {
		t.Errorf("active series = %v, want %d", got, 2*httpSeries+2*tcpSeries)
	}
}

// gathered returns the value of a registered counter or gauge, picking the
// child whose "metric" label is metric when that is not "".
func gathered(t *testing.T, reg *prometheus.Registry, name, metric string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			match := metric == ""
			for _, lp := range m.GetLabel() {
				match = match || (lp.GetName() == "metric" && lp.GetValue() == metric)
			}
			if match {
				return m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
		}
	}
	t.Fatalf("%s{metric=%q} is not registered", name, metric)
	return 0
}

func TestAggregatorRunFlushesAndFlushesOnStop(t *testing.T) {
	e := newTestEnv(t, t.TempDir(), AggregatorConfig{Interval: 50 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var runErr error
	wg.Add(1)
	go func() { defer wg.Done(); runErr = e.agg.Run(ctx) }()
	consume(t, e.agg, httpReq(record.ReporterSource, 200, time.Millisecond))
	deadline := time.Now().Add(5 * time.Second)
	for len(e.query(t, `istio_requests_total`, time.Now())) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("Run never flushed")
		}
		time.Sleep(20 * time.Millisecond)
	}
	consume(t, e.agg, httpReq(record.ReporterSource, 200, time.Millisecond))
	cancel()
	wg.Wait()
	if runErr != nil {
		t.Fatalf("Run() = %v", runErr)
	}
	if got := e.value(t, `sum(istio_requests_total)`, time.Now()); got != 2 {
		t.Errorf("after stop, sum = %v, want 2 (the final flush wrote the last request)", got)
	}
	if got := testutil.ToFloat64(e.agg.m.flushErrors); got != 0 {
		t.Errorf("flush errors = %v, want 0", got)
	}
}

// TestAggregatorConcurrentConsumeAndFlush races receivers against flushes:
// nothing is lost or double counted, and the race detector stays quiet.
func TestAggregatorConcurrentConsumeAndFlush(t *testing.T) {
	e := newTestEnv(t, t.TempDir(), AggregatorConfig{})
	const workers, batches, batch = 4, 50, 20
	reqs := benchRequests(batch*10, 37)
	ctx, cancel := context.WithCancel(context.Background())
	flushed := make(chan error, 1)
	go func() {
		for ctx.Err() == nil {
			if err := e.agg.Flush(context.Background()); err != nil {
				flushed <- err
				return
			}
		}
		flushed <- nil
	}()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range batches {
				off := (w*batches + i) % 10 * batch
				if err := e.agg.ConsumeRequests(context.Background(), reqs[off:off+batch]); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	cancel()
	if err := <-flushed; err != nil {
		t.Fatal(err)
	}
	if err := e.agg.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Back-to-back flushes step 1ms each, so they may run ahead of the clock.
	last := time.UnixMilli(e.agg.lastFlush)
	if got := e.value(t, `sum(istio_requests_total)`, last); got != workers*batches*batch {
		t.Errorf("sum(istio_requests_total) = %v, want %d", got, workers*batches*batch)
	}
	if got := e.value(t, `count(istio_requests_total)`, last); got != 37 {
		t.Errorf("label sets = %v, want 37", got)
	}
}

// TestAggregatorRecoversFromUnknownRefs makes every cached series ref
// stale, as after the TSDB dropped the series: the flush must fall back to
// labels and keep counting.
func TestAggregatorRecoversFromUnknownRefs(t *testing.T) {
	e := newTestEnv(t, t.TempDir(), AggregatorConfig{})
	consume(t, e.agg, httpReq(record.ReporterSource, 200, time.Millisecond), tcpReq(1, 1, true, false))
	t1 := time.Now()
	if err := e.agg.flushAt(context.Background(), t1); err != nil {
		t.Fatal(err)
	}
	for i := range e.agg.shards {
		for _, ls := range e.agg.shards[i].all {
			for j := range ls.refs {
				ls.refs[j] = 1 << 40
			}
		}
	}
	consume(t, e.agg, httpReq(record.ReporterSource, 200, time.Millisecond), tcpReq(1, 1, true, false))
	t2 := t1.Add(time.Second)
	if err := e.agg.flushAt(context.Background(), t2); err != nil {
		t.Fatalf("flush with stale refs: %v", err)
	}
	for q, want := range map[string]float64{
		`sum(istio_requests_total)`:                         2,
		`sum(istio_tcp_connections_opened_total)`:           2,
		`count(istio_request_duration_milliseconds_bucket)`: float64(numBuckets),
	} {
		if got := e.value(t, q, t2); got != want {
			t.Errorf("%s = %v, want %v", q, got, want)
		}
	}
}

// TestAggregatorWithOneSecondBlocks runs with the smallest block span and
// interval DESIGN.md allows, so the head is cut into blocks while the
// Aggregator writes, and then restarts on the same dir.
func TestAggregatorWithOneSecondBlocks(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for a few seconds")
	}
	dir := t.TempDir()
	open := func() (*Storage, *Aggregator) {
		st, err := OpenStorage(StorageConfig{DataDir: dir, BlockDuration: time.Second, Retention: time.Hour}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close() })
		agg, err := NewAggregator(AggregatorConfig{Interval: time.Second}, st, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		return st, agg
	}
	st, agg := open()
	sent := 0
	for len(st.DB().Blocks()) < 2 && sent < 60 {
		consume(t, agg, httpReq(record.ReporterSource, 200, time.Millisecond))
		sent++
		if err := agg.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
		time.Sleep(250 * time.Millisecond)
	}
	if len(st.DB().Blocks()) == 0 {
		t.Fatalf("no block was cut after %d flushes", sent)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st, agg = open()
	consume(t, agg, httpReq(record.ReporterSource, 200, time.Millisecond))
	if err := agg.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	e := &testEnv{st: st, agg: agg, eng: newTestEngine()}
	at := time.UnixMilli(agg.lastFlush)
	if got := e.value(t, `sum(istio_requests_total)`, at); got != float64(sent+1) {
		t.Errorf("sum(istio_requests_total) = %v, want %d", got, sent+1)
	}
	if got := e.value(t, `sum(resets(istio_requests_total[1h]))`, at); got != 0 {
		t.Errorf("resets = %v, want 0", got)
	}
	if got := e.value(t, `sum(increase(istio_requests_total[1h]))`, at); math.Abs(got-float64(sent+1)) > 1e-9 {
		t.Errorf("increase over the whole run = %v, want %d", got, sent+1)
	}
}
