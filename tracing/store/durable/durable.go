package durable

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/glassmesh/glassmesh/telemetry/diskspace"
	"github.com/glassmesh/glassmesh/telemetry/record"
	"github.com/glassmesh/glassmesh/tracing/store"
)

// DefaultBlockDuration is how long the head takes writes before it is cut
// into a block, unless Config.BlockDuration says otherwise
// (--traces.block-duration).
const DefaultBlockDuration = time.Hour

// Config configures a Store. Zero fields take the defaults.
type Config struct {
	// DataDir is the data directory; the store lives in DataDir/traces.
	DataDir string
	// BlockDuration is how long the head takes writes before it is cut
	// into a block [1h].
	BlockDuration time.Duration
	// Retention is how long blocks are kept after their last span [72h].
	Retention time.Duration
	// MaxHeadBytes bounds the head, counted as the WAL bytes of its spans
	// plus its index (only the index is in memory): beyond it the head is
	// cut early, and while a cut is still being written WriteTraces
	// returns an overload error (record.ErrOverloaded) [256 MiB].
	MaxHeadBytes int64
	// SyncInterval is the group fsync period of the WAL, at most 100ms [50ms].
	SyncInterval time.Duration
	// Space, when set, guards the data dir's free space: writes are
	// refused with a record.StorageFull while it is short, and a write that
	// fails for lack of space (ENOSPC) starts such an episode. Nil: writes
	// go ahead until the OS refuses them.
	Space *diskspace.Guard
	// MaxAttrValues is the number of distinct values of one attribute key
	// indexed exactly per head/block [1000]; beyond it (or for a value over
	// 256 bytes) the key's values are indexed by hash into 1024 buckets, so
	// a high-cardinality key costs bounded index terms and a query on it
	// decodes the traces of one bucket.
	MaxAttrValues int
}

func (c Config) withDefaults() Config {
	c.BlockDuration = cmp.Or(c.BlockDuration, DefaultBlockDuration)
	c.Retention = cmp.Or(c.Retention, 72*time.Hour)
	c.MaxHeadBytes = cmp.Or(c.MaxHeadBytes, 256<<20)
	c.SyncInterval = cmp.Or(c.SyncInterval, 50*time.Millisecond)
	c.MaxAttrValues = cmp.Or(c.MaxAttrValues, 1000)
	return c
}

// Validate reports the first invalid setting, naming its key.
func (c Config) Validate() error {
	switch {
	case c.DataDir == "":
		return errors.New("traces.data-dir: must not be empty")
	case c.BlockDuration < 0:
		return fmt.Errorf("traces.block-duration: must be >= 0, got %v", c.BlockDuration)
	case c.Retention < 0:
		return fmt.Errorf("retention.traces: must be >= 0, got %v", c.Retention)
	case c.MaxHeadBytes < 0:
		return fmt.Errorf("traces.max-head-bytes: must be >= 0, got %d", c.MaxHeadBytes)
	case c.SyncInterval < 0 || c.SyncInterval > 100*time.Millisecond:
		return fmt.Errorf("traces.sync-interval: must be in (0, 100ms], got %v", c.SyncInterval)
	case c.MaxAttrValues < 0:
		return fmt.Errorf("traces.max-attr-values: must be >= 0, got %d", c.MaxAttrValues)
	}
	return nil
}

// Store is the durable trace store: a write-ahead log, an in-memory
// indexed head, immutable on-disk blocks cut from it, and retention by
// whole blocks. Open loads it; Run does its background work (the WAL
// fsync, cutting blocks, retention, WAL collection) until its context ends
// or Close, which stops Run and releases the files.
//
// On disk, under DataDir/traces:
//
//	wal/00000001 ...        records: length, CRC-32C, per-trace OTLP protobuf fragments
//	blocks/<minMs>-<maxMs>-<rand>/
//	    wal-00000001 ...    the WAL segments the block's spans are in (hard links)
//	    index               trace id → its fragments' positions (binary search) +
//	                        per-trace start/duration ranges; posting lists for service,
//	                        service+operation, span kind, error status, attribute
//	                        key=value (or key=hash bucket)
//	    meta.json           time range, operations per service, dependencies per second
//
// Spans are written once: the head indexes them in memory and reads them
// back from the WAL, and a block keeps the head's WAL segments as they are
// (version 1 blocks, which copied each trace's fragments contiguously into
// a "spans" file, are still read).
//
// Durability: WriteTraces returns after the record's write syscall (it
// survives kill -9); a background syncer fsyncs the WAL every SyncInterval
// (≤ 100ms), the window an OS crash may lose. Blocks are written to a
// temporary directory, fsynced and renamed; then the WAL names of the
// segments they cover are deleted (and skipped on open if the crash came
// in between; the block keeps its own links) once every Follower has read
// them or given them up (tracing/forward keeps its checkpoints in the
// store's directory, under forward/).
//
// Queries narrow candidates with the posting lists and per-trace ranges,
// then decode the candidates and check every condition on each span, so an
// index is only ever an optimisation: attribute keys over MaxAttrValues
// distinct values (or with values over 256 bytes) are indexed by value hash
// bucket in that head or block, and the decoding sorts out the collisions.
type Store struct {
	cfg       Config
	logger    *slog.Logger
	m         *metrics
	dir       string // DataDir/traces
	blocksDir string
	walDir    string
	wal       *wal

	wmu    sync.Mutex // orders WAL appends with head adds and head swaps
	closed bool

	mu      sync.RWMutex // guards the partitions below
	head    *head
	cutting *head // the previous head while it is written as a block
	blocks  []*block

	pmu  sync.Mutex // one persistCutting at a time
	gcMu sync.Mutex // one collectWAL at a time; guards covered and followers
	// covered is the last WAL segment blocks cover; segments up to it are
	// deleted once every follower has passed them.
	covered   int
	followers atomic.Pointer[[]Follower] // replaced whole under gcMu
	cutters   sync.Pool                  // of *cutter, whose memory writes reuse
	cutCh     chan struct{}
	stop      chan struct{} // closed by Close: Run returns
	wg        sync.WaitGroup
}

var (
	_ store.Reader = (*Store)(nil)
	_ store.Writer = (*Store)(nil)
)

// Open opens (or creates) the store in cfg.DataDir/traces and replays its
// WAL (a torn last record is truncated). It is readable and writable at
// once; Run must run for the WAL to be fsynced and heads to be cut.
func Open(cfg Config, logger *slog.Logger, reg prometheus.Registerer) (*Store, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("trace store metrics: %w", err)
	}
	root := filepath.Join(cfg.DataDir, "traces")
	d := &Store{cfg: cfg, logger: logger, m: m, dir: root, blocksDir: filepath.Join(root, "blocks"), walDir: filepath.Join(root, "wal"),
		cutCh: make(chan struct{}, 1), stop: make(chan struct{})}
	d.head = d.newHead()
	covered, err := d.loadBlocks()
	if err != nil {
		return nil, err
	}
	if err := d.replay(covered); err != nil {
		d.head.release()
		d.releaseBlocks()
		return nil, err
	}
	d.covered = covered
	return d, nil
}

// Run fsyncs the WAL every SyncInterval, cuts heads into blocks, applies
// retention and deletes the WAL segments no one needs any more, until ctx
// ends or Close is called. Register followers (Follow) before it starts,
// or the segments they still need may be deleted first.
func (d *Store) Run(ctx context.Context) error {
	d.wmu.Lock()
	if d.closed {
		d.wmu.Unlock()
		return nil
	}
	d.wg.Add(1)
	d.wmu.Unlock()
	defer d.wg.Done()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-d.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	d.collectWAL()
	var wg sync.WaitGroup
	wg.Go(func() { d.syncLoop(ctx) })
	wg.Go(func() { d.maintainLoop(ctx) })
	wg.Wait()
	return nil
}

// loadBlocks opens every readable block (logging the others) and removes
// leftovers of interrupted cuts; it returns the last WAL segment the blocks
// cover.
func (d *Store) loadBlocks() (int, error) {
	if err := os.MkdirAll(d.blocksDir, 0o755); err != nil {
		return 0, fmt.Errorf("trace store: %w", err)
	}
	entries, err := os.ReadDir(d.blocksDir)
	if err != nil {
		return 0, fmt.Errorf("trace store: %w", err)
	}
	covered := 0
	for _, e := range entries {
		dir := filepath.Join(d.blocksDir, e.Name())
		if strings.HasPrefix(e.Name(), tmpPrefix) {
			_ = os.RemoveAll(dir)
			continue
		}
		if !e.IsDir() {
			continue
		}
		b, err := openBlock(dir)
		if err != nil {
			// One bad block must not take the rest offline; it stays on disk
			// for inspection and its spans are not served.
			d.logger.Error("skipping unreadable trace block", "dir", dir, "err", err)
			continue
		}
		d.blocks = append(d.blocks, b)
		covered = max(covered, b.meta.WALSegment)
	}
	slices.SortFunc(d.blocks, func(a, b *block) int { return compareInt64(a.meta.MinTime, b.meta.MinTime) })
	d.updateBlockGauges()
	return covered, nil
}

// replay loads the WAL segments not yet covered by a block into the head;
// the covered ones are left to collectWAL, as followers may need them.
func (d *Store) replay(covered int) error {
	w, segs, err := openWAL(d.walDir, covered+1)
	if err != nil {
		return err
	}
	d.wal = w
	for _, s := range segs {
		if s <= covered {
			continue
		}
		if err := d.head.useSegment(s); err != nil {
			return errors.Join(err, w.close())
		}
		torn, err := d.replaySegment(w, s)
		if err != nil {
			return errors.Join(err, w.close())
		}
		if torn {
			d.logger.Warn("truncated a torn WAL record", "segment", s)
		}
	}
	d.updateHeadGauges()
	return nil
}

// replayRecord is one WAL record decoded for the head.
type replayRecord struct {
	frags []walFrag
	tds   []ptrace.Traces // per fragment; an undecodable one is left empty
	off   int64
}

// replaySegment indexes segment s's records into the head. Decoding the
// OTLP protobuf is most of a replay's CPU, so the records are decoded on
// every core and applied one by one in WAL order, as they were written.
func (d *Store) replaySegment(w *wal, s int) (torn bool, err error) {
	type job struct {
		p   []byte
		off int64
		out chan replayRecord
	}
	jobs, order := make(chan job, 64), make(chan chan replayRecord, 256)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			var u ptrace.ProtoUnmarshaler
			for j := range jobs {
				j.out <- d.decodeReplay(&u, s, j.p, j.off)
			}
		})
	}
	applied := make(chan struct{})
	go func() {
		defer close(applied)
		for c := range order {
			r := <-c
			for i, f := range r.frags {
				if r.tds[i] == (ptrace.Traces{}) {
					continue
				}
				ref := fragRef{seg: uint32(s), n: uint32(len(f.data)), off: r.off + int64(f.at)}
				d.head.add([]storedFrag{{id: f.id, ref: ref}}, r.tds[i])
			}
		}
	}()
	torn, err = w.readSegment(s, func(p []byte, off int64) error {
		out := make(chan replayRecord, 1)
		order <- out
		jobs <- job{p, off, out}
		return nil
	})
	close(jobs)
	close(order)
	wg.Wait()
	<-applied
	return torn, err
}

// decodeReplay decodes one WAL record of segment s, skipping (and
// logging) what cannot be decoded.
func (d *Store) decodeReplay(u *ptrace.ProtoUnmarshaler, s int, p []byte, off int64) replayRecord {
	frags, err := decodePayload(p)
	if err != nil {
		d.logger.Warn("skipping undecodable WAL record", "segment", s, "err", err)
		return replayRecord{}
	}
	r := replayRecord{frags: frags, tds: make([]ptrace.Traces, len(frags)), off: off}
	for i, f := range frags {
		td, err := u.UnmarshalTraces(f.data)
		if err != nil {
			d.logger.Warn("skipping undecodable WAL fragment", "segment", s, "err", err)
			continue
		}
		r.tds[i] = td
	}
	return r
}

// WriteTraces appends td to the WAL (a write syscall: it survives kill -9;
// the group fsync follows within SyncInterval) and indexes it in the head.
// It returns an overload error while the head is full and the previous one is
// still being written to disk.
func (d *Store) WriteTraces(ctx context.Context, td ptrace.Traces) error {
	return d.WriteTracesEncoded(ctx, td, nil)
}

// WriteTracesEncoded is WriteTraces for a batch the caller also holds as
// OTLP protobuf: raw, a TracesData or ExportTraceServiceRequest that td was
// decoded from, unchanged (nil: none). The WAL records are cut from raw
// instead of encoding td again. Neither is kept.
func (d *Store) WriteTracesEncoded(ctx context.Context, td ptrace.Traces, raw []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	n := td.SpanCount()
	if n == 0 {
		return nil
	}
	c, _ := d.cutters.Get().(*cutter)
	if c == nil {
		c = new(cutter)
	}
	defer func() {
		c.done()
		d.cutters.Put(c)
	}()
	c.reset(fragMaxSpans)
	rec, err := c.encode(raw)
	if raw == nil || err != nil || !sameTraceIDs(td, c.ids) {
		// Not td's encoding after all (or none): encode td.
		var m ptrace.ProtoMarshaler
		if raw, err = m.MarshalTraces(td); err == nil {
			c.reset(fragMaxSpans)
			rec, err = c.encode(raw)
		}
		if err != nil {
			return fmt.Errorf("trace store: encode: %w", err)
		}
	}
	frags := c.frags
	d.wmu.Lock()
	defer d.wmu.Unlock()
	if d.closed {
		return errors.New("trace store: closed")
	}
	if _, bytes, _ := d.head.stats(); bytes >= d.cfg.MaxHeadBytes && !d.swapHead() {
		d.m.overloaded.Inc()
		return &record.Overloaded{What: "trace store: the head is full and the last one is still being cut"}
	}
	if err := d.cfg.Space.Check(); err != nil {
		d.m.storageFull.Inc()
		return fmt.Errorf("trace store: %w", err)
	}
	// The head reads its spans back from the segment, so it opens it first.
	if err := d.head.useSegment(d.wal.current()); err != nil {
		return fmt.Errorf("trace store: %w", d.cfg.Space.Report(err))
	}
	at, err := d.wal.append(rec)
	if err != nil {
		// Nothing of the record stays in the WAL (or it ends its segment),
		// so the client may send it again.
		if err = d.cfg.Space.Report(err); record.IsStorageFull(err) {
			d.m.storageFull.Inc()
		}
		return fmt.Errorf("trace store: %w", err)
	}
	d.notifyFollowers()
	stored := make([]storedFrag, len(frags))
	for i, f := range frags {
		stored[i] = storedFrag{id: f.id, ref: fragRef{seg: uint32(at.Segment), n: uint32(f.n), off: at.Offset + int64(f.at)}}
	}
	d.head.add(stored, td)
	d.m.spans.Add(float64(n))
	d.m.bytes.Add(float64(len(rec)))
	d.m.headSpans.Add(float64(n))
	return nil
}

// sameTraceIDs reports whether the spans of td have the trace ids ids, in
// order: whether a batch cut from raw bytes is td's.
func sameTraceIDs(td ptrace.Traces, ids []pcommon.TraceID) bool {
	i := 0
	for _, rs := range td.ResourceSpans().All() {
		for _, ss := range rs.ScopeSpans().All() {
			for _, sp := range ss.Spans().All() {
				if i >= len(ids) || sp.TraceID() != ids[i] {
					return false
				}
				i++
			}
		}
	}
	return i == len(ids)
}

// newHead makes an empty head that maps each WAL segment it reads as far
// as a head can fill one: MaxHeadBytes and one more record.
func (d *Store) newHead() *head {
	h := newHead(d.cfg.MaxAttrValues, d.walDir, time.Now())
	h.mapBytes = int(min(d.cfg.MaxHeadBytes+maxRecordSize+walHeaderSize, math.MaxInt32))
	return h
}

// swapHead starts a new head and WAL segment and hands the old head to the
// background cutter; it fails when a cut is still in progress. Hold wmu.
func (d *Store) swapHead() bool {
	d.mu.RLock()
	busy := d.cutting != nil
	d.mu.RUnlock()
	if busy {
		return false
	}
	seg, err := d.wal.rotate()
	if err != nil {
		d.logger.Error("cannot rotate the WAL", "err", err)
		return false
	}
	d.head.mu.Lock()
	d.head.lastSeg = seg
	d.head.mu.Unlock()
	d.mu.Lock()
	d.cutting, d.head = d.head, d.newHead()
	d.mu.Unlock()
	select {
	case d.cutCh <- struct{}{}:
	default:
	}
	d.notifyFollowers() // they move on to the new segment
	return true
}

// Close stops Run and waits for it, fsyncs the WAL and closes every file;
// writes fail from then on. A head not yet in a block is replayed from the
// WAL on the next Open.
func (d *Store) Close() error {
	d.wmu.Lock()
	if d.closed {
		d.wmu.Unlock()
		return nil
	}
	d.closed = true
	d.wmu.Unlock()
	close(d.stop)
	d.wg.Wait()
	d.wmu.Lock()
	defer d.wmu.Unlock()
	err := d.wal.close()
	d.mu.Lock()
	for _, h := range d.heads() {
		h.release()
	}
	d.mu.Unlock()
	d.releaseBlocks()
	return err
}

func (d *Store) releaseBlocks() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, b := range d.blocks {
		b.release()
	}
	d.blocks = nil
}
