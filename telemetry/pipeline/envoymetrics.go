package pipeline

import (
	"context"
	"errors"
	"fmt"
	"math"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"

	"github.com/glassmesh/glassmesh/telemetry/record"
)

// Labels every Envoy stat gets, naming the proxy that reported it (as
// Prometheus's Kubernetes pod discovery would).
const (
	labelNamespace = "namespace"
	labelWorkload  = "workload"
	labelPod       = "pod"
)

// envoyPrefix namespaces Envoy stats, as Envoy's own Prometheus endpoint
// (and so Istio) does.
const envoyPrefix = "envoy_"

// ConsumeEnvoyMetrics stores the stats node reported as envoy_* series
// labelled with the node's namespace, workload and pod, the way Prometheus
// would store them scraped from Envoy's /stats/prometheus: counters, gauges
// and untyped as one series; histograms as _bucket{le}, _sum, _count;
// summaries as {quantile}, _sum, _count. Samples the storage rejects as out
// of order or duplicate are counted and skipped (as a scrape does); any
// other error rolls the batch back. It commits before returning.
func (p *Pipeline) ConsumeEnvoyMetrics(ctx context.Context, node *corev3.Node, families []*dto.MetricFamily) error {
	if p.cfg.Appendable == nil {
		return ErrNoStorage
	}
	rep := reporterOf(p.index(), node)
	w := envoyWriter{
		app:  p.cfg.Appendable.Appender(ctx),
		base: [3]string{rep.namespace, rep.peer.Workload, rep.instance},
		now:  p.now().UnixMilli(),
		m:    p.m,
	}
	if w.base[0] == "" {
		w.base[0] = record.Unknown
	}
	for _, f := range families {
		if err := w.family(f); err != nil {
			_ = w.app.Rollback()
			return fmt.Errorf("pipeline: storing Envoy stats of %s: %w", rep.id, err)
		}
	}
	if err := w.app.Commit(); err != nil {
		return fmt.Errorf("pipeline: committing Envoy stats of %s: %w", rep.id, err)
	}
	p.m.envoySamples.Add(float64(w.appended))
	return nil
}

// envoyWriter appends one batch of Envoy stats.
type envoyWriter struct {
	app      storage.Appender
	base     [3]string // namespace, workload, pod
	now      int64
	m        *selfMetrics
	b        labels.ScratchBuilder
	appended int
}

func (w *envoyWriter) family(f *dto.MetricFamily) error {
	name := envoyMetricName(f.GetName())
	for _, m := range f.GetMetric() {
		t := m.GetTimestampMs()
		if t == 0 {
			t = w.now
		}
		var err error
		switch f.GetType() {
		case dto.MetricType_COUNTER:
			err = w.append(name, m, "", "", t, m.GetCounter().GetValue())
		case dto.MetricType_GAUGE:
			err = w.append(name, m, "", "", t, m.GetGauge().GetValue())
		case dto.MetricType_UNTYPED:
			err = w.append(name, m, "", "", t, m.GetUntyped().GetValue())
		case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
			err = w.histogram(name, m, t)
		case dto.MetricType_SUMMARY:
			err = w.summary(name, m, t)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (w *envoyWriter) histogram(name string, m *dto.Metric, t int64) error {
	h := m.GetHistogram()
	count := float64(h.GetSampleCount())
	if h.SampleCountFloat != nil {
		count = h.GetSampleCountFloat()
	}
	sawInf := false
	for _, b := range h.GetBucket() {
		v := float64(b.GetCumulativeCount())
		if b.CumulativeCountFloat != nil {
			v = b.GetCumulativeCountFloat()
		}
		sawInf = sawInf || math.IsInf(b.GetUpperBound(), +1)
		if err := w.append(name+"_bucket", m, labels.BucketLabel, labels.FormatOpenMetricsFloat(b.GetUpperBound()), t, v); err != nil {
			return err
		}
	}
	if !sawInf {
		if err := w.append(name+"_bucket", m, labels.BucketLabel, "+Inf", t, count); err != nil {
			return err
		}
	}
	if err := w.append(name+"_sum", m, "", "", t, h.GetSampleSum()); err != nil {
		return err
	}
	return w.append(name+"_count", m, "", "", t, count)
}

func (w *envoyWriter) summary(name string, m *dto.Metric, t int64) error {
	s := m.GetSummary()
	for _, q := range s.GetQuantile() {
		if err := w.append(name, m, "quantile", labels.FormatOpenMetricsFloat(q.GetQuantile()), t, q.GetValue()); err != nil {
			return err
		}
	}
	if err := w.append(name+"_sum", m, "", "", t, s.GetSampleSum()); err != nil {
		return err
	}
	return w.append(name+"_count", m, "", "", t, float64(s.GetSampleCount()))
}

// append stores one sample of series name{metric labels, extra, node labels}.
func (w *envoyWriter) append(name string, m *dto.Metric, extraName, extraValue string, t int64, v float64) error {
	w.b.Reset()
	w.b.Add(labels.MetricName, name)
	w.b.Add(labelNamespace, w.base[0])
	w.b.Add(labelWorkload, w.base[1])
	w.b.Add(labelPod, w.base[2])
	if extraName != "" {
		w.b.Add(extraName, extraValue)
	}
	for _, lp := range m.GetLabel() {
		ln := sanitizeName(lp.GetName())
		switch ln {
		case "", labels.MetricName, labelNamespace, labelWorkload, labelPod, extraName:
			// Like Prometheus with honor_labels: false, the proxy's own
			// labels win and a clashing stat label is kept as exported_*.
			ln = "exported_" + ln
		}
		if lp.GetValue() != "" {
			w.b.Add(ln, lp.GetValue())
		}
	}
	w.b.Sort()
	_, err := w.app.Append(0, w.b.Labels(), t, v)
	if reason := rejectReason(err); reason != "" {
		w.m.envoyRejected.WithLabelValues(reason).Inc()
		return nil
	}
	if err == nil {
		w.appended++
	}
	return err
}

// rejectReason names a per-sample error a scrape would skip, "" otherwise.
func rejectReason(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, storage.ErrOutOfOrderSample):
		return "out_of_order"
	case errors.Is(err, storage.ErrDuplicateSampleForTimestamp):
		return "duplicate"
	case errors.Is(err, storage.ErrOutOfBounds), errors.Is(err, storage.ErrTooOldSample):
		return "too_old"
	}
	return ""
}

// envoyMetricName is Envoy's Prometheus name for a stat: envoy_ followed by
// the stat name with every character outside [a-zA-Z0-9_] replaced by _.
func envoyMetricName(stat string) string {
	return envoyPrefix + sanitizeName(stat)
}

// sanitizeName replaces every character outside [a-zA-Z0-9_] with _, as
// Envoy's Prometheus formatter does; a leading digit gets a _ in front.
func sanitizeName(s string) string {
	clean := true
	for i := 0; i < len(s); i++ {
		if !nameByte(s[i]) {
			clean = false
			break
		}
	}
	if clean && (s == "" || s[0] < '0' || s[0] > '9') {
		return s
	}
	out := make([]byte, 0, len(s)+1)
	if s[0] >= '0' && s[0] <= '9' {
		out = append(out, '_')
	}
	for i := 0; i < len(s); i++ {
		if nameByte(s[i]) {
			out = append(out, s[i])
		} else {
			out = append(out, '_')
		}
	}
	return string(out)
}

func nameByte(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
}
