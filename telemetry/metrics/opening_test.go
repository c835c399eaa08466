package metrics

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"

	"github.com/glassmesh/glassmesh/telemetry/record"
)

// notReady fails the test unless err is the opening storage's refusal.
func notReady(t *testing.T, what string, err error) {
	t.Helper()
	var nr *record.NotReady
	if !errors.As(err, &nr) || !errors.Is(err, record.ErrNotReady) {
		t.Fatalf("%s: %v, want a *record.NotReady", what, err)
	}
	if nr.What != "metrics storage" || nr.RetryAfter != NotReadyRetryAfter {
		t.Errorf("%s: %+v, want the metrics storage and a retry delay", what, nr)
	}
}

func TestOpeningRefusesReadsAndAppendsUntilSet(t *testing.T) {
	reg := prometheus.NewRegistry()
	o, err := NewOpening(StorageConfig{DataDir: t.TempDir()}, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ls := labels.FromStrings("__name__", "up")
	_, err = o.Querier(0, 1)
	notReady(t, "Querier", err)
	_, err = o.ChunkQuerier(0, 1)
	notReady(t, "ChunkQuerier", err)
	_, err = o.ExemplarQuerier(ctx)
	notReady(t, "ExemplarQuerier", err)
	_, err = o.StartTime()
	notReady(t, "StartTime", err)
	app := o.Appender(ctx)
	_, err = app.Append(0, ls, 1, 1)
	notReady(t, "Append", err)
	// A caller that ignores Append's error must not see a commit succeed.
	notReady(t, "Commit", app.Commit())
	app2 := o.AppenderV2(ctx)
	_, err = app2.Append(0, ls, 0, 1, 1, nil, nil, storage.AOptions{})
	notReady(t, "AppendV2", err)
	notReady(t, "CommitV2", app2.Commit())
	notReady(t, "Err", o.Err())
	if o.Storage() != nil || o.Backend().TSDB() != nil {
		t.Fatal("a storage before Set")
	}
	if got := testutil.ToFloat64(gaugeOf(t, reg, "glassmesh_metrics_wal_replay_ratio")); got != 0 {
		t.Errorf("replay ratio before open = %v, want 0", got)
	}

	st, err := o.Open()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	notReady(t, "Err between Open and Set", o.Err())
	o.Set(st)
	<-o.Ready()
	if err := o.Err(); err != nil {
		t.Fatalf("Err after Set = %v", err)
	}
	app = o.Appender(ctx)
	if _, err := app.Append(0, ls, 1, 7); err != nil {
		t.Fatal(err)
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
	q, err := o.Querier(0, 10)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	ss := q.Select(ctx, false, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "up"))
	if !ss.Next() {
		t.Fatal("the sample appended after Set is not there")
	}
	if o.Backend().TSDB() != st.DB() {
		t.Error("the Backend's TSDB is not the open one")
	}
	if got := testutil.ToFloat64(gaugeOf(t, reg, "glassmesh_metrics_wal_replay_ratio")); got != 1 {
		t.Errorf("replay ratio once open = %v, want 1", got)
	}
}

// An engine query over the opening storage fails with the not-ready
// error: what canaries and SLOs treat as no data, never as a verdict.
func TestQueriesOverAnOpeningStorageAreNotReady(t *testing.T) {
	o, err := NewOpening(StorageConfig{DataDir: t.TempDir()}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	eng, err := NewEngine(EngineConfig{Dir: t.TempDir()}, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	_, err = eng.QueryFunc(o)(context.Background(), "sum(rate(istio_requests_total[1m]))", time.Now())
	if !errors.Is(err, record.ErrNotReady) || !strings.Contains(err.Error(), "metrics storage is opening") {
		t.Fatalf("query = %v, want the not-ready error", err)
	}
}

// gaugeOf finds a registered collector by metric name.
func gaugeOf(t *testing.T, reg *prometheus.Registry, name string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: "copy"}, func() float64 { return mf.GetMetric()[0].GetGauge().GetValue() })
		}
	}
	t.Fatalf("%s is not registered", name)
	return nil
}
