package metrics

import (
	"context"
	"testing"
	"time"

	"github.com/glassmesh/glassmesh/telemetry/record"
)

// An Aggregator built on a storage still opening counts access logs from
// the start; once the TSDB is open, Restore adds the counters stored by
// the last run under them, so nothing counted during the replay is lost
// and nothing restored resets.
func TestOpeningAggregatorKeepsWhatItCountedWhileTheTSDBOpened(t *testing.T) {
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

	o, err := NewOpening(StorageConfig{DataDir: dir}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	agg, err := NewOpeningAggregator(AggregatorConfig{}, o, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Counted while the TSDB replays: one label set seen before, one new.
	for range 3 {
		consume(t, agg, httpReq(record.ReporterSource, 200, 300*time.Millisecond))
	}
	consume(t, agg, httpReq(record.ReporterSource, 503, time.Millisecond))
	st, err := o.Open()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	o.Set(st)
	if err := agg.Restore(context.Background()); err != nil {
		t.Fatal(err)
	}
	t2 := t1.Add(5 * time.Second)
	if err := agg.flushAt(context.Background(), t2); err != nil {
		t.Fatal(err)
	}
	e = &testEnv{st: st, agg: agg, eng: newTestEngine()}
	for q, want := range map[string]float64{
		`sum(istio_requests_total{response_code="200"})`:                    8,
		`sum(istio_requests_total{response_code="503"})`:                    1,
		`sum(resets(istio_requests_total[1m]))`:                             0,
		`sum(istio_request_duration_milliseconds_count)`:                    9,
		`sum(istio_request_duration_milliseconds_bucket{le="5.0"})`:         6,
		`sum(resets(istio_request_duration_milliseconds_bucket[1m]))`:       0,
		`sum(istio_tcp_sent_bytes_total)`:                                   10,
		`sum(istio_request_duration_milliseconds_sum{response_code="200"})`: 15 + 900,
	} {
		if got := e.value(t, q, t2); got != want {
			t.Errorf("%s = %v, want %v", q, got, want)
		}
	}
}
