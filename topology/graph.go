package topology

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/glassmesh/glassmesh/telemetry/metrics"
	"github.com/glassmesh/glassmesh/tracing/store"
)

// Defaults of Config; a zero field means its default.
const (
	DefaultBucketWidth        = 10 * time.Second
	DefaultMaxWindow          = time.Hour
	DefaultMaxSeriesPerBucket = 200_000
	DefaultRefresh            = 5 * time.Second
	DefaultStreamQueue        = 4
)

// Config configures a Graph. Zero fields take the defaults; negative ones
// are errors.
type Config struct {
	// BucketWidth is the time resolution of the in-memory aggregates.
	BucketWidth time.Duration
	// MaxWindow is how much history the in-memory aggregates keep; longer
	// or older queries go to the Querier.
	MaxWindow time.Duration
	// MaxSeriesPerBucket bounds memory: new series of a full bucket are
	// dropped and counted.
	MaxSeriesPerBucket int
	// PreferQuerier sends every query to the Querier (set when
	// --metrics.query-url names an external store).
	PreferQuerier bool
	// Health holds the error-rate tolerances; nil means Kiali's defaults.
	Health []Tolerance
	// StreamQueue is how many graphs may wait for one stream client before
	// it is dropped as too slow.
	StreamQueue int
	// MinRefresh is the lowest refresh a stream may ask for [1s]; tests
	// lower it.
	MinRefresh time.Duration
}

// Validate reports settings that cannot work, naming the key.
func (c Config) Validate() error {
	var errs []error
	if c.BucketWidth < 0 {
		errs = append(errs, fmt.Errorf("topology.bucket-width: must be > 0, got %s", c.BucketWidth))
	}
	if c.MaxWindow < 0 {
		errs = append(errs, fmt.Errorf("topology.max-window: must be > 0, got %s", c.MaxWindow))
	}
	if c.MaxSeriesPerBucket < 0 {
		errs = append(errs, fmt.Errorf("topology.max-series-per-bucket: must be > 0, got %d", c.MaxSeriesPerBucket))
	}
	if c.StreamQueue < 0 {
		errs = append(errs, fmt.Errorf("topology.stream-queue: must be > 0, got %d", c.StreamQueue))
	}
	if c.MinRefresh < 0 {
		errs = append(errs, fmt.Errorf("topology.min-refresh: must be >= 0, got %s", c.MinRefresh))
	}
	for i, t := range c.Health {
		if err := t.compile(); err != nil {
			errs = append(errs, fmt.Errorf("topology.health[%d]: %w", i, err))
		}
	}
	return errors.Join(errs...)
}

func (c Config) withDefaults() Config {
	if c.BucketWidth == 0 {
		c.BucketWidth = DefaultBucketWidth
	}
	if c.MaxWindow == 0 {
		c.MaxWindow = DefaultMaxWindow
	}
	if c.MaxSeriesPerBucket == 0 {
		c.MaxSeriesPerBucket = DefaultMaxSeriesPerBucket
	}
	if c.Health == nil {
		c.Health = DefaultTolerances()
	}
	if c.StreamQueue == 0 {
		c.StreamQueue = DefaultStreamQueue
	}
	if c.MinRefresh == 0 {
		c.MinRefresh = time.Second
	}
	return c
}

// Graph is the live service graph. It consumes the pipeline's requests
// into per-bucket edge aggregates (a metrics.RequestConsumer) and builds
// Kiali graphs from them, from the Querier when the window is not in
// memory, and from the span store's dependencies. Safe for concurrent use.
type Graph struct {
	cfg     Config
	q       Querier
	spans   store.Reader
	logger  *slog.Logger
	m       *graphMetrics
	health  []Tolerance
	started time.Time
	now     func() time.Time

	mu   sync.Mutex
	ring []bucket
	gen  uint64 // bumped by every accepted batch; lets caches skip work

	cache   resultCache
	streams streams
}

// bucket is the aggregates of one BucketWidth of time.
type bucket struct {
	start int64 // unix nanos, aligned; 0 = empty
	m     map[rowKey]*rowVals
}

// New builds a Graph. q (the PromQL fallback) and spans may be nil; a nil
// logger discards; a nil reg leaves the self metrics unregistered.
func New(cfg Config, q Querier, spans store.Reader, logger *slog.Logger, reg prometheus.Registerer) (*Graph, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	m, err := newGraphMetrics(reg)
	if err != nil {
		return nil, err
	}
	health := make([]Tolerance, len(cfg.Health))
	for i, t := range cfg.Health {
		_ = t.compile()
		health[i] = t
	}
	n := int(cfg.MaxWindow/cfg.BucketWidth) + 2
	g := &Graph{
		cfg: cfg, q: q, spans: spans, logger: logger, m: m, health: health,
		now: time.Now, ring: make([]bucket, n),
	}
	g.started = g.now()
	return g, nil
}

// ConsumeRequests adds the requests the graph counts (the count-once rule)
// to their time buckets. Requests older than MaxWindow are ignored; new
// series in a full bucket are dropped and counted. It never returns
// ErrOverloaded.
func (g *Graph) ConsumeRequests(ctx context.Context, reqs []metrics.Request) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	now := g.now().UnixNano()
	w := int64(g.cfg.BucketWidth)
	oldest := now - int64(g.cfg.MaxWindow) - w
	dropped := 0
	g.mu.Lock()
	defer g.mu.Unlock()
	for i := range reqs {
		r := &reqs[i]
		if !counted(r) {
			continue
		}
		t := now
		if !r.Time.IsZero() {
			t = min(r.Time.UnixNano(), now)
		}
		if t < oldest {
			continue
		}
		start := t - t%w
		b := &g.ring[int((start/w)%int64(len(g.ring)))]
		if b.start != start {
			b.start, b.m = start, make(map[rowKey]*rowVals, len(b.m))
		}
		k := keyOf(r)
		v := b.m[k]
		if v == nil {
			if len(b.m) >= g.cfg.MaxSeriesPerBucket {
				dropped++
				continue
			}
			v = new(rowVals)
			b.m[k] = v
		}
		rv := valsOf(r)
		v.add(&rv)
	}
	g.gen++
	if dropped > 0 {
		g.m.dropped.Add(float64(dropped))
	}
	return nil
}

// memoryCovers reports whether the in-memory buckets hold [start, end].
func (g *Graph) memoryCovers(start, end time.Time) bool {
	now := g.now()
	return !start.Before(g.started.Add(-g.cfg.BucketWidth)) &&
		!start.Before(now.Add(-g.cfg.MaxWindow)) && !end.After(now.Add(g.cfg.BucketWidth))
}

// memoryRows sums the buckets starting in [end-d, end] into rows of
// per-second rates over d. idle also returns the keys of the older
// buckets still held (for idle nodes).
func (g *Graph) memoryRows(end time.Time, d time.Duration, idle bool) (rows []row, old []rowKey) {
	w := int64(g.cfg.BucketWidth)
	hi := end.UnixNano()
	lo := hi - int64(d)
	acc := make(map[rowKey]*rowVals)
	var olds map[rowKey]struct{}
	if idle {
		olds = make(map[rowKey]struct{})
	}
	g.mu.Lock()
	for i := range g.ring {
		b := &g.ring[i]
		if b.start == 0 || b.start > hi {
			continue
		}
		if b.start+w <= lo {
			if idle {
				for k := range b.m {
					olds[k] = struct{}{}
				}
			}
			continue
		}
		for k, v := range b.m {
			a := acc[k]
			if a == nil {
				a = new(rowVals)
				acc[k] = a
			}
			a.add(v)
		}
	}
	g.mu.Unlock()
	rows = make([]row, 0, len(acc))
	f := 1 / d.Seconds()
	for k, v := range acc {
		v.scale(f)
		rows = append(rows, row{key: k, val: *v})
	}
	for k := range olds {
		if acc[k] == nil {
			old = append(old, k)
		}
	}
	return rows, old
}

// generation is a counter that changes whenever requests were added.
func (g *Graph) generation() uint64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.gen
}
