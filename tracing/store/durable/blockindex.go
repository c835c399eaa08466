package durable

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"sort"

	"go.opentelemetry.io/collector/pdata/pcommon"

	"github.com/glassmesh/glassmesh/tracing/store"
)

// The index file of a block (version 2): magic; a uvarint count and the
// uvarint numbers of the WAL segments the block keeps (files wal-<number>);
// a uvarint trace count and that many fixed-size entries sorted by trace
// id, each naming a run of the fragment table; a uvarint fragment count and
// the table (segment file, length, offset); a uvarint term count and per
// term its bytes and delta-encoded posting list (trace entry numbers); the
// attribute keys left unindexed (overflow); then a CRC-32C of it all.
// Version 1 had no segments or fragment table: its entries located each
// trace's fragments, contiguous, in one "spans" file. Blocks of both
// versions are read.
const (
	indexMagicV1 = "GMI1"
	indexMagic   = "GMI2"
	entrySizeV1  = traceIDSize + 8 + 8 + 4 + 4 + 4*8
	entrySize    = traceIDSize + 8 + 4 + 4 + 4*8
	fragSize     = 4 + 4 + 8
)

// indexEntry locates one trace's fragments and summarises it.
type indexEntry struct {
	id     pcommon.TraceID
	first  uint64 // version 2: its first fragment in the table
	off    uint64 // version 1: in the spans file
	length uint64 // version 1: bytes of its fragments
	frags  uint32
	traceStats
}

// blockFrag is a fragment table row: where one fragment is.
type blockFrag struct {
	file uint32 // index into the block's segments
	n    uint32
	off  uint64
}

func putEntry(b []byte, e indexEntry) {
	copy(b, e.id[:])
	le := binary.LittleEndian
	le.PutUint64(b[16:], e.first)
	le.PutUint32(b[24:], e.frags)
	le.PutUint32(b[28:], uint32(e.spans))
	le.PutUint64(b[32:], uint64(e.minStart))
	le.PutUint64(b[40:], uint64(e.maxStart))
	le.PutUint64(b[48:], uint64(e.minDur))
	le.PutUint64(b[56:], uint64(e.maxDur))
}

func getEntry(b []byte) indexEntry {
	le := binary.LittleEndian
	var e indexEntry
	copy(e.id[:], b)
	e.first, e.frags, e.spans = le.Uint64(b[16:]), le.Uint32(b[24:]), int(le.Uint32(b[28:]))
	e.minStart, e.maxStart = int64(le.Uint64(b[32:])), int64(le.Uint64(b[40:]))
	e.minDur, e.maxDur = int64(le.Uint64(b[48:])), int64(le.Uint64(b[56:]))
	return e
}

func getEntryV1(b []byte) indexEntry {
	le := binary.LittleEndian
	var e indexEntry
	copy(e.id[:], b)
	e.off, e.length, e.frags = le.Uint64(b[16:]), le.Uint64(b[24:]), le.Uint32(b[32:])
	e.spans = int(le.Uint32(b[36:]))
	e.minStart, e.maxStart = int64(le.Uint64(b[40:])), int64(le.Uint64(b[48:]))
	e.minDur, e.maxDur = int64(le.Uint64(b[56:])), int64(le.Uint64(b[64:]))
	return e
}

// indexWriter builds an index file in memory.
type indexWriter struct{ buf []byte }

func newIndexWriter(segs []int, entries []indexEntry, frags []blockFrag) *indexWriter {
	w := &indexWriter{buf: make([]byte, 0, len(indexMagic)+len(entries)*entrySize+len(frags)*fragSize+64)}
	w.buf = append(w.buf, indexMagic...)
	w.buf = binary.AppendUvarint(w.buf, uint64(len(segs)))
	for _, s := range segs {
		w.buf = binary.AppendUvarint(w.buf, uint64(s))
	}
	w.buf = binary.AppendUvarint(w.buf, uint64(len(entries)))
	for _, e := range entries {
		var b [entrySize]byte
		putEntry(b[:], e)
		w.buf = append(w.buf, b[:]...)
	}
	w.buf = binary.AppendUvarint(w.buf, uint64(len(frags)))
	le := binary.LittleEndian
	for _, f := range frags {
		w.buf = le.AppendUint32(w.buf, f.file)
		w.buf = le.AppendUint32(w.buf, f.n)
		w.buf = le.AppendUint64(w.buf, f.off)
	}
	return w
}

// terms appends the posting lists; each list must be sorted and distinct.
func (w *indexWriter) terms(terms []string, lists [][]int32) {
	w.buf = binary.AppendUvarint(w.buf, uint64(len(terms)))
	for i, t := range terms {
		w.buf = binary.AppendUvarint(w.buf, uint64(len(t)))
		w.buf = append(w.buf, t...)
		w.buf = binary.AppendUvarint(w.buf, uint64(len(lists[i])))
		prev := int32(0)
		for _, v := range lists[i] {
			w.buf = binary.AppendUvarint(w.buf, uint64(v-prev))
			prev = v
		}
	}
}

func (w *indexWriter) finish(overflow []string) []byte {
	w.buf = binary.AppendUvarint(w.buf, uint64(len(overflow)))
	for _, k := range overflow {
		w.buf = binary.AppendUvarint(w.buf, uint64(len(k)))
		w.buf = append(w.buf, k...)
	}
	return binary.LittleEndian.AppendUint32(w.buf, crc32.Checksum(w.buf, crcTable))
}

// blockIndex is a decoded index file. Trace entries and posting lists stay
// encoded in raw and are decoded on use.
type blockIndex struct {
	version  int
	raw      []byte
	segs     []int  // version 2: the WAL segments holding the fragments
	entries  []byte // ntraces × the entry size
	ntraces  int
	frags    []byte // version 2: the fragment table
	terms    map[string]postRef
	overflow map[string]struct{}
}

type postRef struct{ off, n int }

// decodeIndex checks and decodes an index file. Any input gives an index
// or an error; counts are checked against the bytes left before anything is
// allocated for them.
func decodeIndex(b []byte) (*blockIndex, error) {
	if len(b) < len(indexMagic)+4 {
		return nil, fmt.Errorf("index header: %w", errCorrupt)
	}
	idx := &blockIndex{overflow: map[string]struct{}{}}
	switch string(b[:len(indexMagic)]) {
	case indexMagic:
		idx.version = 2
	case indexMagicV1:
		idx.version = 1
	default:
		return nil, fmt.Errorf("index header: %w", errCorrupt)
	}
	body := b[:len(b)-4]
	if crc32.Checksum(body, crcTable) != binary.LittleEndian.Uint32(b[len(b)-4:]) {
		return nil, fmt.Errorf("index checksum: %w", errCorrupt)
	}
	idx.raw = body
	r := reader{b: body, off: len(indexMagic)}
	if idx.version == 2 {
		nsegs := r.count(1)
		idx.segs = make([]int, nsegs)
		for i := range idx.segs {
			if s := r.uvarint(); s < 1<<31 {
				idx.segs[i] = int(s)
			} else {
				r.fail()
			}
		}
	}
	n := r.count(idx.entrySize())
	idx.ntraces = n
	idx.entries = r.bytes(n * idx.entrySize())
	for i := 1; i < n && r.err == nil; i++ {
		if store.CompareTraceIDs(idx.entryID(i-1), idx.entryID(i)) >= 0 {
			r.fail() // lookups need ids sorted and distinct
		}
	}
	if idx.version == 2 {
		idx.decodeFrags(&r)
	}
	nterms := r.count(2)
	idx.terms = make(map[string]postRef, min(nterms, 1<<16))
	for range nterms {
		term := string(r.bytes(r.count(1)))
		np := r.count(1)
		ref := postRef{off: r.off, n: np}
		prev := uint64(0)
		for range np {
			if prev += r.uvarint(); prev >= uint64(n) {
				r.fail()
			}
		}
		idx.terms[term] = ref
	}
	for range r.count(1) {
		idx.overflow[string(r.bytes(r.count(1)))] = struct{}{}
	}
	if r.err == nil && r.off != len(body) {
		r.fail()
	}
	if r.err != nil {
		return nil, r.err
	}
	return idx, nil
}

// postings decodes the posting list of term (nil, false when absent).
func (x *blockIndex) postings(term string) ([]int32, bool) {
	ref, ok := x.terms[term]
	if !ok {
		return nil, false
	}
	r := reader{b: x.raw, off: ref.off}
	out := make([]int32, ref.n)
	prev := uint64(0)
	for i := range out {
		prev += r.uvarint()
		out[i] = int32(prev)
	}
	return out, true
}

// decodeFrags reads and checks the fragment table of a version 2 index:
// every entry's run must be inside it and every row name a segment.
func (x *blockIndex) decodeFrags(r *reader) {
	nf := r.count(fragSize)
	x.frags = r.bytes(nf * fragSize)
	for i := 0; i < x.ntraces && r.err == nil; i++ {
		if e := x.entry(i); e.first > uint64(nf) || uint64(e.frags) > uint64(nf)-e.first {
			r.fail()
		}
	}
	for i := 0; i < nf && r.err == nil; i++ {
		if f := x.frag(i); f.file >= uint32(len(x.segs)) || f.n > maxRecordSize {
			r.fail()
		}
	}
}

func (x *blockIndex) entrySize() int {
	if x.version == 1 {
		return entrySizeV1
	}
	return entrySize
}

func (x *blockIndex) entry(i int) indexEntry {
	if x.version == 1 {
		return getEntryV1(x.entries[i*entrySizeV1:])
	}
	return getEntry(x.entries[i*entrySize:])
}

// frag is row i of the fragment table (version 2).
func (x *blockIndex) frag(i int) blockFrag {
	b := x.frags[i*fragSize:]
	le := binary.LittleEndian
	return blockFrag{file: le.Uint32(b), n: le.Uint32(b[4:]), off: le.Uint64(b[8:])}
}

func (x *blockIndex) entryID(i int) pcommon.TraceID {
	at := i * x.entrySize()
	return pcommon.TraceID(x.entries[at : at+traceIDSize])
}

// find returns the entry number of trace id.
func (x *blockIndex) find(id pcommon.TraceID) (int, bool) {
	i := sort.Search(x.ntraces, func(i int) bool { return store.CompareTraceIDs(x.entryID(i), id) >= 0 })
	return i, i < x.ntraces && x.entryID(i) == id
}

// reader decodes with bounds checks; after the first error it returns
// zero values and keeps that error.
type reader struct {
	b   []byte
	off int
	err error
}

func (r *reader) fail() {
	if r.err == nil {
		r.err = fmt.Errorf("index at byte %d: %w", r.off, errCorrupt)
	}
	r.off = len(r.b)
}

func (r *reader) uvarint() uint64 {
	v, k := binary.Uvarint(r.b[r.off:])
	if k <= 0 {
		r.fail()
		return 0
	}
	r.off += k
	return v
}

// count reads a count of items of at least minSize bytes each, failing
// when the rest of the input could not hold them.
func (r *reader) count(minSize int) int {
	v := r.uvarint()
	if v > uint64(len(r.b)-r.off)/uint64(minSize) {
		r.fail()
		return 0
	}
	return int(v)
}

func (r *reader) bytes(n int) []byte {
	if n > len(r.b)-r.off {
		r.fail()
		return nil
	}
	out := r.b[r.off : r.off+n]
	r.off += n
	return out
}
