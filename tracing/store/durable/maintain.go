package durable

import (
	"context"
	"os"
	"time"
)

// syncLoop fsyncs the WAL every SyncInterval when it was appended to.
func (d *Store) syncLoop(ctx context.Context) {
	t := time.NewTicker(d.cfg.SyncInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		synced, err := d.wal.sync()
		if err != nil {
			d.logger.Error("WAL fsync failed", "err", err)
		}
		if synced {
			d.m.fsyncs.Inc()
		}
	}
}

// maintainLoop cuts the head into blocks and applies retention.
func (d *Store) maintainLoop(ctx context.Context) {
	every := min(d.cfg.BlockDuration, d.cfg.Retention, time.Minute) / 4
	t := time.NewTicker(max(every, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.cutCh:
		case <-t.C:
		}
		d.maybeCut()
		d.persistCutting()
		d.applyRetention(time.Now())
		if d.following() {
			d.collectWAL()
		}
		d.updateHeadGauges()
	}
}

// maybeCut swaps out a head that has taken writes for BlockDuration.
func (d *Store) maybeCut() {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	if d.closed {
		return
	}
	spans, _, first := d.head.stats()
	if spans > 0 && time.Since(first) >= d.cfg.BlockDuration {
		d.swapHead()
	}
}

// persistCutting writes the head being cut as a block, then drops it and
// the WAL segments it covered that no follower still needs. On failure it is retried on the next tick,
// and writes are refused once the new head is full.
func (d *Store) persistCutting() {
	d.pmu.Lock()
	defer d.pmu.Unlock()
	d.mu.RLock()
	h := d.cutting
	d.mu.RUnlock()
	if h == nil {
		return
	}
	dir, err := writeBlock(d.blocksDir, h)
	if err != nil {
		d.m.cutFailures.Inc()
		d.logger.Error("cannot write trace block", "err", err)
		return
	}
	b, err := openBlock(dir)
	if err != nil {
		d.m.cutFailures.Inc()
		d.logger.Error("cannot open the trace block just written", "dir", dir, "err", err)
		_ = os.RemoveAll(dir)
		return
	}
	d.mu.Lock()
	d.blocks = append(d.blocks, b)
	d.cutting = nil
	d.mu.Unlock()
	h.release()
	d.gcMu.Lock()
	d.covered = max(d.covered, h.lastSeg)
	d.gcMu.Unlock()
	d.collectWAL()
	d.m.cuts.Inc()
	d.updateBlockGauges()
	d.updateHeadGauges()
	d.logger.Debug("cut trace block", "dir", dir, "spans", b.meta.Spans, "traces", b.meta.Traces)
}

// applyRetention deletes whole blocks whose last span ended before
// now − Retention.
func (d *Store) applyRetention(now time.Time) {
	cutoff := now.Add(-d.cfg.Retention).UnixNano()
	d.mu.Lock()
	var drop []*block
	kept := d.blocks[:0]
	for _, b := range d.blocks {
		if b.meta.MaxTime < cutoff {
			drop = append(drop, b)
		} else {
			kept = append(kept, b)
		}
	}
	clear(d.blocks[len(kept):])
	d.blocks = kept
	d.mu.Unlock()
	for _, b := range drop {
		if err := os.RemoveAll(b.dir); err != nil {
			d.logger.Error("cannot delete trace block", "dir", b.dir, "err", err)
		}
		b.release()
		d.m.deleted.Inc()
		d.logger.Debug("deleted trace block by retention", "dir", b.dir)
	}
	if len(drop) > 0 {
		d.updateBlockGauges()
	}
}

func (d *Store) updateBlockGauges() {
	d.mu.RLock()
	defer d.mu.RUnlock()
	var size int64
	for _, b := range d.blocks {
		size += b.size
	}
	d.m.blocks.Set(float64(len(d.blocks)))
	d.m.blockBytes.Set(float64(size))
}

func (d *Store) updateHeadGauges() {
	d.mu.RLock()
	heads := d.heads()
	d.mu.RUnlock()
	var spans int
	var bytes int64
	for _, h := range heads {
		s, b, _ := h.stats()
		spans, bytes = spans+s, bytes+b
	}
	d.m.headSpans.Set(float64(spans))
	d.m.headBytes.Set(float64(bytes))
}

// heads lists the in-memory partitions, older first. Hold mu.
func (d *Store) heads() []*head {
	if d.cutting != nil {
		return []*head{d.cutting, d.head}
	}
	return []*head{d.head}
}

// Cut persists the head as a block now, whatever its age, and waits for
// it (a head with no spans is left alone).
func (d *Store) Cut() {
	d.wmu.Lock()
	spans, _, _ := d.head.stats()
	if spans > 0 {
		d.swapHead()
	}
	d.wmu.Unlock()
	d.persistCutting()
}
