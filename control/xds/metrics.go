package xds

import (
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// metrics are the control plane's self metrics.
type metrics struct {
	connected   *prometheus.GaugeVec
	pushes      *prometheus.CounterVec
	pushLatency *prometheus.HistogramVec
	acks        *prometheus.CounterVec
	nacks       *prometheus.CounterVec
	stalled     prometheus.Counter
}

// newMetrics registers the metrics with reg; a nil reg leaves them
// unregistered (promauto's behaviour), which tests use.
func newMetrics(reg prometheus.Registerer) *metrics {
	f := promauto.With(reg)
	m := &metrics{
		connected: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "glassmesh_xds_connected_proxies",
			Help: "Proxies (distinct node ids) with at least one open xDS stream, by flavour (envoy|proxyless).",
		}, []string{"flavour"}),
		pushes: f.NewCounterVec(prometheus.CounterOpts{
			Name: "glassmesh_xds_pushes_total",
			Help: "xDS responses sent, by resource type.",
		}, []string{"type"}),
		pushLatency: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "glassmesh_xds_push_latency_seconds",
			Help:    "Time from a config update to each response it caused being sent, by resource type.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"type"}),
		acks: f.NewCounterVec(prometheus.CounterOpts{
			Name: "glassmesh_xds_acks_total",
			Help: "Responses acknowledged by proxies, by resource type.",
		}, []string{"type"}),
		nacks: f.NewCounterVec(prometheus.CounterOpts{
			Name: "glassmesh_xds_nacks_total",
			Help: "Responses rejected by proxies, by resource type.",
		}, []string{"type"}),
		stalled: f.NewCounter(prometheus.CounterOpts{
			Name: "glassmesh_xds_stalled_streams_total",
			Help: "Streams cancelled because sending one response took longer than the send timeout.",
		}),
	}
	// Every series exists from the start, so dashboards and alerts see 0,
	// not "no data", before the first proxy connects.
	for _, fl := range []string{FlavourEnvoy, FlavourProxyless} {
		m.connected.WithLabelValues(fl)
	}
	for _, t := range []string{resource.ListenerType, resource.RouteType, resource.ClusterType, resource.EndpointType} {
		l := typeLabel(t)
		m.pushes.WithLabelValues(l)
		m.pushLatency.WithLabelValues(l)
		m.acks.WithLabelValues(l)
		m.nacks.WithLabelValues(l)
	}
	return m
}

// typeLabel gives the short label value for a type URL, so dashboards read
// "rds" instead of the full URL; unknown types keep their URL.
func typeLabel(typeURL string) string {
	switch typeURL {
	case resource.ListenerType:
		return "lds"
	case resource.RouteType:
		return "rds"
	case resource.ClusterType:
		return "cds"
	case resource.EndpointType:
		return "eds"
	case resource.SecretType:
		return "sds"
	default:
		return typeURL
	}
}
