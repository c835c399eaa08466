package slo

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"go.uber.org/goleak"

	"github.com/glassmesh/glassmesh/telemetry/metrics"
)

// env is the real metrics stack over a temp dir: Storage and Engine.
type env struct {
	st  *metrics.Storage
	eng *metrics.Engine
	reg *prometheus.Registry
}

func newEnv(t testing.TB) *env {
	t.Helper()
	e := &env{reg: prometheus.NewRegistry()}
	var err error
	e.st, err = metrics.OpenStorage(metrics.StorageConfig{DataDir: t.TempDir()}, nil, e.reg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.st.Close() })
	e.eng, err = metrics.NewEngine(metrics.EngineConfig{Dir: t.TempDir()}, slog.New(slog.DiscardHandler), e.reg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.eng.Close() })
	return e
}

// counter is a counter series growing by perSecond.
type counter struct {
	series    string // in PromQL selector syntax: name{label="value",...}
	perSecond float64
}

// appendCounters writes each counter every 10s over the 10 minutes up to
// end, starting from 0.
func (e *env) appendCounters(t testing.TB, end time.Time, cs ...counter) {
	t.Helper()
	app := e.st.Appendable().Appender(context.Background())
	for _, c := range cs {
		lbls, err := parseSeries(c.series)
		if err != nil {
			t.Fatal(err)
		}
		for s := 0; s <= 600; s += 10 {
			ts := end.Add(time.Duration(s-600) * time.Second)
			if _, err := app.Append(0, lbls, ts.UnixMilli(), c.perSecond*float64(s)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
}

// query evaluates an instant query at ts.
func (e *env) query(t *testing.T, q string, ts time.Time) promql.Vector {
	t.Helper()
	v, err := e.eng.QueryFunc(e.st.Queryable())(context.Background(), q, ts)
	if err != nil {
		t.Fatalf("%v\n%s", err, q)
	}
	return v
}

func parseSeries(s string) (labels.Labels, error) {
	lbls, _, err := parser.NewParser(parser.Options{}).ParseSeriesDesc(s + " 0")
	return lbls, err
}

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
