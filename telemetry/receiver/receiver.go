// Package receiver accepts what proxies and apps push to glassmesh: Envoy
// access logs (envoy.service.accesslog.v3 AccessLogService, also used by
// proxyless apps through telemetry/grpcreport) and Envoy stats
// (envoy.service.metrics.v3 MetricsService) on --grpc-addr, which it
// decodes, checks and hands to the pipeline (Receiver); spans over OTLP and
// Zipkin, to the trace store (TraceReceiver); and metrics over Prometheus
// remote-write and OTLP, to the TSDB's appender (MetricsReceiver). Every
// one of them pushes back when full (RESOURCE_EXHAUSTED with RetryInfo, or
// 429 with Retry-After) and refuses malformed input with a reason.
//
// Both services are client streams without per-message answers, so the only
// push back is ending the stream: RESOURCE_EXHAUSTED when the pipeline is
// over capacity (Envoy reconnects and carries on), INVALID_ARGUMENT for
// input that will never be valid.
package receiver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	accesslogdatav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/glassmesh/glassmesh/telemetry/admission"
	"github.com/glassmesh/glassmesh/telemetry/pipeline"
	"github.com/glassmesh/glassmesh/telemetry/record"
)

// Defaults of Config.
const (
	// DefaultMaxStreams bounds the streams open at once (ALS and metrics
	// together); each holds at most one decoded message, so this bounds
	// the receiver's memory at about MaxStreams × the gRPC message limit.
	DefaultMaxStreams = 1024
	// DefaultRetryAfter is the delay suggested to a pushed-back client.
	DefaultRetryAfter = time.Second
)

// Config configures a Receiver. The zero value is valid.
type Config struct {
	// MaxStreams bounds concurrent streams; further streams end at once
	// with RESOURCE_EXHAUSTED. 0 means DefaultMaxStreams.
	MaxStreams int
	// RetryAfter is sent as google.rpc.RetryInfo with RESOURCE_EXHAUSTED;
	// 0 means DefaultRetryAfter.
	RetryAfter time.Duration
	// Memory is the process's memory budget, shared by every receiver:
	// each message is admitted before it is read and before it is handed
	// on, and the stream ends with RESOURCE_EXHAUSTED when it is refused.
	// nil: none.
	Memory *admission.Budget
}

// Pipeline is what the receiver feeds; *pipeline.Pipeline implements it.
// An overload error (record.ErrOverloaded) ends the stream with
// RESOURCE_EXHAUSTED.
type Pipeline interface {
	// ConsumeHTTPLogs takes a batch of HTTP entries node reported.
	ConsumeHTTPLogs(ctx context.Context, node *corev3.Node, entries []*accesslogdatav3.HTTPAccessLogEntry) error
	// ConsumeTCPLogs takes a batch of TCP entries node reported.
	ConsumeTCPLogs(ctx context.Context, node *corev3.Node, entries []*accesslogdatav3.TCPAccessLogEntry) error
	// ConsumeEnvoyMetrics takes a snapshot of node's stats.
	ConsumeEnvoyMetrics(ctx context.Context, node *corev3.Node, families []*dto.MetricFamily) error
}

// Receiver serves the Envoy access log and metrics services.
type Receiver struct {
	cfg      Config
	pipeline Pipeline
	logger   *slog.Logger
	slots    chan struct{} // one per open stream
	m        *selfMetrics
}

// New builds a receiver feeding p, registering its self metrics with reg
// (nil: not registered).
func New(cfg Config, p Pipeline, logger *slog.Logger, reg prometheus.Registerer) (*Receiver, error) {
	if p == nil {
		return nil, errors.New("receiver: no pipeline")
	}
	if cfg.MaxStreams < 0 || cfg.RetryAfter < 0 {
		return nil, fmt.Errorf("receiver: MaxStreams %d, RetryAfter %s: must not be negative", cfg.MaxStreams, cfg.RetryAfter)
	}
	if cfg.MaxStreams == 0 {
		cfg.MaxStreams = DefaultMaxStreams
	}
	if cfg.RetryAfter == 0 {
		cfg.RetryAfter = DefaultRetryAfter
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	m, err := newSelfMetrics(reg)
	if err != nil {
		return nil, err
	}
	return &Receiver{cfg: cfg, pipeline: p, logger: logger, slots: make(chan struct{}, cfg.MaxStreams), m: m}, nil
}

// Service names, as the self metrics label them.
const (
	serviceALS     = "als"
	serviceMetrics = "metrics"
)

// admit takes a stream slot, or says why not.
func (r *Receiver) admit(service string) (release func(), err error) {
	select {
	case r.slots <- struct{}{}:
		r.m.active.WithLabelValues(service).Inc()
		return func() {
			<-r.slots
			r.m.active.WithLabelValues(service).Dec()
		}, nil
	default:
		return nil, r.overloaded(fmt.Sprintf("%d streams are open, the most this receiver takes", r.cfg.MaxStreams), r.cfg.RetryAfter)
	}
}

// overloaded is RESOURCE_EXHAUSTED with a RetryInfo, so clients back off.
func (r *Receiver) overloaded(why string, retryAfter time.Duration) error {
	return exhausted("glassmesh is over capacity, retry later: "+why, retryAfter).Err()
}

// exhausted is RESOURCE_EXHAUSTED with msg and, when retryAfter > 0, a
// google.rpc.RetryInfo: OTLP exporters retry RESOURCE_EXHAUSTED only with
// one, so a request that can never fit goes without.
func exhausted(msg string, retryAfter time.Duration) *status.Status {
	st := status.New(codes.ResourceExhausted, msg)
	if retryAfter <= 0 {
		return st
	}
	if withInfo, err := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(retryAfter)}); err == nil {
		return withInfo
	}
	return st
}

// consumeError turns a pipeline error into the stream's final status.
func (r *Receiver) consumeError(err error) error {
	switch {
	case errors.Is(err, record.ErrOverloaded):
		return r.overloaded(err.Error(), record.RetryAfter(err, r.cfg.RetryAfter))
	case errors.Is(err, record.ErrNotReady):
		return notReadyStatus(err, r.cfg.RetryAfter).Err()
	case record.IsStorageFull(err):
		// Envoy's metrics service stream appends to the TSDB directly.
		return storageFullStatus(err, r.cfg.RetryAfter).Err()
	case errors.Is(err, pipeline.ErrNoStorage):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	}
	return status.Error(codes.Internal, err.Error())
}

// finish records how a stream ended and logs the unexpected.
func (r *Receiver) finish(service string, node *corev3.Node, err error) error {
	code := status.Code(err)
	r.m.ended.WithLabelValues(service, code.String()).Inc()
	switch code {
	case codes.OK, codes.Canceled:
	case codes.ResourceExhausted:
		r.logger.Warn("pushed back on a telemetry stream", "service", service, "node", node.GetId(), "err", err)
	default:
		r.logger.Info("telemetry stream failed", "service", service, "node", node.GetId(), "err", err)
	}
	return err
}
