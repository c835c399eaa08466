package metrics

import (
	"context"
	"errors"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
)

// Backend is the storage the query API, the rules manager and the ingest
// handlers work on. The embedded TSDB supplies all of it; the fields are
// separate so that the appender can be one that makes commits durable or
// counts what is written, while queries go straight to the TSDB.
type Backend struct {
	// Queryable answers PromQL, series and label queries.
	Queryable storage.SampleAndChunkQueryable
	// ExemplarQueryable answers /api/v1/query_exemplars.
	ExemplarQueryable storage.ExemplarQueryable
	// Appendable takes remote-write, OTLP and rule results. Its appenders
	// must also implement storage.ExemplarAppenderV2 for remote-write 2.0
	// (the TSDB's do).
	Appendable storage.AppendableV2
	// DB is the TSDB itself, for /api/v1/status/tsdb and the start time.
	// It may be nil when the data lives elsewhere; those answers are then
	// "unavailable", as in Prometheus before its TSDB is ready.
	DB *tsdb.DB
}

// BackendFromDB returns a Backend that reads and writes db directly.
func BackendFromDB(db *tsdb.DB) Backend {
	return Backend{Queryable: db, ExemplarQueryable: db, Appendable: db, DB: db}
}

func (b Backend) validate() error {
	var errs []error
	if b.Queryable == nil {
		errs = append(errs, errors.New("backend: Queryable is nil"))
	}
	if b.ExemplarQueryable == nil {
		errs = append(errs, errors.New("backend: ExemplarQueryable is nil"))
	}
	if b.Appendable == nil {
		errs = append(errs, errors.New("backend: Appendable is nil"))
	}
	return errors.Join(errs...)
}

// dir is the TSDB's directory, shown by /api/v1/status/runtimeinfo.
func (b Backend) dir() string {
	if b.DB == nil {
		return ""
	}
	return b.DB.Dir()
}

// tsdbStats gives web/api/v1 the TSDB statistics it shows under
// /api/v1/status/tsdb, the way cmd/prometheus's readyStorage does. The
// admin calls are never reached: the admin API stays disabled.
type tsdbStats struct{ db *tsdb.DB }

func (s tsdbStats) CleanTombstones() error {
	if s.db == nil {
		return tsdb.ErrNotReady
	}
	return s.db.CleanTombstones()
}

func (s tsdbStats) Delete(ctx context.Context, mint, maxt int64, ms ...*labels.Matcher) error {
	if s.db == nil {
		return tsdb.ErrNotReady
	}
	return s.db.Delete(ctx, mint, maxt, ms...)
}

func (s tsdbStats) Snapshot(dir string, withHead bool) error {
	if s.db == nil {
		return tsdb.ErrNotReady
	}
	return s.db.Snapshot(dir, withHead)
}

func (s tsdbStats) Stats(statsByLabelName string, limit int) (*tsdb.Stats, error) {
	if s.db == nil {
		return nil, tsdb.ErrNotReady
	}
	return s.db.Head().Stats(statsByLabelName, limit), nil
}

// WALReplayStatus reports a finished replay: tsdb.Open returns only after
// the WAL has been replayed, so by the time the API exists it is done.
func (s tsdbStats) WALReplayStatus() (tsdb.WALReplayStatus, error) {
	if s.db == nil {
		return tsdb.WALReplayStatus{}, tsdb.ErrNotReady
	}
	return tsdb.WALReplayStatus{}, nil
}

func (s tsdbStats) BlockMetas() ([]tsdb.BlockMeta, error) {
	if s.db == nil {
		return nil, tsdb.ErrNotReady
	}
	return s.db.BlockMetas(), nil
}
