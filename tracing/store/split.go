package store

import (
	"bytes"
	"cmp"
	"slices"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// Fragment is the spans of one trace from one batch (at most maxSpans of
// them), with their resources and scopes.
type Fragment struct {
	ID     pcommon.TraceID
	Traces ptrace.Traces
	Spans  int
}

// splitter groups a batch's spans by trace, keeping resources and scopes.
type splitter struct {
	maxSpans int
	open     map[pcommon.TraceID]*fragState
	out      []*fragState
}

type fragState struct {
	Fragment
	rsOf map[[2]int]ptrace.SpanSlice // (resource, scope) index → spans
}

// SplitByTrace splits td into per-trace fragments of at most maxSpans spans
// each (0: unbounded), in first-seen order.
func SplitByTrace(td ptrace.Traces, maxSpans int) []Fragment {
	return split(splitter{maxSpans: maxSpans, open: make(map[pcommon.TraceID]*fragState)}, td)
}

func split(s splitter, td ptrace.Traces) []Fragment {
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
	frags := make([]Fragment, len(s.out))
	for i, f := range s.out {
		frags[i] = f.Fragment
	}
	return frags
}

func (s *splitter) add(rs ptrace.ResourceSpans, ss ptrace.ScopeSpans, i, j int, sp ptrace.Span) {
	id := sp.TraceID()
	f := s.open[id]
	if f == nil || s.maxSpans > 0 && f.Spans >= s.maxSpans {
		f = &fragState{Fragment: Fragment{ID: id, Traces: ptrace.NewTraces()}, rsOf: make(map[[2]int]ptrace.SpanSlice)}
		s.open[id] = f
		s.out = append(s.out, f)
	}
	dst, ok := f.rsOf[[2]int{i, j}]
	if !ok {
		nrs := f.Traces.ResourceSpans().AppendEmpty()
		rs.Resource().CopyTo(nrs.Resource())
		nrs.SetSchemaUrl(rs.SchemaUrl())
		nss := nrs.ScopeSpans().AppendEmpty()
		ss.Scope().CopyTo(nss.Scope())
		nss.SetSchemaUrl(ss.SchemaUrl())
		dst = nss.Spans()
		f.rsOf[[2]int{i, j}] = dst
	}
	sp.CopyTo(dst.AppendEmpty())
	f.Spans++
}

// CompareTraceIDs orders trace ids bytewise.
func CompareTraceIDs(a, b pcommon.TraceID) int {
	return bytes.Compare(a[:], b[:]) // not slices.Compare: through it a and b escape, an allocation per call
}

func sortDeps(d []Dependency) {
	slices.SortFunc(d, func(a, b Dependency) int {
		return cmp.Or(cmp.Compare(a.Parent, b.Parent), cmp.Compare(a.Child, b.Child))
	})
}

// SortOperations orders operations by name, then kind.
func SortOperations(ops []Operation) {
	slices.SortFunc(ops, func(a, b Operation) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.SpanKind, b.SpanKind))
	})
}

// SortFound orders found traces newest first (ties by id, for stable output).
func SortFound(f []FoundTrace) {
	slices.SortFunc(f, func(a, b FoundTrace) int {
		return cmp.Or(b.Start.Compare(a.Start), CompareTraceIDs(a.TraceID, b.TraceID))
	})
}
