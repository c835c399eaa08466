package durable

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/glassmesh/glassmesh/tracing/store"
	"github.com/glassmesh/glassmesh/tracing/store/storetest"
)

// FuzzWALRecord feeds arbitrary bytes to the WAL record and payload
// decoders: they must return an error or fragments inside the input, never
// panic or allocate beyond the input's size.
func FuzzWALRecord(f *testing.F) {
	g := storetest.NewGen(time.Unix(1700000000, 0))
	frags := store.SplitByTrace(g.Batch(0, 2), fragMaxSpans)
	var wf []walFrag
	for _, fr := range frags {
		var m ptrace.ProtoMarshaler
		data, _ := m.MarshalTraces(fr.Traces)
		wf = append(wf, walFrag{id: fr.ID, data: data})
	}
	rec := encodePayload(wf)
	_ = frameRecord(rec)
	f.Add(rec)
	f.Add(rec[:len(rec)/2])
	f.Add([]byte{})
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		checkPayload(t, b)
		payload, n, err := decodeRecord(b)
		if err != nil {
			return
		}
		if n > len(b) || !bytes.Equal(payload, b[walHeaderSize:n]) {
			t.Fatalf("record of %d bytes from %d", n, len(b))
		}
		checkPayload(t, payload)
	})
}

func checkPayload(t *testing.T, payload []byte) {
	frags, err := decodePayload(payload)
	if err != nil {
		return
	}
	total := 0
	for _, fr := range frags {
		total += traceIDSize + len(fr.data)
	}
	if total > len(payload) {
		t.Fatalf("fragments of %d bytes from a %d-byte payload", total, len(payload))
	}
}

// FuzzBlockIndex feeds arbitrary bytes to the block index decoder and then
// uses what it returns: lookups and posting lists must stay in bounds.
func FuzzBlockIndex(f *testing.F) {
	d, err := Open(Config{DataDir: f.TempDir()}, nil, nil)
	if err != nil {
		f.Fatal(err)
	}
	for _, b := range storetest.NewFixture().Batches() {
		_ = d.WriteTraces(f.Context(), b)
	}
	d.Cut()
	f.Add(mustReadIndex(f, d))
	_ = d.Close()
	if v1, err := os.ReadFile("testdata/v1block/index"); err == nil {
		f.Add(v1)
	}
	f.Add([]byte(indexMagic))
	f.Add([]byte(indexMagic + "\xff\xff\xff\xff\x0f\x00\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		checkIndex(t, b)
		// The same bytes with a valid checksum, to reach the body's checks.
		if len(b) >= 4 {
			body := b[:len(b)-4]
			checkIndex(t, binary.LittleEndian.AppendUint32(slices.Clip(body), crc32.Checksum(body, crcTable)))
		}
	})
}

func checkIndex(t *testing.T, b []byte) {
	idx, err := decodeIndex(b)
	if err != nil {
		return
	}
	for term := range idx.terms {
		l, _ := idx.postings(term)
		for _, o := range l {
			if int(o) >= idx.ntraces {
				t.Fatalf("posting %d beyond %d traces", o, idx.ntraces)
			}
		}
	}
	for i := range idx.ntraces {
		e := idx.entry(i)
		if _, ok := idx.find(e.id); !ok {
			t.Fatalf("entry %d not found by its id", i)
		}
		if idx.version == 1 {
			continue
		}
		for k := range uint64(e.frags) {
			if fr := idx.frag(int(e.first + k)); int(fr.file) >= len(idx.segs) {
				t.Fatalf("entry %d: fragment in segment file %d of %d", i, fr.file, len(idx.segs))
			}
		}
	}
}

func mustReadIndex(f *testing.F, d *Store) []byte {
	d.mu.RLock()
	defer d.mu.RUnlock()
	b, err := os.ReadFile(filepath.Join(d.blocks[0].dir, indexFile))
	if err != nil {
		f.Fatal(err)
	}
	return b
}

// FuzzReadWALClosedSegment has a follower read arbitrary bytes as a
// closed WAL segment: it must move through it to the next segment in a
// bounded number of reads, never stall or panic.
func FuzzReadWALClosedSegment(f *testing.F) {
	g := storetest.NewGen(time.Unix(1700000000, 0))
	var m ptrace.ProtoMarshaler
	data, _ := m.MarshalTraces(g.Batch(0, 1))
	rec := encodePayload([]walFrag{{data: data}})
	_ = frameRecord(rec)
	f.Add(append(slices.Clone(rec), rec...))
	f.Add(rec[:len(rec)-1])
	f.Add([]byte{255, 255, 255, 255, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		w := &wal{dir: t.TempDir(), seg: 2}
		if err := os.WriteFile(w.segPath(1), b, 0o644); err != nil {
			t.Fatal(err)
		}
		d := &Store{wal: w, logger: slog.New(slog.DiscardHandler)}
		pos := Pos{Segment: 1}
		for range len(b) + 2 {
			_, next, err := d.ReadWAL(pos, 64)
			if err != nil {
				t.Fatal(err)
			}
			if !pos.Less(next) {
				t.Fatalf("stalled at %+v", pos)
			}
			if pos = next; pos.Segment == 2 {
				return
			}
		}
		t.Fatalf("still in segment 1 at %+v", pos)
	})
}
