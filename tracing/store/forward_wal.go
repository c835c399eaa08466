package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"go.opentelemetry.io/collector/pdata/ptrace"
	"google.golang.org/protobuf/encoding/protowire"
)

// fwdBatch is what one read of the WAL yields for a forwarder.
type fwdBatch struct {
	td      ptrace.Traces // decoded, unless the exporter takes body as is
	body    []byte        // TracesData protobuf
	spans   int
	hasData bool
	end     walPos // where the next read starts
}

// readBatch reads the records from start on, up to BatchBytes, and merges
// their spans. A record still being written in the current segment ends
// the batch; a closed segment (complete, since rotation happens under the
// WAL lock) read to its end, or torn there, moves end to the next segment.
func (f *forwarder) readBatch(start walPos) (fwdBatch, error) {
	b := fwdBatch{end: start}
	closed := start.seg < f.w.current()
	file, err := os.Open(f.w.segPath(start.seg))
	if errors.Is(err, fs.ErrNotExist) && closed {
		next, err := f.w.nextSegment(start.seg)
		f.logger.Warn("WAL segment to forward is gone; moving on", "segment", start.seg, "next", next)
		b.end = walPos{seg: next}
		return b, err
	}
	if err != nil {
		return b, fmt.Errorf("wal: %w", err)
	}
	defer file.Close()
	buf, eof, err := readRecords(file, start.off, f.cfg.BatchBytes)
	if err != nil {
		return b, fmt.Errorf("wal: segment %d: %w", start.seg, err)
	}
	body, used, corrupt := f.collectFragments(buf, start.seg)
	b.end.off += int64(used)
	if closed && used == 0 && (corrupt || eof) {
		if corrupt {
			f.logger.Warn("torn WAL record; forwarding the next segment", "segment", start.seg, "offset", start.off)
		}
		b.end = walPos{seg: start.seg + 1}
	}
	if len(body) == 0 {
		return b, nil
	}
	if _, raw := f.exp.(protoExporter); raw {
		b.spans, err = countSpans(body)
		b.body = body
	} else {
		var u ptrace.ProtoUnmarshaler
		b.td, err = u.UnmarshalTraces(body)
		b.spans = b.td.SpanCount()
	}
	if err != nil {
		f.logger.Error("cannot decode WAL spans to forward; skipping them", "segment", start.seg, "err", err)
		return b, nil
	}
	b.hasData = true
	return b, nil
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
func (f *forwarder) collectFragments(buf []byte, seg int) (body []byte, used int, corrupt bool) {
	for used < len(buf) {
		rem := buf[used:]
		if len(rem) < walHeaderSize {
			return body, used, false
		}
		if l := int(binary.LittleEndian.Uint32(rem)); l <= maxRecordSize && walHeaderSize+l > len(rem) {
			return body, used, false // being written, or beyond this batch
		}
		payload, size, err := decodeRecord(rem)
		if err != nil {
			return body, used, true
		}
		used += size
		frags, err := decodePayload(payload)
		if err != nil {
			f.logger.Warn("skipping undecodable WAL record", "segment", seg, "err", err)
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

// end returns the position after the last record appended.
func (w *wal) end() walPos {
	w.mu.Lock()
	defer w.mu.Unlock()
	return walPos{seg: w.seg, off: w.size}
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

// segSize is a WAL segment and its size.
type segSize struct {
	n    int
	size int64
}

func (w *wal) segmentSizes() ([]segSize, error) {
	segs, err := listSegments(w.dir)
	if err != nil {
		return nil, err
	}
	out := make([]segSize, 0, len(segs))
	for _, n := range segs {
		if st, err := os.Stat(w.segPath(n)); err == nil {
			out = append(out, segSize{n: n, size: st.Size()})
		}
	}
	return out, nil
}

// openForwarders opens a forwarder per target; a target without a
// checkpoint starts at start, the oldest span not yet in a block.
func (d *Durable) openForwarders(root string, start walPos) error {
	fc := d.cfg.Forward
	if len(fc.Targets) == 0 {
		return nil
	}
	dir := filepath.Join(root, "forward")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("trace forwarding: %w", err)
	}
	for _, t := range fc.Targets {
		f, err := openForwarder(t, fc, dir, start, d)
		if err != nil {
			return errors.Join(err, d.closeForwarders())
		}
		d.fwd = append(d.fwd, f)
		if end := d.wal.end(); end.less(f.position()) {
			d.logger.Warn("forwarding checkpoint is past the end of the WAL; starting from the head",
				"target", f.label, "segment", f.position().seg)
			f.pos = start
		}
	}
	return syncDir(dir)
}

func (d *Durable) closeForwarders() error {
	var errs []error
	for _, f := range d.fwd {
		errs = append(errs, f.close())
	}
	d.fwd = nil
	return errors.Join(errs...)
}

// notifyForwarders tells them there is more WAL; it never blocks. Hold wmu.
func (d *Durable) notifyForwarders() {
	for _, f := range d.fwd {
		f.notify()
	}
}

// wakeMaintenance asks the maintenance loop for a round; it never blocks.
func (d *Durable) wakeMaintenance() {
	select {
	case d.cutCh <- struct{}{}:
	default:
	}
}

// collectWAL deletes the WAL segments that blocks cover and every
// forwarder has passed, after enforcing MaxLag on the forwarders.
func (d *Durable) collectWAL() {
	d.gcMu.Lock()
	defer d.gcMu.Unlock()
	upTo := d.covered
	if len(d.fwd) > 0 {
		segs, err := d.wal.segmentSizes()
		if err != nil {
			d.logger.Error("cannot list WAL segments", "err", err)
			return
		}
		for _, f := range d.fwd {
			d.limitLag(f, segs)
			upTo = min(upTo, f.position().seg-1)
		}
	}
	if err := d.wal.removeUpTo(upTo); err != nil {
		d.logger.Error("cannot remove WAL segments", "err", err)
	}
}

// limitLag drops a forwarder's oldest segments while it is more than
// MaxLag bytes behind, but only segments blocks cover (the head's own are
// kept for replay anyway), and sets its lag gauge. Hold gcMu.
func (d *Durable) limitLag(f *forwarder, segs []segSize) {
	for {
		pos := f.position()
		var lag, first int64
		for _, s := range segs {
			if s.n == pos.seg {
				first = max(s.size-pos.off, 0)
			}
			if s.n >= pos.seg {
				lag += s.size
			}
		}
		lag -= min(pos.off, lag)
		f.m.lag.Set(float64(lag))
		if lag <= d.cfg.Forward.MaxLag || pos.seg > d.covered {
			return
		}
		f.advance(walPos{seg: pos.seg + 1})
		f.m.droppedBytes.Add(float64(first))
		d.logger.Warn("forwarding target is more than MaxLag behind; dropped its oldest WAL segment",
			"target", f.label, "segment", pos.seg, "bytes", first, "lag", lag, "maxLag", d.cfg.Forward.MaxLag)
	}
}

// countSpans counts the spans of TracesData protobuf without decoding
// them: TracesData.resource_spans (1) → ResourceSpans.scope_spans (2) →
// ScopeSpans.spans (2).
func countSpans(td []byte) (int, error) {
	n := 0
	err := eachField(td, 1, func(rs []byte) error {
		return eachField(rs, 2, func(ss []byte) error {
			return eachField(ss, 2, func([]byte) error { n++; return nil })
		})
	})
	return n, err
}

// eachField calls fn with the bytes of every length-delimited field num
// of the message in b.
func eachField(b []byte, num protowire.Number, fn func([]byte) error) error {
	for len(b) > 0 {
		n, typ, k := protowire.ConsumeTag(b)
		if k < 0 {
			return protowire.ParseError(k)
		}
		b = b[k:]
		if n == num && typ == protowire.BytesType {
			v, k := protowire.ConsumeBytes(b)
			if k < 0 {
				return protowire.ParseError(k)
			}
			if err := fn(v); err != nil {
				return err
			}
			b = b[k:]
			continue
		}
		k = protowire.ConsumeFieldValue(n, typ, b)
		if k < 0 {
			return protowire.ParseError(k)
		}
		b = b[k:]
	}
	return nil
}
