package metrics

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/storage"
)

// Engine defaults, Prometheus's own unless said.
const (
	DefaultQueryMaxSamples  = 50_000_000
	DefaultQueryTimeout     = 2 * time.Minute
	DefaultQueryConcurrency = 20
	DefaultLookbackDelta    = 5 * time.Minute
)

// EngineConfig configures the PromQL engine that the HTTP API, the rules
// and in-process readers (SLOs, canary gates) share.
type EngineConfig struct {
	// Dir holds Prometheus's active query log (queries.active), which
	// names the queries that were running when the process died. Required.
	Dir string
	// MaxSamples is the most samples one query may load [50e6].
	MaxSamples int
	// Timeout bounds one query [2m].
	Timeout time.Duration
	// MaxConcurrent queries run at once; more wait for a slot until their
	// context ends [20].
	MaxConcurrent int
	// LookbackDelta is how far back an instant vector looks for a sample [5m].
	LookbackDelta time.Duration
}

func (c EngineConfig) withDefaults() EngineConfig {
	if c.MaxSamples == 0 {
		c.MaxSamples = DefaultQueryMaxSamples
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultQueryTimeout
	}
	if c.MaxConcurrent == 0 {
		c.MaxConcurrent = DefaultQueryConcurrency
	}
	if c.LookbackDelta == 0 {
		c.LookbackDelta = DefaultLookbackDelta
	}
	return c
}

// Validate reports the first setting that cannot work, by key. Zero
// values mean the default.
func (c EngineConfig) Validate() error {
	var errs []error
	if c.Dir == "" {
		errs = append(errs, errors.New("query.dir: must be set"))
	}
	if c.MaxSamples < 0 {
		errs = append(errs, fmt.Errorf("query.max-samples: must be >= 0, got %d", c.MaxSamples))
	}
	if c.Timeout < 0 {
		errs = append(errs, fmt.Errorf("query.timeout: must be >= 0, got %s", c.Timeout))
	}
	if c.MaxConcurrent < 0 {
		errs = append(errs, fmt.Errorf("query.max-concurrency: must be >= 0, got %d", c.MaxConcurrent))
	}
	if c.LookbackDelta < 0 {
		errs = append(errs, fmt.Errorf("query.lookback-delta: must be >= 0, got %s", c.LookbackDelta))
	}
	return errors.Join(errs...)
}

// Engine is Prometheus's PromQL engine with the options cmd/prometheus
// uses. Close it after everything that queries has stopped.
type Engine struct {
	engine        *promql.Engine
	lookbackDelta time.Duration
	timeout       time.Duration
}

// NewEngine builds the engine and its active query tracker.
func NewEngine(cfg EngineConfig, logger *slog.Logger, reg prometheus.Registerer) (*Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	tracker, err := promql.NewActiveQueryTracker(cfg.Dir, cfg.MaxConcurrent, logger)
	if err != nil {
		return nil, fmt.Errorf("query.dir: %w", err)
	}
	eng := promql.NewEngine(promql.EngineOpts{
		Logger:             logger.With("component", "query engine"),
		Reg:                reg,
		MaxSamples:         cfg.MaxSamples,
		Timeout:            cfg.Timeout,
		ActiveQueryTracker: tracker,
		LookbackDelta:      cfg.LookbackDelta,
		// Prometheus itself always enables these since v2.33; Grafana
		// relies on @ and negative offsets in some panels.
		EnableAtModifier:     true,
		EnableNegativeOffset: true,
		EnablePerStepStats:   true,
		// Subqueries without a step use the default global evaluation
		// interval, as Prometheus does with its default config.
		NoStepSubqueryIntervalFn: func(int64) int64 { return time.Minute.Milliseconds() },
	})
	return &Engine{engine: eng, lookbackDelta: cfg.LookbackDelta, timeout: cfg.Timeout}, nil
}

// PromQL returns the engine, for in-process queries.
func (e *Engine) PromQL() *promql.Engine { return e.engine }

// LookbackDelta is how far back an instant vector selector looks.
func (e *Engine) LookbackDelta() time.Duration { return e.lookbackDelta }

// Timeout bounds one query.
func (e *Engine) Timeout() time.Duration { return e.timeout }

// QueryFunc evaluates instant queries against q as the rules manager
// does (a scalar result becomes a one-sample vector), for in-process
// readers such as SLO evaluation and canary gates.
func (e *Engine) QueryFunc(q storage.Queryable) rules.QueryFunc {
	return rules.EngineQueryFunc(e.engine, q)
}

// Close releases the active query log.
func (e *Engine) Close() error { return e.engine.Close() }
