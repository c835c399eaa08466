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

// Restore adds to the Aggregator the newest stored value of every istio_*
// series written within the lookback, so that after a restart the
// counters continue where they stopped instead of resetting to zero; what
// was counted before the call (while the storage opened) is kept on top.
// Only the newest chunk of each series is decoded. Call it once, before
// Run.
func (a *Aggregator) Restore(ctx context.Context) error { return a.restore(ctx, time.Now()) }

// restored is one label set's stored values, summed into it at the end.
type restored struct {
	sh   *shard
	vals []float64
}

func (a *Aggregator) restore(ctx context.Context, now time.Time) error {
	start := time.Now()
	q, err := a.st.Queryable().ChunkQuerier(now.Add(-a.cfg.RestoreLookback).UnixMilli(), math.MaxInt64)
	if err != nil {
		return fmt.Errorf("metrics: restore: %w", err)
	}
	defer q.Close()
	ss := q.Select(ctx, false, nil, labels.MustNewMatcher(labels.MatchRegexp, labels.MetricName, "istio_.+"))
	var (
		k       seriesKey
		seeded  = map[*labelSet]*restored{}
		order   []*labelSet
		series  int
		skipped [numKinds]int
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
		ls, sh := a.seed1(&k)
		if ls == nil {
			skipped[kindOf(&k)]++
			continue
		}
		r := seeded[ls]
		if r == nil {
			r = &restored{sh: sh, vals: make([]float64, len(ls.vals))}
			seeded[ls] = r
			order = append(order, ls)
		}
		r.vals[pos] = v
		a.lastFlush = max(a.lastFlush, ts)
		series++
	}
	if err := ss.Err(); err != nil {
		return fmt.Errorf("metrics: restore: %w", err)
	}
	for _, ls := range order {
		r := seeded[ls]
		if !ls.tcp {
			decumulate(r.vals)
		}
		r.sh.mu.Lock()
		for i, v := range r.vals {
			ls.vals[i] += v
		}
		ls.flushed = true
		r.sh.mu.Unlock()
	}
	for kind, n := range skipped {
		if n > 0 {
			a.limited(kind, n)
		}
	}
	a.logger.Info("metrics restored from TSDB", "label_sets", len(order), "series", series,
		"lookback", a.cfg.RestoreLookback, "took", time.Since(start))
	return nil
}

// seed1 returns the label set of k and its shard, creating it (within
// the series limit) if needed.
func (a *Aggregator) seed1(k *seriesKey) (*labelSet, *shard) {
	h := k.hash(a.seed)
	sh := &a.shards[h&a.mask]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if ls := sh.get(h, k); ls != nil {
		return ls, sh
	}
	return a.newLabelSet(sh, h, k), sh
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
