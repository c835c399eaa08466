package topology

import (
	"context"
	"strings"

	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
)

// WatchAppends returns app, noting when Istio series (istio_*) are
// appended through it: metrics another mesh or proxy pushed in by
// remote-write or OTLP (for example an Istio mesh's Prometheus during a
// migration), which the request pipeline never saw. From then on the graph
// reads every window through its PromQL querier, which sees those series
// and the aggregator's alike (the latter one --metrics.interval late).
// cmd hands the metrics receivers the returned appendable.
func (g *Graph) WatchAppends(app storage.AppendableV2) storage.AppendableV2 {
	return watchedAppendable{AppendableV2: app, g: g}
}

type watchedAppendable struct {
	storage.AppendableV2
	g *Graph
}

func (w watchedAppendable) AppenderV2(ctx context.Context) storage.AppenderV2 {
	a := w.AppendableV2.AppenderV2(ctx)
	if w.g.external.Load() {
		return a // seen already: nothing to watch
	}
	wa := &watchedAppender{AppenderV2: a, g: w.g}
	if ex, ok := a.(storage.ExemplarAppenderV2); ok {
		// Remote-write's receiver requires it (the TSDB's appenders have it).
		return &watchedExemplarAppender{watchedAppender: wa, ex: ex}
	}
	return wa
}

type watchedExemplarAppender struct {
	*watchedAppender
	ex storage.ExemplarAppenderV2
}

func (a *watchedExemplarAppender) AppendExemplars(ref storage.SeriesRef, ls labels.Labels, es []exemplar.Exemplar) (storage.SeriesRef, error) {
	return a.ex.AppendExemplars(ref, ls, es)
}

type watchedAppender struct {
	storage.AppenderV2
	g    *Graph
	seen bool // an istio_* sample is in this transaction
}

func (a *watchedAppender) Append(ref storage.SeriesRef, ls labels.Labels, st, t int64, v float64, h *histogram.Histogram,
	fh *histogram.FloatHistogram, opts storage.AOptions) (storage.SeriesRef, error) {
	if !a.seen && strings.HasPrefix(ls.Get(labels.MetricName), "istio_") {
		a.seen = true
	}
	return a.AppenderV2.Append(ref, ls, st, t, v, h, fh, opts)
}

// Commit notes the Istio series once they are stored.
func (a *watchedAppender) Commit() error {
	err := a.AppenderV2.Commit()
	if err == nil && a.seen && !a.g.external.Swap(true) {
		a.g.logger.Info("Istio metrics arrive by remote-write or OTLP: the graph now reads every window through PromQL")
	}
	return err
}
