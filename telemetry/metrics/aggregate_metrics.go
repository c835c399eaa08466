package metrics

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// aggMetrics are the Aggregator's self metrics.
type aggMetrics struct {
	consumed      prometheus.Counter
	limited       [numKinds][]prometheus.Counter
	flushDuration prometheus.Histogram
	flushErrors   prometheus.Counter
	samples       prometheus.Counter
}

// newAggMetrics creates the self metrics and registers them on reg (when
// not nil). active reports the number of series written.
func newAggMetrics(reg prometheus.Registerer, active func() float64) (*aggMetrics, error) {
	limited := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "glassmesh_metrics_series_limited_total",
		Help: "Requests dropped from a metric because their new label set was over --metrics.max-series-per-metric.",
	}, []string{"metric"})
	m := &aggMetrics{
		consumed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "glassmesh_metrics_requests_consumed_total",
			Help: "Requests handed to the metrics aggregator.",
		}),
		flushDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "glassmesh_metrics_flush_duration_seconds",
			Help:    "Time to append and commit one interval of Istio metrics to the TSDB.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 8),
		}),
		flushErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "glassmesh_metrics_flush_errors_total",
			Help: "Flushes of Istio metrics that failed in part or in whole.",
		}),
		samples: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "glassmesh_metrics_flushed_samples_total",
			Help: "Samples of Istio metrics appended to the TSDB.",
		}),
	}
	for kind, names := range kindMetrics {
		for _, name := range names {
			m.limited[kind] = append(m.limited[kind], limited.WithLabelValues(name))
		}
	}
	if reg == nil {
		return m, nil
	}
	activeGauge := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "glassmesh_metrics_active_series",
		Help: "Series of Istio metrics the aggregator holds and appends every interval.",
	}, active)
	var errs []error
	for _, c := range []prometheus.Collector{m.consumed, limited, m.flushDuration, m.flushErrors, m.samples, activeGauge} {
		errs = append(errs, reg.Register(c))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("metrics: register aggregator metrics: %w", err)
	}
	return m, nil
}
