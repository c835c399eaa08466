package metrics_test

import (
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/timestamp"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/glassmesh/glassmesh/telemetry/metrics"
	"github.com/glassmesh/glassmesh/telemetry/metrics/metricstest"
	"github.com/glassmesh/glassmesh/telemetry/metrics/promapi/promapitest"
)

// RemoteQuery.Queryable returns the store's raw samples (times and values
// as stored) of the series its matchers select, over the querier's range.
func TestRemoteQueryableSelectsRawSamples(t *testing.T) {
	db := metricstest.OpenDB(t)
	eng, err := metrics.NewEngine(metrics.EngineConfig{Dir: t.TempDir()}, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = eng.Close() })
	srv := promapitest.Serve(t, metrics.BackendFromDB(db), eng)

	now := time.Now().Truncate(time.Second)
	firing := labels.FromStrings("__name__", "ALERTS_FOR_STATE", "alertname", "Burn", "job", "api")
	other := labels.FromStrings("__name__", "ALERTS_FOR_STATE", "alertname", "Other", "job", "api")
	var want []int64
	for i := 10; i >= 1; i-- {
		ts := timestamp.FromTime(now.Add(-time.Duration(i) * 7 * time.Second))
		metricstest.Append(t, db, metricstest.Sample{Labels: firing, T: ts, V: float64(1000 + i)},
			metricstest.Sample{Labels: other, T: ts, V: 1})
		if i <= 5 {
			want = append(want, ts)
		}
	}
	rq, err := metrics.NewRemoteQuery(metrics.RemoteQueryConfig{URL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	// The range holds the last five samples only.
	q, err := rq.Queryable().Querier(timestamp.FromTime(now.Add(-36*time.Second)), timestamp.FromTime(now))
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	set := q.Select(t.Context(), false, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "ALERTS_FOR_STATE"),
		labels.MustNewMatcher(labels.MatchEqual, "alertname", "Burn"))
	n := 0
	for set.Next() {
		n++
		s := set.At()
		if !labels.Equal(s.Labels(), firing) {
			t.Errorf("series %s, want %s", s.Labels(), firing)
		}
		var got []int64
		it := s.Iterator(nil)
		for i := 0; it.Next() == chunkenc.ValFloat; i++ {
			ts, v := it.At()
			got = append(got, ts)
			if want := float64(1000 + 5 - i); v != want {
				t.Errorf("sample %d = %v, want %v", i, v, want)
			}
		}
		if len(got) != len(want) || got[0] != want[0] || got[len(got)-1] != want[len(want)-1] {
			t.Errorf("sample times %v, want %v", got, want)
		}
	}
	if err := set.Err(); err != nil || n != 1 {
		t.Fatalf("%d series, err %v; want 1", n, err)
	}

	// A store that is down: an error naming the selection, not an empty set.
	srv.Close()
	set = q.Select(t.Context(), false, nil, labels.MustNewMatcher(labels.MatchEqual, "alertname", "Burn"))
	if set.Next() || set.Err() == nil {
		t.Fatalf("a down store answered a series set without error")
	}
}
