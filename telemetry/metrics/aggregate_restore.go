package metrics

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
)

// restore seeds the Aggregator with the newest stored value of every
// istio_* series written within the lookback, so that after a restart the
// counters continue where they stopped instead of resetting to zero. Only
// the newest chunk of each series is decoded.
func (a *Aggregator) restore(ctx context.Context, now time.Time) error {
	start := time.Now()
	q, err := a.st.Queryable().ChunkQuerier(now.Add(-a.cfg.RestoreLookback).UnixMilli(), math.MaxInt64)
	if err != nil {
		return fmt.Errorf("metrics: restore: %w", err)
	}
	defer q.Close()
	ss := q.Select(ctx, false, nil, labels.MustNewMatcher(labels.MatchRegexp, labels.MetricName, "istio_.+"))
	var (
		k        seriesKey
		restored []*labelSet
		series   int
		skipped  [numKinds]int
	)
	for ss.Next() {
		s := ss.At()
		pos, ok := a.layouts.keyFromLabels(s.Labels(), &k)
		if !ok {
			continue
		}
		ts, v, ok := lastSample(s.Iterator(nil))
		if !ok {
			continue
		}
		ls, isNew := a.seed1(&k)
		if ls == nil {
			skipped[kindOf(&k)]++
			continue
		}
		if isNew {
			restored = append(restored, ls)
		}
		ls.vals[pos] = v
		a.lastFlush = max(a.lastFlush, ts)
		series++
	}
	if err := ss.Err(); err != nil {
		return fmt.Errorf("metrics: restore: %w", err)
	}
	for _, ls := range restored {
		ls.flushed = true
		if !ls.tcp {
			decumulate(ls.vals)
		}
	}
	for kind, n := range skipped {
		if n > 0 {
			a.limited(kind, n)
		}
	}
	a.logger.Info("metrics restored from TSDB", "label_sets", len(restored), "series", series,
		"lookback", a.cfg.RestoreLookback, "took", time.Since(start))
	return nil
}

// seed1 returns the label set of k, creating it (within the series limit)
// if needed; isNew reports a creation.
func (a *Aggregator) seed1(k *seriesKey) (ls *labelSet, isNew bool) {
	h := k.hash(a.seed)
	sh := &a.shards[h&a.mask]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if ls := sh.get(h, k); ls != nil {
		return ls, false
	}
	ls = a.newLabelSet(sh, h, k)
	return ls, ls != nil
}

// lastSample returns the newest float sample of a series from its chunks.
// The chunk querier yields a series' chunks in time order, so only the
// last one is decoded.
func lastSample(it chunks.Iterator) (ts int64, v float64, ok bool) {
	var last chunkenc.Chunk
	for it.Next() {
		last = it.At().Chunk
	}
	if it.Err() != nil || last == nil {
		return 0, 0, false
	}
	ci := last.Iterator(nil)
	for ci.Next() == chunkenc.ValFloat {
		ts, v = ci.At()
		ok = true
	}
	if math.IsNaN(v) {
		return 0, 0, false
	}
	return ts, v, ok
}

// decumulate turns restored cumulative bucket counts back into per-bucket
// counts, clamping to keep every bucket >= 0.
func decumulate(vals []float64) {
	for _, base := range []int{hDuration, hRequestBytes, hResponseBytes} {
		prev := 0.0
		for i := base; i < base+numBuckets; i++ {
			c := max(vals[i], prev)
			vals[i], prev = c-prev, c
		}
	}
}
