package durable

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the store's self metrics.
type metrics struct {
	spans, bytes, fsyncs, cuts, cutFailures, deleted, overloaded, storageFull prometheus.Counter
	blocks, headSpans, headBytes, blockBytes                                  prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	const ns, sub = "glassmesh", "trace_store"
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: name, Help: help})
	}
	g := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: name, Help: help})
	}
	m := &metrics{
		spans:       c("spans_written_total", "Spans acknowledged (written to the WAL)."),
		bytes:       c("wal_bytes_written_total", "Bytes appended to the WAL."),
		fsyncs:      c("wal_fsyncs_total", "Group fsyncs of the WAL."),
		cuts:        c("blocks_cut_total", "Heads persisted as blocks."),
		cutFailures: c("block_cut_failures_total", "Failed attempts to persist a head as a block."),
		deleted:     c("retention_deleted_blocks_total", "Blocks deleted by retention."),
		overloaded:  c("overloaded_total", "Writes refused as over capacity."),
		storageFull: c("storage_full_total", "Writes refused because the data dir is full (or a write failed for lack of space)."),
		blocks:      g("blocks", "Blocks on disk."),
		headSpans:   g("head_spans", "Spans in the in-memory head (including one being persisted)."),
		headBytes:   g("head_bytes", "Estimated memory of the head (including one being persisted)."),
		blockBytes:  g("block_bytes", "Bytes of blocks on disk."),
	}
	if reg == nil {
		return m, nil
	}
	var errs []error
	for _, col := range []prometheus.Collector{m.spans, m.bytes, m.fsyncs, m.cuts, m.cutFailures, m.deleted,
		m.overloaded, m.storageFull, m.blocks, m.headSpans, m.headBytes, m.blockBytes} {
		errs = append(errs, reg.Register(col))
	}
	return m, errors.Join(errs...)
}
