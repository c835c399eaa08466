package store

import (
	"context"
	"fmt"
	"iter"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/glassmesh/glassmesh/telemetry/record"
)

// NotReadyRetryAfter is the delay a client refused by a trace store still
// opening is told to wait.
const NotReadyRetryAfter = 2 * time.Second

// ReadWriter is a store that both reads and writes spans.
type ReadWriter interface {
	Reader
	Writer
}

// Opening is a trace store while it opens in the background (the durable
// store replays its head WAL after a restart). Until Set, every write and
// read fails at once with an error that is both ErrUnavailable (HTTP 503)
// and a *record.NotReady (UNAVAILABLE or 503 with a retry delay at the
// receivers): nothing is acknowledged that is not in the store's WAL.
// From Set on, every call goes to the open store.
type Opening struct {
	s     atomic.Pointer[ReadWriter]
	ready chan struct{}
	once  sync.Once
}

// NewOpening returns a store that is not open yet.
func NewOpening() *Opening { return &Opening{ready: make(chan struct{})} }

// Set makes s the store every call goes to and closes Ready. Only the
// first call counts.
func (o *Opening) Set(s ReadWriter) {
	o.once.Do(func() {
		o.s.Store(&s)
		close(o.ready)
	})
}

// Ready is closed once the store is open and Set.
func (o *Opening) Ready() <-chan struct{} { return o.ready }

// Err is nil once the store is open, else the error its callers get.
func (o *Opening) Err() error {
	if o.s.Load() != nil {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrUnavailable,
		&record.NotReady{What: "trace storage", Reason: "opening (replaying its head WAL)", RetryAfter: NotReadyRetryAfter})
}

func (o *Opening) store() (ReadWriter, error) {
	if s := o.s.Load(); s != nil {
		return *s, nil
	}
	return nil, o.Err()
}

// WriteTraces implements Writer.
func (o *Opening) WriteTraces(ctx context.Context, td ptrace.Traces) error {
	s, err := o.store()
	if err != nil {
		return err
	}
	return s.WriteTraces(ctx, td)
}

// WriteTracesEncoded is WriteTraces given raw, the OTLP protobuf td was
// decoded from, passed on when the open store can take it (the durable
// store keeps it as it came, without encoding td again).
func (o *Opening) WriteTracesEncoded(ctx context.Context, td ptrace.Traces, raw []byte) error {
	s, err := o.store()
	if err != nil {
		return err
	}
	if ew, ok := s.(interface {
		WriteTracesEncoded(context.Context, ptrace.Traces, []byte) error
	}); ok {
		return ew.WriteTracesEncoded(ctx, td, raw)
	}
	return s.WriteTraces(ctx, td)
}

// GetTraces implements Reader.
func (o *Opening) GetTraces(ctx context.Context, ids ...TraceRequest) iter.Seq2[[]ptrace.Traces, error] {
	s, err := o.store()
	if err != nil {
		return failed[[]ptrace.Traces](err)
	}
	return s.GetTraces(ctx, ids...)
}

// Services implements Reader.
func (o *Opening) Services(ctx context.Context) ([]string, error) {
	s, err := o.store()
	if err != nil {
		return nil, err
	}
	return s.Services(ctx)
}

// Operations implements Reader.
func (o *Opening) Operations(ctx context.Context, q OperationQuery) ([]Operation, error) {
	s, err := o.store()
	if err != nil {
		return nil, err
	}
	return s.Operations(ctx, q)
}

// FindTraces implements Reader.
func (o *Opening) FindTraces(ctx context.Context, q TraceQuery) iter.Seq2[[]ptrace.Traces, error] {
	s, err := o.store()
	if err != nil {
		return failed[[]ptrace.Traces](err)
	}
	return s.FindTraces(ctx, q)
}

// FindTraceIDs implements Reader.
func (o *Opening) FindTraceIDs(ctx context.Context, q TraceQuery) iter.Seq2[[]FoundTrace, error] {
	s, err := o.store()
	if err != nil {
		return failed[[]FoundTrace](err)
	}
	return s.FindTraceIDs(ctx, q)
}

// Dependencies implements Reader.
func (o *Opening) Dependencies(ctx context.Context, start, end time.Time) ([]Dependency, error) {
	s, err := o.store()
	if err != nil {
		return nil, err
	}
	return s.Dependencies(ctx, start, end)
}

// failed is a sequence that yields err once.
func failed[T any](err error) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		var zero T
		yield(zero, err)
	}
}

var _ ReadWriter = (*Opening)(nil)
