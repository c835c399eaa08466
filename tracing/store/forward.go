package store

import (
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
)

// ForwardConfig configures forwarding: every span written to the store is
// also sent, from the WAL, to each target (--traces.export-otlp). Zero
// fields take the defaults. The Durable store owns the forwarders: Open
// starts one goroutine per target, Close stops them, so cmd only turns
// each flag value into a target:
//
//	cfg.Forward.Targets = append(cfg.Forward.Targets, store.ForwardTarget{URL: u})
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
type ForwardConfig struct {
	// Targets are where spans go.
	Targets []ForwardTarget
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

// ForwardTarget is one external OTLP endpoint.
type ForwardTarget struct {
	// URL names the target (see NewExporter for the convention) and its
	// checkpoint: forward/<hash of URL> under the store directory.
	URL string
	// Exporter sends the spans; nil means NewExporter(URL), which the
	// store also closes.
	Exporter Exporter
}

const maxRetryAfter = 5 * time.Minute

func (c ForwardConfig) withDefaults() ForwardConfig {
	c.MaxLag = cmpOr(c.MaxLag, 1<<30)
	c.MinBackoff = cmpOr(c.MinBackoff, 100*time.Millisecond)
	c.MaxBackoff = cmpOr(c.MaxBackoff, 30*time.Second)
	c.Timeout = cmpOr(c.Timeout, 30*time.Second)
	c.BatchBytes = cmpOr(c.BatchBytes, 1<<20)
	return c
}

// Validate reports the first invalid setting, naming its key.
func (c ForwardConfig) Validate() error {
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

// walPos is a place in the WAL: a segment and a byte offset in it.
type walPos struct {
	seg int
	off int64
}

func (p walPos) less(q walPos) bool { return p.seg < q.seg || p.seg == q.seg && p.off < q.off }

// forwarder tails the WAL for one target from a checkpointed position.
type forwarder struct {
	cfg    ForwardConfig
	label  string // the URL without credentials, for logs and metrics
	exp    Exporter
	closer io.Closer // set when the forwarder built exp
	w      *wal
	logger *slog.Logger
	ckpt   *os.File
	wake   chan struct{}
	poke   func() // asks the store to collect WAL segments
	m      fwdMetrics

	mu  sync.Mutex
	pos walPos
}

// fwdMetrics are one target's children of the store's forward metrics.
type fwdMetrics struct {
	spans, failedSpans, retries, permanent, droppedBytes prometheus.Counter
	lag                                                  prometheus.Gauge
}

// openForwarder opens the checkpoint of t under dir (starting at start
// when there is none or it is unreadable) and builds the exporter.
func openForwarder(t ForwardTarget, cfg ForwardConfig, dir string, start walPos, d *Durable) (*forwarder, error) {
	f := &forwarder{cfg: cfg, label: redactURL(t.URL), exp: t.Exporter, w: d.wal, logger: d.logger,
		wake: make(chan struct{}, 1), poke: d.wakeMaintenance, pos: start}
	f.logger = f.logger.With("target", f.label)
	f.m = d.m.forTarget(f.label)
	sum := sha256.Sum256([]byte(t.URL))
	path := filepath.Join(dir, hex.EncodeToString(sum[:8]))
	ck, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("trace forwarding checkpoint: %w", err)
	}
	f.ckpt = ck
	var b [20]byte
	switch n, err := ck.ReadAt(b[:], 0); {
	case n == len(b) && crc32.Checksum(b[:16], crcTable) == binary.LittleEndian.Uint32(b[16:]):
		f.pos = walPos{seg: int(binary.LittleEndian.Uint64(b[0:])), off: int64(binary.LittleEndian.Uint64(b[8:]))}
	case n == 0 && errors.Is(err, io.EOF):
		// A new target: record where it starts, so that a restart before
		// its first success does not move it on to a later head.
		if err := f.saveCheckpoint(start); err != nil {
			return nil, errors.Join(fmt.Errorf("trace forwarding checkpoint: %w", err), ck.Close())
		}
	default:
		f.logger.Warn("unreadable forwarding checkpoint; starting again from the head", "file", path, "err", err)
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

// position returns where the forwarder will read next.
func (f *forwarder) position() walPos {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.pos
}

// advance moves the position forward to p (never back: a MaxLag drop may
// have moved it past a batch in flight) and reports the new position.
func (f *forwarder) advance(p walPos) walPos {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.pos.less(p) {
		f.pos = p
	}
	return f.pos
}

// notify wakes the forwarder after an append; it never blocks.
func (f *forwarder) notify() {
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// run sends batches until ctx is done.
func (f *forwarder) run(ctx context.Context) {
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
func (f *forwarder) commit(start, end walPos) {
	p := f.advance(end)
	if err := f.saveCheckpoint(p); err != nil {
		f.logger.Error("cannot save the forwarding checkpoint", "err", err)
	}
	if p.seg != start.seg {
		f.poke()
	}
}

// saveCheckpoint overwrites the 20-byte checkpoint in place (one sector)
// and fsyncs it.
func (f *forwarder) saveCheckpoint(p walPos) error {
	var b [20]byte
	binary.LittleEndian.PutUint64(b[0:], uint64(p.seg))
	binary.LittleEndian.PutUint64(b[8:], uint64(p.off))
	binary.LittleEndian.PutUint32(b[16:], crc32.Checksum(b[:16], crcTable))
	if _, err := f.ckpt.WriteAt(b[:], 0); err != nil {
		return err
	}
	return f.ckpt.Sync()
}

// send exports a batch, retrying transient errors with backoff; it
// returns false only when ctx ended first.
func (f *forwarder) send(ctx context.Context, b fwdBatch) bool {
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
		if !f.position().less(b.end) {
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

// close releases the checkpoint file and an exporter the forwarder built.
func (f *forwarder) close() error {
	err := f.ckpt.Close()
	if f.closer != nil {
		err = errors.Join(err, f.closer.Close())
	}
	return err
}
