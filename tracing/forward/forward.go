// Package forward sends every span the durable trace store accepts on to
// external OTLP endpoints (Jaeger, Tempo, a collector), from the store's
// write-ahead log, with retries and a checkpoint per target, as
// Prometheus's remote write tails its WAL with a watcher: writes never wait
// for a target, and a target that is down catches up from where it was.
// Each target follows the WAL through durable.Store's small follower API
// (ReadWAL, and Follower to hold the segments it still needs).
package forward

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/glassmesh/glassmesh/tracing/store/durable"
)

// Config configures forwarding: every span written to the store is also
// sent, from the WAL, to each target (--traces.export-otlp). Zero fields
// take the defaults.
//
// Delivery is in WAL order and exactly once while the store runs and the
// target answers; otherwise at least once: the batch in flight when the
// store stops or crashes, or whose answer was lost (a timeout), is sent
// again. A target new to the store starts with the oldest span not yet in
// a block (blocks are not replayed to it); a target dropped from the
// configuration leaves its checkpoint file behind and holds no WAL. A target that is down is retried with
// exponential backoff for ever; the WAL segments it still needs are kept
// after their block is cut, up to MaxLag bytes behind, beyond which its
// oldest segments are dropped (counted in
// glassmesh_trace_store_forward_dropped_bytes_total and logged).
type Config struct {
	// Targets are where spans go.
	Targets []Target
	// MaxLag is how many WAL bytes a target may fall behind before its
	// oldest segments already in blocks are dropped [1 GiB].
	MaxLag int64
	// MinBackoff is the first wait after a failed send [100ms]; each retry
	// doubles it up to MaxBackoff [30s]. A Retry-After from the target
	// takes precedence, capped at 5 minutes.
	MinBackoff, MaxBackoff time.Duration
	// Timeout bounds one send [30s].
	Timeout time.Duration
	// BatchBytes is how much WAL is read into one send, at most [1 MiB],
	// well under the usual 4 MiB gRPC message limit (a larger single
	// record goes alone, and a target refusing it as too large is a
	// permanent error).
	BatchBytes int
}

// Target is one external OTLP endpoint.
type Target struct {
	// URL names the target (see NewExporter for the convention) and its
	// checkpoint: forward/<hash of URL> under the store's directory.
	URL string
	// Exporter sends the spans; nil means NewExporter(URL), which the
	// Forwarder also closes.
	Exporter Exporter
}

const maxRetryAfter = 5 * time.Minute

func (c Config) withDefaults() Config {
	c.MaxLag = cmp.Or(c.MaxLag, 1<<30)
	c.MinBackoff = cmp.Or(c.MinBackoff, 100*time.Millisecond)
	c.MaxBackoff = cmp.Or(c.MaxBackoff, 30*time.Second)
	c.Timeout = cmp.Or(c.Timeout, 30*time.Second)
	c.BatchBytes = cmp.Or(c.BatchBytes, 1<<20)
	return c
}

// Validate reports the first invalid setting, naming its key.
func (c Config) Validate() error {
	seen := map[string]bool{}
	for i, t := range c.Targets {
		if t.Exporter == nil {
			if _, _, err := parseExportURL(t.URL); err != nil {
				return fmt.Errorf("traces.forward.targets[%d].url: %w", i, err)
			}
		} else if t.URL == "" {
			return fmt.Errorf("traces.forward.targets[%d].url: must be set", i)
		}
		if seen[t.URL] {
			return fmt.Errorf("traces.forward.targets[%d].url: %q is listed twice", i, t.URL)
		}
		seen[t.URL] = true
	}
	switch {
	case c.MaxLag < 0:
		return fmt.Errorf("traces.forward.max-lag: must be >= 0, got %d", c.MaxLag)
	case c.MinBackoff < 0 || c.MaxBackoff < 0 || c.MinBackoff > c.MaxBackoff && c.MaxBackoff > 0:
		return fmt.Errorf("traces.forward.min-backoff, traces.forward.max-backoff: must be >= 0 and min <= max, got %v, %v", c.MinBackoff, c.MaxBackoff)
	case c.Timeout < 0:
		return fmt.Errorf("traces.forward.timeout: must be >= 0, got %v", c.Timeout)
	case c.BatchBytes < 0:
		return fmt.Errorf("traces.forward.batch-bytes: must be >= 0, got %d", c.BatchBytes)
	}
	return nil
}

// WAL is the trace store's write-ahead log as forwarding reads it;
// *durable.Store is one.
type WAL interface {
	// Dir is the store's directory; checkpoints go in its forward/.
	Dir() string
	// Follow registers a follower and returns where a new one starts.
	Follow(durable.Follower) durable.Pos
	// ReadWAL reads whole records from p on, about max bytes of them.
	ReadWAL(p durable.Pos, max int) ([]byte, durable.Pos, error)
	// WALEnd is the position after the last record.
	WALEnd() durable.Pos
	// CollectWAL asks the store to delete segments no one needs; it
	// never blocks.
	CollectWAL()
}

// Forwarder forwards the WAL to every target of a Config. New opens it,
// Run sends until its context ends or Close, Close stops Run and releases
// the checkpoints and the exporters it built.
type Forwarder struct {
	m       *metrics
	targets []*target
	stop    chan struct{}
	once    sync.Once
	wg      sync.WaitGroup
}

// crcTable is the checkpoints' checksum (CRC-32C, as the WAL's records).
var crcTable = crc32.MakeTable(crc32.Castagnoli)

// New opens a checkpoint per target under w's directory (forward/<hash of
// URL>), builds the exporters and registers each target with the store as
// a follower. Call it before the store's Run, so that no WAL segment a
// target still needs is collected first.
func New(cfg Config, w WAL, logger *slog.Logger, reg prometheus.Registerer) (*Forwarder, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("trace forwarding metrics: %w", err)
	}
	f := &Forwarder{m: m, stop: make(chan struct{})}
	if len(cfg.Targets) == 0 {
		return f, nil
	}
	dir := filepath.Join(w.Dir(), "forward")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("trace forwarding: %w", err)
	}
	for _, t := range cfg.Targets {
		tg, err := openTarget(t, cfg, dir, w, logger, m)
		if err != nil {
			return nil, errors.Join(err, f.closeTargets())
		}
		f.targets = append(f.targets, tg)
	}
	if err := syncDir(dir); err != nil {
		return nil, errors.Join(fmt.Errorf("trace forwarding: %w", err), f.closeTargets())
	}
	return f, nil
}

// Run sends to every target until ctx ends or Close is called.
func (f *Forwarder) Run(ctx context.Context) error {
	f.wg.Add(1)
	defer f.wg.Done()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	for _, t := range f.targets {
		wg.Go(func() { t.run(ctx) })
	}
	select {
	case <-ctx.Done():
	case <-f.stop:
	}
	cancel()
	wg.Wait()
	return nil
}

// Close stops Run, waits for it and releases the checkpoints and the
// exporters the Forwarder built. A batch in flight is sent again after a
// restart.
func (f *Forwarder) Close() error {
	f.once.Do(func() { close(f.stop) })
	f.wg.Wait()
	return f.closeTargets()
}

func (f *Forwarder) closeTargets() error {
	var errs []error
	for _, t := range f.targets {
		errs = append(errs, t.close())
	}
	f.targets = nil
	return errors.Join(errs...)
}

// target tails the WAL for one export target from a checkpointed position;
// it is the store's Follower for that target.
type target struct {
	cfg    Config
	label  string // the URL without credentials, for logs and metrics
	exp    Exporter
	closer io.Closer // set when the target built exp
	w      WAL
	logger *slog.Logger
	ckpt   *os.File
	wake   chan struct{}
	m      targetMetrics

	mu  sync.Mutex
	pos durable.Pos
}

// openTarget opens the checkpoint of t under dir (starting where the store
// says a new follower starts when there is none, or it is unreadable or
// past the end of the WAL), builds the exporter and follows w.
func openTarget(t Target, cfg Config, dir string, w WAL, logger *slog.Logger, m *metrics) (*target, error) {
	f := &target{cfg: cfg, label: redactURL(t.URL), exp: t.Exporter, w: w, wake: make(chan struct{}, 1)}
	f.logger = logger.With("target", f.label)
	f.m = m.forTarget(f.label)
	sum := sha256.Sum256([]byte(t.URL))
	path := filepath.Join(dir, hex.EncodeToString(sum[:8]))
	ck, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("trace forwarding checkpoint: %w", err)
	}
	f.ckpt = ck
	var b [20]byte
	n, err := ck.ReadAt(b[:], 0)
	resume := n == len(b) && crc32.Checksum(b[:16], crcTable) == binary.LittleEndian.Uint32(b[16:])
	if resume {
		f.pos = durable.Pos{Segment: int(binary.LittleEndian.Uint64(b[0:])), Offset: int64(binary.LittleEndian.Uint64(b[8:]))}
	}
	// From here on the store keeps the segments from f.pos on (from the
	// very first until a new target has its start).
	start := w.Follow(f)
	switch {
	case resume && w.WALEnd().Less(f.pos):
		f.logger.Warn("forwarding checkpoint is past the end of the WAL; starting from the head", "segment", f.pos.Segment)
		f.setPosition(start)
	case resume:
	case n == 0 && errors.Is(err, io.EOF):
		// A new target: record where it starts, so that a restart before
		// its first success does not move it on to a later head.
		f.setPosition(start)
		if err := f.saveCheckpoint(start); err != nil {
			return nil, errors.Join(fmt.Errorf("trace forwarding checkpoint: %w", err), ck.Close())
		}
	default:
		f.logger.Warn("unreadable forwarding checkpoint; starting again from the head", "file", path, "err", err)
		f.setPosition(start)
	}
	if f.exp == nil {
		exp, err := NewExporter(t.URL)
		if err != nil {
			return nil, errors.Join(err, ck.Close())
		}
		f.exp = exp
		f.closer, _ = exp.(io.Closer)
	}
	return f, nil
}

// redactURL drops the password and the query (where API keys go) from a
// URL used as a metric label and in logs.
func redactURL(raw string) string {
	if u, err := url.Parse(raw); err == nil && u.Host != "" {
		u.RawQuery, u.Fragment = "", ""
		return u.Redacted()
	}
	return raw
}

// position returns where the target will read next.
func (f *target) position() durable.Pos {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.pos
}

func (f *target) setPosition(p durable.Pos) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pos = p
}

// advance moves the position forward to p (never back: a MaxLag drop may
// have moved it past a batch in flight) and reports the new position.
func (f *target) advance(p durable.Pos) durable.Pos {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.pos.Less(p) {
		f.pos = p
	}
	return f.pos
}

// Appended wakes the target after an append; it never blocks.
func (f *target) Appended() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// Retain gives up the target's oldest segments while it is more than MaxLag
// bytes behind, but only segments blocks cover (the head's own are kept
// for replay anyway), sets its lag gauge, and returns the first segment it
// still needs.
func (f *target) Retain(segs []durable.Segment, covered int) int {
	for {
		pos := f.position()
		var lag, first int64
		for _, s := range segs {
			if s.N == pos.Segment {
				first = max(s.Size-pos.Offset, 0)
			}
			if s.N >= pos.Segment {
				lag += s.Size
			}
		}
		lag -= min(pos.Offset, lag)
		f.m.lag.Set(float64(lag))
		if lag <= f.cfg.MaxLag || pos.Segment > covered {
			return pos.Segment
		}
		f.advance(durable.Pos{Segment: pos.Segment + 1})
		f.m.droppedBytes.Add(float64(first))
		f.logger.Warn("forwarding target is more than MaxLag behind; dropped its oldest WAL segment",
			"segment", pos.Segment, "bytes", first, "lag", lag, "maxLag", f.cfg.MaxLag)
	}
}

// batch is what one read of the WAL yields for a target.
type batch struct {
	td      ptrace.Traces // decoded, unless the exporter takes body as is
	body    []byte        // TracesData protobuf
	spans   int
	hasData bool
	end     durable.Pos // where the next read starts
}

// readBatch reads the WAL from start on, up to BatchBytes, and decodes
// the spans unless the exporter sends the protobuf as it is.
func (f *target) readBatch(start durable.Pos) (batch, error) {
	body, end, err := f.w.ReadWAL(start, f.cfg.BatchBytes)
	b := batch{end: end}
	if err != nil || len(body) == 0 {
		return b, err
	}
	if _, raw := f.exp.(protoExporter); raw {
		b.spans, err = countSpans(body)
		b.body = body
	} else {
		var u ptrace.ProtoUnmarshaler
		b.td, err = u.UnmarshalTraces(body)
		b.spans = b.td.SpanCount()
	}
	if err != nil {
		f.logger.Error("cannot decode WAL spans to forward; skipping them", "segment", start.Segment, "err", err)
		return b, nil
	}
	b.hasData = true
	return b, nil
}

// run sends batches until ctx is done.
func (f *target) run(ctx context.Context) {
	poll := time.NewTicker(time.Second) // a safety net; appends wake it
	defer poll.Stop()
	for ctx.Err() == nil {
		start := f.position()
		b, err := f.readBatch(start)
		if err != nil {
			f.logger.Error("cannot read the WAL to forward spans", "err", err)
		}
		if err != nil || (!b.hasData && b.end == start) {
			if err == nil {
				f.m.lag.Set(0) // caught up
			}
			select {
			case <-ctx.Done():
			case <-f.wake:
			case <-poll.C:
			}
			continue
		}
		if b.hasData && !f.send(ctx, b) {
			return
		}
		f.commit(start, b.end)
	}
}

// commit advances the position past a batch and persists it.
func (f *target) commit(start, end durable.Pos) {
	p := f.advance(end)
	if err := f.saveCheckpoint(p); err != nil {
		f.logger.Error("cannot save the forwarding checkpoint", "err", err)
	}
	if p.Segment != start.Segment {
		f.w.CollectWAL()
	}
}

// saveCheckpoint overwrites the 20-byte checkpoint in place (one sector)
// and fsyncs it.
func (f *target) saveCheckpoint(p durable.Pos) error {
	var b [20]byte
	binary.LittleEndian.PutUint64(b[0:], uint64(p.Segment))
	binary.LittleEndian.PutUint64(b[8:], uint64(p.Offset))
	binary.LittleEndian.PutUint32(b[16:], crc32.Checksum(b[:16], crcTable))
	if _, err := f.ckpt.WriteAt(b[:], 0); err != nil {
		return err
	}
	return f.ckpt.Sync()
}

// send exports a batch, retrying transient errors with backoff; it
// returns false only when ctx ended first.
func (f *target) send(ctx context.Context, b batch) bool {
	backoff := f.cfg.MinBackoff
	for attempt := 1; ; attempt++ {
		ectx, cancel := context.WithTimeout(ctx, f.cfg.Timeout)
		var err error
		if pe, ok := f.exp.(protoExporter); ok {
			err = pe.exportProto(ectx, b.body)
		} else {
			err = f.exp.Export(ectx, b.td)
		}
		cancel()
		if err == nil {
			f.m.spans.Add(float64(b.spans))
			if attempt > 1 {
				f.logger.Info("forwarding spans again", "attempts", attempt)
			}
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		var xe *ExportError
		if errors.As(err, &xe) && xe.Permanent {
			failed := int64(b.spans)
			if xe.Rejected > 0 && xe.Rejected < failed {
				failed = xe.Rejected
			}
			f.m.spans.Add(float64(int64(b.spans) - failed))
			f.m.failedSpans.Add(float64(failed))
			f.m.permanent.Inc()
			f.logger.Warn("target refused spans; skipping them", "spans", failed, "err", err)
			return true
		}
		f.m.retries.Inc()
		if !f.position().Less(b.end) {
			// MaxLag dropped the segment under this batch (counted there):
			// stop retrying it, or a batch the target keeps failing would
			// stall this target for ever.
			f.logger.Warn("abandoning a batch its dropped segment held", "err", err)
			return true
		}
		wait := backoff/2 + rand.N(backoff/2+1) // jitter, so targets are not hit in step
		if xe != nil && xe.RetryAfter > wait {
			wait = min(xe.RetryAfter, maxRetryAfter)
		}
		if attempt == 1 || attempt%10 == 0 {
			f.logger.Warn("cannot forward spans; retrying", "attempt", attempt, "wait", wait, "err", err)
		}
		if !sleepCtx(ctx, wait) {
			return false
		}
		backoff = min(2*backoff, f.cfg.MaxBackoff)
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// close releases the checkpoint file and an exporter the target built.
func (f *target) close() error {
	err := f.ckpt.Close()
	if f.closer != nil {
		err = errors.Join(err, f.closer.Close())
	}
	return err
}

// countSpans counts the spans of TracesData protobuf without decoding
// them: TracesData.resource_spans (1) → ResourceSpans.scope_spans (2) →
// ScopeSpans.spans (2).
func countSpans(td []byte) (int, error) {
	n := 0
	err := eachField(td, 1, func(rs []byte) error {
		return eachField(rs, 2, func(ss []byte) error {
			return eachField(ss, 2, func([]byte) error { n++; return nil })
		})
	})
	return n, err
}

// eachField calls fn with the bytes of every length-delimited field num
// of the message in b.
func eachField(b []byte, num protowire.Number, fn func([]byte) error) error {
	for len(b) > 0 {
		n, typ, k := protowire.ConsumeTag(b)
		if k < 0 {
			return protowire.ParseError(k)
		}
		b = b[k:]
		if n == num && typ == protowire.BytesType {
			v, k := protowire.ConsumeBytes(b)
			if k < 0 {
				return protowire.ParseError(k)
			}
			if err := fn(v); err != nil {
				return err
			}
			b = b[k:]
			continue
		}
		k = protowire.ConsumeFieldValue(n, typ, b)
		if k < 0 {
			return protowire.ParseError(k)
		}
		b = b[k:]
	}
	return nil
}

// syncDir fsyncs a directory, so the files just created in it survive a
// crash.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}
