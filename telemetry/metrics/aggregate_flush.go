package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"

	"github.com/glassmesh/glassmesh/telemetry/record"
)

// flushBatch is how many label sets a flush appends per shard lock hold,
// bounding how long ConsumeRequests can wait behind a flush.
const flushBatch = 16

// finalFlushTimeout bounds the flush Run makes after its context ended.
const finalFlushTimeout = 10 * time.Second

// Run flushes every Interval until ctx ends, then flushes once more and
// returns. A failed periodic flush is logged and counted, and the next one
// writes the same (cumulative) values; only the final flush's error is
// returned. Stop the receivers feeding the Aggregator before cancelling
// ctx, so the final flush holds everything they accepted.
func (a *Aggregator) Run(ctx context.Context) error {
	t := time.NewTicker(a.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			_ = a.Flush(ctx)
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finalFlushTimeout)
			defer cancel()
			if err := a.Flush(fctx); err != nil {
				return fmt.Errorf("metrics: final flush: %w", err)
			}
			return nil
		}
	}
}

// Flush appends the current value of every series, stamped now, in one
// appender and commits it, so everything consumed before the call is
// queryable and survives kill -9 once it returns nil. Run calls it every
// Interval; tests and the pipeline call it to skip the wait.
func (a *Aggregator) Flush(ctx context.Context) error {
	return a.flushAt(ctx, time.Now())
}

// flushAt is Flush with the sample timestamp given.
func (a *Aggregator) flushAt(ctx context.Context, now time.Time) error {
	a.flushMu.Lock()
	defer a.flushMu.Unlock()
	start := time.Now()
	f := flusher{a: a, app: a.st.Appendable().Appender(ctx), t: max(now.UnixMilli(), a.lastFlush+1)}
	for i := range a.shards {
		f.shard(&a.shards[i])
	}
	err := f.app.Commit()
	if err == nil {
		a.lastFlush = f.t
		for _, ls := range f.fresh {
			ls.flushed = true
		}
		a.m.samples.Add(float64(f.samples))
	}
	err = errors.Join(err, f.err)
	a.m.flushDuration.Observe(time.Since(start).Seconds())
	if err != nil {
		a.m.flushErrors.Inc()
		level := slog.LevelWarn
		if record.IsStorageFull(err) {
			// The data dir's guard logs the episode once; the counts stay
			// cumulative in memory and go out with the first flush after it.
			level = slog.LevelDebug
		}
		a.logger.Log(ctx, level, "metrics flush failed", "err", err, "failed_series", f.failed)
		return fmt.Errorf("metrics: flush: %w", err)
	}
	return nil
}

// flusher is the state of one flush.
type flusher struct {
	a       *Aggregator
	app     storage.Appender
	t       int64
	fresh   []*labelSet // first flush of these: mark flushed after commit
	samples int
	failed  int
	err     error // the first append error
}

// shard appends one shard's label sets, flushBatch at a time under its lock.
func (f *flusher) shard(sh *shard) {
	for i := 0; ; i += flushBatch {
		sh.mu.Lock()
		n := len(sh.all)
		for _, ls := range sh.all[min(i, n):min(i+flushBatch, n)] {
			f.labelSet(ls)
		}
		sh.mu.Unlock()
		if i+flushBatch >= n {
			return
		}
	}
}

// labelSet appends every series of ls. A label set never flushed before
// first gets a zero sample one interval back, as Prometheus's created
// timestamp ingestion does, so increase() counts its first requests.
func (f *flusher) labelSet(ls *labelSet) {
	descs := f.a.layouts.descs(ls.tcp)
	fresh := !ls.flushed
	if fresh {
		f.fresh = append(f.fresh, ls)
	}
	var cum float64
	for i, d := range descs {
		v := ls.vals[i]
		if d.le != "" { // buckets are kept per bucket; Prometheus's are cumulative
			if pos := (i - hDuration) % histWidth; pos == 0 {
				cum = 0
			}
			cum += v
			v = cum
		}
		f.append(ls, i, d, v, fresh)
	}
	if ls.ex != nil {
		f.exemplars(ls)
	}
}

// append writes series i of ls. A cached ref avoids building labels; if
// the TSDB no longer knows it, the series is looked up by labels again.
func (f *flusher) append(ls *labelSet, i int, d seriesDesc, v float64, fresh bool) {
	var lset labels.Labels
	if ls.refs[i] == 0 || fresh {
		lset = keyLabels(&f.a.lb, ls.key, d)
	}
	if fresh {
		// Best effort, like Prometheus's: a zero sample that is out of
		// bounds or order is skipped, the real sample is what matters.
		if ref, err := f.app.AppendSTZeroSample(0, lset, f.t, f.t-f.a.zeroOffset); err == nil {
			ls.refs[i] = ref
		}
	}
	ref, err := f.app.Append(ls.refs[i], lset, f.t, v)
	if err != nil && ls.refs[i] != 0 && lset.IsEmpty() {
		lset = keyLabels(&f.a.lb, ls.key, d)
		ref, err = f.app.Append(0, lset, f.t, v)
	}
	if err != nil {
		ls.refs[i] = 0
		f.failed++
		if f.err == nil {
			f.err = fmt.Errorf("append %s: %w", keyLabels(&f.a.lb, ls.key, d), err)
		}
		return
	}
	ls.refs[i] = ref
	f.samples++
}

// exemplars appends the newest exemplar of each duration bucket to its
// _bucket series and forgets them. Rejected exemplars (out of order with
// one already stored) are dropped: they are examples, not data.
func (f *flusher) exemplars(ls *labelSet) {
	for b, s := range ls.ex {
		ref := ls.refs[hDuration+b]
		if s.traceID == "" || ref == 0 {
			continue
		}
		ts := s.ts
		if ts == 0 || ts > f.t {
			ts = f.t
		}
		e := exemplar.Exemplar{Labels: labels.FromStrings(labelTraceID, s.traceID), Value: s.value, Ts: ts, HasTs: true}
		_, _ = f.app.AppendExemplar(ref, labels.EmptyLabels(), e)
	}
	ls.ex = nil
}
