package durable

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/glassmesh/glassmesh/telemetry/record"
	"github.com/glassmesh/glassmesh/tracing/store"
	"github.com/glassmesh/glassmesh/tracing/store/storetest"
)

// openTest opens a store in cfg.DataDir (a new one when empty) and runs it
// until the test ends.
func openTest(t testing.TB, cfg Config) *Store {
	t.Helper()
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	d, err := Open(cfg, nil, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = d.Run(context.Background()) }()
	t.Cleanup(func() { _ = d.Close() })
	return d
}

func TestDurableConformance(t *testing.T) {
	t.Run("in the head", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) (store.Reader, store.Writer) {
			d := openTest(t, Config{})
			return d, d
		})
	})
	t.Run("in blocks, one per write", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) (store.Reader, store.Writer) {
			d := openTest(t, Config{})
			return d, cutAfter{d}
		})
	})
	t.Run("replayed from the WAL after each write", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) (store.Reader, store.Writer) {
			r := &reopening{t: t, cfg: Config{DataDir: t.TempDir()}}
			r.d = openTest(t, r.cfg)
			return r, r
		})
	})
	t.Run("in blocks, after a restart", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) (store.Reader, store.Writer) {
			r := &reopening{t: t, cfg: Config{DataDir: t.TempDir()}, cut: true}
			r.d = openTest(t, r.cfg)
			return r, r
		})
	})
}

// cutAfter cuts a block after every write.
type cutAfter struct{ d *Store }

func (c cutAfter) WriteTraces(ctx context.Context, td ptrace.Traces) error {
	err := c.d.WriteTraces(ctx, td)
	c.d.Cut()
	return err
}

// reopening closes and reopens the store after every write (cutting a
// block first when cut is set), and reads from the current one.
type reopening struct {
	t   *testing.T
	cfg Config
	cut bool
	d   *Store
}

func (r *reopening) WriteTraces(ctx context.Context, td ptrace.Traces) error {
	err := r.d.WriteTraces(ctx, td)
	if r.cut {
		r.d.Cut()
	}
	if cerr := r.d.Close(); cerr != nil {
		r.t.Fatal(cerr)
	}
	r.d = openTest(r.t, r.cfg)
	return err
}

func (r *reopening) GetTraces(ctx context.Context, ids ...store.TraceRequest) iter.Seq2[[]ptrace.Traces, error] {
	return r.d.GetTraces(ctx, ids...)
}
func (r *reopening) Services(ctx context.Context) ([]string, error) { return r.d.Services(ctx) }
func (r *reopening) Operations(ctx context.Context, q store.OperationQuery) ([]store.Operation, error) {
	return r.d.Operations(ctx, q)
}
func (r *reopening) FindTraces(ctx context.Context, q store.TraceQuery) iter.Seq2[[]ptrace.Traces, error] {
	return r.d.FindTraces(ctx, q)
}
func (r *reopening) FindTraceIDs(ctx context.Context, q store.TraceQuery) iter.Seq2[[]store.FoundTrace, error] {
	return r.d.FindTraceIDs(ctx, q)
}
func (r *reopening) Dependencies(ctx context.Context, start, end time.Time) ([]store.Dependency, error) {
	return r.d.Dependencies(ctx, start, end)
}

func TestDurableKill9LosesNothingAcknowledged(t *testing.T) {
	dir := t.TempDir()
	killChild(t, dir)
	d := openTest(t, Config{DataDir: dir})
	f := storetest.NewFixture()
	if n, _ := storetest.GetSpans(t, d, store.TraceRequest{TraceID: f.T1}); n != 5 {
		t.Errorf("fixture trace 1 has %d spans after kill -9", n)
	}
	for n := range killBatches * 10 {
		if got, _ := storetest.GetSpans(t, d, store.TraceRequest{TraceID: storetest.TraceID(n)}); got != 8 {
			t.Fatalf("trace %d has %d spans after kill -9, want 8", n, got)
		}
	}
}

func TestDurableTornWALTailIsTruncated(t *testing.T) {
	cfg := Config{DataDir: t.TempDir()}
	d := openTest(t, cfg)
	f := storetest.NewFixture()
	storetest.WriteAll(t, d, f.Batches()...)
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	walDir := filepath.Join(cfg.DataDir, "traces", "wal")
	segs, _ := listSegments(walDir)
	last := filepath.Join(walDir, fmt.Sprintf("%08d", segs[len(segs)-1]))
	// The start of a record at the end of the last segment, as a crash leaves it.
	whole := storetest.AppendFile(t, last, []byte{100, 0, 0, 0, 1, 2, 3, 4, 5, 6})
	d = openTest(t, cfg)
	if n, _ := storetest.GetSpans(t, d, store.TraceRequest{TraceID: f.T1}); n != 5 {
		t.Fatalf("trace 1 has %d spans after a torn tail", n)
	}
	if st, err := os.Stat(last); err != nil || st.Size() != whole {
		t.Errorf("torn segment not truncated: %v, %v", st, err)
	}
	storetest.WriteAll(t, d, storetest.NewGen(time.Now()).Batch(0, 3))
	_ = d.Close()
	d = openTest(t, cfg)
	if n, _ := storetest.GetSpans(t, d, store.TraceRequest{TraceID: storetest.TraceID(2)}); n != 8 {
		t.Errorf("a trace written after the truncation has %d spans", n)
	}
}

func TestDurableReadsAcrossBlocksAndHeadAndRestart(t *testing.T) {
	cfg := Config{DataDir: t.TempDir(), BlockDuration: time.Second}
	d := openTest(t, cfg)
	f := storetest.NewFixture()
	b := f.Batches()
	storetest.WriteAll(t, d, b[0])
	storetest.WaitFor(t, "a block cut by BlockDuration", func() bool { return d.m != nil && numBlocks(d) == 1 })
	storetest.WriteAll(t, d, b[1])
	if n, _ := storetest.GetSpans(t, d, store.TraceRequest{TraceID: f.T1}); n != 5 {
		t.Errorf("trace 1 across block and head: %d spans", n)
	}
	if got := storetest.FindIDs(t, d, store.TraceQuery{Service: "frontend"}); len(got) != 3 {
		t.Errorf("frontend traces across block and head: %v", got)
	}
	if wal, _ := listSegments(filepath.Join(cfg.DataDir, "traces", "wal")); len(wal) > 2 {
		t.Errorf("WAL segments covered by the block were kept: %v", wal)
	}
	_ = d.Close()
	d = openTest(t, cfg)
	if n, _ := storetest.GetSpans(t, d, store.TraceRequest{TraceID: f.T1}); n != 5 {
		t.Errorf("trace 1 after restart: %d spans", n)
	}
}

func TestDurableRetentionDeletesBlocksAndDiskShrinks(t *testing.T) {
	cfg := Config{DataDir: t.TempDir(), Retention: 2 * time.Second}
	d := openTest(t, cfg)
	g := storetest.NewGen(time.Now())
	storetest.WriteAll(t, d, g.Batch(0, 200))
	d.Cut()
	blocks := filepath.Join(cfg.DataDir, "traces", "blocks")
	before := diskUsage(t, blocks)
	if before < 200*8*100 || numBlocks(d) != 1 {
		t.Fatalf("block of %d bytes, %d blocks", before, numBlocks(d))
	}
	storetest.WaitFor(t, "retention to delete the block", func() bool { return numBlocks(d) == 0 })
	if after := diskUsage(t, blocks); after >= before/10 {
		t.Errorf("disk usage %d → %d bytes", before, after)
	}
	if n, _ := storetest.GetSpans(t, d, store.TraceRequest{TraceID: storetest.TraceID(0)}); n != 0 {
		t.Errorf("trace past retention still has %d spans", n)
	}
}

func TestDurableHugeTraceStreamsInChunks(t *testing.T) {
	d := openTest(t, Config{})
	g := storetest.NewGen(time.Now().Add(-time.Minute))
	const total = 10_000
	for i := range total / 2500 {
		td := ptrace.NewTraces()
		g.Trace(td, 7, 2500) // trace 7, spans with distinct ids per call below
		renumber(td, i*2500)
		storetest.WriteAll(t, d, td)
		if i == 1 {
			d.Cut()
		}
	}
	chunks, spans, biggest := 0, 0, 0
	for tds, err := range d.GetTraces(context.Background(), store.TraceRequest{TraceID: storetest.TraceID(7)}) {
		if err != nil {
			t.Fatal(err)
		}
		for _, td := range tds {
			chunks++
			spans += td.SpanCount()
			biggest = max(biggest, td.SpanCount())
		}
	}
	if spans != total || chunks < total/(2*chunkSpans) || biggest > 2*chunkSpans {
		t.Errorf("%d spans in %d chunks (biggest %d)", spans, chunks, biggest)
	}
	if got := storetest.FindIDs(t, d, store.TraceQuery{Service: "ratings", Attributes: map[string]string{"request.id": "0000000000000007-2498"}}); len(got) != 1 {
		t.Errorf("huge trace by one span's attribute: %v", got)
	}
}

// renumber gives the spans of td span ids from base+1 on.
func renumber(td ptrace.Traces, base int) {
	i := base
	store.ForEachSpan(td, func(_ string, _ pcommon.Map, sp ptrace.Span) {
		id := sp.SpanID()
		i++
		id[4], id[5], id[6], id[7] = byte(i>>24), byte(i>>16), byte(i>>8), byte(i)
		sp.SetSpanID(id)
	})
}

func TestDurableOverloadedWhileCutting(t *testing.T) {
	d := openTest(t, Config{MaxHeadBytes: 1})
	g := storetest.NewGen(time.Now())
	d.pmu.Lock() // the cut of the first head cannot finish
	storetest.WriteAll(t, d, g.Batch(0, 1), g.Batch(1, 1))
	err := d.WriteTraces(context.Background(), g.Batch(2, 1))
	d.pmu.Unlock()
	if !errors.Is(err, record.ErrOverloaded) {
		t.Fatalf("write with a full head and a cut in progress: %v", err)
	}
	storetest.WaitFor(t, "writes to be accepted again", func() bool {
		return d.WriteTraces(context.Background(), g.Batch(2, 1)) == nil
	})
}

func TestDurableHighCardinalityAttributeFallsBackToScanning(t *testing.T) {
	d := openTest(t, Config{MaxAttrValues: 5})
	g := storetest.NewGen(time.Now().Add(-time.Minute))
	storetest.WriteAll(t, d, g.Batch(0, 20))
	q := store.TraceQuery{Attributes: map[string]string{"request.id": "000000000000000d-0003"}}
	if got := storetest.FindIDs(t, d, q); len(got) != 1 || got[0] != storetest.TraceID(13) {
		t.Errorf("in the head: %v", got)
	}
	d.Cut()
	if got := storetest.FindIDs(t, d, q); len(got) != 1 || got[0] != storetest.TraceID(13) {
		t.Errorf("in a block: %v", got)
	}
}

func TestDurableGroupFsyncAndMetrics(t *testing.T) {
	d := openTest(t, Config{})
	g := storetest.NewGen(time.Now())
	storetest.WriteAll(t, d, g.Batch(0, 10), g.Batch(1, 10))
	storetest.WaitFor(t, "a WAL fsync", func() bool { return testutil.ToFloat64(d.m.fsyncs) >= 1 })
	if got := testutil.ToFloat64(d.m.spans); got != 160 {
		t.Errorf("spans written = %v, want 160", got)
	}
	d.Cut()
	if b, h := testutil.ToFloat64(d.m.blocks), testutil.ToFloat64(d.m.headSpans); b != 1 || h != 0 {
		t.Errorf("blocks = %v, head spans = %v after a cut", b, h)
	}
}

func TestConfigValidateNamesTheKey(t *testing.T) {
	for _, c := range []struct {
		cfg Config
		key string
	}{
		{Config{}, "traces.data-dir: "},
		{Config{DataDir: "x", SyncInterval: time.Second}, "traces.sync-interval: "},
		{Config{DataDir: "x", Retention: -1}, "retention.traces: "}, // its flag
	} {
		if err := c.cfg.Validate(); err == nil || !strings.HasPrefix(err.Error(), c.key) {
			t.Errorf("Validate(%+v) = %v, want it to start with %q", c.cfg, err, c.key)
		}
	}
}

func numBlocks(d *Store) int {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return len(d.blocks)
}

func diskUsage(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	_ = filepath.Walk(dir, func(_ string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			n += info.Size()
		}
		return nil
	})
	return n
}

// TestDurableAgreesWithMemory writes the same generated traces (some of
// them big) to both stores and compares the answers, in the head and in
// blocks.
func TestDurableAgreesWithMemory(t *testing.T) {
	d, m := openTest(t, Config{MaxAttrValues: 20}), store.NewMemory(0)
	base := time.Now().Add(-time.Minute)
	g := storetest.NewGen(base)
	for i := range 6 {
		td := g.Batch(i, 30)
		g.Trace(td, 1000+i, 40)
		storetest.WriteAll(t, m, td)
		storetest.WriteAll(t, d, td)
		if i == 2 {
			d.Cut()
		}
	}
	ctx := context.Background()
	from, to := base.Add(-time.Hour), base.Add(time.Hour)
	dd, _ := d.Dependencies(ctx, from, to)
	md, _ := m.Dependencies(ctx, from, to)
	if fmt.Sprint(dd) != fmt.Sprint(md) || len(md) == 0 {
		t.Errorf("dependencies: durable %v, memory %v", dd, md)
	}
	for _, q := range []store.TraceQuery{
		{Service: "reviews", Limit: 7},
		{Attributes: map[string]string{"user.id": "user-3"}},
		{Attributes: map[string]string{"error": "true", "span.kind": "client"}},
		{Service: "details", DurationMin: 50 * time.Millisecond, DurationMax: 60 * time.Millisecond},
		{StartMin: base.Add(100 * time.Millisecond), Limit: 5},
	} {
		if got, want := storetest.FindIDs(t, d, q), storetest.FindIDs(t, m, q); fmt.Sprint(got) != fmt.Sprint(want) || len(want) == 0 {
			t.Errorf("%+v: durable %v, memory %v", q, got, want)
		}
	}
}

func TestDurableHeadStaysBoundedAndCutsEarly(t *testing.T) {
	const maxHead = 256 << 10
	d := openTest(t, Config{MaxHeadBytes: maxHead})
	g := storetest.NewGen(time.Now().Add(-time.Minute))
	for i := range 100 {
		batch := g.Batch(i, 10)
		storetest.WaitFor(t, "the write to be accepted", func() bool {
			err := d.WriteTraces(context.Background(), batch)
			if err != nil && !errors.Is(err, record.ErrOverloaded) {
				t.Fatal(err)
			}
			return err == nil
		})
		if _, bytes, _ := d.head.stats(); bytes > maxHead+100<<10 {
			t.Fatalf("head of %d bytes with a %d limit", bytes, maxHead)
		}
	}
	storetest.WaitFor(t, "the last cut to finish", func() bool {
		d.mu.RLock()
		defer d.mu.RUnlock()
		return d.cutting == nil
	})
	if n := numBlocks(d); n < 3 {
		t.Errorf("%d blocks cut early", n)
	}
	for _, n := range []int{0, 500, 999} {
		if got, _ := storetest.GetSpans(t, d, store.TraceRequest{TraceID: storetest.TraceID(n)}); got != 8 {
			t.Errorf("trace %d has %d spans", n, got)
		}
	}
}

// TestDurableCrashAfterBlockBeforeWALRemoval replays a WAL whose records
// are already in a block, as a crash between the two leaves it: no span
// may come back twice.
func TestDurableCrashAfterBlockBeforeWALRemoval(t *testing.T) {
	cfg := Config{DataDir: t.TempDir()}
	walDir := filepath.Join(cfg.DataDir, "traces", "wal")
	d := openTest(t, cfg)
	f := storetest.NewFixture()
	storetest.WriteAll(t, d, f.Batches()...)
	_ = d.Close()
	saved := t.TempDir()
	copyDir(t, walDir, saved)
	d = openTest(t, cfg)
	d.Cut()
	_ = d.Close()
	copyDir(t, saved, walDir)
	d = openTest(t, cfg)
	if n, _ := storetest.GetSpans(t, d, store.TraceRequest{TraceID: f.T1}); n != 5 {
		t.Errorf("trace 1 has %d spans, want 5", n)
	}
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	entries, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err == nil {
			err = os.WriteFile(filepath.Join(to, e.Name()), b, 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestDurableSkipsACorruptBlock(t *testing.T) {
	cfg := Config{DataDir: t.TempDir()}
	d := openTest(t, cfg)
	f := storetest.NewFixture()
	b := f.Batches()
	storetest.WriteAll(t, d, b[0])
	d.Cut()
	storetest.WriteAll(t, d, b[1])
	d.Cut()
	dirs := blockDirs(d)
	_ = d.Close()
	if err := os.WriteFile(filepath.Join(dirs[0], indexFile), []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	d = openTest(t, cfg)
	if n, _ := storetest.GetSpans(t, d, store.TraceRequest{TraceID: f.T3}); n != 3 {
		t.Errorf("trace 3 in the good block has %d spans", n)
	}
}

func blockDirs(d *Store) []string {
	d.mu.RLock()
	defer d.mu.RUnlock()
	var dirs []string
	for _, b := range d.blocks {
		dirs = append(dirs, b.dir)
	}
	return dirs
}
