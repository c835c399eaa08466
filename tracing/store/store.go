// Package store is glassmesh's trace storage: the Reader and Writer
// contract every backend implements (an in-memory one for tests, the durable
// one for real), in the style of Jaeger v2's tracestore, over OTLP pdata.
// The durable store can also forward every span it accepts, from its WAL,
// to external OTLP endpoints (ForwardConfig).
package store

import (
	"context"
	"errors"
	"iter"
	"net/http"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// Writer stores spans.
type Writer interface {
	// WriteTraces stores every span of td. When it returns nil the spans
	// are durable (in the write-ahead log) and will be readable; on error
	// none or some of them may be stored, and the caller may retry (spans
	// are idempotent by trace id + span id). It does not keep td.
	WriteTraces(ctx context.Context, td ptrace.Traces) error
}

// Reader finds and reads stored spans.
type Reader interface {
	// GetTraces yields the spans of each trace asked for, one trace at a
	// time in the order asked (a huge trace may come in several chunks of
	// ptrace.Traces); traces not found are skipped. A zero Start/End in a
	// TraceRequest means no time bound.
	GetTraces(ctx context.Context, ids ...TraceRequest) iter.Seq2[[]ptrace.Traces, error]
	// Services lists the service names that have spans, sorted.
	Services(ctx context.Context) ([]string, error)
	// Operations lists the span names of a service, optionally of one span
	// kind, sorted by name then kind.
	Operations(ctx context.Context, q OperationQuery) ([]Operation, error)
	// FindTraces yields the traces matching q, newest first, at most
	// q.Limit of them (the limit applies after every filter).
	FindTraces(ctx context.Context, q TraceQuery) iter.Seq2[[]ptrace.Traces, error]
	// FindTraceIDs is FindTraces without the spans.
	FindTraceIDs(ctx context.Context, q TraceQuery) iter.Seq2[[]FoundTrace, error]
	// Dependencies lists the calls between services (parent span of one
	// service, child span of another) that started in [start, end).
	Dependencies(ctx context.Context, start, end time.Time) ([]Dependency, error)
}

// Errors of a Reader whose spans live in another service (a shared trace
// store): the read failed as a whole, never in part. Such errors wrap one
// of these, and their messages name the store.
var (
	// ErrUnavailable: the store could not be reached or did not answer in
	// time, or said it is unavailable. A later try may succeed.
	ErrUnavailable = errors.New("trace store unavailable")
	// ErrBadResponse: the store answered an error, or an answer that could
	// not be read (malformed, cut short, too large).
	ErrBadResponse = errors.New("trace store answered badly")
)

// HTTPStatus is the status an HTTP API answers for a failed read: 503 when
// the store holding the spans is unavailable, 502 when it answered badly,
// 500 for anything else.
func HTTPStatus(err error) int {
	switch {
	case errors.Is(err, ErrUnavailable):
		return http.StatusServiceUnavailable
	case errors.Is(err, ErrBadResponse):
		return http.StatusBadGateway
	}
	return http.StatusInternalServerError
}

// TraceRequest names one trace, optionally within a time window.
type TraceRequest struct {
	TraceID    pcommon.TraceID
	Start, End time.Time
}

// OperationQuery selects operations.
type OperationQuery struct {
	Service  string
	SpanKind string // "" for any; else "server", "client", "producer", "consumer", "internal"
}

// Operation is a span name of a service and its kind.
type Operation struct {
	Name     string
	SpanKind string
}

// TraceQuery selects traces. A trace matches when one of its spans matches
// every condition given.
type TraceQuery struct {
	Service     string            // resource service.name
	Operation   string            // span name
	Attributes  map[string]string // span or resource attributes; "error"="true" matches error status, "span.kind" the kind
	StartMin    time.Time         // span start ≥ StartMin
	StartMax    time.Time         // span start ≤ StartMax
	DurationMin time.Duration     // 0: no bound
	DurationMax time.Duration     // 0: no bound
	Limit       int               // most traces to return; 0 means 100
}

// FoundTrace is a trace id and when its matching span started.
type FoundTrace struct {
	TraceID pcommon.TraceID
	Start   time.Time
}

// Dependency is the number of calls from a parent service to a child.
type Dependency struct {
	Parent    string
	Child     string
	CallCount uint64
}
