package store

import (
	"context"
	"iter"
	"maps"
	"slices"
	"sync"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// Memory is a simple in-memory Reader and Writer for tests of other
// packages: every query scans every trace. It holds at most the maxSpans
// given to NewMemory; beyond that the oldest-written traces are evicted whole.
type Memory struct {
	maxSpans int

	mu     sync.RWMutex
	traces map[pcommon.TraceID]*memTrace
	order  []pcommon.TraceID // first-write order, for eviction
	spans  int
}

type memTrace struct {
	td    ptrace.Traces
	spans int
}

// NewMemory returns an empty Memory store holding at most maxSpans spans
// (0 means 1,000,000).
func NewMemory(maxSpans int) *Memory {
	if maxSpans <= 0 {
		maxSpans = 1_000_000
	}
	return &Memory{maxSpans: maxSpans, traces: make(map[pcommon.TraceID]*memTrace)}
}

var (
	_ Reader = (*Memory)(nil)
	_ Writer = (*Memory)(nil)
)

// WriteTraces stores a copy of every span of td.
func (m *Memory) WriteTraces(_ context.Context, td ptrace.Traces) error {
	frags := SplitByTrace(td, 0)
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, f := range frags {
		t := m.traces[f.ID]
		if t == nil {
			t = &memTrace{td: ptrace.NewTraces()}
			m.traces[f.ID] = t
			m.order = append(m.order, f.ID)
		}
		f.Traces.ResourceSpans().MoveAndAppendTo(t.td.ResourceSpans())
		t.spans += f.Spans
		m.spans += f.Spans
	}
	for m.spans > m.maxSpans && len(m.order) > 1 {
		id := m.order[0]
		m.order = m.order[1:]
		m.spans -= m.traces[id].spans
		delete(m.traces, id)
	}
	return nil
}

// GetTraces yields a copy of each trace asked for that has a span starting
// in the request's window.
func (m *Memory) GetTraces(_ context.Context, ids ...TraceRequest) iter.Seq2[[]ptrace.Traces, error] {
	return func(yield func([]ptrace.Traces, error) bool) {
		for _, req := range ids {
			td, ok := m.copyTrace(req)
			if ok && !yield([]ptrace.Traces{td}, nil) {
				return
			}
		}
	}
}

func (m *Memory) copyTrace(req TraceRequest) (ptrace.Traces, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	t := m.traces[req.TraceID]
	if t == nil {
		return ptrace.Traces{}, false
	}
	if !req.Start.IsZero() || !req.End.IsZero() {
		q := TraceQuery{StartMin: req.Start, StartMax: req.End}
		if _, ok := MatchTrace(&q, t.td); !ok {
			return ptrace.Traces{}, false
		}
	}
	out := ptrace.NewTraces()
	t.td.CopyTo(out)
	return out, true
}

// Services lists the services that have spans, sorted.
func (m *Memory) Services(context.Context) ([]string, error) {
	set := map[string]struct{}{}
	m.each(func(svc string, _ pcommon.Map, _ ptrace.Span) { set[svc] = struct{}{} })
	return slices.Sorted(maps.Keys(set)), nil
}

// Operations lists the span names (and kinds) of a service.
func (m *Memory) Operations(_ context.Context, q OperationQuery) ([]Operation, error) {
	set := map[Operation]struct{}{}
	m.each(func(svc string, _ pcommon.Map, sp ptrace.Span) {
		k := KindName(sp.Kind())
		if svc == q.Service && (q.SpanKind == "" || q.SpanKind == k) {
			set[Operation{Name: sp.Name(), SpanKind: k}] = struct{}{}
		}
	})
	ops := slices.Collect(maps.Keys(set))
	SortOperations(ops)
	return ops, nil
}

func (m *Memory) each(fn func(svc string, res pcommon.Map, sp ptrace.Span)) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	for _, t := range m.traces {
		ForEachSpan(t.td, fn)
	}
}

// FindTraceIDs yields the ids of the traces matching q, newest first.
func (m *Memory) FindTraceIDs(_ context.Context, q TraceQuery) iter.Seq2[[]FoundTrace, error] {
	return func(yield func([]FoundTrace, error) bool) {
		found := m.find(&q)
		if len(found) > 0 {
			yield(found, nil)
		}
	}
}

func (m *Memory) find(q *TraceQuery) []FoundTrace {
	m.mu.RLock()
	var found []FoundTrace
	for id, t := range m.traces {
		if start, ok := MatchTrace(q, t.td); ok {
			found = append(found, FoundTrace{TraceID: id, Start: start})
		}
	}
	m.mu.RUnlock()
	SortFound(found)
	return found[:min(len(found), q.MaxTraces())]
}

// FindTraces yields the traces matching q, newest first.
func (m *Memory) FindTraces(ctx context.Context, q TraceQuery) iter.Seq2[[]ptrace.Traces, error] {
	return func(yield func([]ptrace.Traces, error) bool) {
		for _, f := range m.find(&q) {
			td, ok := m.copyTrace(TraceRequest{TraceID: f.TraceID})
			if ok && !yield([]ptrace.Traces{td}, nil) {
				return
			}
		}
	}
}

// Dependencies counts the cross-service calls that started in [start, end).
func (m *Memory) Dependencies(_ context.Context, start, end time.Time) ([]Dependency, error) {
	counts := map[CallKey]uint64{}
	m.mu.RLock()
	for _, t := range m.traces {
		var c depCollector
		c.add(t.td)
		c.each(func(k CallKey, at time.Time) {
			if !at.Before(start) && at.Before(end) {
				counts[k]++
			}
		})
	}
	m.mu.RUnlock()
	return DependencyList(counts), nil
}
