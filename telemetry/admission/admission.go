// Package admission is the one memory budget of every ingest path (Envoy
// access logs, OTLP traces and metrics over gRPC and HTTP, Zipkin,
// Prometheus remote-write): before a receiver reads or decodes a request
// it asks the Budget, which refuses with an overload error
// (record.Overloaded, so the receiver answers RESOURCE_EXHAUSTED or 429
// with a retry delay) when taking it could carry the process past its
// memory limit. Refusing costs next to nothing, so however fast clients
// push, what glassmesh holds stays bounded and the work it accepts keeps
// its full speed.
//
// Three signals, each a share of the limit, each with its own reason:
// the encoded bytes of the requests in flight (what a burst is about to
// allocate, known before the runtime sees it), the live heap the last
// garbage collection found (what stays), and the memory the Go runtime
// holds from the OS (the backstop, when collection cannot keep up).
package admission

import (
	"fmt"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/glassmesh/glassmesh/telemetry/record"
)

// DefaultLimit is --memory.limit's default: 2 GiB.
const DefaultLimit = 2 << 30

// Shares of the limit. The runtime's soft limit sits below the limit so
// that what Go does not count (file pages of mmapped blocks, the kernel's
// own) has room; admission refuses on the live heap well below the soft
// limit, so the collector keeps headroom and never spins; the in-flight
// share bounds what the requests being decoded may allocate at once
// (decoded, a request takes several times its encoded size).
// They are percentages, so that the messages can name them.
const (
	softLimitPct = 80
	liveHeapPct  = 50
	runtimePct   = 90
	inflightPct  = 6 // of a 2 GiB limit: 122 MiB of encoded requests
)

// sampleEvery is how old a runtime reading may be before Admit takes a
// new one: cheap enough per request, fresh enough for a burst.
const sampleEvery = 10 * time.Millisecond

// Reasons a request is refused, as the "reason" label of
// glassmesh_ingest_memory_refused_total.
const (
	ReasonInflight = "inflight_bytes"
	ReasonLiveHeap = "live_heap"
	ReasonRuntime  = "runtime_memory"
)

// Config configures a Budget.
type Config struct {
	// Limit is the memory budget in bytes; 0 turns admission off.
	Limit int64
	// RetryAfter is suggested to refused clients; 0 means one second.
	RetryAfter time.Duration
}

// Validate reports a negative setting, naming its flag.
func (c Config) Validate() error {
	switch {
	case c.Limit < 0:
		return fmt.Errorf("memory.limit: must be >= 0, got %d", c.Limit)
	case c.RetryAfter < 0:
		return fmt.Errorf("memory.retry-after: must be >= 0, got %s", c.RetryAfter)
	}
	return nil
}

// SoftLimit is the Go runtime's soft memory limit (debug.SetMemoryLimit)
// for a budget of limit bytes; 0 for 0 (leave the runtime alone).
func SoftLimit(limit int64) int64 { return share(limit, softLimitPct) }

// share is pct percent of limit.
func share(limit int64, pct int64) int64 { return limit / 100 * pct }

// Usage is what the runtime reports of the process's memory.
type Usage struct {
	LiveHeap int64 // heap objects marked live by the last collection
	Runtime  int64 // every byte the runtime holds from the OS, minus what it returned
}

// Budget admits ingest work while the process stays under its limit. A
// nil *Budget admits everything. It is safe for concurrent use.
type Budget struct {
	cfg                         Config
	inflightMax, liveMax, rtMax int64
	read                        func() Usage
	inflight                    atomic.Int64
	sampled                     atomic.Int64 // unix nanos of the last reading
	live, runtime               atomic.Int64 // the last reading
	sampling                    sync.Mutex   // one reader at a time
	refused                     *prometheus.CounterVec
	inflightGauge, limitGauge   prometheus.Gauge
}

// New builds a Budget, registering its metrics with reg (nil: not
// registered). It returns nil when cfg.Limit is 0.
func New(cfg Config, reg prometheus.Registerer) (*Budget, error) {
	return newBudget(cfg, readRuntime, reg)
}

func newBudget(cfg Config, read func() Usage, reg prometheus.Registerer) (*Budget, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Limit == 0 {
		return nil, nil
	}
	if cfg.RetryAfter == 0 {
		cfg.RetryAfter = time.Second
	}
	b := &Budget{cfg: cfg, read: read, inflightMax: share(cfg.Limit, inflightPct),
		liveMax: share(cfg.Limit, liveHeapPct), rtMax: share(cfg.Limit, runtimePct)}
	f := promauto.With(reg)
	b.refused = f.NewCounterVec(prometheus.CounterOpts{
		Name: "glassmesh_ingest_memory_refused_total",
		Help: "Ingest requests and stream messages refused to stay under --memory.limit, by reason (inflight_bytes, live_heap, runtime_memory).",
	}, []string{"reason"})
	b.inflightGauge = f.NewGauge(prometheus.GaugeOpts{
		Name: "glassmesh_ingest_memory_inflight_bytes",
		Help: "Encoded bytes of the ingest requests admitted and not finished, on every path.",
	})
	b.limitGauge = f.NewGauge(prometheus.GaugeOpts{
		Name: "glassmesh_memory_limit_bytes",
		Help: "--memory.limit: the memory budget ingest admission keeps the process under.",
	})
	b.limitGauge.Set(float64(cfg.Limit))
	return b, nil
}

// Limit is the budget in bytes; 0 for a nil Budget.
func (b *Budget) Limit() int64 {
	if b == nil {
		return 0
	}
	return b.cfg.Limit
}

// Check says whether new work may start now, without taking any: nil, or
// an overload error naming what is full. gRPC calls it before a request's
// bytes are read, when their size is not known yet.
func (b *Budget) Check() error {
	if b == nil {
		return nil
	}
	return b.check(0)
}

// Admit takes n encoded bytes of a request into the budget, or refuses it
// with an overload error naming what is full. release gives them back
// when the request is done; it may be called more than once. A request
// larger than the whole in-flight share is admitted when nothing else is
// in flight, so that it is slow, never impossible.
func (b *Budget) Admit(n int64) (release func(), err error) {
	if b == nil {
		return func() {}, nil
	}
	if err := b.check(n); err != nil {
		return nil, err
	}
	b.inflightGauge.Add(float64(n))
	var once sync.Once
	return func() {
		once.Do(func() {
			b.inflight.Add(-n)
			b.inflightGauge.Sub(float64(n))
		})
	}, nil
}

// check refuses on the runtime's figures, then takes n in-flight bytes
// (when n > 0) if they fit.
func (b *Budget) check(n int64) error {
	live, rt := b.usage()
	switch {
	case rt > b.rtMax:
		return b.refuse(ReasonRuntime, fmt.Sprintf("the runtime holds %s, over %d%% of --memory.limit %s", mib(rt), runtimePct, mib(b.cfg.Limit)))
	case live > b.liveMax:
		return b.refuse(ReasonLiveHeap, fmt.Sprintf("the live heap is %s, over %d%% of --memory.limit %s", mib(live), liveHeapPct, mib(b.cfg.Limit)))
	}
	if n <= 0 {
		if b.inflight.Load() >= b.inflightMax {
			return b.refuse(ReasonInflight, b.inflightWhy())
		}
		return nil
	}
	for {
		cur := b.inflight.Load()
		if cur > 0 && cur+n > b.inflightMax {
			return b.refuse(ReasonInflight, b.inflightWhy())
		}
		if b.inflight.CompareAndSwap(cur, cur+n) {
			return nil
		}
	}
}

func (b *Budget) inflightWhy() string {
	return fmt.Sprintf("%s of requests in flight, the most for --memory.limit %s", mib(b.inflight.Load()), mib(b.cfg.Limit))
}

func (b *Budget) refuse(reason, why string) error {
	b.refused.WithLabelValues(reason).Inc()
	return &record.Overloaded{What: "memory budget: " + why, RetryAfter: b.cfg.RetryAfter}
}

// usage is the last runtime reading, renewed when older than sampleEvery
// by whichever caller gets there first; the others use the last one.
func (b *Budget) usage() (live, rt int64) {
	now := time.Now().UnixNano()
	if now-b.sampled.Load() > int64(sampleEvery) && b.sampling.TryLock() {
		u := b.read()
		b.live.Store(u.LiveHeap)
		b.runtime.Store(u.Runtime)
		b.sampled.Store(now)
		b.sampling.Unlock()
	}
	return b.live.Load(), b.runtime.Load()
}

// Runtime metrics read for Usage: none of them stops the world.
var runtimeSamples = []string{"/gc/heap/live:bytes", "/memory/classes/total:bytes", "/memory/classes/heap/released:bytes"}

// readRuntime reads Usage from runtime/metrics; Runtime is what Go's own
// memory limit counts.
func readRuntime() Usage {
	s := make([]metrics.Sample, len(runtimeSamples))
	for i, name := range runtimeSamples {
		s[i].Name = name
	}
	metrics.Read(s)
	v := func(i int) int64 {
		if s[i].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return int64(s[i].Value.Uint64())
	}
	return Usage{LiveHeap: v(0), Runtime: v(1) - v(2)}
}

func mib(n int64) string { return fmt.Sprintf("%d MiB", n>>20) }
