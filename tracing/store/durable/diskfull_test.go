package durable

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/glassmesh/glassmesh/telemetry/diskspace"
	"github.com/glassmesh/glassmesh/telemetry/record"
	"github.com/glassmesh/glassmesh/tracing/store"
	"github.com/glassmesh/glassmesh/tracing/store/storetest"
)

// smallFS mounts a tmpfs of size bytes for the test, or skips it where
// mounting is not allowed (not root).
func smallFS(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size); err != nil {
		t.Skipf("cannot mount a tmpfs (needs root): %v", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(dir, syscall.MNT_DETACH) })
	return dir
}

// fill writes a file in dir until the filesystem is full and returns it.
func fill(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 64<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			return path
		}
	}
}

func TestDurableOnAFullDiskRefusesRecoversAndLosesNothingAcknowledged(t *testing.T) {
	for name, guarded := range map[string]bool{"unguarded: the OS says ENOSPC": false, "guarded: the reserve refuses first": true} {
		t.Run(name, func(t *testing.T) {
			dir := smallFS(t, "8m")
			cfg := Config{DataDir: dir}
			if guarded {
				g, err := diskspace.New(diskspace.Config{Dir: dir, MinFree: 1 << 20}, nil, prometheus.NewRegistry())
				if err != nil {
					t.Fatal(err)
				}
				cfg.Space = g
			}
			d := openTest(t, cfg)
			gen := storetest.NewGen(time.Now())
			var acked []int
			write := func(i int) error {
				err := d.WriteTraces(context.Background(), gen.Batch(i, 1))
				if err == nil {
					acked = append(acked, i)
				}
				return err
			}
			filler := fill(t, dir)
			refused := 0
			for i := range 20 {
				if err := write(i); err != nil {
					if !record.IsStorageFull(err) || !errors.Is(err, record.ErrStorageFull) && !errors.Is(err, syscall.ENOSPC) {
						t.Fatalf("write on a full disk: %v, want a storage-full error", err)
					}
					refused++
				}
			}
			if refused == 0 {
				t.Fatal("every write went through on a full disk")
			}
			if err := os.Remove(filler); err != nil {
				t.Fatal(err)
			}
			for i := 20; i < 40; i++ {
				if err := write(i); err != nil {
					t.Fatalf("write %d after space returned: %v", i, err)
				}
			}
			if err := d.Close(); err != nil {
				t.Fatal(err)
			}
			d = openTest(t, cfg)
			for _, i := range acked {
				if n, _ := storetest.GetSpans(t, d, store.TraceRequest{TraceID: storetest.TraceID(i)}); n != 8 {
					t.Errorf("acknowledged trace %d has %d spans after the episode and a restart, want 8", i, n)
				}
			}
			t.Logf("%d writes refused while full, %d acknowledged", refused, len(acked))
		})
	}
}

func TestWALRotationThatFailsKeepsTheOldSegment(t *testing.T) {
	dir := t.TempDir()
	w, _, err := openWAL(dir, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer w.close()
	// The next segment's name is taken by a directory: opening it fails,
	// as creating it does on a full disk.
	if err := os.Mkdir(segmentPath(dir, 2), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := w.rotate(); err == nil {
		t.Fatal("rotation into a directory worked")
	}
	rec := encodePayload([]walFrag{{data: []byte("spans")}})
	if _, err := w.append(rec); err != nil || w.current() != 1 {
		t.Fatalf("append after a failed rotation: %v (segment %d), want segment 1 still taking records", err, w.current())
	}
}
