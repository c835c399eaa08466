package durable

import (
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/glassmesh/glassmesh/tracing/store"
)

// Index terms: a byte for the kind, then NUL-separated parts.
const (
	termService   = "s\x00" // service
	termOperation = "o\x00" // service \x00 span name
	termKind      = "k\x00" // span kind
	termError     = "e\x00" // error status
	termAttr      = "a\x00" // key \x00 value
	termHashed    = "h\x00" // key \x00 hash bucket of the value, for overflowed keys
	hashBuckets   = 1024
	maxValueLen   = 256  // longer attribute values put their key in overflow
	traceOverhead = 256  // bytes of head memory per trace beyond its data
	postingBytes  = 4    // bytes per posting entry
	termOverhead  = 64   // bytes per distinct term
	fragMaxSpans  = 1000 // spans per stored fragment
	chunkSpans    = 1000 // spans per yielded chunk of a trace
	nanosPerSec   = 1_000_000_000
)

// traceStats summarises a trace's spans, for pruning without decoding.
type traceStats struct {
	minStart, maxStart int64 // unix nanos
	minDur, maxDur     int64 // nanos
	spans              int
}

func (s *traceStats) addSpan(sp ptrace.Span) {
	start, d := int64(sp.StartTimestamp()), int64(sp.EndTimestamp()-sp.StartTimestamp())
	if s.spans == 0 {
		s.minStart, s.maxStart, s.minDur, s.maxDur = start, start, d, d
	} else {
		s.minStart, s.maxStart = min(s.minStart, start), max(s.maxStart, start)
		s.minDur, s.maxDur = min(s.minDur, d), max(s.maxDur, d)
	}
	s.spans++
}

// mayMatch is false when no span of the trace can satisfy q's time and
// duration bounds.
func (s *traceStats) mayMatch(q *store.TraceQuery) bool {
	if !q.StartMin.IsZero() && s.maxStart < q.StartMin.UnixNano() ||
		!q.StartMax.IsZero() && s.minStart > q.StartMax.UnixNano() {
		return false
	}
	return !(q.DurationMin > 0 && s.maxDur < int64(q.DurationMin) ||
		q.DurationMax > 0 && s.minDur > int64(q.DurationMax))
}

// overlaps reports whether the trace has spans starting in [start, end].
func (s *traceStats) overlaps(start, end time.Time) bool {
	q := store.TraceQuery{StartMin: start, StartMax: end}
	return s.mayMatch(&q)
}

// fragRef locates a stored fragment in the WAL: the head reads its spans
// from there rather than keeping them in memory, and a block keeps the
// WAL segments (hard links) and these positions.
type fragRef struct {
	seg uint32 // WAL segment
	n   uint32 // length
	off int64  // in the segment file
}

const fragRefBytes = 16

type headTrace struct {
	id    pcommon.TraceID
	frags []fragRef
	links []spanLink // for dependencies without decoding
	traceStats
}

// spanLink is what dependencies need of a span.
type spanLink struct {
	id, parent pcommon.SpanID
	svc        uint32 // index in head.svcNames
	start      int64  // unix nanos
}

const linkBytes = 32

// deps calls fn for each call between services within the trace, with the
// child span's start.
func (t *headTrace) deps(names []string, fn func(k store.CallKey, start int64)) {
	var svcOf map[pcommon.SpanID]uint32
	if len(t.links) > 16 {
		svcOf = make(map[pcommon.SpanID]uint32, len(t.links))
		for _, l := range t.links {
			svcOf[l.id] = l.svc
		}
	}
	for _, c := range t.links {
		if c.parent.IsEmpty() {
			continue
		}
		p, ok := parentService(t.links, svcOf, c.parent)
		if ok && p != c.svc {
			fn(store.CallKey{Parent: names[p], Child: names[c.svc]}, c.start)
		}
	}
}

func parentService(links []spanLink, svcOf map[pcommon.SpanID]uint32, id pcommon.SpanID) (uint32, bool) {
	if svcOf != nil {
		s, ok := svcOf[id]
		return s, ok
	}
	for _, l := range links {
		if l.id == id {
			return l.svc, true
		}
	}
	return 0, false
}

// head is the newest partition: in memory, where each trace's fragments
// are in the WAL and posting lists from index terms to trace ordinals
// (which may hold an ordinal twice); the spans themselves are read back
// from the WAL segment files, which the head keeps open. refs counts its
// users, as for blocks: the files close when the last is released.
type head struct {
	attrCap int
	walDir  string
	refs    atomic.Int32
	files   map[uint32]*os.File // WAL segments holding its fragments; guarded by mu
	// maps are the segments mapped mapBytes long (0: none), beyond their
	// end while they grow: reads of written bytes need no syscall, and a
	// fragment past the mapping is read from the file.
	mapBytes int
	maps     map[uint32][]byte
	unmaps   []func() error

	mu       sync.RWMutex
	traces   []*headTrace
	byID     map[pcommon.TraceID]int32
	post     map[string]*[]int32
	keys     map[string]*keyState // per attribute key
	overflow map[string]struct{}
	ops      map[string]map[store.Operation]struct{}
	svcIdx   map[string]uint32
	svcNames []string
	spans    int
	bytes    int64     // WAL bytes of its fragments plus index memory, roughly
	minT     int64     // unix nanos of the earliest span start
	maxT     int64     // unix nanos of the latest span end
	created  time.Time // first write, for the block cut
	lastSeg  int       // the last WAL segment holding its records
	termCaches
}

func newHead(attrCap int, walDir string, now time.Time) *head {
	h := &head{
		attrCap: attrCap, walDir: walDir, created: now,
		files:    make(map[uint32]*os.File),
		maps:     make(map[uint32][]byte),
		byID:     make(map[pcommon.TraceID]int32),
		post:     make(map[string]*[]int32),
		keys:     make(map[string]*keyState),
		overflow: make(map[string]struct{}),
		ops:      make(map[string]map[store.Operation]struct{}),
		svcIdx:   make(map[string]uint32),
	}
	h.refs.Store(1)
	return h
}

func (h *head) acquire() { h.refs.Add(1) }

func (h *head) release() {
	if h.refs.Add(-1) != 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, unmap := range h.unmaps {
		_ = unmap()
	}
	clear(h.maps)
	h.unmaps = nil
	for _, f := range h.files {
		_ = f.Close()
	}
	clear(h.files)
}

// useSegment opens WAL segment seg for reading unless it is open; call it
// before adding fragments stored there (once the segment is in a block its
// WAL name may be deleted, so it cannot be opened later).
func (h *head) useSegment(seg int) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if hasKey(h.files, uint32(seg)) {
		return nil
	}
	f, err := os.Open(segmentPath(h.walDir, seg))
	if err != nil {
		return fmt.Errorf("wal: %w", err)
	}
	h.files[uint32(seg)] = f
	if m, unmap := mapReserve(f, h.mapBytes); m != nil {
		h.maps[uint32(seg)] = m
		h.unmaps = append(h.unmaps, unmap)
	}
	return nil
}

// readFrag reads a fragment of the head from the WAL: from its mapping,
// or else into *buf (grown as needed). The bytes are valid while the head
// is held and until the next read into *buf.
func (h *head) readFrag(r fragRef, buf *[]byte) ([]byte, error) {
	h.mu.RLock()
	f, m := h.files[r.seg], h.maps[r.seg]
	h.mu.RUnlock()
	if end := r.off + int64(r.n); r.off >= 0 && end <= int64(len(m)) {
		return m[r.off:end:end], nil
	}
	if f == nil {
		return nil, fmt.Errorf("wal: segment %d is not open: %w", r.seg, errCorrupt)
	}
	*buf = slices.Grow((*buf)[:0], int(r.n))[:r.n]
	if _, err := f.ReadAt(*buf, r.off); err != nil {
		return nil, fmt.Errorf("wal: segment %d at %d: %w", r.seg, r.off, err)
	}
	return *buf, nil
}

// storedFrag is a fragment of a trace and where it is in the WAL.
type storedFrag struct {
	id  pcommon.TraceID
	ref fragRef
}

// add records where the fragments of a batch are stored (in segments
// opened with useSegment) and indexes the batch's spans, td.
func (h *head) add(frags []storedFrag, td ptrace.Traces) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.spans == 0 {
		h.created = time.Now()
	}
	for _, f := range frags {
		t := h.traces[h.ordOf(f.id)]
		t.frags = append(t.frags, f.ref)
		h.bytes += int64(f.ref.n) + fragRefBytes
	}
	rss := td.ResourceSpans()
	for i := range rss.Len() {
		rs := rss.At(i)
		r := h.resource(store.ServiceName(rs.Resource()))
		ord, last := int32(-1), pcommon.TraceID{}
		sss := rs.ScopeSpans()
		for j := range sss.Len() {
			spans := sss.At(j).Spans()
			for k := range spans.Len() {
				sp := spans.At(k)
				if id := sp.TraceID(); ord < 0 || id != last {
					ord, last = h.ordOf(id), id
					h.postAttrs(rs.Resource().Attributes(), ord, &h.resAttr)
				}
				h.addSpan(h.traces[ord], ord, &r, sp)
			}
		}
	}
}

// ordOf returns the ordinal of trace id, adding the trace if it is new.
// Hold mu.
func (h *head) ordOf(id pcommon.TraceID) int32 {
	ord, ok := h.byID[id]
	if !ok {
		ord = int32(len(h.traces))
		h.byID[id] = ord
		h.traces = append(h.traces, &headTrace{id: id})
		h.bytes += traceOverhead
	}
	return ord
}

// isOverflow reports whether attribute key k is not indexed.
func (h *head) isOverflow(k string) bool { return hasKey(h.overflow, k) }

// stats returns the size figures of the head.
func (h *head) stats() (spans int, bytes int64, created time.Time) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.spans, h.bytes, h.created
}
