package receiver

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// selfMetrics are the receiver's own metrics (on /metrics).
type selfMetrics struct {
	active   *prometheus.GaugeVec
	messages *prometheus.CounterVec
	entries  *prometheus.CounterVec
	ended    *prometheus.CounterVec
}

func newSelfMetrics(reg prometheus.Registerer) (*selfMetrics, error) {
	m := &selfMetrics{
		active: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "glassmesh_receiver_streams_open",
			Help: "Telemetry streams open, by service (als, metrics).",
		}, []string{"service"}),
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "glassmesh_receiver_messages_total",
			Help: "Telemetry stream messages received, by service (als, metrics).",
		}, []string{"service"}),
		entries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "glassmesh_receiver_access_log_entries_total",
			Help: "Access log entries received, by kind (http, tcp).",
		}, []string{"kind"}),
		ended: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "glassmesh_receiver_streams_ended_total",
			Help: "Telemetry streams ended, by service and gRPC status code.",
		}, []string{"service", "code"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.active, m.messages, m.entries, m.ended} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("receiver: registering self metrics: %w", err)
		}
	}
	return m, nil
}
