package durable

import (
	"bufio"
	"cmp"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"

	"go.opentelemetry.io/collector/pdata/pcommon"

	"github.com/glassmesh/glassmesh/tracing/store"
)

// A block directory holds the WAL segments its spans were written to
// (hard links "wal-<number>", or copies where links fail), "index" and
// "meta.json"; a version 1 block held "spans" (each trace's fragments,
// contiguous, in trace id order, each a uvarint length and OTLP protobuf)
// instead of the segments.
const (
	spansFile = "spans"
	indexFile = "index"
	metaFile  = "meta.json"
	tmpPrefix = ".tmp-"
	segPrefix = "wal-"
)

// blockMeta is a block's meta.json.
type blockMeta struct {
	Version      int                          `json:"version"`
	ID           string                       `json:"id"`
	MinTime      int64                        `json:"minTime"` // unix nanos, earliest span start
	MaxTime      int64                        `json:"maxTime"` // unix nanos, latest span end
	Spans        int                          `json:"spans"`
	Traces       int                          `json:"traces"`
	WALSegment   int                          `json:"walSegment"` // last WAL segment it covers
	Operations   map[string][]store.Operation `json:"operations"`
	Dependencies []blockDep                   `json:"dependencies"`
}

// blockDep counts calls between two services whose child span started in
// one second (unix seconds).
type blockDep struct {
	Parent string `json:"parent"`
	Child  string `json:"child"`
	Second int64  `json:"second"`
	Count  uint64 `json:"count"`
}

// block is an open, immutable block. refs counts its users; the store
// holds one and the file closes when the last is released.
type block struct {
	dir   string
	meta  blockMeta
	idx   *blockIndex // over the mapped index file
	unmap func() error
	f     *os.File   // version 1: the spans file
	files []*os.File // version 2: the segments, as idx.segs
	size  int64
	refs  atomic.Int32
}

// writeBlock persists head h (no longer written to) as a block under dir
// and returns the block's directory. The spans are not written again: the
// block links the WAL segments that hold them and indexes where each
// trace's fragments are. Files are fsynced and the directory renamed into
// place, so a crash leaves either no block or a whole one.
func writeBlock(dir string, h *head) (string, error) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	meta := blockMeta{
		Version: 2, MinTime: h.minT, MaxTime: h.maxT, Spans: h.spans, Traces: len(h.traces),
		WALSegment: h.lastSeg, Operations: map[string][]store.Operation{}, Dependencies: blockDeps(h),
	}
	meta.ID = fmt.Sprintf("%d-%d-%s", h.minT/1e6, h.maxT/1e6, hex.EncodeToString(rnd[:]))
	for svc, ops := range h.ops {
		meta.Operations[svc] = slices.Collect(maps.Keys(ops))
		store.SortOperations(meta.Operations[svc])
	}
	order := make([]int32, len(h.traces))
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortFunc(order, func(a, b int32) int { return store.CompareTraceIDs(h.traces[a].id, h.traces[b].id) })
	tmp := filepath.Join(dir, tmpPrefix+meta.ID)
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return "", err
	}
	final, err := fillBlock(dir, tmp, h, meta, order)
	if err != nil {
		// A failed cut (a full disk) is retried under a new name: this one
		// must not keep its space, nor its links that keep the WAL
		// segments' space after the WAL lets them go.
		_ = os.RemoveAll(tmp)
		return "", err
	}
	return final, nil
}

// fillBlock writes the block's files into tmp and renames it into dir.
func fillBlock(dir, tmp string, h *head, meta blockMeta, order []int32) (string, error) {
	segs, err := linkSegments(tmp, h)
	if err != nil {
		return "", err
	}
	iw := newIndexWriter(blockEntries(h, order, segs))
	iw.terms(blockPostings(h, order))
	overflow := slices.Sorted(maps.Keys(h.overflow))
	if err := writeFileSync(filepath.Join(tmp, indexFile), iw.finish(overflow)); err != nil {
		return "", err
	}
	mb, _ := json.Marshal(meta)
	if err := writeFileSync(filepath.Join(tmp, metaFile), mb); err != nil {
		return "", err
	}
	final := filepath.Join(dir, meta.ID)
	if err := errors.Join(syncDir(tmp), os.Rename(tmp, final), syncDir(dir)); err != nil {
		return "", err
	}
	return final, nil
}

func segFile(seg int) string { return fmt.Sprintf("%s%08d", segPrefix, seg) }

// linkSegments fsyncs the WAL segments of h and links them into dir
// (copying them where the file system refuses); it returns their numbers,
// sorted. Hold h.mu.
func linkSegments(dir string, h *head) ([]int, error) {
	segs := make([]int, 0, len(h.files))
	for s := range h.files {
		segs = append(segs, int(s))
	}
	slices.Sort(segs)
	for _, s := range segs {
		f := h.files[uint32(s)]
		if err := f.Sync(); err != nil {
			return nil, err
		}
		dst := filepath.Join(dir, segFile(s))
		if os.Link(segmentPath(h.walDir, s), dst) == nil {
			continue
		}
		if err := copyFile(dst, f); err != nil {
			return nil, err
		}
	}
	return segs, nil
}

func copyFile(dst string, src *os.File) error {
	st, err := src.Stat()
	if err != nil {
		return err
	}
	f, err := os.Create(dst)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, io.NewSectionReader(src, 0, st.Size()))
	return errors.Join(err, f.Sync(), f.Close())
}

// blockEntries lists the traces of h in block order with their runs of
// the fragment table, and the table. Hold h.mu.
func blockEntries(h *head, order []int32, segs []int) ([]int, []indexEntry, []blockFrag) {
	file := make(map[uint32]uint32, len(segs))
	for i, s := range segs {
		file[uint32(s)] = uint32(i)
	}
	entries := make([]indexEntry, len(order))
	var frags []blockFrag
	for i, o := range order {
		t := h.traces[o]
		entries[i] = indexEntry{id: t.id, first: uint64(len(frags)), frags: uint32(len(t.frags)), traceStats: t.traceStats}
		for _, r := range t.frags {
			frags = append(frags, blockFrag{file: file[r.seg], n: r.n, off: uint64(r.off)})
		}
	}
	return segs, entries, frags
}

// blockDeps counts the calls between services per second. Hold h.mu.
func blockDeps(h *head) []blockDep {
	deps := map[blockDep]uint64{}
	for _, t := range h.traces {
		t.deps(h.svcNames, func(k store.CallKey, start int64) {
			deps[blockDep{Parent: k.Parent, Child: k.Child, Second: start / nanosPerSec}]++
		})
	}
	list := make([]blockDep, 0, len(deps))
	for d, n := range deps {
		d.Count = n
		list = append(list, d)
	}
	slices.SortFunc(list, func(a, b blockDep) int {
		return cmp.Or(cmp.Compare(a.Second, b.Second), cmp.Compare(a.Parent, b.Parent), cmp.Compare(a.Child, b.Child))
	})
	return list
}

// blockPostings renumbers the head's posting lists to block entry order.
// Rather than renumber and sort each list (a sort per term was ~8% of
// ingest CPU), it transposes them: the terms of each trace, then the traces
// in block order appended to their terms' lists, which are so sorted by
// construction; a repeated ordinal is dropped as it is appended.
func blockPostings(h *head, order []int32) ([]string, [][]int32) {
	terms := slices.Sorted(maps.Keys(h.post))
	// start[o]..start[o+1] will hold the term numbers of head trace o.
	start := make([]int32, len(h.traces)+1)
	for _, t := range terms {
		for _, o := range *h.post[t] {
			start[o+1]++
		}
	}
	for i := 1; i < len(start); i++ {
		start[i] += start[i-1]
	}
	of := make([]int32, start[len(start)-1])
	next := slices.Clone(start[:len(start)-1])
	for ti, t := range terms {
		for _, o := range *h.post[t] {
			of[next[o]] = int32(ti)
			next[o]++
		}
	}
	lists := make([][]int32, len(terms))
	for ti, t := range terms {
		lists[ti] = make([]int32, 0, len(*h.post[t]))
	}
	for rank, o := range order {
		for _, ti := range of[start[o]:start[o+1]] {
			if l := lists[ti]; len(l) == 0 || l[len(l)-1] != int32(rank) {
				lists[ti] = append(l, int32(rank))
			}
		}
	}
	return terms, lists
}

func writeFileSync(path string, b []byte) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	return errors.Join(err, f.Sync(), f.Close())
}

// openBlock opens the block in dir, holding one reference.
func openBlock(dir string) (*block, error) {
	b := &block{dir: dir}
	mb, err := os.ReadFile(filepath.Join(dir, metaFile))
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(mb, &b.meta); err != nil {
		return nil, fmt.Errorf("block %s: meta: %w", dir, err)
	}
	ib, unmap, err := mapFile(filepath.Join(dir, indexFile))
	if err != nil {
		return nil, err
	}
	if b.idx, err = decodeIndex(ib); err != nil {
		return nil, errors.Join(fmt.Errorf("block %s: %w", dir, err), unmap())
	}
	b.unmap = unmap
	b.size = int64(len(ib) + len(mb))
	if err := b.openData(); err != nil {
		b.closeFiles()
		return nil, err
	}
	b.refs.Store(1)
	return b, nil
}

// openData opens the spans file (version 1) or the segments (version 2).
func (b *block) openData() error {
	names := []string{spansFile}
	if b.idx.version == 2 {
		names = names[:0]
		for _, s := range b.idx.segs {
			names = append(names, segFile(s))
		}
	}
	for _, name := range names {
		f, err := os.Open(filepath.Join(b.dir, name))
		if err != nil {
			return err
		}
		if b.idx.version == 1 {
			b.f = f
		} else {
			b.files = append(b.files, f)
		}
		if st, err := f.Stat(); err == nil {
			b.size += st.Size()
		}
	}
	return nil
}

func (b *block) closeFiles() {
	if b.f != nil {
		_ = b.f.Close()
	}
	for _, f := range b.files {
		_ = f.Close()
	}
	_ = b.unmap()
}

func (b *block) acquire() { b.refs.Add(1) }

func (b *block) release() {
	if b.refs.Add(-1) == 0 {
		b.closeFiles()
	}
}

// fragments streams the fragments of entry ref; data is valid until fn
// returns.
func (b *block) fragments(ref int32, fn func(data []byte) error) error {
	return b.entryFragments(b.idx.entry(int(ref)), fn)
}

// entryFragments streams the fragments of entry e, read into one buffer:
// data is valid until fn returns.
func (b *block) entryFragments(e indexEntry, fn func(data []byte) error) error {
	if b.idx.version == 1 {
		return b.entryFragmentsV1(e, fn)
	}
	var buf []byte
	for k := range uint64(e.frags) {
		fr := b.idx.frag(int(e.first + k))
		data := slices.Grow(buf[:0], int(fr.n))[:fr.n]
		buf = data
		if _, err := b.files[fr.file].ReadAt(data, int64(fr.off)); err != nil {
			return fmt.Errorf("block %s: trace %v: %w", b.dir, e.id, err)
		}
		if err := fn(data); err != nil {
			return err
		}
	}
	return nil
}

// entryFragmentsV1 streams the fragments of entry e from the spans file.
func (b *block) entryFragmentsV1(e indexEntry, fn func(data []byte) error) error {
	r := bufio.NewReaderSize(io.NewSectionReader(b.f, int64(e.off), int64(e.length)), 64<<10)
	for range e.frags {
		n, err := binary.ReadUvarint(r)
		if err != nil || n > e.length {
			return fmt.Errorf("block %s: trace %v: %w", b.dir, e.id, errCorrupt)
		}
		data := make([]byte, n)
		if _, err := io.ReadFull(r, data); err != nil {
			return fmt.Errorf("block %s: trace %v: %w", b.dir, e.id, err)
		}
		if err := fn(data); err != nil {
			return err
		}
	}
	return nil
}

// candidates of a block: posting lists intersected, pruned by entry stats.
func (b *block) candidates(q *store.TraceQuery) ([]candidate, error) {
	if !q.StartMax.IsZero() && b.meta.MinTime > q.StartMax.UnixNano() ||
		!q.StartMin.IsZero() && b.meta.MaxTime < q.StartMin.UnixNano() {
		return nil, nil
	}
	terms := queryTerms(q, func(k string) bool { return hasKey(b.idx.overflow, k) })
	var ords []int32
	if len(terms) == 0 {
		ords = make([]int32, b.idx.ntraces)
		for i := range ords {
			ords[i] = int32(i)
		}
	} else {
		lists := make([][]int32, len(terms))
		for i, t := range terms {
			l, ok := b.idx.postings(t)
			if !ok {
				return nil, nil
			}
			lists[i] = l
		}
		ords = intersect(lists)
	}
	var out []candidate
	for _, o := range ords {
		e := b.idx.entry(int(o))
		if e.mayMatch(q) {
			out = append(out, candidate{id: e.id, maxStart: e.maxStart, ref: o})
		}
	}
	return out, nil
}

func (b *block) latest() int64 { return b.meta.MaxTime }

// lookup finds trace id in the block.
func (b *block) lookup(id pcommon.TraceID) (indexEntry, bool) {
	i, ok := b.idx.find(id)
	if !ok {
		return indexEntry{}, false
	}
	return b.idx.entry(i), true
}
