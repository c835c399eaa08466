package admission

import (
	"errors"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/glassmesh/glassmesh/telemetry/record"
)

const limit = 1000 << 20 // in flight 60 MiB, live heap 500 MiB, runtime 900 MiB

// fakeRuntime is a runtime reading a test sets.
type fakeRuntime struct {
	mu sync.Mutex
	u  Usage
}

func (f *fakeRuntime) set(u Usage) { f.mu.Lock(); f.u = u; f.mu.Unlock() }
func (f *fakeRuntime) read() Usage { f.mu.Lock(); defer f.mu.Unlock(); return f.u }

func newTestBudget(t *testing.T) (*Budget, *fakeRuntime, *prometheus.Registry) {
	t.Helper()
	rt := &fakeRuntime{u: Usage{LiveHeap: 100 << 20, Runtime: 200 << 20}}
	reg := prometheus.NewRegistry()
	b, err := newBudget(Config{Limit: limit, RetryAfter: 3 * time.Second}, rt.read, reg)
	if err != nil {
		t.Fatal(err)
	}
	return b, rt, reg
}

// fresh makes the next call read the runtime again.
func fresh(b *Budget) { b.sampled.Store(0) }

func TestAdmit(t *testing.T) {
	tests := []struct {
		name     string
		usage    Usage
		held     int64 // in flight before the request
		n        int64
		reason   string // "" when admitted
		inReason string // a part of the message
	}{
		{name: "a request under every share is admitted", usage: Usage{100 << 20, 200 << 20}, n: 1 << 20},
		{name: "a request that would take in-flight bytes over their share is refused", usage: Usage{100 << 20, 200 << 20}, held: 55 << 20, n: 8 << 20, reason: ReasonInflight, inReason: "55 MiB of requests in flight"},
		{name: "a request larger than the whole in-flight share is admitted alone", usage: Usage{100 << 20, 200 << 20}, n: 100 << 20},
		{name: "a live heap over half the limit refuses", usage: Usage{600 << 20, 700 << 20}, n: 1, reason: ReasonLiveHeap, inReason: "the live heap is 600 MiB, over 50% of --memory.limit 1000 MiB"},
		{name: "runtime memory over 90% of the limit refuses, whatever the live heap", usage: Usage{100 << 20, 950 << 20}, n: 1, reason: ReasonRuntime, inReason: "the runtime holds 950 MiB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, rt, reg := newTestBudget(t)
			rt.set(tt.usage)
			if tt.held > 0 {
				if _, err := b.Admit(tt.held); err != nil {
					t.Fatalf("holding %d: %v", tt.held, err)
				}
			}
			release, err := b.Admit(tt.n)
			if tt.reason == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				release()
				return
			}
			var o *record.Overloaded
			if !errors.As(err, &o) || !errors.Is(err, record.ErrOverloaded) {
				t.Fatalf("got %v, want an overload error", err)
			}
			if o.RetryAfter != 3*time.Second {
				t.Errorf("retry after %s, want 3s", o.RetryAfter)
			}
			if !strings.Contains(err.Error(), tt.inReason) || !strings.HasPrefix(err.Error(), "memory budget: ") {
				t.Errorf("message %q does not say %q", err, tt.inReason)
			}
			if got := testutil.ToFloat64(b.refused.WithLabelValues(tt.reason)); got != 1 {
				t.Errorf("refused{reason=%s} = %v, want 1", tt.reason, got)
			}
			if n, _ := testutil.GatherAndCount(reg, "glassmesh_ingest_memory_refused_total"); n != 1 {
				t.Errorf("%d refusal series, want 1", n)
			}
		})
	}
}

func TestReleaseGivesTheBytesBackOnce(t *testing.T) {
	b, _, _ := newTestBudget(t)
	r1, err := b.Admit(40 << 20)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Admit(40 << 20); err == nil {
		t.Fatal("80 MiB in flight admitted over a 60 MiB share")
	}
	r1()
	r1() // a second call must not give back bytes someone else holds
	r2, err := b.Admit(40 << 20)
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	if _, err := b.Admit(40 << 20); err == nil {
		t.Fatal("a double release freed bytes it did not hold")
	}
	r2()
	if got := b.inflight.Load(); got != 0 {
		t.Errorf("in flight %d after every release, want 0", got)
	}
	if got := testutil.ToFloat64(b.inflightGauge); got != 0 {
		t.Errorf("in-flight gauge %v, want 0", got)
	}
}

func TestCheckTakesNothing(t *testing.T) {
	b, rt, _ := newTestBudget(t)
	for range 10 {
		if err := b.Check(); err != nil {
			t.Fatal(err)
		}
	}
	if got := b.inflight.Load(); got != 0 {
		t.Fatalf("Check took %d bytes", got)
	}
	hold, _ := b.Admit(60 << 20)
	if err := b.Check(); err == nil {
		t.Error("Check admitted with the in-flight share full")
	}
	hold()
	rt.set(Usage{LiveHeap: 700 << 20, Runtime: 800 << 20})
	fresh(b)
	if err := b.Check(); !errors.Is(err, record.ErrOverloaded) {
		t.Errorf("Check over the live-heap share: %v", err)
	}
}

func TestRecoversWhenTheHeapShrinks(t *testing.T) {
	b, rt, _ := newTestBudget(t)
	rt.set(Usage{LiveHeap: 700 << 20, Runtime: 800 << 20})
	fresh(b)
	if err := b.Check(); err == nil {
		t.Fatal("admitted over the live-heap share")
	}
	rt.set(Usage{LiveHeap: 200 << 20, Runtime: 500 << 20})
	// Within sampleEvery the old reading stands; after it, the new one.
	deadline := time.Now().Add(time.Second)
	for b.Check() != nil {
		if time.Now().After(deadline) {
			t.Fatal("still refusing a second after the heap shrank")
		}
		time.Sleep(sampleEvery / 2)
	}
}

func TestConcurrentAdmitsNeverExceedTheShare(t *testing.T) {
	b, _, _ := newTestBudget(t)
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		peak int64
	)
	for range 8 {
		wg.Go(func() {
			for range 2000 {
				release, err := b.Admit(1 << 20)
				if err != nil {
					runtime.Gosched()
					continue
				}
				mu.Lock()
				peak = max(peak, b.inflight.Load())
				mu.Unlock()
				release()
			}
		})
	}
	wg.Wait()
	if peak > b.inflightMax {
		t.Errorf("in flight reached %d, over the share %d", peak, b.inflightMax)
	}
	if got := b.inflight.Load(); got != 0 {
		t.Errorf("in flight %d at the end, want 0", got)
	}
}

func TestOffAdmitsEverything(t *testing.T) {
	b, err := New(Config{}, nil)
	if err != nil || b != nil {
		t.Fatalf("New with no limit: %v, %v; want nil, nil", b, err)
	}
	if err := b.Check(); err != nil {
		t.Error(err)
	}
	release, err := b.Admit(1 << 40)
	if err != nil {
		t.Fatal(err)
	}
	release()
	if b.Limit() != 0 {
		t.Error("a nil budget has a limit")
	}
}

func TestValidate(t *testing.T) {
	if _, err := New(Config{Limit: -1}, nil); err == nil || !strings.Contains(err.Error(), "memory.limit") {
		t.Errorf("a negative limit: %v", err)
	}
}

func TestReadRuntimeReadsThisProcess(t *testing.T) {
	keep := make([]byte, 64<<20)
	runtime.GC()
	u := readRuntime()
	if u.LiveHeap < 64<<20 || u.Runtime < u.LiveHeap {
		t.Errorf("usage %+v with 64 MiB live", u)
	}
	runtime.KeepAlive(keep)
	if SoftLimit(DefaultLimit) != DefaultLimit/100*80 || SoftLimit(0) != 0 {
		t.Errorf("soft limit of %d: %d", DefaultLimit, SoftLimit(DefaultLimit))
	}
}
