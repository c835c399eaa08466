package store

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
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/glassmesh/glassmesh/telemetry/record"
)

func openTest(t *testing.T, cfg Config) *Durable {
	t.Helper()
	if cfg.DataDir == "" {
		cfg.DataDir = t.TempDir()
	}
	d, err := Open(cfg, nil, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d
}

func TestDurableConformance(t *testing.T) {
	t.Run("in the head", func(t *testing.T) {
		testReaderWriter(t, func(t *testing.T) (Reader, Writer) {
			d := openTest(t, Config{})
			return d, d
		})
	})
	t.Run("in blocks, one per write", func(t *testing.T) {
		testReaderWriter(t, func(t *testing.T) (Reader, Writer) {
			d := openTest(t, Config{})
			return d, cutAfter{d}
		})
	})
	t.Run("replayed from the WAL after each write", func(t *testing.T) {
		testReaderWriter(t, func(t *testing.T) (Reader, Writer) {
			r := &reopening{t: t, cfg: Config{DataDir: t.TempDir()}}
			r.d = openTest(t, r.cfg)
			return r, r
		})
	})
	t.Run("in blocks, after a restart", func(t *testing.T) {
		testReaderWriter(t, func(t *testing.T) (Reader, Writer) {
			r := &reopening{t: t, cfg: Config{DataDir: t.TempDir()}, cut: true}
			r.d = openTest(t, r.cfg)
			return r, r
		})
	})
}

// cutAfter cuts a block after every write.
type cutAfter struct{ d *Durable }

func (c cutAfter) WriteTraces(ctx context.Context, td ptrace.Traces) error {
	err := c.d.WriteTraces(ctx, td)
	c.d.cutNow()
	return err
}

// reopening closes and reopens the store after every write (cutting a
// block first when cut is set), and reads from the current one.
type reopening struct {
	t   *testing.T
	cfg Config
	cut bool
	d   *Durable
}

func (r *reopening) WriteTraces(ctx context.Context, td ptrace.Traces) error {
	err := r.d.WriteTraces(ctx, td)
	if r.cut {
		r.d.cutNow()
	}
	if cerr := r.d.Close(); cerr != nil {
		r.t.Fatal(cerr)
	}
	r.d = openTest(r.t, r.cfg)
	return err
}

func (r *reopening) GetTraces(ctx context.Context, ids ...TraceRequest) iter.Seq2[[]ptrace.Traces, error] {
	return r.d.GetTraces(ctx, ids...)
}
func (r *reopening) Services(ctx context.Context) ([]string, error) { return r.d.Services(ctx) }
func (r *reopening) Operations(ctx context.Context, q OperationQuery) ([]Operation, error) {
	return r.d.Operations(ctx, q)
}
func (r *reopening) FindTraces(ctx context.Context, q TraceQuery) iter.Seq2[[]ptrace.Traces, error] {
	return r.d.FindTraces(ctx, q)
}
func (r *reopening) FindTraceIDs(ctx context.Context, q TraceQuery) iter.Seq2[[]FoundTrace, error] {
	return r.d.FindTraceIDs(ctx, q)
}
func (r *reopening) Dependencies(ctx context.Context, start, end time.Time) ([]Dependency, error) {
	return r.d.Dependencies(ctx, start, end)
}

func TestDurableKill9LosesNothingAcknowledged(t *testing.T) {
	dir := t.TempDir()
	killChild(t, dir)
	d := openTest(t, Config{DataDir: dir})
	f := newFixture()
	if n, _ := getSpans(t, d, TraceRequest{TraceID: f.t1}); n != 5 {
		t.Errorf("fixture trace 1 has %d spans after kill -9", n)
	}
	for n := range killBatches * 10 {
		if got, _ := getSpans(t, d, TraceRequest{TraceID: genTraceID(n)}); got != 8 {
			t.Fatalf("trace %d has %d spans after kill -9, want 8", n, got)
		}
	}
}

func TestDurableTornWALTailIsTruncated(t *testing.T) {
	cfg := Config{DataDir: t.TempDir()}
	d := openTest(t, cfg)
	f := newFixture()
	writeAll(t, d, f.batches()...)
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	walDir := filepath.Join(cfg.DataDir, "traces", "wal")
	segs, _ := listSegments(walDir)
	last := filepath.Join(walDir, fmt.Sprintf("%08d", segs[len(segs)-1]))
	// The start of a record at the end of the last segment, as a crash leaves it.
	whole := appendFile(t, last, []byte{100, 0, 0, 0, 1, 2, 3, 4, 5, 6})
	d = openTest(t, cfg)
	if n, _ := getSpans(t, d, TraceRequest{TraceID: f.t1}); n != 5 {
		t.Fatalf("trace 1 has %d spans after a torn tail", n)
	}
	if st, err := os.Stat(last); err != nil || st.Size() != whole {
		t.Errorf("torn segment not truncated: %v, %v", st, err)
	}
	writeAll(t, d, newGen(time.Now()).batch(0, 3))
	_ = d.Close()
	d = openTest(t, cfg)
	if n, _ := getSpans(t, d, TraceRequest{TraceID: genTraceID(2)}); n != 8 {
		t.Errorf("a trace written after the truncation has %d spans", n)
	}
}

func TestDurableReadsAcrossBlocksAndHeadAndRestart(t *testing.T) {
	cfg := Config{DataDir: t.TempDir(), BlockDuration: time.Second}
	d := openTest(t, cfg)
	f := newFixture()
	b := f.batches()
	writeAll(t, d, b[0])
	waitFor(t, "a block cut by BlockDuration", func() bool { return d.m != nil && numBlocks(d) == 1 })
	writeAll(t, d, b[1])
	if n, _ := getSpans(t, d, TraceRequest{TraceID: f.t1}); n != 5 {
		t.Errorf("trace 1 across block and head: %d spans", n)
	}
	if got := findIDs(t, d, TraceQuery{Service: "frontend"}); len(got) != 3 {
		t.Errorf("frontend traces across block and head: %v", got)
	}
	if wal, _ := listSegments(filepath.Join(cfg.DataDir, "traces", "wal")); len(wal) > 2 {
		t.Errorf("WAL segments covered by the block were kept: %v", wal)
	}
	_ = d.Close()
	d = openTest(t, cfg)
	if n, _ := getSpans(t, d, TraceRequest{TraceID: f.t1}); n != 5 {
		t.Errorf("trace 1 after restart: %d spans", n)
	}
}

func TestDurableRetentionDeletesBlocksAndDiskShrinks(t *testing.T) {
	cfg := Config{DataDir: t.TempDir(), Retention: 2 * time.Second}
	d := openTest(t, cfg)
	g := newGen(time.Now())
	writeAll(t, d, g.batch(0, 200))
	d.cutNow()
	blocks := filepath.Join(cfg.DataDir, "traces", "blocks")
	before := diskUsage(t, blocks)
	if before < 200*8*100 || numBlocks(d) != 1 {
		t.Fatalf("block of %d bytes, %d blocks", before, numBlocks(d))
	}
	waitFor(t, "retention to delete the block", func() bool { return numBlocks(d) == 0 })
	if after := diskUsage(t, blocks); after >= before/10 {
		t.Errorf("disk usage %d → %d bytes", before, after)
	}
	if n, _ := getSpans(t, d, TraceRequest{TraceID: genTraceID(0)}); n != 0 {
		t.Errorf("trace past retention still has %d spans", n)
	}
}

func TestDurableHugeTraceStreamsInChunks(t *testing.T) {
	d := openTest(t, Config{})
	g := newGen(time.Now().Add(-time.Minute))
	const total = 10_000
	for i := range total / 2500 {
		td := ptrace.NewTraces()
		g.trace(td, 7, 2500) // trace 7, spans with distinct ids per call below
		renumber(td, i*2500)
		writeAll(t, d, td)
		if i == 1 {
			d.cutNow()
		}
	}
	chunks, spans, biggest := 0, 0, 0
	for tds, err := range d.GetTraces(context.Background(), TraceRequest{TraceID: genTraceID(7)}) {
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
	if got := findIDs(t, d, TraceQuery{Service: "ratings", Attributes: map[string]string{"request.id": "0000000000000007-2498"}}); len(got) != 1 {
		t.Errorf("huge trace by one span's attribute: %v", got)
	}
}

// renumber gives the spans of td span ids from base+1 on.
func renumber(td ptrace.Traces, base int) {
	i := base
	forEachSpanMut(td, func(sp ptrace.Span) {
		id := sp.SpanID()
		i++
		id[4], id[5], id[6], id[7] = byte(i>>24), byte(i>>16), byte(i>>8), byte(i)
		sp.SetSpanID(id)
	})
}

func forEachSpanMut(td ptrace.Traces, fn func(ptrace.Span)) {
	for _, rs := range td.ResourceSpans().All() {
		for _, ss := range rs.ScopeSpans().All() {
			for _, sp := range ss.Spans().All() {
				fn(sp)
			}
		}
	}
}

func TestDurableOverloadedWhileCutting(t *testing.T) {
	d := openTest(t, Config{MaxHeadBytes: 1})
	g := newGen(time.Now())
	d.pmu.Lock() // the cut of the first head cannot finish
	writeAll(t, d, g.batch(0, 1), g.batch(1, 1))
	err := d.WriteTraces(context.Background(), g.batch(2, 1))
	d.pmu.Unlock()
	if !errors.Is(err, record.ErrOverloaded) {
		t.Fatalf("write with a full head and a cut in progress: %v", err)
	}
	waitFor(t, "writes to be accepted again", func() bool {
		return d.WriteTraces(context.Background(), g.batch(2, 1)) == nil
	})
}

func TestDurableHighCardinalityAttributeFallsBackToScanning(t *testing.T) {
	d := openTest(t, Config{MaxAttrValues: 5})
	g := newGen(time.Now().Add(-time.Minute))
	writeAll(t, d, g.batch(0, 20))
	q := TraceQuery{Attributes: map[string]string{"request.id": "000000000000000d-0003"}}
	if got := findIDs(t, d, q); len(got) != 1 || got[0] != genTraceID(13) {
		t.Errorf("in the head: %v", got)
	}
	d.cutNow()
	if got := findIDs(t, d, q); len(got) != 1 || got[0] != genTraceID(13) {
		t.Errorf("in a block: %v", got)
	}
}

// appendFile appends b to the file at path and returns its size before.
func appendFile(t *testing.T, path string, b []byte) int64 {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

func TestDurableGroupFsyncAndMetrics(t *testing.T) {
	d := openTest(t, Config{})
	g := newGen(time.Now())
	writeAll(t, d, g.batch(0, 10), g.batch(1, 10))
	waitFor(t, "a WAL fsync", func() bool { return testutil.ToFloat64(d.m.fsyncs) >= 1 })
	if got := testutil.ToFloat64(d.m.spans); got != 160 {
		t.Errorf("spans written = %v, want 160", got)
	}
	d.cutNow()
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

func writeAll(t *testing.T, w Writer, tds ...ptrace.Traces) {
	t.Helper()
	for _, td := range tds {
		if err := w.WriteTraces(context.Background(), td); err != nil {
			t.Fatal(err)
		}
	}
}

func numBlocks(d *Durable) int {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return len(d.blocks)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
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
	d, m := openTest(t, Config{MaxAttrValues: 20}), NewMemory(0)
	g := newGen(time.Now().Add(-time.Minute))
	for i := range 6 {
		td := g.batch(i, 30)
		g.trace(td, 1000+i, 40)
		writeAll(t, m, td)
		writeAll(t, d, td)
		if i == 2 {
			d.cutNow()
		}
	}
	ctx := context.Background()
	from, to := g.base.Add(-time.Hour), g.base.Add(time.Hour)
	dd, _ := d.Dependencies(ctx, from, to)
	md, _ := m.Dependencies(ctx, from, to)
	if fmt.Sprint(dd) != fmt.Sprint(md) || len(md) == 0 {
		t.Errorf("dependencies: durable %v, memory %v", dd, md)
	}
	for _, q := range []TraceQuery{
		{Service: "reviews", Limit: 7},
		{Attributes: map[string]string{"user.id": "user-3"}},
		{Attributes: map[string]string{"error": "true", "span.kind": "client"}},
		{Service: "details", DurationMin: 50 * time.Millisecond, DurationMax: 60 * time.Millisecond},
		{StartMin: g.base.Add(100 * time.Millisecond), Limit: 5},
	} {
		if got, want := findIDs(t, d, q), findIDs(t, m, q); fmt.Sprint(got) != fmt.Sprint(want) || len(want) == 0 {
			t.Errorf("%+v: durable %v, memory %v", q, got, want)
		}
	}
}

func TestDurableHeadStaysBoundedAndCutsEarly(t *testing.T) {
	const maxHead = 256 << 10
	d := openTest(t, Config{MaxHeadBytes: maxHead})
	g := newGen(time.Now().Add(-time.Minute))
	for i := range 100 {
		batch := g.batch(i, 10)
		waitFor(t, "the write to be accepted", func() bool {
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
	waitFor(t, "the last cut to finish", func() bool {
		d.mu.RLock()
		defer d.mu.RUnlock()
		return d.cutting == nil
	})
	if n := numBlocks(d); n < 3 {
		t.Errorf("%d blocks cut early", n)
	}
	for _, n := range []int{0, 500, 999} {
		if got, _ := getSpans(t, d, TraceRequest{TraceID: genTraceID(n)}); got != 8 {
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
	f := newFixture()
	writeAll(t, d, f.batches()...)
	_ = d.Close()
	saved := t.TempDir()
	copyDir(t, walDir, saved)
	d = openTest(t, cfg)
	d.cutNow()
	_ = d.Close()
	copyDir(t, saved, walDir)
	d = openTest(t, cfg)
	if n, _ := getSpans(t, d, TraceRequest{TraceID: f.t1}); n != 5 {
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
	f := newFixture()
	b := f.batches()
	writeAll(t, d, b[0])
	d.cutNow()
	writeAll(t, d, b[1])
	d.cutNow()
	dirs := blockDirs(d)
	_ = d.Close()
	if err := os.WriteFile(filepath.Join(dirs[0], indexFile), []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	d = openTest(t, cfg)
	if n, _ := getSpans(t, d, TraceRequest{TraceID: f.t3}); n != 3 {
		t.Errorf("trace 3 in the good block has %d spans", n)
	}
}

func blockDirs(d *Durable) []string {
	d.mu.RLock()
	defer d.mu.RUnlock()
	var dirs []string
	for _, b := range d.blocks {
		dirs = append(dirs, b.dir)
	}
	return dirs
}
