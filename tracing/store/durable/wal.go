package durable

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
)

// A WAL record is a 4-byte little-endian payload length, the payload's
// CRC-32C, then the payload: a uvarint fragment count and per fragment the
// 16-byte trace id, a uvarint length and the OTLP protobuf of the spans.
const (
	walHeaderSize = 8
	maxRecordSize = 64 << 20
	traceIDSize   = 16
)

var (
	crcTable = crc32.MakeTable(crc32.Castagnoli)
	// errCorrupt marks a record or file that fails its checks.
	errCorrupt = errors.New("corrupt")
)

// walFrag is one trace's fragment as stored in a WAL record.
type walFrag struct {
	id   [traceIDSize]byte
	data []byte
	at   int // where data starts in the record's payload
}

// wal appends records to numbered segment files. Appends are write
// syscalls (they survive kill -9); fsync happens in groups via sync.
type wal struct {
	dir string

	mu    sync.Mutex
	f     *os.File
	seg   int
	size  int64 // of the current segment: the end of its last whole record
	dirty bool
	// torn is set while the current segment may hold the start of a record
	// whose write failed (a full disk) and could not be cut off: no record
	// goes after it until it is, or replay would stop at the torn one and
	// drop what follows.
	torn bool
}

// openWAL lists the existing segments of dir, sorted, and opens a new one
// for appends, numbered after them and after minNext−1 (the last segment
// blocks cover), so numbers never go back.
func openWAL(dir string, minNext int) (*wal, []int, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, fmt.Errorf("wal: %w", err)
	}
	segs, err := listSegments(dir)
	if err != nil {
		return nil, nil, err
	}
	w := &wal{dir: dir}
	next := max(minNext, 1)
	if len(segs) > 0 {
		next = max(next, segs[len(segs)-1]+1)
	}
	if err := w.openSegment(next); err != nil {
		return nil, nil, err
	}
	return w, segs, nil
}

func listSegments(dir string) ([]int, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("wal: %w", err)
	}
	var segs []int
	for _, e := range entries {
		if n, err := strconv.Atoi(e.Name()); err == nil && !e.IsDir() {
			segs = append(segs, n)
		}
	}
	slices.Sort(segs)
	return segs, nil
}

func (w *wal) segPath(n int) string { return segmentPath(w.dir, n) }

// segmentPath is the file of WAL segment n in dir.
func segmentPath(dir string, n int) string { return filepath.Join(dir, fmt.Sprintf("%08d", n)) }

// openSegment makes segment n the one appended to; the one before (if
// any) is closed once n is open, and stays current when n cannot be
// opened, so a failure (a full disk) never leaves the WAL without a file.
func (w *wal) openSegment(n int) error {
	f, err := os.OpenFile(w.segPath(n), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("wal: %w", err)
	}
	st, err := f.Stat()
	if err == nil {
		err = syncDir(w.dir)
	}
	if err != nil {
		_ = f.Close()
		_ = os.Remove(w.segPath(n)) // empty; the next try creates it again
		return fmt.Errorf("wal: %w", err)
	}
	if w.f != nil {
		_ = w.f.Close()
	}
	w.f, w.seg, w.size = f, n, st.Size()
	return nil
}

// append writes one record whose payload starts at rec[walHeaderSize:]
// (the caller leaves the header room) and returns where the payload is.
func (w *wal) append(rec []byte) (Pos, error) {
	if err := frameRecord(rec); err != nil {
		return Pos{}, err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.torn {
		if err := w.dropPartial(); err != nil {
			return Pos{}, fmt.Errorf("wal: segment %d: cutting off a failed write: %w", w.seg, err)
		}
	}
	at := Pos{Segment: w.seg, Offset: w.size + walHeaderSize}
	if _, err := w.f.Write(rec); err != nil {
		w.torn = true
		_ = w.dropPartial() // else the next append tries again
		return Pos{}, fmt.Errorf("wal: segment %d: %w", w.seg, err)
	}
	w.size += int64(len(rec))
	w.dirty = true
	return at, nil
}

// dropPartial removes what a failed append may have written (a disk that
// filled up), so later records are not stranded behind a torn one; if it
// cannot, it moves on to a new segment (the torn record then ends the old
// one, where replay stops anyway). While neither works, torn stays set and
// appends fail. Hold mu.
func (w *wal) dropPartial() error {
	err := w.f.Truncate(w.size)
	if err == nil {
		w.torn = false
		return nil
	}
	if oerr := w.openSegment(w.seg + 1); oerr != nil {
		return errors.Join(err, oerr)
	}
	w.torn = false
	return nil
}

// frameRecord fills in the header of a record built by encodePayload.
func frameRecord(rec []byte) error {
	payload := rec[walHeaderSize:]
	if len(payload) > maxRecordSize {
		return fmt.Errorf("wal: record of %d bytes exceeds %d", len(payload), maxRecordSize)
	}
	binary.LittleEndian.PutUint32(rec[0:], uint32(len(payload)))
	binary.LittleEndian.PutUint32(rec[4:], crc32.Checksum(payload, crcTable))
	return nil
}

// sync fsyncs the current segment if anything was appended since the last
// sync; it reports whether it did. Appends go on during the fsync.
func (w *wal) sync() (bool, error) {
	w.mu.Lock()
	f, seg, dirty := w.f, w.seg, w.dirty
	w.dirty = false
	w.mu.Unlock()
	if !dirty {
		return false, nil
	}
	if err := f.Sync(); err != nil {
		if errors.Is(err, os.ErrClosed) {
			return false, nil // rotate or close fsynced it before closing
		}
		return false, fmt.Errorf("wal: fsync segment %d: %w", seg, err)
	}
	return true, nil
}

// rotate fsyncs and closes the current segment and starts the next one;
// it returns the number of the segment it closed.
func (w *wal) rotate() (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	old := w.seg
	if err := w.f.Sync(); err != nil {
		return old, fmt.Errorf("wal: fsync segment %d: %w", old, err)
	}
	w.dirty = false
	// The old segment stays current until the new one is open: a rotation
	// that fails (no space for the file) leaves a working WAL.
	return old, w.openSegment(old + 1)
}

// removeUpTo deletes every closed segment numbered ≤ last.
func (w *wal) removeUpTo(last int) error {
	segs, err := listSegments(w.dir)
	if err != nil {
		return err
	}
	w.mu.Lock()
	cur := w.seg
	w.mu.Unlock()
	removed := false
	for _, s := range segs {
		if s <= last && s != cur {
			if err := os.Remove(w.segPath(s)); err != nil {
				return fmt.Errorf("wal: %w", err)
			}
			removed = true
		}
	}
	if !removed {
		return nil
	}
	return syncDir(w.dir)
}

func (w *wal) close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return errors.Join(w.f.Sync(), w.f.Close())
}

// readSegment calls fn with each record payload of segment n and the
// payload's offset in the file. A torn or corrupt record ends the segment:
// the file is truncated there (it can only be the tail of a write cut short
// by a crash) and torn is true.
func (w *wal) readSegment(n int, fn func(payload []byte, off int64) error) (torn bool, err error) {
	b, err := os.ReadFile(w.segPath(n))
	if err != nil {
		return false, fmt.Errorf("wal: %w", err)
	}
	off := 0
	for off < len(b) {
		payload, size, err := decodeRecord(b[off:])
		if err != nil {
			return true, os.Truncate(w.segPath(n), int64(off))
		}
		if err := fn(payload, int64(off+walHeaderSize)); err != nil {
			return false, err
		}
		off += size
	}
	return false, nil
}

// decodeRecord decodes the record at the start of b, returning its payload
// and its size on disk.
func decodeRecord(b []byte) ([]byte, int, error) {
	if len(b) < walHeaderSize {
		return nil, 0, fmt.Errorf("wal record header: %w", errCorrupt)
	}
	n := binary.LittleEndian.Uint32(b)
	if n > maxRecordSize || int(n) > len(b)-walHeaderSize {
		return nil, 0, fmt.Errorf("wal record length %d: %w", n, errCorrupt)
	}
	payload := b[walHeaderSize : walHeaderSize+int(n)]
	if crc32.Checksum(payload, crcTable) != binary.LittleEndian.Uint32(b[4:]) {
		return nil, 0, fmt.Errorf("wal record checksum: %w", errCorrupt)
	}
	return payload, walHeaderSize + int(n), nil
}

// encodePayload builds a record (header room + payload) from fragments
// and sets where each one's data is in the payload.
func encodePayload(frags []walFrag) []byte {
	size := walHeaderSize + binary.MaxVarintLen64
	for _, f := range frags {
		size += traceIDSize + binary.MaxVarintLen64 + len(f.data)
	}
	rec := make([]byte, walHeaderSize, size)
	rec = binary.AppendUvarint(rec, uint64(len(frags)))
	for i, f := range frags {
		rec = append(rec, f.id[:]...)
		rec = binary.AppendUvarint(rec, uint64(len(f.data)))
		frags[i].at = len(rec) - walHeaderSize
		rec = append(rec, f.data...)
	}
	return rec
}

// decodePayload splits a record payload into fragments; their data alias p.
func decodePayload(p []byte) ([]walFrag, error) {
	n, k := binary.Uvarint(p)
	if k <= 0 || n > uint64(len(p))/(traceIDSize+1) {
		return nil, fmt.Errorf("wal payload count: %w", errCorrupt)
	}
	size := len(p)
	p = p[k:]
	frags := make([]walFrag, 0, n)
	for range n {
		if len(p) < traceIDSize {
			return nil, fmt.Errorf("wal payload trace id: %w", errCorrupt)
		}
		var f walFrag
		copy(f.id[:], p)
		l, k := binary.Uvarint(p[traceIDSize:])
		if k <= 0 || l > uint64(len(p)-traceIDSize-k) {
			return nil, fmt.Errorf("wal payload fragment length: %w", errCorrupt)
		}
		start := traceIDSize + k
		f.data = p[start : start+int(l) : start+int(l)]
		f.at = size - len(p) + start
		frags = append(frags, f)
		p = p[start+int(l):]
	}
	if len(p) != 0 {
		return nil, fmt.Errorf("wal payload trailing bytes: %w", errCorrupt)
	}
	return frags, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}
