package ruler

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/glassmesh/glassmesh/telemetry/metrics"
	"github.com/glassmesh/glassmesh/telemetry/metrics/metricstest"
)

// rulesEnv is a temp-dir TSDB with the real engine and, when asked, a
// running rules manager on it.
type rulesEnv struct {
	db     *tsdb.DB
	engine *metrics.Engine
	rules  *Ruler
	reg    *prometheus.Registry
}

func newRulesEnv(t *testing.T, rules *Config) *rulesEnv {
	t.Helper()
	logger := metricstest.Logger(t)
	e := &rulesEnv{db: metricstest.OpenDB(t), reg: prometheus.NewRegistry()}
	var err error
	if e.engine, err = metrics.NewEngine(metrics.EngineConfig{Dir: t.TempDir()}, logger, e.reg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.engine.Close() })
	if rules != nil {
		if e.rules, err = New(*rules, metrics.BackendFromDB(e.db), e.engine, logger, e.reg); err != nil {
			t.Fatal(err)
		}
		metricstest.Run(t, e.rules.Run)
	}
	return e
}
