package forward

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"

	"github.com/glassmesh/glassmesh/tracing/store"
	"github.com/glassmesh/glassmesh/tracing/store/durable"
	"github.com/glassmesh/glassmesh/tracing/store/storetest"
)

// sink is a real OTLP/HTTP receiver: it decodes protobuf requests with
// ptraceotlp and records every span it accepts, in arrival order.
type sink struct {
	srv *httptest.Server

	mu       sync.Mutex
	spans    []spanKey
	requests int
	answer   func(ptrace.Traces) (int, string) // status and Retry-After; nil: 200
}

// spanKey names a generated span: its trace number and span number.
type spanKey struct{ trace, span uint32 }

func newSink(t *testing.T) *sink {
	s := &sink{}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *sink) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	req := ptraceotlp.NewExportRequest()
	if err != nil || r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" ||
		req.UnmarshalProto(body) != nil {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests++
	if s.answer != nil {
		if code, ra := s.answer(req.Traces()); code != http.StatusOK {
			if ra != "" {
				w.Header().Set("Retry-After", ra)
			}
			http.Error(w, http.StatusText(code), code)
			return
		}
	}
	s.spans = append(s.spans, spanKeys(req.Traces())...)
	out, _ := ptraceotlp.NewExportResponse().MarshalProto()
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

func (s *sink) setAnswer(fn func(ptrace.Traces) (int, string)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.answer = fn
}

func (s *sink) received() []spanKey {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]spanKey(nil), s.spans...)
}

func spanKeys(td ptrace.Traces) []spanKey {
	var keys []spanKey
	store.ForEachSpan(td, func(_ string, _ pcommon.Map, sp ptrace.Span) {
		id := sp.SpanID()
		keys = append(keys, spanKey{binary.BigEndian.Uint32(id[:4]), binary.BigEndian.Uint32(id[4:])})
	})
	return keys
}

var testForward = Config{MinBackoff: 5 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}

// rig is a running durable store in a directory and a running Forwarder on
// it, as cmd/glassmesh wires them.
type rig struct {
	*durable.Store
	fw *Forwarder
}

func openForwarding(t *testing.T, dir string, targets ...Target) *rig {
	t.Helper()
	fc := testForward
	fc.Targets = targets
	return openRig(t, dir, fc)
}

func openRig(t testing.TB, dir string, fc Config) *rig {
	t.Helper()
	d, err := durable.Open(durable.Config{DataDir: dir}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	fw, err := New(fc, d, nil, prometheus.NewRegistry())
	if err != nil {
		_ = d.Close()
		t.Fatal(err)
	}
	go func() { _ = d.Run(context.Background()) }()
	go func() { _ = fw.Run(context.Background()) }()
	r := &rig{Store: d, fw: fw}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// Close stops the forwarder, then the store.
func (r *rig) Close() error {
	return errors.Join(r.fw.Close(), r.Store.Close())
}

// writeGen writes batches [from, to) of 10 generated traces (80 spans).
func writeGen(t *testing.T, d *rig, g *storetest.Gen, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		storetest.WriteAll(t, d, g.Batch(i, 10))
	}
}

// checkOnceInOrder fails unless got holds every span of traces
// [0, traces) exactly once, traces in the order written.
func checkOnceInOrder(t *testing.T, got []spanKey, traces int) {
	t.Helper()
	seen := map[spanKey]bool{}
	last := uint32(0)
	for _, k := range got {
		if seen[k] {
			t.Fatalf("span %v arrived twice", k)
		}
		seen[k] = true
		if k.trace < last {
			t.Fatalf("trace %d arrived after trace %d", k.trace, last)
		}
		last = k.trace
	}
	if len(seen) != traces*8 {
		t.Fatalf("%d distinct spans arrived, want %d", len(seen), traces*8)
	}
}

// caughtUp reports whether every target has committed the whole WAL.
func caughtUp(d *rig) bool {
	end := d.WALEnd()
	for _, f := range d.fw.targets {
		if f.position() != end {
			return false
		}
	}
	return true
}

func waitSpans(t *testing.T, s *sink, n int) {
	t.Helper()
	storetest.WaitFor(t, strconv.Itoa(n)+" spans at the target", func() bool { return len(s.received()) >= n })
}

func TestForwardSendsEverySpanOnceInOrder(t *testing.T) {
	s := newSink(t)
	d := openForwarding(t, t.TempDir(), Target{URL: s.srv.URL})
	g := storetest.NewGen(time.Now())
	writeGen(t, d, g, 0, 10)
	d.Cut() // the rest goes to a new WAL segment
	writeGen(t, d, g, 10, 20)
	waitSpans(t, s, 1600)
	checkOnceInOrder(t, s.received(), 200)
	// The sink has the spans before the forwarder has its answer and counts.
	forwarded := d.fw.m.spans.WithLabelValues(s.srv.URL)
	storetest.WaitFor(t, "forward_spans_total 1600", func() bool { return testutil.ToFloat64(forwarded) == 1600 })
	time.Sleep(50 * time.Millisecond) // a count beyond what was sent would show now
	if n := testutil.ToFloat64(forwarded); n != 1600 {
		t.Errorf("forward_spans_total = %v, want 1600", n)
	}
}

func TestForwardRetriesUntilTheTargetIsBack(t *testing.T) {
	for _, retryAfter := range []string{"", "1"} {
		t.Run("Retry-After "+retryAfter, func(t *testing.T) {
			s := newSink(t)
			s.setAnswer(func(ptrace.Traces) (int, string) { return http.StatusServiceUnavailable, retryAfter })
			d := openForwarding(t, t.TempDir(), Target{URL: s.srv.URL})
			writeGen(t, d, storetest.NewGen(time.Now()), 0, 5)
			retries := d.fw.m.failures.WithLabelValues(s.srv.URL, "transient")
			storetest.WaitFor(t, "retries", func() bool { return testutil.ToFloat64(retries) >= 1 })
			s.setAnswer(nil)
			waitSpans(t, s, 400)
			checkOnceInOrder(t, s.received(), 50)
		})
	}
}

func TestForwardWriteTracesNeverWaitsForTheTarget(t *testing.T) {
	release := make(chan struct{})
	hung := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(hung.Close)
	t.Cleanup(func() { close(release) })
	d := openForwarding(t, t.TempDir(), Target{URL: hung.URL})
	start := time.Now()
	writeGen(t, d, storetest.NewGen(time.Now()), 0, 50)
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("writes took %v with the target hanging", el)
	}
}

func TestForwardResumesFromTheCheckpoint(t *testing.T) {
	s := newSink(t)
	dir := t.TempDir()
	g := storetest.NewGen(time.Now())
	d := openForwarding(t, dir, Target{URL: s.srv.URL})
	writeGen(t, d, g, 0, 10)
	waitSpans(t, s, 800)
	storetest.WaitFor(t, "the checkpoint", func() bool { return caughtUp(d) }) // else the batch in flight is sent again
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	d = openForwarding(t, dir, Target{URL: s.srv.URL})
	writeGen(t, d, g, 10, 15)
	waitSpans(t, s, 1200)
	time.Sleep(50 * time.Millisecond) // a re-send would show up now
	checkOnceInOrder(t, s.received(), 150)
}

func TestForwardSkipsAndCountsPermanentErrors(t *testing.T) {
	s := newSink(t)
	s.setAnswer(func(td ptrace.Traces) (int, string) {
		if spanKeys(td)[0].trace >= 100 && spanKeys(td)[0].trace < 110 {
			return http.StatusBadRequest, ""
		}
		return http.StatusOK, ""
	})
	d := openForwarding(t, t.TempDir(), Target{URL: s.srv.URL})
	g := storetest.NewGen(time.Now())
	writeGen(t, d, g, 0, 1)
	waitSpans(t, s, 80)
	storetest.WriteAll(t, d, g.Batch(10, 10)) // traces 100..109: refused
	permanent := d.fw.m.failures.WithLabelValues(s.srv.URL, "permanent")
	storetest.WaitFor(t, "the refusal", func() bool { return testutil.ToFloat64(permanent) == 1 })
	writeGen(t, d, g, 1, 2)
	waitSpans(t, s, 160)
	checkOnceInOrder(t, s.received(), 20)
	if n := testutil.ToFloat64(d.fw.m.failedSpans.WithLabelValues(s.srv.URL)); n != 80 {
		t.Errorf("forward_failed_spans_total = %v, want 80", n)
	}
}

// listSegments lists the WAL segments in dir, in order.
func listSegments(t *testing.T, dir string) []int {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(dir, "traces", "wal"))
	if err != nil {
		t.Fatal(err)
	}
	var segs []int
	for _, e := range entries {
		if n, err := strconv.Atoi(e.Name()); err == nil {
			segs = append(segs, n)
		}
	}
	return segs
}

func walSegments(t *testing.T, dir string) int { return len(listSegments(t, dir)) }

func oldestSegment(t *testing.T, dir string) int {
	t.Helper()
	segs := listSegments(t, dir)
	if len(segs) == 0 {
		t.Fatal("no WAL segments")
	}
	return segs[0]
}

func TestForwardKeepsWALSegmentsUntilTheTargetHasThem(t *testing.T) {
	s := newSink(t)
	s.setAnswer(func(ptrace.Traces) (int, string) { return http.StatusServiceUnavailable, "" })
	dir := t.TempDir()
	d := openForwarding(t, dir, Target{URL: s.srv.URL})
	g := storetest.NewGen(time.Now())
	for i := range 3 {
		writeGen(t, d, g, i, i+1)
		d.Cut()
	}
	if n := walSegments(t, dir); n != 4 {
		t.Fatalf("%d WAL segments while the target is down, want 3 cut + 1 current", n)
	}
	if err := d.Close(); err != nil { // a restart must keep them too
		t.Fatal(err)
	}
	d = openForwarding(t, dir, Target{URL: s.srv.URL})
	if n := walSegments(t, dir); n < 4 {
		t.Fatalf("%d WAL segments after a restart, want ≥ 4", n)
	}
	s.setAnswer(nil)
	waitSpans(t, s, 240)
	checkOnceInOrder(t, s.received(), 30)
	storetest.WaitFor(t, "the forwarded segments to go", func() bool { return oldestSegment(t, dir) > 3 })
	if n, _ := storetest.GetSpans(t, d, store.TraceRequest{TraceID: storetest.TraceID(5)}); n != 8 {
		t.Errorf("trace 5 has %d spans in its block, want 8", n)
	}
}

func TestForwardMaxLagDropsTheOldestSegments(t *testing.T) {
	s := newSink(t)
	s.setAnswer(func(ptrace.Traces) (int, string) { return http.StatusServiceUnavailable, "" })
	dir := t.TempDir()
	fc := testForward
	fc.Targets, fc.MaxLag = []Target{{URL: s.srv.URL}}, 1
	d := openRig(t, dir, fc)
	g := storetest.NewGen(time.Now())
	for i := range 3 { // segments 1..3 in blocks, 4 current
		writeGen(t, d, g, i, i+1)
		d.Cut()
	}
	writeGen(t, d, g, 3, 4)
	d.CollectWAL()
	storetest.WaitFor(t, "only the current WAL segment", func() bool { return walSegments(t, dir) == 1 })
	if b := testutil.ToFloat64(d.fw.m.dropped.WithLabelValues(s.srv.URL)); b == 0 {
		t.Error("no dropped bytes counted")
	}
	// The batch in flight came from a dropped segment: its retries stop
	// although the target still fails, and the head's spans go next.
	var headTried atomic.Bool
	s.setAnswer(func(td ptrace.Traces) (int, string) {
		headTried.Store(spanKeys(td)[0].trace >= 30)
		return http.StatusServiceUnavailable, ""
	})
	storetest.WaitFor(t, "the head's spans to be tried", headTried.Load)
	s.setAnswer(nil)
	storetest.WaitFor(t, "the head's spans", func() bool {
		for _, k := range s.received() {
			if k.trace >= 30 {
				return true
			}
		}
		return false
	})
	for _, k := range s.received() {
		if k.trace < 30 {
			t.Fatalf("span %v of a dropped segment arrived", k)
		}
	}
}

func TestForwardCheckpointFilesPerTarget(t *testing.T) {
	s := newSink(t)
	dir := t.TempDir()
	d := openForwarding(t, dir, Target{URL: s.srv.URL})
	writeGen(t, d, storetest.NewGen(time.Now()), 0, 1)
	waitSpans(t, s, 80)
	entries, err := os.ReadDir(filepath.Join(dir, "traces", "forward"))
	if err != nil || len(entries) != 1 {
		t.Fatalf("checkpoints: %v, %v", entries, err)
	}
}

// scripted is an Exporter that answers from a script, then succeeds.
type scripted struct {
	mu      sync.Mutex
	answers []error
	calls   []time.Time
	spans   int
}

func (s *scripted) Export(_ context.Context, td ptrace.Traces) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, time.Now())
	if len(s.answers) > 0 {
		err := s.answers[0]
		s.answers = s.answers[1:]
		if err != nil {
			return err
		}
	}
	s.spans += td.SpanCount()
	return nil
}

func (s *scripted) state() ([]time.Time, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Time(nil), s.calls...), s.spans
}

func TestForwardHonoursRetryAfterAndPartialSuccess(t *testing.T) {
	t.Run("a Retry-After longer than the backoff is waited out", func(t *testing.T) {
		exp := &scripted{answers: []error{&ExportError{Err: io.EOF, RetryAfter: 300 * time.Millisecond}}}
		d := openForwarding(t, t.TempDir(), Target{URL: "test", Exporter: exp})
		writeGen(t, d, storetest.NewGen(time.Now()), 0, 1)
		storetest.WaitFor(t, "the retry", func() bool { _, n := exp.state(); return n == 80 })
		if calls, _ := exp.state(); calls[1].Sub(calls[0]) < 300*time.Millisecond {
			t.Errorf("retried after %v", calls[1].Sub(calls[0]))
		}
	})
	t.Run("a partial success counts only the rejected spans as failed", func(t *testing.T) {
		exp := &scripted{answers: []error{&ExportError{Err: io.EOF, Permanent: true, Rejected: 3}}}
		d := openForwarding(t, t.TempDir(), Target{URL: "test", Exporter: exp})
		writeGen(t, d, storetest.NewGen(time.Now()), 0, 1)
		permanent := d.fw.m.failures.WithLabelValues("test", "permanent")
		storetest.WaitFor(t, "the refusal", func() bool { return testutil.ToFloat64(permanent) == 1 })
		if f, s := testutil.ToFloat64(d.fw.m.failedSpans.WithLabelValues("test")),
			testutil.ToFloat64(d.fw.m.spans.WithLabelValues("test")); f != 3 || s != 77 {
			t.Errorf("failed, forwarded = %v, %v; want 3, 77", f, s)
		}
	})
}

func TestForwardRecordsLargerThanABatchGoOneByOne(t *testing.T) {
	s := newSink(t)
	fc := testForward
	fc.Targets, fc.BatchBytes = []Target{{URL: s.srv.URL}}, 100
	d := openRig(t, t.TempDir(), fc)
	writeGen(t, d, storetest.NewGen(time.Now()), 0, 5)
	waitSpans(t, s, 400)
	checkOnceInOrder(t, s.received(), 50)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.requests != 5 {
		t.Errorf("%d requests, want one per record", s.requests)
	}
}

func TestForwardMovesPastDamageInClosedSegments(t *testing.T) {
	for _, c := range []struct {
		name   string
		damage func(t *testing.T, seg1 string)
		want   int // traces arriving: segment 1 holds traces 0..9, segment 2 10..19
	}{
		{"a record with a bad checksum at the end of segment 1", func(t *testing.T, seg1 string) {
			storetest.AppendFile(t, seg1, []byte{1, 0, 0, 0, 1, 2, 3, 4, 5})
		}, 20},
		{"a record cut short at the end of segment 1", func(t *testing.T, seg1 string) {
			storetest.AppendFile(t, seg1, []byte{200, 0, 0, 0, 1, 2, 3, 4, 5})
		}, 20},
		{"segment 1 gone", func(t *testing.T, seg1 string) {
			if err := os.Remove(seg1); err != nil {
				t.Fatal(err)
			}
		}, 10},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := newSink(t)
			s.setAnswer(func(ptrace.Traces) (int, string) { return http.StatusServiceUnavailable, "" })
			dir := t.TempDir()
			d := openForwarding(t, dir, Target{URL: s.srv.URL})
			g := storetest.NewGen(time.Now())
			for i := range 2 { // in blocks, so replay leaves the segments alone
				writeGen(t, d, g, i, i+1)
				d.Cut()
			}
			if err := d.Close(); err != nil {
				t.Fatal(err)
			}
			c.damage(t, filepath.Join(dir, "traces", "wal", "00000001"))
			d = openForwarding(t, dir, Target{URL: s.srv.URL})
			writeGen(t, d, g, 2, 3)
			s.setAnswer(nil)
			waitSpans(t, s, (c.want+10)*8)
			got := s.received()
			if c.want == 10 { // only segment 2 and the head: renumber to check
				for i := range got {
					got[i].trace -= 10
				}
			}
			checkOnceInOrder(t, got, c.want+10)
		})
	}
}

func TestForwardConcurrentWritersAndCutsStillOnce(t *testing.T) {
	s := newSink(t)
	d := openForwarding(t, t.TempDir(), Target{URL: s.srv.URL})
	g := storetest.NewGen(time.Now())
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 10 {
				if err := d.WriteTraces(context.Background(), g.Batch(w*10+i, 10)); err != nil {
					t.Error(err)
				}
			}
		})
	}
	for range 5 {
		d.Cut()
	}
	wg.Wait()
	waitSpans(t, s, 3200)
	seen := map[spanKey]bool{}
	for _, k := range s.received() {
		if seen[k] {
			t.Fatalf("span %v arrived twice", k)
		}
		seen[k] = true
	}
	if len(seen) != 3200 {
		t.Errorf("%d distinct spans, want 3200", len(seen))
	}
}

func TestCountSpansAgreesWithPdata(t *testing.T) {
	g := storetest.NewGen(time.Now())
	var m ptrace.ProtoMarshaler
	for _, td := range []ptrace.Traces{ptrace.NewTraces(), g.Batch(0, 1), g.Batch(1, 7)} {
		b, err := m.MarshalTraces(td)
		if err != nil {
			t.Fatal(err)
		}
		if n, err := countSpans(b); err != nil || n != td.SpanCount() {
			t.Errorf("countSpans = %d, %v; want %d", n, err, td.SpanCount())
		}
		if len(b) > 3 {
			if _, err := countSpans(b[:len(b)-3]); err == nil {
				t.Error("countSpans accepted a truncated message")
			}
		}
	}
}
