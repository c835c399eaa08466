package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/wlog"

	"github.com/glassmesh/glassmesh/telemetry/diskspace"
	"github.com/glassmesh/glassmesh/telemetry/record"
)

// Storage defaults; a zero StorageConfig field means its default.
const (
	DefaultRetention       = 15 * 24 * time.Hour        // --retention.metrics
	DefaultBlockDuration   = 2 * time.Hour              // Prometheus's head block span
	DefaultMaxExemplars    = 100_000                    // exemplar ring size
	DefaultWALSyncInterval = 100 * time.Millisecond     // DESIGN.md: OS crash loses at most this
	MinBlockDuration       = time.Second                // smallest block span accepted (tests)
	metricsSubdir          = "metrics"                  // <data-dir>/metrics holds the TSDB
	maxRetention           = 100 * 365 * 24 * time.Hour // keeps milliseconds in int64
)

// StorageConfig configures the embedded TSDB. Zero fields take the defaults
// above; negative ones are errors.
type StorageConfig struct {
	// DataDir is --data-dir; the TSDB lives in DataDir/metrics.
	DataDir string
	// Retention is --retention.metrics: how long persisted blocks are kept.
	Retention time.Duration
	// BlockDuration is the time span of the in-memory head before it is cut
	// into a persisted block (Prometheus's --storage.tsdb.min-block-duration).
	// It must be at least MinBlockDuration; keep it well above the flush
	// interval (>= 4x) in production so late zero samples stay appendable.
	BlockDuration time.Duration
	// MaxExemplars is the size of the in-memory exemplar ring (all series).
	MaxExemplars int64
	// OutOfOrderWindow is how far behind the newest sample a sample may be
	// and still be accepted. Zero rejects out-of-order samples.
	OutOfOrderWindow time.Duration
	// WALSyncInterval is how often committed WAL data is fsynced, bounding
	// what an OS crash (not a process kill) can lose.
	WALSyncInterval time.Duration
	// Space, when set, guards the data dir's free space: appenders refuse
	// every sample with a record.StorageFull while it is short (see
	// storage_space.go). Nil: appends go ahead until the OS refuses them.
	Space *diskspace.Guard
}

// Validate reports a configuration that cannot work, naming the key.
func (c StorageConfig) Validate() error {
	var errs []error
	if c.DataDir == "" {
		errs = append(errs, errors.New("data-dir: must not be empty"))
	}
	if c.Retention < 0 || c.Retention > maxRetention {
		errs = append(errs, fmt.Errorf("retention.metrics: must be > 0 and < 100y, got %s", c.Retention))
	}
	if c.BlockDuration != 0 && c.BlockDuration < MinBlockDuration {
		errs = append(errs, fmt.Errorf("metrics.block-duration: must be >= %s, got %s", MinBlockDuration, c.BlockDuration))
	}
	if c.MaxExemplars < 0 {
		errs = append(errs, fmt.Errorf("metrics.max-exemplars: must be >= 0, got %d", c.MaxExemplars))
	}
	if c.OutOfOrderWindow < 0 {
		errs = append(errs, fmt.Errorf("metrics.out-of-order-window: must be >= 0, got %s", c.OutOfOrderWindow))
	}
	if c.WALSyncInterval < 0 {
		errs = append(errs, fmt.Errorf("metrics.wal-sync-interval: must be > 0, got %s", c.WALSyncInterval))
	}
	return errors.Join(errs...)
}

// withDefaults fills zero fields.
func (c StorageConfig) withDefaults() StorageConfig {
	if c.Retention == 0 {
		c.Retention = DefaultRetention
	}
	if c.BlockDuration == 0 {
		c.BlockDuration = DefaultBlockDuration
	}
	if c.MaxExemplars == 0 {
		c.MaxExemplars = DefaultMaxExemplars
	}
	if c.WALSyncInterval == 0 {
		c.WALSyncInterval = DefaultWALSyncInterval
	}
	return c
}

// tsdbOptions maps the config onto Prometheus's options.
func (c StorageConfig) tsdbOptions() *tsdb.Options {
	opts := tsdb.DefaultOptions()
	opts.RetentionDuration = c.Retention.Milliseconds()
	opts.MinBlockDuration = c.BlockDuration.Milliseconds()
	// Prometheus's rule: the largest block spans 10% of retention, capped
	// at 31d, never below the head block.
	opts.MaxBlockDuration = max(opts.MinBlockDuration, min(c.Retention.Milliseconds()/10, (31*24*time.Hour).Milliseconds()))
	opts.EnableExemplarStorage = c.MaxExemplars > 0
	opts.MaxExemplars = c.MaxExemplars
	opts.OutOfOrderTimeWindow = c.OutOfOrderWindow.Milliseconds()
	return opts
}

// Storage is the embedded Prometheus TSDB that holds every metric glassmesh
// stores. It is opened by OpenStorage, fsyncs its WAL while Run runs, and
// lives until Close; everything it returns is backed by the same *tsdb.DB
// and is safe for concurrent use.
type Storage struct {
	cfg    StorageConfig
	db     *tsdb.DB
	logger *slog.Logger
	syncs  prometheus.Counter

	stop   chan struct{}
	wg     sync.WaitGroup
	mu     sync.Mutex // guards closed against a Run starting
	closed bool
	once   sync.Once
	err    error
}

// OpenStorage opens (creating or replaying) the TSDB under
// cfg.DataDir/metrics (Prometheus's TSDB runs its own compaction from
// here on). A nil logger discards; a nil reg leaves the TSDB's and the
// syncer's metrics unregistered.
func OpenStorage(cfg StorageConfig, logger *slog.Logger, reg prometheus.Registerer) (*Storage, error) {
	return openStorage(cfg, logger, reg, nil)
}

// openStorage is OpenStorage reporting the WAL replay's progress into
// stats (nil: not reported).
func openStorage(cfg StorageConfig, logger *slog.Logger, reg prometheus.Registerer, stats *tsdb.DBStats) (*Storage, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	dir := filepath.Join(cfg.DataDir, metricsSubdir)
	db, err := tsdb.Open(dir, logger.With("component", "tsdb"), reg, cfg.tsdbOptions(), stats)
	if err != nil {
		return nil, fmt.Errorf("metrics storage: open %s: %w", dir, err)
	}
	s := &Storage{
		cfg:    cfg,
		db:     db,
		logger: logger,
		stop:   make(chan struct{}),
		syncs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "glassmesh_metrics_wal_syncs_total",
			Help: "fsyncs of the metrics WAL made so that an OS crash loses at most one sync interval.",
		}),
	}
	if reg != nil {
		if err := reg.Register(s.syncs); err != nil {
			_ = db.Close()
			return nil, fmt.Errorf("metrics storage: register metrics: %w", err)
		}
	}
	return s, nil
}

// Run fsyncs the WAL every WALSyncInterval when it grew, until ctx ends or
// Close is called.
func (s *Storage) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()
	s.syncWAL(ctx)
	return nil
}

// DB returns the underlying TSDB, for the few callers that need more than
// the interfaces below (stats, snapshots, block listing).
func (s *Storage) DB() *tsdb.DB { return s.db }

// Queryable returns what the PromQL engine and the rules manager read.
func (s *Storage) Queryable() storage.SampleAndChunkQueryable { return s.db }

// ExemplarQueryable returns what /api/v1/query_exemplars reads.
func (s *Storage) ExemplarQueryable() storage.ExemplarQueryable { return s.db }

// Appendable returns the writer for samples and exemplars. A sample is
// durable against kill -9 once its Appender's Commit returned nil. While
// the data dir is full its appenders refuse everything with a
// record.StorageFull.
func (s *Storage) Appendable() storage.Appendable {
	return spaceAppendable{db: s.db, space: s.cfg.Space}
}

// AppendableV2 returns the same writer through Prometheus's newer append
// interface (samples, exemplars and start timestamps in one call).
func (s *Storage) AppendableV2() storage.AppendableV2 {
	return spaceAppendable{db: s.db, space: s.cfg.Space}
}

// Dir returns the directory the TSDB lives in (<data-dir>/metrics).
func (s *Storage) Dir() string { return s.db.Dir() }

// Retention returns the effective retention.
func (s *Storage) Retention() time.Duration { return s.cfg.Retention }

// BlockDuration returns the effective head block span.
func (s *Storage) BlockDuration() time.Duration { return s.cfg.BlockDuration }

// Close stops Run and waits for it, and closes the TSDB (which syncs the
// WAL a last time). It is safe to call more than once; later calls return
// the first result.
func (s *Storage) Close() error {
	s.once.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		close(s.stop)
		s.wg.Wait()
		s.err = s.db.Close()
	})
	return s.err
}

// syncWAL fsyncs the newest WAL segment every WALSyncInterval when it grew.
// Prometheus writes the WAL on Commit (so a killed process loses nothing
// committed) but only fsyncs when a segment is closed, so without this an
// OS crash could lose up to a whole 128 MiB segment.
func (s *Storage) syncWAL(ctx context.Context) {
	t := time.NewTicker(s.cfg.WALSyncInterval)
	defer t.Stop()
	var ws walSyncState
	defer ws.close()
	walDir := filepath.Join(s.db.Dir(), "wal")
	warned := false
	for {
		select {
		case <-s.stop:
			return
		case <-ctx.Done():
			return
		case <-t.C:
			synced, err := ws.sync(walDir)
			switch err = s.cfg.Space.Report(err); {
			case err == nil:
				warned = false
			case record.IsStorageFull(err):
				// The guard logged the episode; appends are refused now.
			case !warned:
				// Once until it works again: a tick is 100 ms.
				s.logger.Warn("metrics WAL fsync failed", "dir", walDir, "err", err)
				warned = true
			}
			if synced {
				s.syncs.Inc()
			}
		}
	}
}

// walAhead is the space kept allocated past the end of the TSDB's newest
// WAL segment (without changing its size), so that the records of the
// next sync interval are written into blocks that already exist: a disk
// that another writer fills up between two checks of the guard still
// cannot fail a WAL record half way. When it cannot be allocated, the
// guard starts an episode and appends stop.
const walAhead = 4 << 20

// walSyncState remembers the segment last synced and its size then.
type walSyncState struct {
	f        *os.File
	name     string
	size     int64
	allocEnd int64 // how far the segment is allocated; -1: the filesystem cannot preallocate
}

// sync fsyncs the newest segment if it is new or grew since the last call,
// and keeps walAhead allocated past its end. A segment that was cut since
// the last call was already synced by Prometheus when it was closed.
func (w *walSyncState) sync(walDir string) (bool, error) {
	_, last, err := wlog.Segments(walDir)
	if err != nil || last < 0 {
		return false, err
	}
	name := wlog.SegmentName(walDir, last)
	if name != w.name {
		w.close()
		// Opened for writing (it writes nothing) so it may preallocate.
		f, err := os.OpenFile(name, os.O_WRONLY, 0)
		if err != nil {
			return false, err
		}
		w.f, w.name, w.size, w.allocEnd = f, name, -1, 0
	}
	fi, err := w.f.Stat()
	if err != nil {
		return false, err
	}
	if err := w.preallocate(fi.Size()); err != nil {
		return false, err
	}
	if fi.Size() == w.size {
		return false, nil
	}
	if err := w.f.Sync(); err != nil {
		return false, err
	}
	w.size = fi.Size()
	return true, nil
}

// preallocate allocates walAhead past size once less than half of it is
// left.
func (w *walSyncState) preallocate(size int64) error {
	if w.allocEnd < 0 || w.allocEnd-size >= walAhead/2 {
		return nil
	}
	switch err := allocateKeepSize(w.f, size, walAhead); {
	case err == nil:
		w.allocEnd = size + walAhead
	case errors.Is(err, errors.ErrUnsupported):
		w.allocEnd = -1
	default:
		return fmt.Errorf("preallocating the metrics WAL segment %s: %w", w.name, err)
	}
	return nil
}

// close releases the segment file held open.
func (w *walSyncState) close() {
	if w.f != nil {
		_ = w.f.Close()
		w.f, w.name, w.size, w.allocEnd = nil, "", 0, 0
	}
}

// The interfaces the query side relies on stay satisfied.
var (
	_ storage.SampleAndChunkQueryable = (*tsdb.DB)(nil)
	_ storage.ExemplarQueryable       = (*tsdb.DB)(nil)
)
