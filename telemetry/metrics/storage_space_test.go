package metrics

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/wlog"

	"github.com/glassmesh/glassmesh/telemetry/diskspace"
	"github.com/glassmesh/glassmesh/telemetry/record"
)

func TestAppendsWhileTheDataDirIsFullNeverReachTheTSDB(t *testing.T) {
	dir := t.TempDir()
	// A reserve no disk has: the data dir is always "full".
	space, err := diskspace.New(diskspace.Config{Dir: dir, MinFree: 1 << 62}, nil, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	st, err := OpenStorage(StorageConfig{DataDir: dir, Space: space}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ls := labels.FromStrings("__name__", "refused")
	app := st.Appendable().Appender(context.Background())
	if _, err := app.Append(0, ls, time.Now().UnixMilli(), 1); !errors.Is(err, record.ErrStorageFull) {
		t.Errorf("Append on a full data dir: %v, want record.ErrStorageFull", err)
	}
	if err := app.Commit(); !errors.Is(err, record.ErrStorageFull) {
		t.Errorf("Commit on a full data dir: %v", err)
	}
	app2 := st.AppendableV2().AppenderV2(context.Background())
	if _, err := app2.Append(0, ls, 0, time.Now().UnixMilli(), 1, nil, nil, storage.AOptions{}); !errors.Is(err, record.ErrStorageFull) {
		t.Errorf("AppenderV2.Append on a full data dir: %v", err)
	}
	_ = app2.Rollback()
	if n := st.DB().Head().NumSeries(); n != 0 {
		t.Errorf("the head holds %d series after refused appends; a refused append must not create one (its WAL record could be lost)", n)
	}
}

func TestTheWALSyncerKeepsSpaceAllocatedAheadOfTheNewestSegment(t *testing.T) {
	dir := t.TempDir()
	st, err := OpenStorage(StorageConfig{DataDir: dir, WALSyncInterval: 10 * time.Millisecond}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = st.Run(ctx) }()
	app := st.Appendable().Appender(ctx)
	if _, err := app.Append(0, labels.FromStrings("__name__", "x"), time.Now().UnixMilli(), 1); err != nil {
		t.Fatal(err)
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
	walDir := filepath.Join(dir, "metrics", "wal")
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, last, err := wlog.Segments(walDir)
		if err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(wlog.SegmentName(walDir, last))
		if err != nil {
			t.Fatal(err)
		}
		allocated := fi.Sys().(*syscall.Stat_t).Blocks * 512
		if allocated >= walAhead && fi.Size() < walAhead {
			return // allocated ahead, size unchanged
		}
		if time.Now().After(deadline) {
			t.Skipf("segment of %d bytes has %d allocated: this filesystem does not preallocate", fi.Size(), allocated)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
