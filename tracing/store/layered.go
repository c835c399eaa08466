package store

import (
	"context"
	"iter"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// Layered reads a shared store, the one several replicas forward their
// spans to, and adds to each trace it returns the spans this replica's
// own store holds of it that the shared one does not have yet (accepted
// here, not forwarded yet). The shared store is the authority: when it
// fails, the read fails, and a trace it does not have is not found, even
// when the local store has spans of it, since those may be only this
// replica's part of it. Searches, services, operations and dependencies
// are the shared store's.
type Layered struct {
	shared, local Reader
}

var _ Reader = (*Layered)(nil)

// NewLayered returns a Layered reader of shared over local.
func NewLayered(shared, local Reader) *Layered {
	return &Layered{shared: shared, local: local}
}

// GetTraces yields each trace asked for, the shared store's spans plus the
// local store's others.
func (l *Layered) GetTraces(ctx context.Context, ids ...TraceRequest) iter.Seq2[[]ptrace.Traces, error] {
	return func(yield func([]ptrace.Traces, error) bool) {
		for _, req := range ids {
			tds, err := gather(l.shared.GetTraces(ctx, req))
			if err != nil {
				yield(nil, err)
				return
			}
			if tds, err = l.addLocal(ctx, req, tds); err != nil {
				yield(nil, err)
				return
			}
			if len(tds) > 0 && !yield(tds, nil) {
				return
			}
		}
	}
}

// addLocal appends to tds (one trace's chunks) the spans of the local
// store's copy of req that tds does not hold.
func (l *Layered) addLocal(ctx context.Context, req TraceRequest, tds []ptrace.Traces) ([]ptrace.Traces, error) {
	if len(tds) == 0 {
		return nil, nil
	}
	local, err := gather(l.local.GetTraces(ctx, req))
	if err != nil || len(local) == 0 {
		return tds, err
	}
	have := map[spanKey]struct{}{}
	for _, td := range tds {
		ForEachSpan(td, func(svc string, _ pcommon.Map, sp ptrace.Span) { have[keyOf(svc, sp)] = struct{}{} })
	}
	extra := ptrace.NewTraces()
	for _, td := range local {
		for _, rs := range td.ResourceSpans().All() {
			svc := ServiceName(rs.Resource())
			for _, ss := range rs.ScopeSpans().All() {
				ss.Spans().RemoveIf(func(sp ptrace.Span) bool {
					_, dup := have[keyOf(svc, sp)]
					return dup
				})
			}
			rs.ScopeSpans().RemoveIf(func(ss ptrace.ScopeSpans) bool { return ss.Spans().Len() == 0 })
		}
		td.ResourceSpans().RemoveIf(func(rs ptrace.ResourceSpans) bool { return rs.ScopeSpans().Len() == 0 })
		td.ResourceSpans().MoveAndAppendTo(extra.ResourceSpans())
	}
	if extra.ResourceSpans().Len() > 0 {
		tds = append(tds, extra)
	}
	return tds, nil
}

// spanKey tells spans apart within a trace. The span id alone does not:
// Zipkin's client and server halves of one call share it.
type spanKey struct {
	id, parent pcommon.SpanID
	kind       ptrace.SpanKind
	svc        string
	start      pcommon.Timestamp
}

func keyOf(svc string, sp ptrace.Span) spanKey {
	return spanKey{sp.SpanID(), sp.ParentSpanID(), sp.Kind(), svc, sp.StartTimestamp()}
}

// gather collects what seq yields; on error it returns the error alone.
func gather(seq iter.Seq2[[]ptrace.Traces, error]) ([]ptrace.Traces, error) {
	var out []ptrace.Traces
	for tds, err := range seq {
		if err != nil {
			return nil, err
		}
		out = append(out, tds...)
	}
	return out, nil
}

// FindTraces yields the shared store's matches, each with the local
// store's other spans of it.
func (l *Layered) FindTraces(ctx context.Context, q TraceQuery) iter.Seq2[[]ptrace.Traces, error] {
	return func(yield func([]ptrace.Traces, error) bool) {
		for tds, err := range l.shared.FindTraces(ctx, q) {
			if err != nil {
				yield(nil, err)
				return
			}
			if len(tds) == 0 {
				continue
			}
			id, ok := traceIDOf(tds)
			if ok {
				if tds, err = l.addLocal(ctx, TraceRequest{TraceID: id}, tds); err != nil {
					yield(nil, err)
					return
				}
			}
			if !yield(tds, nil) {
				return
			}
		}
	}
}

// traceIDOf is the trace id of the first span of tds.
func traceIDOf(tds []ptrace.Traces) (id pcommon.TraceID, ok bool) {
	for _, td := range tds {
		ForEachSpan(td, func(_ string, _ pcommon.Map, sp ptrace.Span) {
			if !ok {
				id, ok = sp.TraceID(), true
			}
		})
		if ok {
			return id, true
		}
	}
	return id, false
}

// FindTraceIDs is the shared store's.
func (l *Layered) FindTraceIDs(ctx context.Context, q TraceQuery) iter.Seq2[[]FoundTrace, error] {
	return l.shared.FindTraceIDs(ctx, q)
}

// Services is the shared store's.
func (l *Layered) Services(ctx context.Context) ([]string, error) {
	return l.shared.Services(ctx)
}

// Operations is the shared store's.
func (l *Layered) Operations(ctx context.Context, q OperationQuery) ([]Operation, error) {
	return l.shared.Operations(ctx, q)
}

// Dependencies is the shared store's (adding local calls would count the
// forwarded ones twice).
func (l *Layered) Dependencies(ctx context.Context, start, end time.Time) ([]Dependency, error) {
	return l.shared.Dependencies(ctx, start, end)
}
