// Package diskspace keeps the stores from writing into a full data
// directory. A Guard tells writers whether the data dir's filesystem has
// room (more than a reserve left free), and turns a write that failed for
// lack of space (ENOSPC, EDQUOT) into the disk-full error receivers answer
// RESOURCE_EXHAUSTED / 507 for (record.StorageFull). It logs once when an
// episode starts and once when it ends, and reopens on its own as soon as
// the filesystem has room again: nothing needs a restart.
//
// The reserve matters as much as the refusal: writes are refused while
// the reserve is still free, so the stores' background work (cutting
// blocks, compaction, the TSDB's own WAL records) has room to finish
// cleanly instead of failing half way. It imports only the telemetry
// record leaf, so every store may use it.
package diskspace

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/glassmesh/glassmesh/telemetry/record"
)

// Defaults of Config.
const (
	// DefaultMinFree is the space kept free for the stores' own work.
	DefaultMinFree = 256 << 20
	// DefaultRetryAfter is what refused clients are told to wait.
	DefaultRetryAfter = 5 * time.Second
	// DefaultPollInterval is how often Run looks at the filesystem.
	DefaultPollInterval = time.Second
)

// Config configures a Guard. Zero durations take the defaults.
type Config struct {
	// Dir is the data directory; its filesystem is the one watched.
	Dir string
	// MinFree is the space (bytes) writes leave free (--storage.min-free,
	// DefaultMinFree; 0: none): below it they are refused, and they resume
	// once MinFree and a tenth more (at least 1 MiB) are free, so an
	// episode does not flap.
	MinFree int64
	// RetryAfter is suggested to refused clients [5s].
	RetryAfter time.Duration
	// PollInterval is how often Run checks the filesystem, so an episode
	// ends (and the gauge drops) without a write to notice it [1s].
	PollInterval time.Duration
}

// Validate reports a setting that cannot work, naming its key.
func (c Config) Validate() error {
	switch {
	case c.Dir == "":
		return errors.New("data-dir: must not be empty")
	case c.MinFree < 0:
		return fmt.Errorf("storage.min-free: must be >= 0, got %d", c.MinFree)
	case c.RetryAfter < 0:
		return fmt.Errorf("storage.retry-after: must be >= 0, got %s", c.RetryAfter)
	case c.PollInterval < 0:
		return fmt.Errorf("storage.poll-interval: must be >= 0, got %s", c.PollInterval)
	}
	return nil
}

func (c Config) withDefaults() Config {
	c.RetryAfter = cmp.Or(c.RetryAfter, DefaultRetryAfter)
	c.PollInterval = cmp.Or(c.PollInterval, DefaultPollInterval)
	return c
}

// Guard watches the free space of one data directory. Its methods are
// safe for concurrent use; a nil *Guard allows every write and only
// classifies errors.
type Guard struct {
	cfg    Config
	logger *slog.Logger
	statfs func(dir string) (free, size int64, err error)

	full atomic.Bool

	mu      sync.Mutex // orders episode starts and ends
	since   time.Time  // when the current episode started
	holdTo  time.Time  // an episode a failed write started lasts at least until then
	refused int64      // writes refused in the current episode

	gauge    prometheus.Gauge
	freeG    prometheus.Gauge
	episodes prometheus.Counter
}

// New builds a Guard over cfg.Dir, registering its metrics with reg (nil:
// not registered).
func New(cfg Config, logger *slog.Logger, reg prometheus.Registerer) (*Guard, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	g := &Guard{
		cfg: cfg.withDefaults(), logger: logger, statfs: statfs,
		gauge: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "glassmesh_storage_full",
			Help: "1 while the data dir's filesystem has less than --storage.min-free free (or a write failed for lack of space) and ingest is refused with RESOURCE_EXHAUSTED / 507.",
		}),
		freeG: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "glassmesh_storage_free_bytes",
			Help: "Free space of the data dir's filesystem, as last checked.",
		}),
		episodes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "glassmesh_storage_full_episodes_total",
			Help: "Times the data dir became full and ingest started being refused.",
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{g.gauge, g.freeG, g.episodes} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("diskspace: registering metrics: %w", err)
			}
		}
	}
	return g, nil
}

// Check returns nil when a write may go ahead, or a *record.StorageFull
// saying how full the data dir is. It looks at the filesystem each time
// (a statfs, about a microsecond), so it notices space coming back at
// the first write that asks.
func (g *Guard) Check() error {
	if g == nil {
		return nil
	}
	free, size, err := g.statfs(g.cfg.Dir)
	if err != nil {
		return nil // cannot tell: let the write try, and Report what it gets
	}
	g.freeG.Set(float64(free))
	if g.full.Load() {
		if free >= g.resumeAt() && g.leave(free) {
			return nil
		}
		return g.refuse(free, size, nil)
	}
	if free < g.cfg.MinFree {
		return g.refuse(free, size, nil)
	}
	return nil
}

// Report classifies a write error: when err says the disk is full
// (record.IsStorageFull) it starts an episode (writes are refused until
// the reserve is free again) and returns err as a *record.StorageFull;
// any other error is returned as it is.
func (g *Guard) Report(err error) error {
	if err == nil || !record.IsStorageFull(err) {
		return err
	}
	var sf *record.StorageFull
	if errors.As(err, &sf) {
		return err // already classified, by a Check or an inner Report
	}
	if g == nil {
		return &record.StorageFull{What: err.Error(), RetryAfter: DefaultRetryAfter, Err: err}
	}
	free, size, serr := g.statfs(g.cfg.Dir)
	if serr != nil {
		free, size = -1, -1
	}
	return g.refuse(free, size, err)
}

// Full reports whether writes are being refused.
func (g *Guard) Full() bool { return g != nil && g.full.Load() }

// RetryAfter is what refused clients are told to wait.
func (g *Guard) RetryAfter() time.Duration {
	if g == nil {
		return DefaultRetryAfter
	}
	return g.cfg.RetryAfter
}

// Run checks the filesystem every PollInterval until ctx ends, so the
// gauge and the end of an episode do not wait for a write.
func (g *Guard) Run(ctx context.Context) error {
	t := time.NewTicker(g.cfg.PollInterval)
	defer t.Stop()
	for {
		_ = g.Check()
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// resumeAt is the free space at which a full data dir takes writes again.
func (g *Guard) resumeAt() int64 {
	return g.cfg.MinFree + max(g.cfg.MinFree/10, 1<<20)
}

// refuse counts a refused write, starting an episode if none is on, and
// returns its error. free and size are -1 when unknown.
func (g *Guard) refuse(free, size int64, cause error) error {
	g.mu.Lock()
	if !g.full.Load() {
		g.full.Store(true)
		g.since, g.refused = time.Now(), 0
		g.holdTo = time.Time{}
		if cause != nil {
			// statfs may not see what failed the write (a quota, a reserve
			// for root): hold the episode for a poll, so writes are not let
			// through to fail again at once.
			g.holdTo = g.since.Add(g.cfg.PollInterval)
		}
		g.gauge.Set(1)
		g.episodes.Inc()
		attrs := []any{"dir", g.cfg.Dir, "freeBytes", free, "sizeBytes", size, "minFreeBytes", g.cfg.MinFree, "resumeAtBytes", g.resumeAt()}
		if cause != nil {
			attrs = append(attrs, "err", cause)
		}
		g.logger.Warn("data dir full: refusing ingest (RESOURCE_EXHAUSTED / 507) until space returns", attrs...)
	}
	g.refused++
	g.mu.Unlock()
	what := fmt.Sprintf("%s has %s free of %s, below the %s kept free", g.cfg.Dir, bytesString(free), bytesString(size), bytesString(g.cfg.MinFree))
	if cause != nil {
		what = fmt.Sprintf("%s (%v)", what, cause)
	}
	return &record.StorageFull{What: what, RetryAfter: g.cfg.RetryAfter, Err: cause}
}

// leave ends the episode, unless it must still hold; it reports whether
// writes may go ahead.
func (g *Guard) leave(free int64) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.full.Load() {
		return true
	}
	if time.Now().Before(g.holdTo) {
		return false
	}
	g.full.Store(false)
	g.gauge.Set(0)
	g.logger.Info("data dir has space again: taking ingest", "dir", g.cfg.Dir, "freeBytes", free,
		"fullFor", time.Since(g.since).Round(time.Millisecond).String(), "refusedWrites", g.refused)
	return true
}

// bytesString is n in binary units, "unknown" when negative.
func bytesString(n int64) string {
	switch {
	case n < 0:
		return "unknown"
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
