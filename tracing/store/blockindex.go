package store

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"sort"

	"go.opentelemetry.io/collector/pdata/pcommon"
)

// The index file of a block: magic, a uvarint trace count and that many
// fixed-size entries sorted by trace id; a uvarint term count and per term
// its bytes and delta-encoded posting list (trace entry numbers); the
// attribute keys left unindexed (overflow); then a CRC-32C of it all.
const (
	indexMagic = "GMI1"
	entrySize  = traceIDSize + 8 + 8 + 4 + 4 + 4*8
)

// indexEntry locates one trace in the spans file and summarises it.
type indexEntry struct {
	id     pcommon.TraceID
	off    uint64 // in the spans file
	length uint64 // bytes of its fragments
	frags  uint32
	traceStats
}

func putEntry(b []byte, e indexEntry) {
	copy(b, e.id[:])
	le := binary.LittleEndian
	le.PutUint64(b[16:], e.off)
	le.PutUint64(b[24:], e.length)
	le.PutUint32(b[32:], e.frags)
	le.PutUint32(b[36:], uint32(e.spans))
	le.PutUint64(b[40:], uint64(e.minStart))
	le.PutUint64(b[48:], uint64(e.maxStart))
	le.PutUint64(b[56:], uint64(e.minDur))
	le.PutUint64(b[64:], uint64(e.maxDur))
}

func getEntry(b []byte) indexEntry {
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

func newIndexWriter(entries []indexEntry) *indexWriter {
	w := &indexWriter{buf: []byte(indexMagic)}
	w.buf = binary.AppendUvarint(w.buf, uint64(len(entries)))
	for _, e := range entries {
		var b [entrySize]byte
		putEntry(b[:], e)
		w.buf = append(w.buf, b[:]...)
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
	raw      []byte
	entries  []byte // ntraces × entrySize
	ntraces  int
	terms    map[string]postRef
	overflow map[string]struct{}
}

type postRef struct{ off, n int }

// decodeIndex checks and decodes an index file. Any input gives an index
// or an error; counts are checked against the bytes left before anything is
// allocated for them.
func decodeIndex(b []byte) (*blockIndex, error) {
	if len(b) < len(indexMagic)+4 || string(b[:len(indexMagic)]) != indexMagic {
		return nil, fmt.Errorf("index header: %w", errCorrupt)
	}
	body := b[:len(b)-4]
	if crc32.Checksum(body, crcTable) != binary.LittleEndian.Uint32(b[len(b)-4:]) {
		return nil, fmt.Errorf("index checksum: %w", errCorrupt)
	}
	r := reader{b: body, off: len(indexMagic)}
	n := r.count(entrySize)
	idx := &blockIndex{raw: body, ntraces: n, overflow: map[string]struct{}{}}
	idx.entries = r.bytes(n * entrySize)
	for i := 1; i < n && r.err == nil; i++ {
		if compareIDs(idx.entryID(i-1), idx.entryID(i)) >= 0 {
			r.fail() // lookups need ids sorted and distinct
		}
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

func (x *blockIndex) entry(i int) indexEntry {
	return getEntry(x.entries[i*entrySize:])
}

func (x *blockIndex) entryID(i int) pcommon.TraceID {
	return pcommon.TraceID(x.entries[i*entrySize : i*entrySize+traceIDSize])
}

// find returns the entry number of trace id.
func (x *blockIndex) find(id pcommon.TraceID) (int, bool) {
	i := sort.Search(x.ntraces, func(i int) bool { return compareIDs(x.entryID(i), id) >= 0 })
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
