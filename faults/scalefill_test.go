//go:build faults

package faults

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/glassmesh/glassmesh/telemetry/metrics"
	"github.com/glassmesh/glassmesh/tracing/store/durable"
	"github.com/glassmesh/glassmesh/tracing/store/storetest"
)

// The data dir of the restart-at-scale case: 10M spans (blocks of ~100k
// spans, as a busy store cuts them, and a head near its 256 MiB bound, the
// most a kill -9 leaves to replay) and 1M active series in the TSDB head.
const (
	scaleTraces        = 1_250_000 // 8 spans each: 10M spans
	scaleHeadTraces    = 64_000    // the last ones stay in the head: 512k spans, ~220 MB of WAL
	scaleTracesPerCut  = 12_800    // a block every ~100k spans, as BenchmarkLatency's store
	scaleSeries        = 1_000_000
	scaleSamples       = 20 // per series, every 15 s: the head's last 5 minutes
	scaleBatch         = 100
	scaleCacheVersion  = 1 // bump when the stores' formats or the fill change
	scaleSeriesPerJob  = 10_000
	scaleSampleSpacing = 15 * time.Second
)

// scaleDataDir returns a fresh data dir holding the scale fill. The fill
// is cached under the temp dir, keyed by version and size, as it takes
// minutes; each test gets its own copy (immutable trace blocks hard-linked,
// everything that a run appends to or truncates copied), so a kill -9
// never reaches the cache. The cache is rebuilt when it is missing or
// older than the trace retention it must stay within.
func scaleDataDir(t *testing.T) string {
	t.Helper()
	cache := filepath.Join(os.TempDir(), fmt.Sprintf("glassmesh-kill9-scale-v%d-%d-%d", scaleCacheVersion, scaleTraces, scaleSeries))
	if st, err := os.Stat(filepath.Join(cache, "complete")); err != nil || time.Since(st.ModTime()) > 24*time.Hour {
		_ = os.RemoveAll(cache)
		began := time.Now()
		fillScale(t, cache)
		if err := os.WriteFile(filepath.Join(cache, "complete"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("filled %s with %d spans and %d series in %s", cache, scaleTraces*8, scaleSeries, time.Since(began).Round(time.Second))
	} else {
		t.Logf("using the cached fill in %s (from %s)", cache, st.ModTime().Format(time.RFC3339))
	}
	dir := t.TempDir()
	began := time.Now()
	if err := copyTree(cache, dir); err != nil {
		t.Fatal(err)
	}
	t.Logf("copied the fill in %s", time.Since(began).Round(100*time.Millisecond))
	return dir
}

// fillScale writes the scale fill into dir through the stores' own
// packages, as the bench fills its 10M-span store: no network, no binary.
func fillScale(t *testing.T, dir string) {
	t.Helper()
	began := time.Now()
	fillTraces(t, dir)
	t.Logf("traces: %d spans in %s", scaleTraces*8, time.Since(began).Round(time.Second))
	began = time.Now()
	fillSeries(t, dir)
	t.Logf("metrics: %d series × %d samples in %s", scaleSeries, scaleSamples, time.Since(began).Round(time.Second))
}

func fillTraces(t *testing.T, dir string) {
	d, err := durable.Open(durable.Config{DataDir: dir}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	// One batch built once and renumbered: generating 10M spans' pdata
	// would take longer than writing them.
	g := storetest.NewGen(time.Now().Add(-30 * time.Minute))
	batch := g.Batch(0, scaleBatch)
	for i := 0; i*scaleBatch < scaleTraces; i++ {
		first := i * scaleBatch
		storetest.Renumber(batch, first)
		if err := d.WriteTraces(context.Background(), batch); err != nil {
			t.Fatal(err)
		}
		if first < scaleTraces-scaleHeadTraces && (first+scaleBatch)%scaleTracesPerCut < scaleBatch {
			d.Cut()
		}
		if first%(scaleTraces/10) == 0 {
			t.Logf("traces: %d of %d spans", first*8, scaleTraces*8)
		}
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
}

// fillSeries appends scaleSeries series of scaleSamples samples each to
// the TSDB, ending now: all of them in the head, as active series are.
func fillSeries(t *testing.T, dir string) {
	st, err := metrics.OpenStorage(metrics.StorageConfig{DataDir: dir}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	end := time.Now()
	sets := make([]labels.Labels, scaleSeries)
	for i := range sets {
		sets[i] = scaleLabels(i)
	}
	for s := range scaleSamples {
		ts := end.Add(-time.Duration(scaleSamples-1-s) * scaleSampleSpacing).UnixMilli()
		for j := 0; j < scaleSeries; j += scaleSeriesPerJob {
			app := st.Appendable().Appender(context.Background())
			for i := j; i < j+scaleSeriesPerJob; i++ {
				if _, err := app.Append(0, sets[i], ts, float64(s*i)); err != nil {
					t.Fatal(err)
				}
			}
			if err := app.Commit(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
}

// scaleLabels is the label set of fill series i: a hundred metric names of
// ten thousand series each, with the labels a scrape gives.
func scaleLabels(i int) labels.Labels {
	return labels.FromStrings("__name__", fmt.Sprintf("scale_metric_%d", i/scaleSeriesPerJob),
		"job", "fill", "instance", fmt.Sprintf("10.%d.%d.%d:9090", i/65536, i/256%256, i%256),
		"pod", fmt.Sprintf("pod-%d", i%5000), "series", fmt.Sprint(i))
}

// copyTree copies src to dst: trace block files hard-linked (they are
// never written again, and deleting a link leaves the cache's), every
// other file copied.
func copyTree(src, dst string) error {
	blocks := filepath.Join("traces", "blocks") + string(filepath.Separator)
	return filepath.WalkDir(src, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		to := filepath.Join(dst, rel)
		if e.IsDir() {
			return os.MkdirAll(to, 0o755)
		}
		if strings.HasPrefix(rel, blocks) && os.Link(p, to) == nil {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(to, b, 0o644)
	})
}
