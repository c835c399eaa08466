package metrics

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/glassmesh/glassmesh/telemetry/record"
)

// NotReadyRetryAfter is the delay a client refused by a storage still
// opening is told to wait: a WAL replay takes seconds to minutes.
const NotReadyRetryAfter = 5 * time.Second

// Opening is the metrics storage from the moment glassmesh starts, while
// the TSDB opens in the background (after a kill -9 it replays its whole
// WAL: minutes at a million series). It is what every reader and writer of
// metrics holds: until Set it refuses each read and append with a
// *record.NotReady that says how far the replay is (HTTP 503 and gRPC
// UNAVAILABLE with a retry delay at the receivers, no data for canaries
// and SLOs), and from Set on everything goes to the open Storage. Nothing
// is accepted before it can be made durable, so nothing is lost.
//
// Its owner calls Open (which blocks for the replay), builds what must
// exist before the first append (remote-write, the istio_* aggregator),
// then Set. Ready is closed by Set, for the components that start then.
type Opening struct {
	cfg    StorageConfig
	logger *slog.Logger
	reg    prometheus.Registerer
	stats  *tsdb.DBStats

	st        atomic.Pointer[Storage]
	ready     chan struct{}
	setOnce   sync.Once
	replaying atomic.Bool // Open is running
}

// NewOpening returns the storage for cfg, not opened yet. A nil logger
// discards; a nil reg leaves its metrics unregistered.
func NewOpening(cfg StorageConfig, logger *slog.Logger, reg prometheus.Registerer) (*Opening, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	o := &Opening{cfg: cfg, logger: logger, reg: reg, stats: tsdb.NewDBStats(), ready: make(chan struct{})}
	if reg != nil {
		err := reg.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "glassmesh_metrics_wal_replay_ratio",
			Help: "Share of the metrics WAL's segments replayed while the TSDB opens after a restart (1 once it is open).",
		}, o.progress))
		if err != nil {
			return nil, fmt.Errorf("metrics storage: register metrics: %w", err)
		}
	}
	return o, nil
}

// Open opens the TSDB, replaying its WAL, and returns it. It does not
// make it visible: call Set when what must see every append is built.
func (o *Opening) Open() (*Storage, error) {
	o.replaying.Store(true)
	defer o.replaying.Store(false)
	return openStorage(o.cfg, o.logger, o.reg, o.stats)
}

// Set makes s the storage every read and append goes to, and closes
// Ready. Only the first call counts.
func (o *Opening) Set(s *Storage) {
	o.setOnce.Do(func() {
		o.st.Store(s)
		close(o.ready)
	})
}

// Ready is closed once the storage is open and Set.
func (o *Opening) Ready() <-chan struct{} { return o.ready }

// Storage is the open storage, nil before Set.
func (o *Opening) Storage() *Storage { return o.st.Load() }

// Err is nil once the storage is open, else the *record.NotReady its
// callers get, with the replay's progress.
func (o *Opening) Err() error {
	if o.st.Load() != nil {
		return nil
	}
	reason := "opening"
	if o.replaying.Load() {
		reason = fmt.Sprintf("replaying its WAL (%.0f%% of segments)", 100*o.progress())
	}
	return &record.NotReady{What: "metrics storage", Reason: reason, RetryAfter: NotReadyRetryAfter}
}

// Progress is the share of WAL segments replayed so far, 1 once open.
func (o *Opening) Progress() float64 { return o.progress() }

func (o *Opening) progress() float64 {
	if o.st.Load() != nil {
		return 1
	}
	s := o.stats.Head.WALReplayStatus.GetWALReplayStatus()
	if s.Max <= s.Min || s.Current < s.Min {
		return 0 // not started, or one segment: nothing to tell yet
	}
	return float64(s.Current-s.Min) / float64(s.Max-s.Min+1)
}

// Querier implements storage.Queryable.
func (o *Opening) Querier(mint, maxt int64) (storage.Querier, error) {
	if s := o.st.Load(); s != nil {
		return s.db.Querier(mint, maxt)
	}
	return nil, o.Err()
}

// ChunkQuerier implements storage.ChunkQueryable.
func (o *Opening) ChunkQuerier(mint, maxt int64) (storage.ChunkQuerier, error) {
	if s := o.st.Load(); s != nil {
		return s.db.ChunkQuerier(mint, maxt)
	}
	return nil, o.Err()
}

// ExemplarQuerier implements storage.ExemplarQueryable.
func (o *Opening) ExemplarQuerier(ctx context.Context) (storage.ExemplarQuerier, error) {
	if s := o.st.Load(); s != nil {
		return s.db.ExemplarQuerier(ctx)
	}
	return nil, o.Err()
}

// StartTime implements storage.Storage's StartTime.
func (o *Opening) StartTime() (int64, error) {
	if s := o.st.Load(); s != nil {
		return s.db.StartTime()
	}
	return 0, o.Err()
}

// Appender implements storage.Appendable: before Set, an appender that
// refuses every call with the not-ready error.
func (o *Opening) Appender(ctx context.Context) storage.Appender {
	if s := o.st.Load(); s != nil {
		return s.Appendable().Appender(ctx) // through the data dir's guard
	}
	return refusing{o.Err()}
}

// AppenderV2 implements storage.AppendableV2, like Appender.
func (o *Opening) AppenderV2(ctx context.Context) storage.AppenderV2 {
	if s := o.st.Load(); s != nil {
		return s.AppendableV2().AppenderV2(ctx)
	}
	return refusingV2{o.Err()}
}

// Queryable is the opening storage as a Queryable (for the Aggregator).
func (o *Opening) Queryable() storage.SampleAndChunkQueryable { return o }

// Appendable is the opening storage as an Appendable (for the Aggregator).
func (o *Opening) Appendable() storage.Appendable { return o }

// BlockDuration is the effective head block span.
func (o *Opening) BlockDuration() time.Duration { return o.cfg.withDefaults().BlockDuration }

// Retention is the effective retention.
func (o *Opening) Retention() time.Duration { return o.cfg.withDefaults().Retention }

// Backend is the Backend over the opening storage.
func (o *Opening) Backend() Backend {
	return Backend{Queryable: o, ExemplarQueryable: o, Appendable: o, LateDB: o.db}
}

// db is the TSDB, nil before Set.
func (o *Opening) db() *tsdb.DB {
	if s := o.st.Load(); s != nil {
		return s.db
	}
	return nil
}

// refusing is the appender of a storage not open yet: every call answers
// its error, and Commit too, so no caller can take a refused append for a
// durable one.
type refusing struct{ err error }

func (r refusing) Append(storage.SeriesRef, labels.Labels, int64, float64) (storage.SeriesRef, error) {
	return 0, r.err
}

func (r refusing) AppendExemplar(storage.SeriesRef, labels.Labels, exemplar.Exemplar) (storage.SeriesRef, error) {
	return 0, r.err
}

func (r refusing) AppendHistogram(storage.SeriesRef, labels.Labels, int64, *histogram.Histogram, *histogram.FloatHistogram) (storage.SeriesRef, error) {
	return 0, r.err
}

func (r refusing) AppendHistogramSTZeroSample(storage.SeriesRef, labels.Labels, int64, int64, *histogram.Histogram, *histogram.FloatHistogram) (storage.SeriesRef, error) {
	return 0, r.err
}

func (r refusing) UpdateMetadata(storage.SeriesRef, labels.Labels, metadata.Metadata) (storage.SeriesRef, error) {
	return 0, r.err
}

func (r refusing) AppendSTZeroSample(storage.SeriesRef, labels.Labels, int64, int64) (storage.SeriesRef, error) {
	return 0, r.err
}

func (r refusing) SetOptions(*storage.AppendOptions) {}

func (r refusing) Commit() error   { return r.err }
func (r refusing) Rollback() error { return nil }

// refusingV2 is refusing through the newer append interface.
type refusingV2 struct{ err error }

func (r refusingV2) Append(storage.SeriesRef, labels.Labels, int64, int64, float64, *histogram.Histogram, *histogram.FloatHistogram, storage.AOptions) (storage.SeriesRef, error) {
	return 0, r.err
}

func (r refusingV2) Commit() error   { return r.err }
func (r refusingV2) Rollback() error { return nil }

var (
	_ storage.Storage           = storageOf{}
	_ storage.ExemplarQueryable = (*Opening)(nil)
	_ storage.Appender          = refusing{}
	_ storage.AppenderV2        = refusingV2{}
)

// storageOf checks that Opening has storage.Storage's other methods: its
// Close belongs to the owner of the Storage it hands out, so Opening has
// none.
type storageOf struct{ *Opening }

func (storageOf) Close() error { return nil }
