package diskspace

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/glassmesh/glassmesh/telemetry/record"
)

// fakeGuard is a Guard whose filesystem has *free bytes free of 1 GiB.
func fakeGuard(t *testing.T, cfg Config, free *atomic.Int64) (*Guard, *bytes.Buffer) {
	t.Helper()
	var logs bytes.Buffer
	cfg.Dir = "/data"
	g, err := New(cfg, slog.New(slog.NewTextHandler(&logs, nil)), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	g.statfs = func(string) (int64, int64, error) { return free.Load(), 1 << 30, nil }
	return g, &logs
}

func TestGuardRefusesBelowTheReserveAndResumesAboveItOnItsOwn(t *testing.T) {
	var free atomic.Int64
	free.Store(100 << 20)
	g, logs := fakeGuard(t, Config{MinFree: 10 << 20, RetryAfter: 3 * time.Second}, &free)
	if err := g.Check(); err != nil {
		t.Fatalf("100 MiB free, reserve 10 MiB: %v", err)
	}
	free.Store(5 << 20)
	for range 3 {
		err := g.Check()
		if !errors.Is(err, record.ErrStorageFull) {
			t.Fatalf("5 MiB free: %v, want a storage-full error", err)
		}
		if !strings.Contains(err.Error(), "data dir full: /data has 5.0 MiB free of 1.0 GiB") || record.RetryAfter(err, 0) != 3*time.Second {
			t.Errorf("refusal says %q, retry after %s", err, record.RetryAfter(err, 0))
		}
	}
	if got := testutil.ToFloat64(g.gauge); got != 1 {
		t.Errorf("glassmesh_storage_full = %v while full", got)
	}
	free.Store(10<<20 + 1) // above the reserve but not above the resume mark: no flapping
	if err := g.Check(); err == nil {
		t.Error("resumed just above the reserve; want the hysteresis of a tenth (at least 1 MiB)")
	}
	free.Store(12 << 20)
	if err := g.Check(); err != nil {
		t.Errorf("12 MiB free after the episode: %v", err)
	}
	if got := testutil.ToFloat64(g.gauge); got != 0 {
		t.Errorf("glassmesh_storage_full = %v after the episode", got)
	}
	if n := strings.Count(logs.String(), "level=WARN"); n != 1 {
		t.Errorf("%d warnings for one episode of 4 refusals, want 1:\n%s", n, logs)
	}
	if !strings.Contains(logs.String(), "data dir has space again") || !strings.Contains(logs.String(), "refusedWrites=4") {
		t.Errorf("no end-of-episode line with its refusals:\n%s", logs)
	}
	if got := testutil.ToFloat64(g.episodes); got != 1 {
		t.Errorf("%v episodes, want 1", got)
	}
}

func TestGuardReportTurnsENOSPCIntoStorageFullAndHoldsForAPoll(t *testing.T) {
	var free atomic.Int64
	free.Store(100 << 20) // statfs sees room (a quota, say), yet the write failed
	g, _ := fakeGuard(t, Config{MinFree: 1 << 20, PollInterval: time.Hour}, &free)
	werr := &os.PathError{Op: "write", Path: "/data/traces/wal/00000001", Err: syscall.ENOSPC}
	err := g.Report(fmt.Errorf("trace store: %w", werr))
	var sf *record.StorageFull
	if !errors.As(err, &sf) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Report(ENOSPC) = %v, want a StorageFull wrapping ENOSPC", err)
	}
	if !strings.Contains(err.Error(), "no space left on device") {
		t.Errorf("the reason %q does not name the write error", err)
	}
	if err := g.Check(); err == nil {
		t.Error("a write just failed for space and the next is let through at once")
	}
	if again := g.Report(err); again != err {
		t.Errorf("reporting a StorageFull again wraps it: %v", again)
	}
	other := errors.New("disk on fire")
	if got := g.Report(other); got != other {
		t.Errorf("Report(other) = %v, want it unchanged", got)
	}
}

func TestNilGuardAllowsAndClassifies(t *testing.T) {
	var g *Guard
	if err := g.Check(); err != nil || g.Full() {
		t.Fatalf("nil guard refuses: %v", err)
	}
	if err := g.Report(syscall.ENOSPC); !errors.Is(err, record.ErrStorageFull) {
		t.Errorf("nil guard Report(ENOSPC) = %v", err)
	}
}

func TestStatfsOfARealDirectory(t *testing.T) {
	free, size, err := statfs(t.TempDir())
	if err != nil || size <= 0 || free < 0 || free > size {
		t.Fatalf("statfs = %d free of %d, %v", free, size, err)
	}
}
