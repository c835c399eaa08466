package forward

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are forwarding's self metrics, one child per target. Their names
// keep the trace store's prefix: forwarding was born inside the store.
type metrics struct {
	spans, failedSpans, failures, dropped *prometheus.CounterVec
	lag                                   *prometheus.GaugeVec
}

// targetMetrics are one target's children.
type targetMetrics struct {
	spans, failedSpans, retries, permanent, droppedBytes prometheus.Counter
	lag                                                  prometheus.Gauge
}

func (m *metrics) forTarget(target string) targetMetrics {
	return targetMetrics{
		spans:        m.spans.WithLabelValues(target),
		failedSpans:  m.failedSpans.WithLabelValues(target),
		retries:      m.failures.WithLabelValues(target, "transient"),
		permanent:    m.failures.WithLabelValues(target, "permanent"),
		droppedBytes: m.dropped.WithLabelValues(target),
		lag:          m.lag.WithLabelValues(target),
	}
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	const ns, sub = "glassmesh", "trace_store"
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: name, Help: help}, labels)
	}
	m := &metrics{
		spans:       counter("forward_spans_total", "Spans forwarded to and accepted by an export target.", "target"),
		failedSpans: counter("forward_failed_spans_total", "Spans an export target refused for good (skipped).", "target"),
		failures: counter("forward_failures_total", "Failed sends to an export target, transient (retried) or permanent.",
			"target", "kind"),
		dropped: counter("forward_dropped_bytes_total", "WAL bytes never forwarded because the target fell more than MaxLag behind.",
			"target"),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub,
			Name: "forward_lag_bytes", Help: "WAL bytes not yet forwarded to an export target."}, []string{"target"}),
	}
	if reg == nil {
		return m, nil
	}
	var errs []error
	for _, col := range []prometheus.Collector{m.spans, m.failedSpans, m.failures, m.dropped, m.lag} {
		errs = append(errs, reg.Register(col))
	}
	return m, errors.Join(errs...)
}
