package metrics

import (
	"context"

	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/storage"

	"github.com/glassmesh/glassmesh/telemetry/diskspace"
)

// Appends go through the data dir's guard (StorageConfig.Space). The TSDB
// must not meet a full disk itself: an append that fails to write its WAL
// record keeps the new series in memory without their record, and a
// record cut short between WAL pages is read back as corruption, whose
// repair drops every record after it (docs/internals.md). So an appender
// asked for while the data dir is short of its reserve never touches the
// TSDB: every call fails with the guard's record.StorageFull, and a commit
// that fails for lack of space anyway starts an episode.

// spaceAppendable is the TSDB behind the guard, for both append APIs.
type spaceAppendable struct {
	db interface {
		storage.Appendable
		storage.AppendableV2
	}
	space *diskspace.Guard
}

// Appender is the TSDB's appender, or one that refuses every call while
// the data dir is full.
func (a spaceAppendable) Appender(ctx context.Context) storage.Appender {
	if err := a.space.Check(); err != nil {
		return refusingAppender{err}
	}
	return reportingAppender{Appender: a.db.Appender(ctx), space: a.space}
}

// AppenderV2 is AppenderV2 of the TSDB (an ExemplarAppenderV2, as
// remote-write 2.0 needs), or one that refuses every call while the data
// dir is full.
func (a spaceAppendable) AppenderV2(ctx context.Context) storage.AppenderV2 {
	if err := a.space.Check(); err != nil {
		return refusingAppenderV2{err}
	}
	app := a.db.AppenderV2(ctx)
	if ex, ok := app.(storage.ExemplarAppenderV2); ok {
		return reportingExemplarAppenderV2{ExemplarAppenderV2: ex, space: a.space}
	}
	return reportingAppenderV2{AppenderV2: app, space: a.space}
}

// reportingAppender tells the guard when a commit failed for space.
type reportingAppender struct {
	storage.Appender
	space *diskspace.Guard
}

func (a reportingAppender) Commit() error { return a.space.Report(a.Appender.Commit()) }

type reportingAppenderV2 struct {
	storage.AppenderV2
	space *diskspace.Guard
}

func (a reportingAppenderV2) Commit() error { return a.space.Report(a.AppenderV2.Commit()) }

type reportingExemplarAppenderV2 struct {
	storage.ExemplarAppenderV2
	space *diskspace.Guard
}

func (a reportingExemplarAppenderV2) Commit() error {
	return a.space.Report(a.ExemplarAppenderV2.Commit())
}

// refusingAppender fails every append and commit with err, touching
// nothing.
type refusingAppender struct{ err error }

var _ storage.Appender = refusingAppender{}

func (r refusingAppender) Commit() error                     { return r.err }
func (r refusingAppender) Rollback() error                   { return nil }
func (r refusingAppender) SetOptions(*storage.AppendOptions) {}

func (r refusingAppender) Append(storage.SeriesRef, labels.Labels, int64, float64) (storage.SeriesRef, error) {
	return 0, r.err
}

func (r refusingAppender) AppendExemplar(storage.SeriesRef, labels.Labels, exemplar.Exemplar) (storage.SeriesRef, error) {
	return 0, r.err
}

func (r refusingAppender) AppendHistogram(storage.SeriesRef, labels.Labels, int64, *histogram.Histogram, *histogram.FloatHistogram) (storage.SeriesRef, error) {
	return 0, r.err
}

func (r refusingAppender) AppendHistogramSTZeroSample(storage.SeriesRef, labels.Labels, int64, int64, *histogram.Histogram, *histogram.FloatHistogram) (storage.SeriesRef, error) {
	return 0, r.err
}

func (r refusingAppender) UpdateMetadata(storage.SeriesRef, labels.Labels, metadata.Metadata) (storage.SeriesRef, error) {
	return 0, r.err
}

func (r refusingAppender) AppendSTZeroSample(storage.SeriesRef, labels.Labels, int64, int64) (storage.SeriesRef, error) {
	return 0, r.err
}

// refusingAppenderV2 is refusingAppender for the V2 API.
type refusingAppenderV2 struct{ err error }

var _ storage.ExemplarAppenderV2 = refusingAppenderV2{}

func (r refusingAppenderV2) Commit() error   { return r.err }
func (r refusingAppenderV2) Rollback() error { return nil }

func (r refusingAppenderV2) Append(storage.SeriesRef, labels.Labels, int64, int64, float64, *histogram.Histogram, *histogram.FloatHistogram, storage.AOptions) (storage.SeriesRef, error) {
	return 0, r.err
}

func (r refusingAppenderV2) AppendExemplars(storage.SeriesRef, labels.Labels, []exemplar.Exemplar) (storage.SeriesRef, error) {
	return 0, r.err
}
