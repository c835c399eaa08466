package slo

import (
	"github.com/prometheus/client_golang/prometheus"
)

// engineMetrics are the engine's self metrics on /metrics. The budget
// gauges are read from the last round's budgets when scraped, so an SLO
// removed from the config leaves no stale series behind.
type engineMetrics struct {
	e         *Engine
	duration  prometheus.Histogram
	failures  prometheus.Counter
	remaining *prometheus.Desc
	state     *prometheus.Desc
	exhaust   *prometheus.Desc
	coverage  *prometheus.Desc
}

func newEngineMetrics(e *Engine) *engineMetrics {
	l := []string{"namespace", "slo", "service"}
	return &engineMetrics{
		e: e,
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "glassmesh_slo_evaluation_duration_seconds",
			Help:    "Duration of one incremental SLO evaluation round (rollup of the last step and every SLO's windows).",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 8),
		}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "glassmesh_slo_evaluation_failures_total",
			Help: "Incremental SLO evaluation rounds that failed (the next round counts their span again).",
		}),
		remaining: prometheus.NewDesc("glassmesh_slo_error_budget_remaining_ratio",
			"Share of the SLO's error budget left over its window (1 untouched, below 0 overspent).", l, nil),
		state: prometheus.NewDesc("glassmesh_slo_error_budget_state",
			"1 for the SLO's budget state (healthy, tight: under 25% left, exhausted, unknown: no events), 0 for the others.",
			append(l, "state"), nil),
		exhaust: prometheus.NewDesc("glassmesh_slo_error_budget_exhaustion_seconds",
			"Time until the SLO's budget is spent at its 1h burn rate; absent when nothing burns.", l, nil),
		coverage: prometheus.NewDesc("glassmesh_slo_rollup_coverage_ratio",
			"Share of the SLO's window covered by its rollups (below 1 on an installation younger than the window).", l, nil),
	}
}

// Describe implements prometheus.Collector.
func (m *engineMetrics) Describe(ch chan<- *prometheus.Desc) {
	m.duration.Describe(ch)
	m.failures.Describe(ch)
	for _, d := range []*prometheus.Desc{m.remaining, m.state, m.exhaust, m.coverage} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (m *engineMetrics) Collect(ch chan<- prometheus.Metric) {
	m.duration.Collect(ch)
	m.failures.Collect(ch)
	m.e.mu.Lock()
	defer m.e.mu.Unlock()
	for _, s := range m.e.slos {
		b, ok := m.e.budgets[ID(s)]
		if !ok {
			continue
		}
		l := []string{s.Namespace, s.Name, s.Spec.Service}
		for _, st := range []string{StateHealthy, StateTight, StateExhausted, StateUnknown} {
			v := 0.0
			if b.State == st {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(m.state, prometheus.GaugeValue, v, append(l, st)...)
		}
		ch <- prometheus.MustNewConstMetric(m.coverage, prometheus.GaugeValue, b.Coverage, l...)
		if b.Remaining != nil {
			ch <- prometheus.MustNewConstMetric(m.remaining, prometheus.GaugeValue, *b.Remaining, l...)
		}
		if b.TimeToExhaustionSeconds != nil {
			ch <- prometheus.MustNewConstMetric(m.exhaust, prometheus.GaugeValue, *b.TimeToExhaustionSeconds, l...)
		}
	}
}
