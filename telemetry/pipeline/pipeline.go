// Package pipeline turns what proxies report (Envoy access log entries and
// stats, proxyless gRPC reports in the same format) into normalized
// record.Request records with Istio's labels, and hands them to the stores
// that consume them.
//
// Who is who: the reporter is the node that sent the entries (its id and
// metadata, per DESIGN.md); the upstream cluster says which end it was
// (outbound|… the caller, reporter=source; inbound|… the callee,
// reporter=destination). The other end comes from the x-glassmesh-peer
// header (inbound), the peer certificate, then the mesh registry; what
// stays unknown is labelled "unknown" and counted, never dropped.
//
// Sizes follow Istio: request and response bytes are headers plus body
// (request_headers_bytes + request_body_bytes, and the same for the
// response). Durations are first byte in to last byte out downstream.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	accesslogdatav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/storage"

	"github.com/glassmesh/glassmesh/control/model"
	"github.com/glassmesh/glassmesh/telemetry/record"
)

// Defaults of Config.
const (
	// DefaultClusterID is Istio's default cluster id ("Kubernetes"), the
	// source_cluster/destination_cluster of every known workload, so
	// dashboards built for Istio match without edits.
	DefaultClusterID = "Kubernetes"
	// DefaultTrustDomain is the SPIFFE trust domain of workload identities.
	DefaultTrustDomain = "cluster.local"
	// DefaultMaxTCPConnections bounds the open TCP connections tracked to
	// turn Envoy's cumulative byte counts into increments.
	DefaultMaxTCPConnections = 100_000
)

// Config configures a Pipeline. The zero value is valid.
type Config struct {
	// ClusterID labels known workloads' cluster; "" means DefaultClusterID.
	ClusterID string
	// TrustDomain of the SPIFFE ids derived from service accounts; ""
	// means DefaultTrustDomain.
	TrustDomain string
	// Appendable stores Envoy stats (ConsumeEnvoyMetrics); nil makes
	// ConsumeEnvoyMetrics fail with ErrNoStorage.
	Appendable storage.Appendable
	// MaxTCPConnections bounds the TCP connection tracker; 0 means
	// DefaultMaxTCPConnections.
	MaxTCPConnections int
}

// ErrNoStorage is returned by ConsumeEnvoyMetrics when the pipeline has no
// Appendable.
var ErrNoStorage = errors.New("pipeline: no storage for Envoy stats")

// Pipeline converts access log entries to Requests and fans them out. It is
// safe for concurrent use; it starts no goroutines.
type Pipeline struct {
	cfg       Config
	mesh      func() *model.Mesh
	empty     *model.Mesh // stands in for a nil mesh
	consumers []record.RequestConsumer
	logger    *slog.Logger
	idx       atomic.Pointer[index]
	conns     *connTracker
	batches   sync.Pool // *[]record.Request
	now       func() time.Time
	m         *selfMetrics
}

// New builds a pipeline feeding consumers, reading the current mesh from
// mesh (nil, or a func returning nil, means an empty mesh) and registering
// its self metrics with reg (nil: not registered).
func New(cfg Config, mesh func() *model.Mesh, consumers []record.RequestConsumer, logger *slog.Logger, reg prometheus.Registerer) (*Pipeline, error) {
	if cfg.ClusterID == "" {
		cfg.ClusterID = DefaultClusterID
	}
	if cfg.TrustDomain == "" {
		cfg.TrustDomain = DefaultTrustDomain
	}
	if cfg.MaxTCPConnections < 0 {
		return nil, fmt.Errorf("pipeline: MaxTCPConnections %d: must not be negative", cfg.MaxTCPConnections)
	}
	if cfg.MaxTCPConnections == 0 {
		cfg.MaxTCPConnections = DefaultMaxTCPConnections
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if mesh == nil {
		mesh = func() *model.Mesh { return nil }
	}
	m, err := newSelfMetrics(reg)
	if err != nil {
		return nil, err
	}
	p := &Pipeline{cfg: cfg, mesh: mesh, empty: model.Empty(), consumers: consumers, logger: logger, now: time.Now, m: m}
	var warned atomic.Bool
	p.conns = newConnTracker(cfg.MaxTCPConnections, func() {
		m.tcpUntracked.Inc()
		if !warned.Swap(true) {
			logger.Warn("TCP connection tracker is full; bytes of further connections may be counted twice",
				"max", cfg.MaxTCPConnections, "metric", "glassmesh_pipeline_tcp_untracked_connections_total")
		}
	})
	return p, nil
}

// ConsumeHTTPLogs converts the HTTP entries node reported and hands them to
// every consumer. It returns the consumers' errors joined; errors.Is(err,
// record.ErrOverloaded) tells the caller to push back.
func (p *Pipeline) ConsumeHTTPLogs(ctx context.Context, node *corev3.Node, entries []*accesslogdatav3.HTTPAccessLogEntry) error {
	if len(entries) == 0 {
		return nil
	}
	ix := p.index()
	rep := reporterOf(ix, node)
	now := p.now()
	batch := p.batch(len(entries))
	for i, e := range entries {
		convertHTTP(ix, &rep, e, now, &(*batch)[i])
	}
	p.m.httpEntries.Add(float64(len(entries)))
	return p.deliver(ctx, batch)
}

// ConsumeTCPLogs converts the TCP entries node reported and hands them to
// every consumer, like ConsumeHTTPLogs.
func (p *Pipeline) ConsumeTCPLogs(ctx context.Context, node *corev3.Node, entries []*accesslogdatav3.TCPAccessLogEntry) error {
	if len(entries) == 0 {
		return nil
	}
	ix := p.index()
	rep := reporterOf(ix, node)
	now := p.now()
	batch := p.batch(len(entries))
	for i, e := range entries {
		convertTCP(ix, &rep, p.conns, e, now, &(*batch)[i])
	}
	p.m.tcpEntries.Add(float64(len(entries)))
	return p.deliver(ctx, batch)
}

// deliver counts unknown peers, fans the batch out and recycles it.
func (p *Pipeline) deliver(ctx context.Context, batch *[]record.Request) error {
	var unknownSource, unknownDest int
	for i := range *batch {
		r := &(*batch)[i]
		switch {
		case r.Reporter == record.ReporterSource && r.Dest.Workload == record.Unknown:
			unknownDest++
		case r.Reporter == record.ReporterDestination && r.Source.Workload == record.Unknown:
			unknownSource++
		}
	}
	p.m.unknownPeers[0].Add(float64(unknownDest))
	p.m.unknownPeers[1].Add(float64(unknownSource))
	var errs []error
	for _, c := range p.consumers {
		if err := c.ConsumeRequests(ctx, *batch); err != nil {
			reason := "error"
			if errors.Is(err, record.ErrOverloaded) {
				reason = "overloaded"
			}
			p.m.refused.WithLabelValues(reason).Add(float64(len(*batch)))
			errs = append(errs, err)
		}
	}
	clear(*batch) // drop references to strings before pooling
	p.batches.Put(batch)
	return errors.Join(errs...)
}

// batch returns a pooled slice of n Requests; consumers never keep it.
func (p *Pipeline) batch(n int) *[]record.Request {
	if b, ok := p.batches.Get().(*[]record.Request); ok && cap(*b) >= n {
		*b = (*b)[:n]
		return b
	}
	b := make([]record.Request, n)
	return &b
}

// index returns the registry index of the current mesh, rebuilding it when
// the mesh changed (Mesh values are immutable, so the pointer is the
// version).
func (p *Pipeline) index() *index {
	m := p.mesh()
	if m == nil {
		m = p.empty
	}
	if ix := p.idx.Load(); ix != nil && ix.mesh == m {
		return ix
	}
	ix := buildIndex(m, p.cfg.ClusterID, p.cfg.TrustDomain)
	p.idx.Store(ix)
	p.logger.Debug("indexed the mesh registry", "workloads", len(m.Workloads), "services", len(m.Services))
	return ix
}
