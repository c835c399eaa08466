package metrics

import (
	"errors"

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
	// LateDB, when DB is nil, returns the TSDB once it has opened and nil
	// before: the Backend of an Opening storage.
	LateDB func() *tsdb.DB
}

// TSDB is the TSDB behind the Backend, nil when there is none (yet).
func (b Backend) TSDB() *tsdb.DB {
	if b.DB == nil && b.LateDB != nil {
		return b.LateDB()
	}
	return b.DB
}

// BackendFromDB returns a Backend that reads and writes db directly.
func BackendFromDB(db *tsdb.DB) Backend {
	return Backend{Queryable: db, ExemplarQueryable: db, Appendable: db, DB: db}
}

// Validate reports the fields a Backend must have.
func (b Backend) Validate() error {
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

// Dir is the TSDB's directory ("" without one), shown by
// /api/v1/status/runtimeinfo.
func (b Backend) Dir() string {
	db := b.TSDB()
	if db == nil {
		return ""
	}
	return db.Dir()
}

// Backend returns the Backend over s: queries and exemplars from its TSDB,
// appends through its durable appender.
func (s *Storage) Backend() Backend {
	return Backend{Queryable: s.Queryable(), ExemplarQueryable: s.ExemplarQueryable(), Appendable: s.AppendableV2(), DB: s.DB()}
}
