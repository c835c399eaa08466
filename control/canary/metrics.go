package canary

import "github.com/prometheus/client_golang/prometheus"

// metrics are the controller's self metrics (Flagger has the same two
// gauges, so its dashboards translate directly).
type metrics struct {
	weight      *prometheus.GaugeVec
	status      *prometheus.GaugeVec
	decisions   *prometheus.CounterVec
	evaluations prometheus.Counter
	saveErrors  prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		weight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "glassmesh_canary_weight",
			Help: "Weight a canary gives each of its two subsets in its route's last rule.",
		}, []string{"namespace", "name", "subset"}),
		status: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "glassmesh_canary_status",
			Help: "1 for the state a canary is in (progressing, paused, succeeded, rolled-back, aborted), 0 for the others.",
		}, []string{"namespace", "name", "state"}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "glassmesh_canary_decisions_total",
			Help: "Canary decisions, by verdict.",
		}, []string{"namespace", "name", "verdict"}),
		evaluations: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "glassmesh_canary_evaluations_total",
			Help: "Evaluations of running canaries' gates.",
		}),
		saveErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "glassmesh_canary_state_save_errors_total",
			Help: "Failures to save a canary's state to the data dir.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.weight, m.status, m.decisions, m.evaluations, m.saveErrors)
	}
	return m
}

// set publishes a canary's weights and state.
func (m *metrics) set(st *Status) {
	for subset, w := range st.Weights {
		m.weight.WithLabelValues(st.Namespace, st.Name, subset).Set(float64(w))
	}
	for _, s := range States() {
		v := 0.0
		if s == st.State {
			v = 1
		}
		m.status.WithLabelValues(st.Namespace, st.Name, string(s)).Set(v)
	}
}

func (m *metrics) decision(st *Status, v Verdict) {
	m.decisions.WithLabelValues(st.Namespace, st.Name, string(v)).Inc()
}

// forget drops the series of a canary that is gone.
func (m *metrics) forget(st *Status) {
	labels := prometheus.Labels{"namespace": st.Namespace, "name": st.Name}
	m.weight.DeletePartialMatch(labels)
	m.status.DeletePartialMatch(labels)
	m.decisions.DeletePartialMatch(labels)
}
