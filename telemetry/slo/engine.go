package slo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/storage"

	"github.com/glassmesh/glassmesh/control/model"
)

// EngineConfig configures the incremental engine.
type EngineConfig struct {
	// Step is the rollup step and the evaluation round's period [1m].
	Step time.Duration
	// Delay is how long after a step's end it is counted, so the
	// aggregator's last flush of the step (--metrics.interval) is in
	// [10s].
	Delay time.Duration
	// MaxCatchUp bounds the gap counted in one step after a restart (the
	// raw series of the gap, as far as they exist) [24h].
	MaxCatchUp time.Duration
}

// Validate checks the config, naming the key.
func (c EngineConfig) Validate() error {
	var errs []error
	if c.Step < 0 || (c.Step > 0 && c.Step < time.Second) {
		errs = append(errs, fmt.Errorf("slo.step: must be at least 1s, got %s", c.Step))
	}
	if c.Delay < 0 || c.MaxCatchUp < 0 {
		errs = append(errs, errors.New("slo.delay, slo.max-catch-up: must not be negative"))
	}
	return errors.Join(errs...)
}

func (c EngineConfig) withDefaults() EngineConfig {
	if c.Step == 0 {
		c.Step = time.Minute
	}
	if c.Delay == 0 {
		c.Delay = 10 * time.Second
	}
	if c.MaxCatchUp == 0 {
		c.MaxCatchUp = 24 * time.Hour
	}
	return c
}

// Engine evaluates SLOs incrementally: every Step it counts each SLO's
// error and total events of that step from the raw request series (a
// few batched queries for all SLOs), adds them to cumulative counters
// stored as TSDB series (EventsMetric), and derives every window's events
// as the difference of two points of those counters. A round therefore
// costs the same for a 5m and a 12-week window, and the counters survive
// a restart like every other series.
type Engine struct {
	cfg    EngineConfig
	query  rules.QueryFunc
	app    storage.Appendable
	hist   history
	logger *slog.Logger

	round   sync.Mutex // serialises Round; guards state, checked
	state   map[string]*cumulative
	checked map[string]bool // SLOs whose stored counters were looked up

	mu      sync.Mutex // guards slos, budgets
	slos    []*model.SLO
	budgets map[string]Budget

	metrics *engineMetrics
}

// cumulative is one SLO's counters as last written.
type cumulative struct {
	errors, total float64
	at            time.Time // of the last point
	since         time.Time // of the first point (the counters' zero)
}

// NewEngine returns an Engine that counts with query (the raw request
// series: the local engine's or the shared store's), writes its rollups
// to app and reads them back from q. It has no SLOs until SetSLOs.
func NewEngine(cfg EngineConfig, query rules.QueryFunc, app storage.Appendable, q storage.Queryable, logger *slog.Logger, reg prometheus.Registerer) (*Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if query == nil || app == nil || q == nil {
		return nil, errors.New("slo engine: query, appendable and queryable are required")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	e := &Engine{cfg: cfg.withDefaults(), query: query, app: app, hist: history{q}, logger: logger,
		state: map[string]*cumulative{}, checked: map[string]bool{}, budgets: map[string]Budget{}}
	e.metrics = newEngineMetrics(e)
	if reg != nil {
		if err := reg.Register(e.metrics); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// Step returns the rollup step in effect.
func (e *Engine) Step() time.Duration { return e.cfg.Step }

// SetSLOs replaces the SLOs the engine evaluates.
func (e *Engine) SetSLOs(slos []*model.SLO) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.slos = slices.Clone(slos)
	keep := map[string]bool{}
	for _, s := range slos {
		keep[ID(s)] = true
	}
	for id := range e.budgets {
		if !keep[id] {
			delete(e.budgets, id)
		}
	}
}

// Budget returns the budget of the SLO with sloth_id id as of the last
// round.
func (e *Engine) Budget(id string) (Budget, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	b, ok := e.budgets[id]
	return b, ok
}

// slo returns the SLO namespace/name in effect.
func (e *Engine) slo(namespace, name string) *model.SLO {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, s := range e.slos {
		if s.Namespace == namespace && s.Name == name {
			return s
		}
	}
	return nil
}

// Run does a round at every step boundary (plus Delay) until ctx ends.
func (e *Engine) Run(ctx context.Context) error {
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	for {
		next := time.Now().Truncate(e.cfg.Step).Add(e.cfg.Step)
		timer.Reset(time.Until(next.Add(e.cfg.Delay)))
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		}
		if err := e.Round(ctx, next); err != nil && ctx.Err() == nil {
			e.logger.Warn("SLO evaluation round failed", "at", next, "err", err)
		}
	}
}

// Round is one evaluation round at t, the end of a step: it counts the
// events since each SLO's last point, writes the counters at t and
// computes every SLO's windows and budget. A round at or before an SLO's
// last point only re-evaluates it.
func (e *Engine) Round(ctx context.Context, t time.Time) error {
	e.round.Lock()
	defer e.round.Unlock()
	start := time.Now()
	e.mu.Lock()
	slos := e.slos
	e.mu.Unlock()
	if err := e.restore(ctx, slos, t); err != nil {
		return fmt.Errorf("reading SLO rollups: %w", err)
	}
	if err := e.roll(ctx, slos, t); err != nil {
		e.metrics.failures.Inc()
		return fmt.Errorf("SLO rollup: %w", err)
	}
	budgets, err := e.evaluate(ctx, slos, t)
	if err != nil {
		e.metrics.failures.Inc()
		return fmt.Errorf("SLO windows: %w", err)
	}
	e.mu.Lock()
	e.budgets = budgets
	e.mu.Unlock()
	e.metrics.duration.Observe(time.Since(start).Seconds())
	return nil
}

// restore loads the stored counters of SLOs not seen since the start, so
// that they continue where the last process left them (after kill -9,
// the last committed step).
func (e *Engine) restore(ctx context.Context, slos []*model.SLO, t time.Time) error {
	ids := map[string]bool{}
	longest := time.Duration(0)
	for _, s := range slos {
		if id := ID(s); !e.checked[id] {
			ids[id] = true
			longest = max(longest, sloWindow(s))
		}
	}
	if len(ids) == 0 {
		return nil
	}
	// The last point: usually within MaxCatchUp; a longer outage needs
	// the whole window read once.
	last, err := e.hist.lastAt(ctx, t, e.cfg.MaxCatchUp, ids)
	if err != nil {
		return err
	}
	missing := map[string]bool{}
	for id := range ids {
		if _, ok := last[seriesKey{id, eventTotal}]; !ok {
			missing[id] = true
		}
	}
	if len(missing) > 0 {
		older, err := e.hist.lastAt(ctx, t, longest+e.cfg.Step, missing)
		if err != nil {
			return err
		}
		for k, p := range older {
			last[k] = p
		}
	}
	first, err := e.hist.firstIn(ctx, t.Add(-longest-e.cfg.Step), t, ids)
	if err != nil {
		return err
	}
	for id := range ids {
		tot, ok := last[seriesKey{id, eventTotal}]
		if ok {
			e.state[id] = &cumulative{errors: last[seriesKey{id, eventError}].v, total: tot.v, at: tot.t,
				since: first[seriesKey{id, eventTotal}].t}
		}
		e.checked[id] = true
	}
	return nil
}
