package topology

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// graphMetrics are the Graph's self metrics.
type graphMetrics struct {
	dropped       prometheus.Counter
	buildDuration *prometheus.HistogramVec
	streams       prometheus.Gauge
	slowDropped   prometheus.Counter
}

func newGraphMetrics(reg prometheus.Registerer) (*graphMetrics, error) {
	m := &graphMetrics{
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "glassmesh_topology_requests_dropped_total",
			Help: "Requests not added to the in-memory graph because their bucket held the most series.",
		}),
		buildDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "glassmesh_topology_build_duration_seconds",
			Help:    "Time to build one graph, by where its traffic came from (memory or promql).",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 8),
		}, []string{"path"}),
		streams: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "glassmesh_topology_stream_clients",
			Help: "Connected /api/graph/stream clients.",
		}),
		slowDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "glassmesh_topology_stream_slow_clients_dropped_total",
			Help: "Stream clients disconnected because their send queue was full.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.dropped, m.buildDuration, m.streams, m.slowDropped} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return nil, err
			}
		}
	}
	return m, nil
}
