package durable

import (
	"context"
	"iter"
	"maps"
	"slices"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/glassmesh/glassmesh/tracing/store"
)

// snapshot is the set of partitions a read works on; it holds a
// reference to each block and head so neither can close its files mid-read.
type snapshot struct {
	blocks []*block
	heads  []*head
}

func (d *Store) snapshot() snapshot {
	d.mu.RLock()
	defer d.mu.RUnlock()
	s := snapshot{blocks: slices.Clone(d.blocks), heads: d.heads()}
	for _, b := range s.blocks {
		b.acquire()
	}
	for _, h := range s.heads {
		h.acquire()
	}
	return s
}

func (s snapshot) release() {
	for _, b := range s.blocks {
		b.release()
	}
	for _, h := range s.heads {
		h.release()
	}
}

func (s snapshot) partitions() []partition {
	ps := make([]partition, 0, len(s.blocks)+len(s.heads))
	for _, b := range s.blocks {
		ps = append(ps, b)
	}
	for _, h := range s.heads {
		ps = append(ps, h)
	}
	return ps
}

// GetTraces yields each trace asked for, gathered from every block and
// the head, in chunks of about 1000 spans so a huge trace is never whole in
// memory. With a window, a trace is returned whole when the span start
// range of one of its stored parts overlaps the window.
func (d *Store) GetTraces(ctx context.Context, ids ...store.TraceRequest) iter.Seq2[[]ptrace.Traces, error] {
	return func(yield func([]ptrace.Traces, error) bool) {
		s := d.snapshot()
		defer s.release()
		for _, req := range ids {
			if err := ctx.Err(); err != nil {
				yield(nil, err)
				return
			}
			if !s.streamTrace(req, yield) {
				return
			}
		}
	}
}

// streamTrace yields one trace in chunks; false means stop.
func (s snapshot) streamTrace(req store.TraceRequest, yield func([]ptrace.Traces, error) bool) bool {
	var parts []func(fn func([]byte) error) error
	inWin := req.Start.IsZero() && req.End.IsZero()
	for _, b := range s.blocks {
		if e, ok := b.lookup(req.TraceID); ok {
			inWin = inWin || e.overlaps(req.Start, req.End)
			parts = append(parts, func(fn func([]byte) error) error { return b.entryFragments(e, fn) })
		}
	}
	for _, h := range s.heads {
		if frags, st, ok := h.lookup(req.TraceID); ok {
			inWin = inWin || st.overlaps(req.Start, req.End)
			parts = append(parts, h.fragsOf(frags))
		}
	}
	if !inWin || len(parts) == 0 {
		return true
	}
	c := chunker{yield: yield, cur: ptrace.NewTraces()}
	for _, p := range parts {
		if err := p(c.add); err != nil {
			if err == errStop {
				return false
			}
			return yield(nil, err)
		}
	}
	return c.flush()
}

// chunker decodes fragments into chunks of about chunkSpans spans.
type chunker struct {
	yield func([]ptrace.Traces, error) bool
	cur   ptrace.Traces
	n     int
	u     ptrace.ProtoUnmarshaler
}

func (c *chunker) add(data []byte) error {
	td, err := c.u.UnmarshalTraces(data)
	if err != nil {
		return err
	}
	c.n += td.SpanCount()
	td.ResourceSpans().MoveAndAppendTo(c.cur.ResourceSpans())
	if c.n >= chunkSpans && !c.flush() {
		return errStop
	}
	return nil
}

func (c *chunker) flush() bool {
	if c.n == 0 {
		return true
	}
	td := c.cur
	c.cur, c.n = ptrace.NewTraces(), 0
	return c.yield([]ptrace.Traces{td}, nil)
}

// errStop ends a fragment stream when the consumer stopped iterating.
var errStop = stopError{}

type stopError struct{}

func (stopError) Error() string { return "iteration stopped" }

// FindTraceIDs yields the ids of the traces matching q, newest first.
func (d *Store) FindTraceIDs(ctx context.Context, q store.TraceQuery) iter.Seq2[[]store.FoundTrace, error] {
	return func(yield func([]store.FoundTrace, error) bool) {
		s := d.snapshot()
		defer s.release()
		found, err := s.find(ctx, &q)
		if err != nil {
			yield(nil, err)
		} else if len(found) > 0 {
			yield(found, nil)
		}
	}
}

// find searches the newest partitions first and skips those whose spans
// all started before the limit-th match found so far.
func (s snapshot) find(ctx context.Context, q *store.TraceQuery) ([]store.FoundTrace, error) {
	limit := q.MaxTraces()
	parts := s.partitions()
	latest := make(map[partition]int64, len(parts))
	for _, p := range parts {
		latest[p] = p.latest()
	}
	slices.SortStableFunc(parts, func(a, b partition) int { return compareInt64(latest[b], latest[a]) })
	var found []store.FoundTrace
	for _, p := range parts {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if len(found) == limit && latest[p] < found[limit-1].Start.UnixNano() {
			continue
		}
		f, err := findIn(p, q, limit)
		if err != nil {
			return nil, err
		}
		found = mergeFound([][]store.FoundTrace{found, f}, limit)
	}
	return found, nil
}

// FindTraces yields the traces matching q, newest first, each whole (in
// chunks for huge ones).
func (d *Store) FindTraces(ctx context.Context, q store.TraceQuery) iter.Seq2[[]ptrace.Traces, error] {
	return func(yield func([]ptrace.Traces, error) bool) {
		s := d.snapshot()
		defer s.release()
		found, err := s.find(ctx, &q)
		if err != nil {
			yield(nil, err)
			return
		}
		for _, f := range found {
			if !s.streamTrace(store.TraceRequest{TraceID: f.TraceID}, yield) {
				return
			}
		}
	}
}

// Services lists the services with spans in any block or the head.
func (d *Store) Services(context.Context) ([]string, error) {
	s := d.snapshot()
	defer s.release()
	set := map[string]struct{}{}
	for _, b := range s.blocks {
		for svc := range b.meta.Operations {
			set[svc] = struct{}{}
		}
	}
	for _, h := range s.heads {
		h.mu.RLock()
		for svc := range h.ops {
			set[svc] = struct{}{}
		}
		h.mu.RUnlock()
	}
	return slices.Sorted(maps.Keys(set)), nil
}

// Operations lists the span names (and kinds) of a service.
func (d *Store) Operations(_ context.Context, q store.OperationQuery) ([]store.Operation, error) {
	s := d.snapshot()
	defer s.release()
	set := map[store.Operation]struct{}{}
	add := func(op store.Operation) {
		if q.SpanKind == "" || op.SpanKind == q.SpanKind {
			set[op] = struct{}{}
		}
	}
	for _, b := range s.blocks {
		for _, op := range b.meta.Operations[q.Service] {
			add(op)
		}
	}
	for _, h := range s.heads {
		h.mu.RLock()
		for op := range h.ops[q.Service] {
			add(op)
		}
		h.mu.RUnlock()
	}
	ops := slices.Collect(maps.Keys(set))
	store.SortOperations(ops)
	return ops, nil
}

// Dependencies counts cross-service calls whose child span started in
// [start, end): exactly in the head, per second in blocks (computed when
// the block was cut, so at a window's edges a call may count up to a second
// off). A call whose parent and child spans fell into different partitions
// (a trace written across a block cut) is not counted.
func (d *Store) Dependencies(_ context.Context, start, end time.Time) ([]store.Dependency, error) {
	s := d.snapshot()
	defer s.release()
	counts := map[store.CallKey]uint64{}
	for _, b := range s.blocks {
		for _, dep := range b.meta.Dependencies {
			sec := time.Unix(dep.Second, 0)
			if sec.Before(end) && sec.Add(time.Second).After(start) {
				counts[store.CallKey{Parent: dep.Parent, Child: dep.Child}] += dep.Count
			}
		}
	}
	from, to := start.UnixNano(), end.UnixNano()
	for _, h := range s.heads {
		h.mu.RLock()
		for _, t := range h.traces {
			t.deps(h.svcNames, func(k store.CallKey, at int64) {
				if at >= from && at < to {
					counts[k]++
				}
			})
		}
		h.mu.RUnlock()
	}
	return store.DependencyList(counts), nil
}
