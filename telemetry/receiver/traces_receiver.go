package receiver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/glassmesh/glassmesh/telemetry/admission"
	"github.com/glassmesh/glassmesh/telemetry/record"
)

// Defaults of TracesConfig.
const (
	// DefaultMaxTraceRequestBytes bounds one decompressed HTTP request body
	// (OTLP/HTTP or Zipkin), like the collector's 20 MiB-ish defaults.
	DefaultMaxTraceRequestBytes = 16 << 20
	// DefaultMaxTraceRequests bounds the trace requests (gRPC and HTTP
	// together) being decoded and written at once.
	DefaultMaxTraceRequests = 32
	// DefaultTraceQueueWait is how long a request waits for a free slot
	// before it is pushed back.
	DefaultTraceQueueWait = 100 * time.Millisecond
)

// TracesWriter takes accepted spans. tracing/store's Writer satisfies it:
// a nil error means the spans are durable, so the client may be told so.
type TracesWriter interface {
	// WriteTraces stores every span of td; it must not keep td.
	WriteTraces(ctx context.Context, td ptrace.Traces) error
}

// EncodedTracesWriter is a TracesWriter that can also take the OTLP
// protobuf the spans were decoded from, to store it without encoding the
// spans again; tracing/store/durable's Store is one.
type EncodedTracesWriter interface {
	TracesWriter
	// WriteTracesEncoded is WriteTraces given raw, the unchanged
	// TracesData or ExportTraceServiceRequest that td was decoded from. It
	// must keep neither.
	WriteTracesEncoded(ctx context.Context, td ptrace.Traces, raw []byte) error
}

// TracesConfig configures a TraceReceiver. The zero value is valid.
type TracesConfig struct {
	// MaxRequestBytes bounds a decompressed HTTP body; larger ones get
	// 413. 0 means DefaultMaxTraceRequestBytes. gRPC messages are bounded
	// by the gRPC server's MaxRecvMsgSize.
	MaxRequestBytes int64
	// MaxRequests bounds the requests being decoded and written at once,
	// so the receiver holds at most about MaxRequests × MaxRequestBytes.
	// 0 means DefaultMaxTraceRequests.
	MaxRequests int
	// QueueWait is how long a request waits for one of MaxRequests before
	// it is pushed back; 0 means DefaultTraceQueueWait.
	QueueWait time.Duration
	// RetryAfter is suggested to pushed-back clients (Retry-After,
	// google.rpc.RetryInfo); 0 means DefaultRetryAfter.
	RetryAfter time.Duration
	// Memory is the process's memory budget, shared by every receiver;
	// each request is admitted before its body is read or decoded. nil:
	// none.
	Memory *admission.Budget
}

// Validate reports a negative bound, naming its key.
func (c TracesConfig) Validate() error {
	switch {
	case c.MaxRequestBytes < 0:
		return fmt.Errorf("receiver.traces.max-request-bytes: must be >= 0, got %d", c.MaxRequestBytes)
	case c.MaxRequests < 0:
		return fmt.Errorf("receiver.traces.max-requests: must be >= 0, got %d", c.MaxRequests)
	case c.QueueWait < 0:
		return fmt.Errorf("receiver.traces.queue-wait: must be >= 0, got %s", c.QueueWait)
	case c.RetryAfter < 0:
		return fmt.Errorf("receiver.traces.retry-after: must be >= 0, got %s", c.RetryAfter)
	}
	return nil
}

func (c TracesConfig) withDefaults() TracesConfig {
	if c.MaxRequestBytes == 0 {
		c.MaxRequestBytes = DefaultMaxTraceRequestBytes
	}
	if c.MaxRequests == 0 {
		c.MaxRequests = DefaultMaxTraceRequests
	}
	if c.QueueWait == 0 {
		c.QueueWait = DefaultTraceQueueWait
	}
	if c.RetryAfter == 0 {
		c.RetryAfter = DefaultRetryAfter
	}
	return c
}

// TraceReceiver accepts spans over OTLP/gRPC, OTLP/HTTP and Zipkin v2 and
// writes them to a TracesWriter, answering only once the writer returned.
type TraceReceiver struct {
	cfg    TracesConfig
	w      TracesWriter
	logger *slog.Logger
	slots  chan struct{}
	m      *traceMetrics
}

// NewTraceReceiver builds a receiver writing to w, registering its self
// metrics with reg (nil: not registered).
func NewTraceReceiver(cfg TracesConfig, w TracesWriter, logger *slog.Logger, reg prometheus.Registerer) (*TraceReceiver, error) {
	if w == nil {
		return nil, errors.New("receiver: no traces writer")
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	m, err := newTraceMetrics(reg)
	if err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	return &TraceReceiver{cfg: cfg, w: w, logger: logger, slots: make(chan struct{}, cfg.MaxRequests), m: m}, nil
}

// errBusy means every request slot stayed taken for QueueWait.
var errBusy = &record.Overloaded{What: "too many concurrent trace requests"}

// acquire takes a request slot, waiting at most QueueWait.
func (r *TraceReceiver) acquire(ctx context.Context) error {
	select {
	case r.slots <- struct{}{}:
		return nil
	default:
	}
	t := time.NewTimer(r.cfg.QueueWait)
	defer t.Stop()
	select {
	case r.slots <- struct{}{}:
		return nil
	case <-t.C:
		return errBusy
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (r *TraceReceiver) release() { <-r.slots }

// overloaded reports whether err is a push-back.
func (r *TraceReceiver) overloaded(err error) bool {
	return errors.Is(err, record.ErrOverloaded)
}

// write drops the spans without valid ids, writes the rest and returns how
// many were rejected and why (the OTLP partial success).
func (r *TraceReceiver) write(ctx context.Context, transport string, td ptrace.Traces) (rejected int, why string, err error) {
	return r.writeEncoded(ctx, transport, td, nil)
}

// writeEncoded is write given td's protobuf too (nil: none), which goes to
// an EncodedTracesWriter as long as it still encodes td.
func (r *TraceReceiver) writeEncoded(ctx context.Context, transport string, td ptrace.Traces, raw []byte) (rejected int, why string, err error) {
	rejected = dropInvalidSpans(td)
	if rejected > 0 {
		raw = nil // it still holds the dropped spans
		why = fmt.Sprintf("%d spans rejected: trace id and span id must be non-zero", rejected)
		r.m.refused.WithLabelValues(transport, "invalid").Add(float64(rejected))
	}
	n := td.SpanCount()
	if n == 0 {
		return rejected, why, nil
	}
	if err := r.writeTraces(ctx, td, raw); err != nil {
		reason := "error"
		switch {
		case r.overloaded(err):
			reason = "overloaded"
		case record.IsStorageFull(err):
			reason = reasonStorageFull
		}
		r.m.refused.WithLabelValues(transport, reason).Add(float64(n))
		return rejected, why, err
	}
	r.m.accepted.WithLabelValues(transport).Add(float64(n))
	return rejected, why, nil
}

func (r *TraceReceiver) writeTraces(ctx context.Context, td ptrace.Traces, raw []byte) error {
	if ew, ok := r.w.(EncodedTracesWriter); ok && raw != nil {
		return ew.WriteTracesEncoded(ctx, td, raw)
	}
	return r.w.WriteTraces(ctx, td)
}

// dropInvalidSpans removes spans with an empty trace or span id and
// returns how many it removed.
func dropInvalidSpans(td ptrace.Traces) int {
	dropped := 0
	rss := td.ResourceSpans()
	for i := range rss.Len() {
		sss := rss.At(i).ScopeSpans()
		for j := range sss.Len() {
			sss.At(j).Spans().RemoveIf(func(s ptrace.Span) bool {
				bad := s.TraceID().IsEmpty() || s.SpanID().IsEmpty()
				if bad {
					dropped++
				}
				return bad
			})
		}
	}
	return dropped
}

// traceMetrics are the trace receiver's own metrics.
type traceMetrics struct {
	accepted *prometheus.CounterVec
	refused  *prometheus.CounterVec
}

func newTraceMetrics(reg prometheus.Registerer) (*traceMetrics, error) {
	m := &traceMetrics{
		accepted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "glassmesh_receiver_accepted_spans_total",
			Help: "Spans written to the trace store, by transport (otlp_grpc, otlp_http, zipkin).",
		}, []string{"transport"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "glassmesh_receiver_refused_spans_total",
			Help: "Spans not written, by transport and reason (invalid, overloaded, storage_full, error).",
		}, []string{"transport", "reason"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.accepted, m.refused} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("receiver: registering trace self metrics: %w", err)
		}
	}
	return m, nil
}
