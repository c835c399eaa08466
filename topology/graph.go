package topology

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/rules"

	"github.com/glassmesh/glassmesh/telemetry/record"
	"github.com/glassmesh/glassmesh/tracing/store"
)

// Defaults of Config; a zero field means its default.
const (
	DefaultBucketWidth = 10 * time.Second
	DefaultMaxWindow   = time.Hour
	DefaultMaxSeries   = 200_000
	DefaultFineWindow  = 10 * time.Minute
	DefaultCoarseWidth = time.Minute
	DefaultRefresh     = 5 * time.Second
	DefaultStreamQueue = 4
)

// Config configures a Graph. Zero fields take the defaults; negative ones
// are errors.
type Config struct {
	// BucketWidth is the time resolution of the in-memory aggregates.
	BucketWidth time.Duration
	// MaxWindow is how much history the in-memory aggregates keep; longer
	// or older queries go to the Querier.
	MaxWindow time.Duration
	// MaxSeries bounds memory: requests of new series beyond it are dropped
	// and counted. Each series holds at most MaxWindow/BucketWidth snapshots
	// of ~130 bytes, fewer once Run thins them.
	MaxSeries int
	// FineWindow is how far back Run keeps BucketWidth resolution; older
	// history is thinned to one snapshot per CoarseWidth.
	FineWindow time.Duration
	// CoarseWidth is the time resolution of history older than FineWindow.
	CoarseWidth time.Duration
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
	// RegistryCluster is the cluster label of the mesh registry's
	// services and workloads (see SetMesh), as the pipeline writes it
	// [DefaultRegistryCluster].
	RegistryCluster string
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
	if c.MaxSeries < 0 {
		errs = append(errs, fmt.Errorf("topology.max-series: must be > 0, got %d", c.MaxSeries))
	}
	if c.FineWindow < 0 || c.CoarseWidth < 0 {
		errs = append(errs, fmt.Errorf("topology.fine-window, topology.coarse-width: must be > 0, got %s, %s", c.FineWindow, c.CoarseWidth))
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
	if c.MaxSeries == 0 {
		c.MaxSeries = DefaultMaxSeries
	}
	if c.FineWindow == 0 {
		c.FineWindow = DefaultFineWindow
	}
	if c.CoarseWidth == 0 {
		c.CoarseWidth = DefaultCoarseWidth
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
	if c.RegistryCluster == "" {
		c.RegistryCluster = DefaultRegistryCluster
	}
	return c
}

// Graph is the live service graph. It consumes the pipeline's requests
// into per-bucket edge aggregates (a record.RequestConsumer) and builds
// Kiali graphs from them, from the Querier when the window is not in
// memory, and from the span store's dependencies. Safe for concurrent use.
type Graph struct {
	cfg     Config
	q       rules.QueryFunc
	spans   store.Reader
	logger  *slog.Logger
	m       *graphMetrics
	health  []Tolerance
	started time.Time
	now     func() time.Time

	// external turns true when Istio series arrive by remote-write or
	// OTLP (WatchAppends): from then on every window is read through q.
	external atomic.Bool

	mu     sync.Mutex
	series map[rowKey]*series

	cache    resultCache
	streams  streams
	registry registry
}

// The pipeline fans requests out to the Graph like to any store.
var _ record.RequestConsumer = (*Graph)(nil)

// New builds a Graph. q (the PromQL fallback) and spans may be nil; a nil
// logger discards; a nil reg leaves the self metrics unregistered.
func New(cfg Config, q rules.QueryFunc, spans store.Reader, logger *slog.Logger, reg prometheus.Registerer) (*Graph, error) {
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
	g := &Graph{
		cfg: cfg, q: q, spans: spans, logger: logger, m: m, health: health,
		now: time.Now, series: map[rowKey]*series{},
	}
	g.started = g.now()
	return g, nil
}

// ConsumeRequests adds the requests the graph counts (the count-once rule)
// to their series. Requests older than MaxWindow are ignored; those of new
// series beyond MaxSeries are dropped and counted. It never returns
// ErrOverloaded.
func (g *Graph) ConsumeRequests(ctx context.Context, reqs []record.Request) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	now := g.now().UnixNano()
	w := int64(g.cfg.BucketWidth)
	oldest := (now - int64(g.cfg.MaxWindow)) / w
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
		b := t / w
		if b < oldest {
			continue
		}
		k := keyOf(r)
		s := g.series[k]
		if s == nil {
			if len(g.series) >= g.cfg.MaxSeries {
				dropped++
				continue
			}
			s = &series{}
			g.series[k] = s
		}
		s.record(r, b, oldest)
	}
	if dropped > 0 {
		g.m.dropped.Add(float64(dropped))
	}
	return nil
}

// Run thins the in-memory history every BucketWidth (see FineWindow)
// until ctx ends. Without it memory is still bounded, by MaxSeries and
// MaxWindow/BucketWidth snapshots per series.
func (g *Graph) Run(ctx context.Context) error {
	t := time.NewTicker(g.cfg.BucketWidth)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			g.thin()
		}
	}
}

// thin drops history older than MaxWindow and coarsens what is older than
// FineWindow; series left without history are forgotten.
func (g *Graph) thin() {
	now := g.now().UnixNano()
	w := int64(g.cfg.BucketWidth)
	oldest := (now - int64(g.cfg.MaxWindow)) / w
	fineFrom := (now - int64(g.cfg.FineWindow)) / w
	coarse := max(int64(g.cfg.CoarseWidth)/w, 1)
	g.mu.Lock()
	defer g.mu.Unlock()
	for k, s := range g.series {
		if s.thin(oldest, fineFrom, coarse) {
			delete(g.series, k)
		}
	}
}

// memoryCovers reports whether the in-memory history holds [start, end].
func (g *Graph) memoryCovers(start, end time.Time) bool {
	now := g.now()
	return !start.Before(g.started.Add(-g.cfg.BucketWidth)) &&
		!start.Before(now.Add(-g.cfg.MaxWindow)) && !end.After(now.Add(g.cfg.BucketWidth))
}

// memoryRows is every series' traffic in the buckets overlapping [end-d,
// end] as per-second rates over d. With idle it also returns the keys of
// series that had traffic before the window but none in it.
func (g *Graph) memoryRows(end time.Time, d time.Duration, idle bool) (rows []row, old []rowKey) {
	w := int64(g.cfg.BucketWidth)
	hi := end.UnixNano() / w
	lo := (end.UnixNano() - int64(d)) / w
	secs := d.Seconds()
	g.mu.Lock()
	defer g.mu.Unlock()
	rows = make([]row, 0, len(g.series))
	for k, s := range g.series {
		if len(s.snaps) == 0 || s.snaps[len(s.snaps)-1].b < lo {
			if idle && len(s.snaps) > 0 {
				old = append(old, k)
			}
			continue
		}
		before := s.at(lo)
		after := s.at(hi + 1)
		if after.Requests == before.Requests && after.TCPSent == before.TCPSent && after.TCPRecv == before.TCPRecv {
			continue
		}
		rows = append(rows, row{key: k, val: after.rates(before, secs)})
	}
	return rows, old
}
