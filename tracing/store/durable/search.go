package durable

import (
	"slices"
	"strings"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/glassmesh/glassmesh/tracing/store"
)

// candidate is a trace that may match a query, by the index and its
// stats; ref finds it again in its partition (24 bytes: there may be many).
type candidate struct {
	id       pcommon.TraceID
	maxStart int64
	ref      int32
}

// partition is one searchable piece of the store: the head or a block.
type partition interface {
	candidates(q *store.TraceQuery) ([]candidate, error)
	// fragments streams the stored fragments of a candidate; data is
	// valid until fn returns.
	fragments(ref int32, fn func(data []byte) error) error
	// latest bounds the start of every span in the partition (unix nanos).
	latest() int64
}

// queryTerms lists the index terms every matching trace must have.
// Attribute keys that overflowed the index (isOverflow) give the term of
// the value's hash bucket.
func queryTerms(q *store.TraceQuery, isOverflow func(string) bool) []string {
	var terms []string
	if q.Service != "" {
		terms = append(terms, termService+q.Service)
		if q.Operation != "" {
			terms = append(terms, termOperation+q.Service+"\x00"+q.Operation)
		}
	}
	for k, v := range q.Attributes {
		switch {
		case k == "error":
			if strings.EqualFold(v, "true") {
				terms = append(terms, termError)
			}
		case k == "span.kind":
			terms = append(terms, termKind+v)
		case isOverflow(k):
			terms = append(terms, termHashed+k+"\x00"+valueBucket(v))
		default:
			terms = append(terms, termAttr+k+"\x00"+v)
		}
	}
	return terms
}

// intersect returns the sorted, distinct values present in every list.
func intersect(lists [][]int32) []int32 {
	for i, l := range lists {
		l = slices.Clone(l)
		slices.Sort(l)
		lists[i] = slices.Compact(l)
	}
	slices.SortFunc(lists, func(a, b []int32) int { return len(a) - len(b) })
	out := lists[0]
	for _, l := range lists[1:] {
		kept := out[:0]
		j := 0
		for _, v := range out {
			for j < len(l) && l[j] < v {
				j++
			}
			if j < len(l) && l[j] == v {
				kept = append(kept, v)
			}
		}
		out = kept
	}
	return out
}

// findIn returns the (at most limit) newest traces of p matching q. It
// checks candidates latest-first and stops once no remaining candidate can
// beat the limit-th match found.
func findIn(p partition, q *store.TraceQuery, limit int) ([]store.FoundTrace, error) {
	cands, err := p.candidates(q)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(cands, func(a, b candidate) int {
		if a.maxStart != b.maxStart {
			return compareInt64(b.maxStart, a.maxStart)
		}
		return store.CompareTraceIDs(a.id, b.id)
	})
	var found []store.FoundTrace // newest first, at most limit
	for _, c := range cands {
		if len(found) == limit && c.maxStart < found[limit-1].Start.UnixNano() {
			break
		}
		start, ok, err := verify(p, c, q)
		if err != nil {
			return nil, err
		}
		if ok {
			found = insertFound(found, store.FoundTrace{TraceID: c.id, Start: start}, limit)
		}
	}
	return found, nil
}

func compareInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func insertFound(found []store.FoundTrace, f store.FoundTrace, limit int) []store.FoundTrace {
	i, _ := slices.BinarySearchFunc(found, f, func(a, b store.FoundTrace) int {
		if c := b.Start.Compare(a.Start); c != 0 {
			return c
		}
		return store.CompareTraceIDs(a.TraceID, b.TraceID)
	})
	if i >= limit {
		return found
	}
	found = slices.Insert(found, i, f)
	return found[:min(len(found), limit)]
}

// verify decodes a candidate fragment by fragment and returns the latest
// start of a span matching q.
func verify(p partition, c candidate, q *store.TraceQuery) (latest time.Time, ok bool, err error) {
	var u ptrace.ProtoUnmarshaler
	err = p.fragments(c.ref, func(data []byte) error {
		td, err := u.UnmarshalTraces(data)
		if err != nil {
			return err
		}
		if t, m := store.MatchTrace(q, td); m && (!ok || t.After(latest)) {
			latest, ok = t, true
		}
		return nil
	})
	return latest, ok, err
}

// mergeFound merges per-partition results (a trace may be in several),
// keeping each trace's latest match, newest first, at most limit.
func mergeFound(parts [][]store.FoundTrace, limit int) []store.FoundTrace {
	best := map[pcommon.TraceID]time.Time{}
	for _, p := range parts {
		for _, f := range p {
			if t, ok := best[f.TraceID]; !ok || f.Start.After(t) {
				best[f.TraceID] = f.Start
			}
		}
	}
	out := make([]store.FoundTrace, 0, len(best))
	for id, t := range best {
		out = append(out, store.FoundTrace{TraceID: id, Start: t})
	}
	store.SortFound(out)
	return out[:min(len(out), limit)]
}

// candidates of the head: posting lists intersected, then pruned by stats.
func (h *head) candidates(q *store.TraceQuery) ([]candidate, error) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	terms := queryTerms(q, h.isOverflow)
	var ords []int32
	if len(terms) == 0 {
		ords = make([]int32, len(h.traces))
		for i := range ords {
			ords[i] = int32(i)
		}
	} else {
		lists := make([][]int32, len(terms))
		for i, term := range terms {
			l := h.post[term]
			if l == nil {
				return nil, nil
			}
			lists[i] = *l
		}
		ords = intersect(lists)
	}
	var out []candidate
	for _, o := range ords {
		t := h.traces[o]
		if t.mayMatch(q) {
			out = append(out, candidate{id: t.id, maxStart: t.maxStart, ref: o})
		}
	}
	return out, nil
}

// fragments of the head trace with ordinal ref (ordinals are stable).
func (h *head) fragments(ref int32, fn func([]byte) error) error {
	h.mu.RLock()
	frags := slices.Clone(h.traces[ref].frags)
	h.mu.RUnlock()
	return h.fragsOf(frags)(fn)
}

// fragsOf streams the given fragments of the head, read from the WAL
// into one buffer: data is valid until fn returns.
func (h *head) fragsOf(frags []fragRef) func(fn func([]byte) error) error {
	return func(fn func([]byte) error) error {
		var buf []byte
		for _, r := range frags {
			data, err := h.readFrag(r, &buf)
			if err != nil {
				return err
			}
			if err := fn(data); err != nil {
				return err
			}
		}
		return nil
	}
}

func (h *head) latest() int64 {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.maxT
}

// lookup returns the fragments of one trace in the head.
func (h *head) lookup(id pcommon.TraceID) ([]fragRef, traceStats, bool) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	o, ok := h.byID[id]
	if !ok {
		return nil, traceStats{}, false
	}
	t := h.traces[o]
	return slices.Clone(t.frags), t.traceStats, true
}
