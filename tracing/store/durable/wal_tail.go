package durable

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// Pos is a place in the WAL: a segment and a byte offset in it.
type Pos struct {
	Segment int
	Offset  int64
}

// Less reports whether p comes before q.
func (p Pos) Less(q Pos) bool {
	return p.Segment < q.Segment || p.Segment == q.Segment && p.Offset < q.Offset
}

// Segment is a WAL segment and its size in bytes.
type Segment struct {
	N    int
	Size int64
}

// A Follower reads the WAL behind the store, from a position of its own,
// as forwarding to external OTLP targets does (tracing/forward): the store
// keeps the WAL segments a follower has not read yet after blocks cover
// them, and tells it when there is more to read.
type Follower interface {
	// Appended says the WAL grew or moved on to a new segment. It is
	// called with the store's write lock held: it must not block.
	Appended()
	// Retain returns the first segment the follower still needs, before
	// the store deletes older ones. segs are the WAL's segments, oldest
	// first; segments up to covered are in blocks and kept only for
	// followers, so a follower may give them up (one too far behind
	// does); later ones the store keeps anyway.
	Retain(segs []Segment, covered int) int
}

// Follow registers f. It returns where a follower new to the store starts:
// the oldest span not yet in a block (blocks are not replayed to it).
func (d *Store) Follow(f Follower) Pos {
	d.gcMu.Lock()
	defer d.gcMu.Unlock()
	var fs []Follower
	if old := d.followers.Load(); old != nil {
		fs = append(fs, *old...)
	}
	fs = append(fs, f)
	d.followers.Store(&fs)
	return Pos{Segment: d.covered + 1}
}

// Dir is the store's directory, DataDir/traces; followers keep their own
// state beside the WAL in it.
func (d *Store) Dir() string { return d.dir }

// WALEnd returns the position after the last record appended.
func (d *Store) WALEnd() Pos {
	w := d.wal
	w.mu.Lock()
	defer w.mu.Unlock()
	return Pos{Segment: w.seg, Offset: w.size}
}

// ReadWAL reads the whole records from p on, about max bytes of them (more
// when the first record is larger), and returns their spans as one OTLP
// TracesData protobuf, and where the next read starts. A record still
// being written in the current segment ends the read; a closed segment
// (complete, since rotation happens under the WAL lock) read to its end,
// damaged there, or gone moves next on to the following segment. An
// empty body with next == p means the follower has read everything.
func (d *Store) ReadWAL(p Pos, max int) (body []byte, next Pos, err error) {
	w := d.wal
	next = p
	closed := p.Segment < w.current()
	file, err := os.Open(w.segPath(p.Segment))
	if errors.Is(err, fs.ErrNotExist) && closed {
		n, err := w.nextSegment(p.Segment)
		d.logger.Warn("WAL segment a follower needs is gone; moving on", "segment", p.Segment, "next", n)
		return nil, Pos{Segment: n}, err
	}
	if err != nil {
		return nil, next, fmt.Errorf("wal: %w", err)
	}
	defer file.Close()
	buf, eof, err := readRecords(file, p.Offset, max)
	if err != nil {
		return nil, next, fmt.Errorf("wal: segment %d: %w", p.Segment, err)
	}
	body, used, corrupt := d.collectFragments(buf, p.Segment)
	next.Offset += int64(used)
	if closed && used == 0 && (corrupt || eof) {
		if corrupt {
			d.logger.Warn("torn WAL record; following on in the next segment", "segment", p.Segment, "offset", p.Offset)
		}
		next = Pos{Segment: p.Segment + 1}
	}
	return body, next, nil
}

// CollectWAL asks the store to delete the WAL segments no one needs any
// more (a follower that moved on to a new segment calls it). It never
// blocks: the maintenance loop does the work.
func (d *Store) CollectWAL() {
	select {
	case d.cutCh <- struct{}{}:
	default:
	}
}

// readRecords reads what there is at off, up to limit bytes, or more when
// the first record is larger; eof reports that it read to the end of the
// file as it was.
func readRecords(file *os.File, off int64, limit int) (buf []byte, eof bool, err error) {
	st, err := file.Stat()
	if err != nil {
		return nil, false, err
	}
	avail := st.Size() - off
	if avail <= 0 {
		return nil, true, nil
	}
	want := int(min(avail, int64(limit)))
	buf = make([]byte, want)
	n, err := file.ReadAt(buf, off)
	if n == want && want == limit && n >= walHeaderSize {
		if l := int(binary.LittleEndian.Uint32(buf)); l <= maxRecordSize && walHeaderSize+l > n {
			want = int(min(avail, int64(walHeaderSize+l)))
			buf = make([]byte, want)
			n, err = file.ReadAt(buf, off)
		}
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, false, err
	}
	return buf[:n], off+int64(n) >= st.Size(), nil
}

// collectFragments concatenates the OTLP protobuf fragments of the whole
// records in buf: TracesData has only a repeated field, so the
// concatenation is itself the TracesData of all of them. It returns how
// many bytes of buf it used, and whether it stopped at a corrupt record.
func (d *Store) collectFragments(buf []byte, seg int) (body []byte, used int, corrupt bool) {
	for used < len(buf) {
		rem := buf[used:]
		if len(rem) < walHeaderSize {
			return body, used, false
		}
		if l := int(binary.LittleEndian.Uint32(rem)); l <= maxRecordSize && walHeaderSize+l > len(rem) {
			return body, used, false // being written, or beyond this read
		}
		payload, size, err := decodeRecord(rem)
		if err != nil {
			return body, used, true
		}
		used += size
		frags, err := decodePayload(payload)
		if err != nil {
			d.logger.Warn("skipping undecodable WAL record", "segment", seg, "err", err)
			continue
		}
		for _, fr := range frags {
			body = append(body, fr.data...)
		}
	}
	return body, used, false
}

// current returns the segment appends go to.
func (w *wal) current() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.seg
}

// nextSegment returns the first segment after s on disk, or the current.
func (w *wal) nextSegment(s int) (int, error) {
	segs, err := listSegments(w.dir)
	if err != nil {
		return w.current(), err
	}
	for _, n := range segs {
		if n > s {
			return n, nil
		}
	}
	return w.current(), nil
}

func (w *wal) segmentSizes() ([]Segment, error) {
	segs, err := listSegments(w.dir)
	if err != nil {
		return nil, err
	}
	out := make([]Segment, 0, len(segs))
	for _, n := range segs {
		if st, err := os.Stat(w.segPath(n)); err == nil {
			out = append(out, Segment{N: n, Size: st.Size()})
		}
	}
	return out, nil
}

// following reports whether any follower is registered.
func (d *Store) following() bool {
	fs := d.followers.Load()
	return fs != nil && len(*fs) > 0
}

// notifyFollowers tells them there is more WAL; it never blocks. Hold wmu.
func (d *Store) notifyFollowers() {
	if fs := d.followers.Load(); fs != nil {
		for _, f := range *fs {
			f.Appended()
		}
	}
}

// collectWAL deletes the WAL segments that blocks cover and every
// follower has passed or given up.
func (d *Store) collectWAL() {
	d.gcMu.Lock()
	defer d.gcMu.Unlock()
	upTo := d.covered
	if fs := d.followers.Load(); fs != nil && len(*fs) > 0 {
		segs, err := d.wal.segmentSizes()
		if err != nil {
			d.logger.Error("cannot list WAL segments", "err", err)
			return
		}
		for _, f := range *fs {
			upTo = min(upTo, f.Retain(segs, d.covered)-1)
		}
	}
	if err := d.wal.removeUpTo(upTo); err != nil {
		d.logger.Error("cannot remove WAL segments", "err", err)
	}
}
