package slo

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/prometheus/prometheus/storage"

	"github.com/glassmesh/glassmesh/control/model"
)

// roll counts each SLO's events since its last point and writes its
// counters at t, all in one commit: a round is either stored whole or
// not at all (then the next round counts the same span again). An SLO
// gets its series when its first events arrive, starting with a zero
// point at the start of that step, so a window reaching further back
// than its rollups starts from zero.
func (e *Engine) roll(ctx context.Context, slos []*model.SLO, t time.Time) error {
	spans := map[time.Time][]*model.SLO{} // by the start of the span each needs counted
	for _, s := range slos {
		from := t.Add(-e.cfg.Step)
		if st := e.state[ID(s)]; st != nil {
			if !t.After(st.at) {
				continue
			}
			// After a restart the gap is counted in one step (its events
			// land on this point), as far back as MaxCatchUp.
			from = st.at
			if t.Sub(from) > e.cfg.MaxCatchUp {
				from = t.Add(-e.cfg.MaxCatchUp)
			}
		}
		spans[from] = append(spans[from], s)
	}
	if len(spans) == 0 {
		return nil
	}
	app := e.app.Appender(ctx)
	next := map[string]*cumulative{}
	for from, group := range spans {
		c, err := stepCounts(ctx, e.query, group, t, t.Sub(from))
		if err != nil {
			_ = app.Rollback()
			return err
		}
		for _, s := range group {
			n, err := e.add(app, s, c[ID(s)], from, t)
			if err != nil {
				_ = app.Rollback()
				return err
			}
			if n != nil {
				next[ID(s)] = n
			}
		}
	}
	if err := app.Commit(); err != nil {
		return err
	}
	for id, n := range next {
		e.state[id] = n
	}
	return nil
}

// add appends s's counters at t grown by c; nil when s has no series and
// c no events.
func (e *Engine) add(app storage.Appender, s *model.SLO, c counts, from, t time.Time) (*cumulative, error) {
	st := e.state[ID(s)]
	if st == nil {
		if c.total <= 0 {
			return nil, nil
		}
		st = &cumulative{at: from, since: from}
		if err := appendPoint(app, s, st); err != nil {
			return nil, err
		}
	}
	n := &cumulative{errors: st.errors + max(c.errors, 0), total: st.total + max(c.total, 0), at: t, since: st.since}
	return n, appendPoint(app, s, n)
}

func appendPoint(app storage.Appender, s *model.SLO, c *cumulative) error {
	if _, err := app.Append(0, eventLabels(s, eventError), c.at.UnixMilli(), c.errors); err != nil {
		return err
	}
	_, err := app.Append(0, eventLabels(s, eventTotal), c.at.UnixMilli(), c.total)
	return err
}

// evaluate computes every SLO's windows at t from its counters: the
// events of a window are the counters now minus the counters at its
// start, read with one short TSDB select per distinct window for all
// SLOs.
func (e *Engine) evaluate(ctx context.Context, slos []*model.SLO, t time.Time) (map[string]Budget, error) {
	byWindow := map[time.Duration]map[string]bool{} // window -> SLOs that need it (nil: all)
	for _, w := range windows {
		byWindow[w] = nil
	}
	for _, s := range slos {
		if p := sloWindow(s); !slices.Contains(windows[:], p) {
			if byWindow[p] == nil {
				byWindow[p] = map[string]bool{}
			}
			byWindow[p][ID(s)] = true
		}
	}
	at := make(map[time.Duration]map[seriesKey]point, len(byWindow))
	for w, ids := range byWindow {
		p, err := e.hist.lastAt(ctx, t.Add(-w), 2*e.cfg.Step, ids)
		if err != nil {
			return nil, err
		}
		at[w] = p
	}
	out := make(map[string]Budget, len(slos))
	for _, s := range slos {
		id := ID(s)
		st := e.state[id]
		if st == nil {
			out[id] = budgetOf(s, nil, time.Time{}, t)
			continue
		}
		wc := windowCounts{}
		for _, w := range append(windows[:], sloWindow(s)) {
			base, err := e.baseline(ctx, id, st, at[w], t.Add(-w))
			if err != nil {
				return nil, err
			}
			wc[promDuration(w)] = counts{errors: st.errors - base.errors, total: st.total - base.total}
		}
		out[id] = budgetOf(s, wc, st.since, t)
	}
	return out, nil
}

// baseline is an SLO's counters at x, a window's start: zero before its
// first point (the window reaches past the rollups' history), else the
// last point at or before x, which after an outage may lie further back
// than the usual lookback.
func (e *Engine) baseline(ctx context.Context, id string, st *cumulative, found map[seriesKey]point, x time.Time) (counts, error) {
	if x.Before(st.since) {
		return counts{}, nil
	}
	tot, ok := found[seriesKey{id, eventTotal}]
	errs := found[seriesKey{id, eventError}]
	if !ok {
		older, err := e.hist.lastAt(ctx, x, x.Sub(st.since), map[string]bool{id: true})
		if err != nil {
			return counts{}, err
		}
		if tot, ok = older[seriesKey{id, eventTotal}]; !ok {
			return counts{}, errors.New("SLO " + id + ": no rollup point between its first and " + x.Format(time.RFC3339))
		}
		errs = older[seriesKey{id, eventError}]
	}
	return counts{errors: errs.v, total: tot.v}, nil
}
