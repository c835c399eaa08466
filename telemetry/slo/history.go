package slo

import (
	"context"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
)

// point is one sample of a rollup series: a cumulative count at a time.
type point struct {
	t time.Time
	v float64
}

// seriesKey names one rollup series: an SLO's ID and the event kind.
type seriesKey struct{ id, event string }

// history reads the rollup series back from the TSDB. Every read selects
// the series of all SLOs at once over a short time range, so its cost
// depends on the number of SLOs, not on how far back the range lies.
type history struct{ q storage.Queryable }

// scan calls f for every rollup series with a sample in [mint, maxt],
// with an iterator over the series' samples; ids, when not nil, keeps
// only those SLOs.
func (h history) scan(ctx context.Context, mint, maxt time.Time, ids map[string]bool, f func(seriesKey, chunkenc.Iterator)) error {
	q, err := h.q.Querier(mint.UnixMilli(), maxt.UnixMilli())
	if err != nil {
		return err
	}
	defer q.Close()
	ms := []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, labels.MetricName, EventsMetric)}
	if len(ids) == 1 {
		for id := range ids {
			ms = append(ms, labels.MustNewMatcher(labels.MatchEqual, labelID, id))
		}
	}
	hints := &storage.SelectHints{Start: mint.UnixMilli(), End: maxt.UnixMilli()}
	set := q.Select(ctx, false, hints, ms...)
	var it chunkenc.Iterator
	for set.Next() {
		s := set.At()
		k := seriesKey{s.Labels().Get(labelID), s.Labels().Get(eventLabel)}
		if ids != nil && !ids[k.id] {
			continue
		}
		it = s.Iterator(it)
		f(k, it)
	}
	return set.Err()
}

// lastAt returns, per series, the last sample in [t-lookback, t].
func (h history) lastAt(ctx context.Context, t time.Time, lookback time.Duration, ids map[string]bool) (map[seriesKey]point, error) {
	out := map[seriesKey]point{}
	maxt := t.UnixMilli()
	err := h.scan(ctx, t.Add(-lookback), t, ids, func(k seriesKey, it chunkenc.Iterator) {
		var last point
		found := false
		for it.Next() == chunkenc.ValFloat {
			ts, v := it.At()
			if ts > maxt {
				break
			}
			last, found = point{time.UnixMilli(ts), v}, true
		}
		if found {
			out[k] = last
		}
	})
	return out, err
}

// firstIn returns, per series, the first sample in [mint, maxt]: reading
// one sample of each series, whatever the range.
func (h history) firstIn(ctx context.Context, mint, maxt time.Time, ids map[string]bool) (map[seriesKey]point, error) {
	out := map[seriesKey]point{}
	lo := mint.UnixMilli()
	err := h.scan(ctx, mint, maxt, ids, func(k seriesKey, it chunkenc.Iterator) {
		if it.Seek(lo) == chunkenc.ValFloat {
			ts, v := it.At()
			if ts <= maxt.UnixMilli() {
				out[k] = point{time.UnixMilli(ts), v}
			}
		}
	})
	return out, err
}

// samples returns every sample of one SLO's rollup series in [mint, maxt].
func (h history) samples(ctx context.Context, id string, mint, maxt time.Time) (map[string][]point, error) {
	out := map[string][]point{}
	err := h.scan(ctx, mint, maxt, map[string]bool{id: true}, func(k seriesKey, it chunkenc.Iterator) {
		for it.Next() == chunkenc.ValFloat {
			ts, v := it.At()
			if ts > maxt.UnixMilli() {
				break
			}
			if ts >= mint.UnixMilli() {
				out[k.event] = append(out[k.event], point{time.UnixMilli(ts), v})
			}
		}
	})
	return out, err
}
