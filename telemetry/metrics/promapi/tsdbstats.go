package promapi

import (
	"context"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb"
)

// tsdbStats gives web/api/v1 the TSDB statistics it shows under
// /api/v1/status/tsdb, the way cmd/prometheus's readyStorage does. The
// admin calls are never reached: the admin API stays disabled.
type tsdbStats struct{ late func() *tsdb.DB }

// db is the TSDB, nil until it has opened.
func (s tsdbStats) db() *tsdb.DB { return s.late() }

func (s tsdbStats) CleanTombstones() error {
	db := s.db()
	if db == nil {
		return tsdb.ErrNotReady
	}
	return db.CleanTombstones()
}

func (s tsdbStats) Delete(ctx context.Context, mint, maxt int64, ms ...*labels.Matcher) error {
	db := s.db()
	if db == nil {
		return tsdb.ErrNotReady
	}
	return db.Delete(ctx, mint, maxt, ms...)
}

func (s tsdbStats) Snapshot(dir string, withHead bool) error {
	db := s.db()
	if db == nil {
		return tsdb.ErrNotReady
	}
	return db.Snapshot(dir, withHead)
}

func (s tsdbStats) Stats(statsByLabelName string, limit int) (*tsdb.Stats, error) {
	db := s.db()
	if db == nil {
		return nil, tsdb.ErrNotReady
	}
	return db.Head().Stats(statsByLabelName, limit), nil
}

// WALReplayStatus reports a finished replay: tsdb.Open returns only after
// the WAL has been replayed, so by the time the API exists it is done.
func (s tsdbStats) WALReplayStatus() (tsdb.WALReplayStatus, error) {
	db := s.db()
	if db == nil {
		return tsdb.WALReplayStatus{}, tsdb.ErrNotReady
	}
	return tsdb.WALReplayStatus{}, nil
}

func (s tsdbStats) BlockMetas() ([]tsdb.BlockMeta, error) {
	db := s.db()
	if db == nil {
		return nil, tsdb.ErrNotReady
	}
	return db.BlockMetas(), nil
}
