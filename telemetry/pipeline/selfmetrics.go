package pipeline

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/glassmesh/glassmesh/telemetry/record"
)

// selfMetrics are the pipeline's own counters (on /metrics).
type selfMetrics struct {
	httpEntries   prometheus.Counter
	tcpEntries    prometheus.Counter
	unknownPeers  [2]prometheus.Counter // peer of a source report, of a destination report
	refused       *prometheus.CounterVec
	tcpUntracked  prometheus.Counter
	envoySamples  prometheus.Counter
	envoyRejected *prometheus.CounterVec
}

func newSelfMetrics(reg prometheus.Registerer) (*selfMetrics, error) {
	entries := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "glassmesh_pipeline_entries_total",
		Help: "Access log entries converted to requests, by kind (http, tcp).",
	}, []string{"kind"})
	unknown := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "glassmesh_pipeline_unknown_peers_total",
		Help: "Requests whose other end (not the reporter) matched no mesh workload and is labelled unknown, by reporter.",
	}, []string{"reporter"})
	m := &selfMetrics{
		httpEntries:  entries.WithLabelValues("http"),
		tcpEntries:   entries.WithLabelValues("tcp"),
		unknownPeers: [2]prometheus.Counter{unknown.WithLabelValues(record.ReporterSource), unknown.WithLabelValues(record.ReporterDestination)},
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "glassmesh_pipeline_refused_requests_total",
			Help: "Requests a consumer refused, by reason (overloaded, error).",
		}, []string{"reason"}),
		tcpUntracked: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "glassmesh_pipeline_tcp_untracked_connections_total",
			Help: "TCP access log entries whose connection could not be tracked (tracker full); their bytes may be counted twice.",
		}),
		envoySamples: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "glassmesh_pipeline_envoy_samples_total",
			Help: "Samples of Envoy stats appended to storage.",
		}),
		envoyRejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "glassmesh_pipeline_envoy_samples_rejected_total",
			Help: "Samples of Envoy stats the storage rejected, by reason (out_of_order, duplicate, too_old, invalid).",
		}, []string{"reason"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{entries, unknown, m.refused, m.tcpUntracked, m.envoySamples, m.envoyRejected} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("pipeline: registering self metrics: %w", err)
		}
	}
	return m, nil
}
