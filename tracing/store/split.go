package store

import (
	"cmp"
	"slices"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// fragment is the spans of one trace from one batch (at most maxSpans of
// them), with their resource and scope.
type fragment struct {
	id    pcommon.TraceID
	td    ptrace.Traces
	spans int
}

// splitter groups a batch's spans by trace, keeping resources and scopes.
type splitter struct {
	maxSpans int
	open     map[pcommon.TraceID]*fragState
	out      []*fragState
}

type fragState struct {
	fragment
	rsOf map[[2]int]ptrace.SpanSlice // (resource, scope) index → spans
}

// splitTraces splits td into per-trace fragments of at most maxSpans spans
// each (0: unbounded), in first-seen order.
func splitTraces(td ptrace.Traces, maxSpans int) []fragment {
	return split(splitter{maxSpans: maxSpans, open: make(map[pcommon.TraceID]*fragState)}, td)
}

func split(s splitter, td ptrace.Traces) []fragment {
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		sss := rss.At(i).ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			spans := sss.At(j).Spans()
			for k := 0; k < spans.Len(); k++ {
				s.add(rss.At(i), sss.At(j), i, j, spans.At(k))
			}
		}
	}
	frags := make([]fragment, len(s.out))
	for i, f := range s.out {
		frags[i] = f.fragment
	}
	return frags
}

func (s *splitter) add(rs ptrace.ResourceSpans, ss ptrace.ScopeSpans, i, j int, sp ptrace.Span) {
	id := sp.TraceID()
	f := s.open[id]
	if f == nil || s.maxSpans > 0 && f.spans >= s.maxSpans {
		f = &fragState{fragment: fragment{id: id, td: ptrace.NewTraces()}, rsOf: make(map[[2]int]ptrace.SpanSlice)}
		s.open[id] = f
		s.out = append(s.out, f)
	}
	dst, ok := f.rsOf[[2]int{i, j}]
	if !ok {
		nrs := f.td.ResourceSpans().AppendEmpty()
		rs.Resource().CopyTo(nrs.Resource())
		nrs.SetSchemaUrl(rs.SchemaUrl())
		nss := nrs.ScopeSpans().AppendEmpty()
		ss.Scope().CopyTo(nss.Scope())
		nss.SetSchemaUrl(ss.SchemaUrl())
		dst = nss.Spans()
		f.rsOf[[2]int{i, j}] = dst
	}
	sp.CopyTo(dst.AppendEmpty())
	f.spans++
}

func compareIDs(a, b pcommon.TraceID) int {
	return slices.Compare(a[:], b[:])
}

func sortDeps(d []Dependency) {
	slices.SortFunc(d, func(a, b Dependency) int {
		return cmp.Or(cmp.Compare(a.Parent, b.Parent), cmp.Compare(a.Child, b.Child))
	})
}

func sortOps(ops []Operation) {
	slices.SortFunc(ops, func(a, b Operation) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.SpanKind, b.SpanKind))
	})
}

// sortFound orders found traces newest first (ties by id, for stable output).
func sortFound(f []FoundTrace) {
	slices.SortFunc(f, func(a, b FoundTrace) int {
		return cmp.Or(b.Start.Compare(a.Start), compareIDs(a.TraceID, b.TraceID))
	})
}
