package receiver

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	remoteapi "github.com/prometheus/client_golang/exp/api/remote"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/storage/remote"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"google.golang.org/grpc"

	"github.com/glassmesh/glassmesh/telemetry/admission"
	"github.com/glassmesh/glassmesh/telemetry/diskspace"
)

// MetricsReceiver defaults.
const (
	DefaultIngestMaxInflightRequests = 64
	DefaultIngestMaxInflightBytes    = 64 << 20
	DefaultIngestRetryAfter          = time.Second
	// defaultLookbackDelta is PromQL's default lookback (unexported in
	// promql), which the OTLP translation spaces target_info samples by.
	defaultLookbackDelta = 5 * time.Minute
)

// Where the metrics receivers listen: the Prometheus API's push paths on
// --http-addr, and the OTLP path on --otlp-http-addr.
const (
	RemoteWritePath    = "/api/v1/write"
	OTLPMetricsAPIPath = "/api/v1/otlp" + OTLPMetricsPath
	// OTLPMetricsPath is where OTLP/HTTP metrics are accepted on
	// --otlp-http-addr, as the OTLP specification names it.
	OTLPMetricsPath = "/v1/metrics"
)

// Receiver names, as the "receiver" label of the ingest metrics.
const (
	receiverRemoteWrite = "remote_write"
	receiverOTLPHTTP    = "otlp_http"
	receiverOTLPGRPC    = "otlp_grpc"
)

// MetricsConfig bounds the push receivers: Prometheus remote-write and
// OTLP metrics over HTTP and gRPC share one budget.
type MetricsConfig struct {
	// MaxInflightRequests is how many requests may be processed at once
	// [64]. Each holds at most its body, the decoded body (32 MiB each at
	// most, Prometheus's decoder limits) and the decoded messages.
	MaxInflightRequests int
	// MaxInflightBytes bounds the encoded bytes of the requests being
	// processed [64 MiB]. A request larger than this alone is refused
	// with 413 / RESOURCE_EXHAUSTED without a retry delay.
	MaxInflightBytes int64
	// RetryAfter is the delay clients are told to wait when refused for
	// capacity (Retry-After, gRPC RetryInfo) [1s].
	RetryAfter time.Duration
	// LookbackDelta is the query lookback delta; OTLP translation uses it
	// to space target_info samples [5m].
	LookbackDelta time.Duration
	// Memory is the process's memory budget, shared by every receiver;
	// each request is admitted before its body is read or decoded, after
	// the in-flight limits. nil: none.
	Memory *admission.Budget
	// Ready, when set, says whether the storage takes appends: while it
	// returns an error (a *record.NotReady while the TSDB opens) every
	// request is refused before its body is read, with 503 + Retry-After
	// or UNAVAILABLE + RetryInfo and the error's reason. Prometheus's own
	// handlers would answer a failing append with 500.
	Ready func() error
	// Space, when set, is the data dir's guard: while it refuses, HTTP
	// requests are answered 507 before Prometheus's handlers (which would
	// log an error for each) see them. The storage refuses them anyway.
	Space *diskspace.Guard
}

// Validate reports settings that cannot work, by key.
func (c MetricsConfig) Validate() error {
	var errs []error
	if c.MaxInflightRequests < 0 {
		errs = append(errs, fmt.Errorf("ingest.max-inflight-requests: must be >= 0, got %d", c.MaxInflightRequests))
	}
	if c.MaxInflightBytes < 0 {
		errs = append(errs, fmt.Errorf("ingest.max-inflight-bytes: must be >= 0, got %d", c.MaxInflightBytes))
	}
	if c.RetryAfter < 0 {
		errs = append(errs, fmt.Errorf("ingest.retry-after: must be >= 0, got %s", c.RetryAfter))
	}
	if c.LookbackDelta < 0 {
		errs = append(errs, fmt.Errorf("ingest.lookback-delta: must be >= 0, got %s", c.LookbackDelta))
	}
	return errors.Join(errs...)
}

func (c MetricsConfig) withDefaults() MetricsConfig {
	if c.MaxInflightRequests == 0 {
		c.MaxInflightRequests = DefaultIngestMaxInflightRequests
	}
	if c.MaxInflightBytes == 0 {
		c.MaxInflightBytes = DefaultIngestMaxInflightBytes
	}
	if c.RetryAfter == 0 {
		c.RetryAfter = DefaultIngestRetryAfter
	}
	if c.LookbackDelta == 0 {
		c.LookbackDelta = defaultLookbackDelta
	}
	return c
}

// MetricsReceiver is the push side of the metrics store: Prometheus
// remote-write (1.0 and 2.0 messages) and OTLP metrics over HTTP, through
// Prometheus's own handlers, and OTLP metrics over gRPC, through
// Prometheus's OTLP translator, all appending to a storage.AppendableV2
// (the TSDB's). All of them answer only after the appender committed.
type MetricsReceiver struct {
	memory      *admission.Budget
	limiter     *inflightLimiter
	remoteWrite http.Handler
	otlpHTTP    http.Handler
	otlpGRPC    *otlpMetricsGRPC
}

// NewMetricsReceiver builds the receivers over app.
func NewMetricsReceiver(cfg MetricsConfig, app storage.AppendableV2, logger *slog.Logger, reg prometheus.Registerer) (*MetricsReceiver, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if app == nil {
		return nil, errors.New("metrics receiver: no storage to append to")
	}
	cfg = cfg.withDefaults()
	lim := newInflightLimiter(cfg.MaxInflightRequests, cfg.MaxInflightBytes, cfg.RetryAfter, cfg.Memory, reg)
	results := promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
		Name: "glassmesh_ingest_requests_total",
		Help: "Remote-write and OTLP metric requests answered, by receiver and status code.",
	}, []string{"receiver", "code"})
	promCfg := config.DefaultConfig
	promCfg.GlobalConfig, promCfg.OTLPConfig = config.DefaultGlobalConfig, config.DefaultOTLPConfig
	// Prometheus's handlers answer 500 for any storage error; a full data
	// dir becomes 507 with Retry-After instead.
	app = notingAppendable{app}
	rejected := func(receiver string) { lim.rejected.WithLabelValues(receiver, reasonStorageFull).Inc() }
	rw := remote.NewWriteHandler(logger.With("component", "remote-write receiver"), reg, app,
		remoteapi.MessageTypes{remoteapi.WriteV1MessageType, remoteapi.WriteV2MessageType}, false, false)
	otlp := remote.NewOTLPWriteHandler(logger.With("component", "otlp receiver"), reg, app,
		func() config.Config { return promCfg },
		remote.OTLPOptions{LookbackDelta: cfg.LookbackDelta})
	conv := newOTLPConverter(app, promCfg.OTLPConfig, cfg.LookbackDelta, logger.With("component", "otlp grpc receiver"), reg)
	return &MetricsReceiver{
		memory:  cfg.Memory,
		limiter: lim,
		remoteWrite: countCodes(receiverRemoteWrite, results, readyGate(cfg.Ready, cfg.RetryAfter, lim.wrapHTTP(receiverRemoteWrite,
			noteStorageFull(receiverRemoteWrite, rejected, cfg.Space, cfg.RetryAfter, plainStorageFull, rw)))),
		otlpHTTP: countCodes(receiverOTLPHTTP, results, readyGate(cfg.Ready, cfg.RetryAfter, lim.wrapHTTP(receiverOTLPHTTP,
			noteStorageFull(receiverOTLPHTTP, rejected, cfg.Space, cfg.RetryAfter, otlpStorageFull, otlp)))),
		otlpGRPC: &otlpMetricsGRPC{limiter: lim, conv: conv, results: results, ready: cfg.Ready, retryAfter: cfg.RetryAfter},
	}, nil
}

// Register mounts POST /api/v1/write and POST /api/v1/otlp/v1/metrics on
// mux. They take precedence over the Prometheus API's /api/v1/ subtree.
func (i *MetricsReceiver) Register(mux *http.ServeMux) {
	mux.Handle("POST "+RemoteWritePath, i.remoteWrite)
	mux.Handle("POST "+OTLPMetricsAPIPath, i.otlpHTTP)
}

// RemoteWriteHandler is the Prometheus remote-write receiver.
func (i *MetricsReceiver) RemoteWriteHandler() http.Handler { return i.remoteWrite }

// OTLPHandler is the OTLP/HTTP metrics receiver (protobuf or JSON,
// optionally gzip). Mount it at OTLPMetricsPath on --otlp-http-addr.
func (i *MetricsReceiver) OTLPHandler() http.Handler { return i.otlpHTTP }

// OTLPGRPC is the OTLP/gRPC metrics service.
func (i *MetricsReceiver) OTLPGRPC() pmetricotlp.GRPCServer { return i.otlpGRPC }

// RegisterGRPC registers the OTLP/gRPC metrics service
// (opentelemetry.proto.collector.metrics.v1.MetricsService) on s, with
// INVALID_ARGUMENT for malformed requests; call it for both --grpc-addr
// and --otlp-grpc-addr servers.
func (i *MetricsReceiver) RegisterGRPC(s *grpc.Server) {
	registerOTLPMetrics(s, i.memory, i.otlpGRPC)
}

// countCodes counts answers by status code.
func countCodes(receiver string, results *prometheus.CounterVec, next http.Handler) http.Handler {
	return promhttp.InstrumentHandlerCounter(results.MustCurryWith(prometheus.Labels{"receiver": receiver}), next)
}
