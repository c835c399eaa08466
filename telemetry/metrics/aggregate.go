package metrics

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"

	"github.com/glassmesh/glassmesh/telemetry/record"
)

// Aggregator defaults; a zero AggregatorConfig field means its default.
const (
	DefaultInterval           = 5 * time.Second // --metrics.interval
	DefaultMaxSeriesPerMetric = 100_000         // --metrics.max-series-per-metric
)

// limitLogEvery bounds the "series limit reached" log line to one per kind
// per this period.
const limitLogEvery = time.Minute

// AggregatorConfig configures an Aggregator. Zero fields take the defaults;
// negative ones are errors.
type AggregatorConfig struct {
	// Interval is --metrics.interval: how often every label set's current
	// values are appended to the TSDB.
	Interval time.Duration
	// MaxSeriesPerMetric is --metrics.max-series-per-metric: the most label
	// sets (not counting le) one istio_* metric may have. Requests of new
	// label sets beyond it are dropped and counted.
	MaxSeriesPerMetric int
	// RestoreLookback bounds how far back NewAggregator looks for the last
	// stored value of each series. Zero means the storage's retention.
	RestoreLookback time.Duration
}

// Validate reports a configuration that cannot work, naming the key.
func (c AggregatorConfig) Validate() error {
	var errs []error
	if c.Interval < 0 {
		errs = append(errs, fmt.Errorf("metrics.interval: must be > 0, got %s", c.Interval))
	}
	if c.MaxSeriesPerMetric < 0 {
		errs = append(errs, fmt.Errorf("metrics.max-series-per-metric: must be > 0, got %d", c.MaxSeriesPerMetric))
	}
	if c.RestoreLookback < 0 {
		errs = append(errs, fmt.Errorf("metrics.restore-lookback: must be >= 0, got %s", c.RestoreLookback))
	}
	return errors.Join(errs...)
}

// Label set kinds: they have separate series limits.
const (
	kindHTTP = iota
	kindTCP
	numKinds
)

// kindMetrics are the metric families a label set of each kind feeds.
var kindMetrics = [numKinds][]string{
	kindHTTP: {MetricRequestsTotal, MetricRequestDuration, MetricRequestBytes, MetricResponseBytes},
	kindTCP:  {MetricTCPSentBytes, MetricTCPReceivedBytes, MetricTCPConnectionsOpened, MetricTCPConnectionsClosed},
}

// Aggregator turns Requests into Istio's standard metrics: it counts them
// in memory per label set and appends every label set's cumulative values
// to the TSDB each Interval. It is the only writer of istio_* series.
//
// NewAggregator seeds it from the TSDB so counters continue across
// restarts; Run flushes until its context ends, then flushes once more.
// Stop the receivers, then Run, then close the Storage. ConsumeRequests
// and Flush are safe for concurrent use. Label sets are never evicted:
// memory is bounded by MaxSeriesPerMetric, not by time.
type Aggregator struct {
	cfg     AggregatorConfig
	st      aggStorage
	logger  *slog.Logger
	layouts *layouts
	m       *aggMetrics
	seed    maphash.Seed
	shards  []shard
	mask    uint64

	sets    [numKinds]atomic.Int64 // label sets held, per kind
	limitAt [numKinds]atomic.Int64 // unix nanos of the last limit log line

	flushMu    sync.Mutex // one flush at a time; guards the fields below
	lastFlush  int64      // ms timestamp of the last committed flush
	zeroOffset int64      // ms between a new series' zero sample and its first value
	lb         labels.ScratchBuilder
}

// shard is one lock's worth of label sets. all keeps insertion order so a
// flush can walk it in batches, dropping the lock between them.
type shard struct {
	mu  sync.Mutex
	m   map[uint64]*labelSet
	all []*labelSet
	_   [64]byte // keep neighbouring shards' locks off one cache line
}

// labelSet is the state of one label set: values in layout order, TSDB
// series refs, and the newest exemplar per duration bucket since the last
// flush. vals, ex and next are guarded by the shard lock; refs and
// flushed belong to the flush (which also holds the shard lock).
type labelSet struct {
	key     string    // seriesKey encoding
	tcp     bool      // an istio_tcp_* label set
	next    *labelSet // another key with the same hash
	vals    []float64
	refs    []storage.SeriesRef
	ex      *[numBuckets]exemplarSlot
	flushed bool // committed at least once (or restored): no zero sample due
}

// exemplarSlot is the newest traced request of one bucket.
type exemplarSlot struct {
	traceID string
	value   float64 // duration, ms
	ts      int64   // request time, ms; 0 means the flush time
}

// aggStorage is what an Aggregator reads its restore from and flushes to:
// a Storage, or an Opening one.
type aggStorage interface {
	Queryable() storage.SampleAndChunkQueryable
	Appendable() storage.Appendable
	BlockDuration() time.Duration
	Retention() time.Duration
}

// NewAggregator builds an Aggregator writing to st and seeds it with the
// last stored value of every istio_* series within the lookback. A nil
// logger discards; a nil reg leaves the self metrics unregistered.
func NewAggregator(cfg AggregatorConfig, st *Storage, logger *slog.Logger, reg prometheus.Registerer) (*Aggregator, error) {
	if st == nil {
		return nil, errors.New("metrics: NewAggregator needs a Storage")
	}
	a, err := newAggregator(cfg, st, logger, reg)
	if err != nil {
		return nil, err
	}
	if err := a.Restore(context.Background()); err != nil {
		return nil, err
	}
	return a, nil
}

// NewOpeningAggregator builds an Aggregator over a storage that is still
// opening: it counts requests from the start, so an access-log stream is
// never refused while the TSDB replays its WAL. Once the storage is open,
// call Restore (which adds the stored counters to what was counted), then
// Run; nothing is flushed before.
func NewOpeningAggregator(cfg AggregatorConfig, o *Opening, logger *slog.Logger, reg prometheus.Registerer) (*Aggregator, error) {
	return newAggregator(cfg, o, logger, reg)
}

func newAggregator(cfg AggregatorConfig, st aggStorage, logger *slog.Logger, reg prometheus.Registerer) (*Aggregator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults(st)
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	n := shardCount()
	a := &Aggregator{
		cfg:     cfg,
		st:      st,
		logger:  logger,
		layouts: newLayouts(),
		seed:    maphash.MakeSeed(),
		shards:  make([]shard, n),
		mask:    uint64(n - 1),
		// Prometheus only accepts samples within half a block of the
		// newest; keep the zero sample inside that even with tiny blocks.
		zeroOffset: min(cfg.Interval, st.BlockDuration()/4).Milliseconds(),
	}
	for i := range a.shards {
		a.shards[i].m = make(map[uint64]*labelSet)
	}
	m, err := newAggMetrics(reg, a.activeSeries)
	if err != nil {
		return nil, err
	}
	a.m = m
	return a, nil
}

// withDefaults fills zero fields.
func (c AggregatorConfig) withDefaults(st aggStorage) AggregatorConfig {
	if c.Interval == 0 {
		c.Interval = DefaultInterval
	}
	if c.MaxSeriesPerMetric == 0 {
		c.MaxSeriesPerMetric = DefaultMaxSeriesPerMetric
	}
	if c.RestoreLookback == 0 {
		c.RestoreLookback = st.Retention()
	}
	return c
}

// shardCount is a power of two comfortably above the number of cores, so
// concurrent receivers rarely meet on one lock.
func shardCount() int {
	n := 16
	for n < 4*runtime.GOMAXPROCS(0) {
		n *= 2
	}
	return n
}

// ConsumeRequests counts the requests into their label sets. Requests of a
// new label set over the series limit are dropped and counted. It never
// returns ErrOverloaded: memory is bounded by the series limit, not by the
// request rate.
func (a *Aggregator) ConsumeRequests(ctx context.Context, reqs []record.Request) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var (
		limited [numKinds]int
		k       = seriesKey{b: make([]byte, 0, 512)}
	)
	for i := range reqs {
		r := &reqs[i]
		k.fill(r)
		h := k.hash(a.seed)
		sh := &a.shards[h&a.mask]
		sh.mu.Lock()
		ls := sh.get(h, &k)
		if ls == nil {
			ls = a.newLabelSet(sh, h, &k)
		}
		if ls != nil {
			ls.observe(r)
		}
		sh.mu.Unlock()
		if ls == nil {
			limited[kindOf(&k)]++
		}
	}
	a.m.consumed.Add(float64(len(reqs)))
	for kind, n := range limited {
		if n > 0 {
			a.limited(kind, n)
		}
	}
	return nil
}

// get returns the label set of k, or nil. The caller holds sh.mu.
func (sh *shard) get(h uint64, k *seriesKey) *labelSet {
	for ls := sh.m[h]; ls != nil; ls = ls.next {
		if ls.key == string(k.b) {
			return ls
		}
	}
	return nil
}

// newLabelSet adds k to sh, or returns nil when its kind is at the series
// limit. The caller holds sh.mu.
func (a *Aggregator) newLabelSet(sh *shard, h uint64, k *seriesKey) *labelSet {
	kind := kindOf(k)
	if a.sets[kind].Add(1) > int64(a.cfg.MaxSeriesPerMetric) {
		a.sets[kind].Add(-1)
		return nil
	}
	n := len(a.layouts.descs(k.tcp))
	ls := &labelSet{key: string(k.b), tcp: k.tcp, next: sh.m[h], vals: make([]float64, n), refs: make([]storage.SeriesRef, n)}
	sh.m[h] = ls
	sh.all = append(sh.all, ls)
	return ls
}

func kindOf(k *seriesKey) int {
	if k.tcp {
		return kindTCP
	}
	return kindHTTP
}

// observe adds one request to the label set. The caller holds the shard lock.
func (ls *labelSet) observe(r *record.Request) {
	v := ls.vals
	if ls.tcp {
		v[tSent] += float64(r.TCPSentBytes)
		v[tReceived] += float64(r.TCPReceivedBytes)
		if r.TCPOpened {
			v[tOpened]++
		}
		if r.TCPClosed {
			v[tClosed]++
		}
		return
	}
	v[hRequests]++
	ms := float64(r.Duration) / float64(time.Millisecond)
	b := bucketIndex(ms)
	observeHist(v[hDuration:hDuration+histWidth], b, ms)
	rq, rs := float64(r.RequestBytes), float64(r.ResponseBytes)
	observeHist(v[hRequestBytes:hRequestBytes+histWidth], bucketIndex(rq), rq)
	observeHist(v[hResponseBytes:hResponseBytes+histWidth], bucketIndex(rs), rs)
	if r.TraceID != "" {
		ls.exemplar(b, r, ms)
	}
}

// observeHist adds value x in bucket b to one histogram's slice.
func observeHist(h []float64, b int, x float64) {
	h[b]++
	h[numBuckets] += x
	h[numBuckets+1]++
}

// exemplar keeps r as bucket b's exemplar if it is the newest seen.
func (ls *labelSet) exemplar(b int, r *record.Request, ms float64) {
	if ls.ex == nil {
		ls.ex = new([numBuckets]exemplarSlot)
	}
	var ts int64
	if !r.Time.IsZero() {
		ts = r.Time.UnixMilli()
	}
	if s := &ls.ex[b]; s.traceID == "" || ts >= s.ts {
		*s = exemplarSlot{traceID: r.TraceID, value: ms, ts: ts}
	}
}

// limited counts n dropped requests of a kind and logs, at most once per
// limitLogEvery, that the limit is hit.
func (a *Aggregator) limited(kind, n int) {
	for _, c := range a.m.limited[kind] {
		c.Add(float64(n))
	}
	now := time.Now().UnixNano()
	last := a.limitAt[kind].Load()
	if now-last < int64(limitLogEvery) || !a.limitAt[kind].CompareAndSwap(last, now) {
		return
	}
	a.logger.Warn("metrics series limit reached: requests of new label sets are dropped",
		"metrics", kindMetrics[kind], "limit", a.cfg.MaxSeriesPerMetric,
		"key", "metrics.max-series-per-metric", "dropped", n)
}

// activeSeries is the number of TSDB series the Aggregator writes.
func (a *Aggregator) activeSeries() float64 {
	return float64(a.sets[kindHTTP].Load()*int64(httpSeries) + a.sets[kindTCP].Load()*int64(tcpSeries))
}
