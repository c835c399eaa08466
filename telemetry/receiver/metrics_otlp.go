package receiver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/timestamp"
	"github.com/prometheus/prometheus/storage"
	otlptranslator "github.com/prometheus/prometheus/storage/remote/otlptranslator/prometheusremotewrite"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/glassmesh/glassmesh/telemetry/record"
)

// maxAheadTime is how far in the future a pushed sample may lie, as in
// Prometheus's receivers.
const maxAheadTime = 10 * time.Minute

// otlpConverter converts OTLP metrics into appends exactly as Prometheus's
// OTLP write handler does (storage/remote.rwExporter, which is not
// exported): the same otlptranslator converter, settings derived from the
// same config.OTLPConfig, one transaction per request that is rolled back
// on any error. The gRPC receiver uses it; OTLP/HTTP goes through
// Prometheus's handler itself. TestOTLPGRPCMatchesHTTP keeps them equal.
type otlpConverter struct {
	appendable storage.AppendableV2
	settings   otlptranslator.Settings
	logger     *slog.Logger
	pool       sync.Pool
	warnings   prometheus.Counter
}

func newOTLPConverter(app storage.AppendableV2, cfg config.OTLPConfig, lookback time.Duration, logger *slog.Logger, reg prometheus.Registerer) *otlpConverter {
	return &otlpConverter{
		appendable: app,
		logger:     logger,
		settings: otlptranslator.Settings{
			AddMetricSuffixes:                    cfg.TranslationStrategy.ShouldAddSuffixes(),
			AllowUTF8:                            !cfg.TranslationStrategy.ShouldEscape(),
			PromoteResourceAttributes:            otlptranslator.NewPromoteResourceAttributes(cfg),
			KeepIdentifyingResourceAttributes:    cfg.KeepIdentifyingResourceAttributes,
			ConvertHistogramsToNHCB:              cfg.ConvertHistogramsToNHCB,
			PromoteScopeMetadata:                 cfg.PromoteScopeMetadata,
			LookbackDelta:                        lookback,
			LabelNameUnderscoreSanitization:      cfg.LabelNameUnderscoreSanitization,
			LabelNamePreserveMultipleUnderscores: cfg.LabelNamePreserveMultipleUnderscores,
		},
		pool: sync.Pool{New: func() any { return otlptranslator.NewPrometheusConverter(nil) }},
		warnings: promauto.With(reg).NewCounter(prometheus.CounterOpts{
			Name: "glassmesh_otlp_grpc_translation_warnings_total",
			Help: "Warnings produced while translating OTLP/gRPC metrics to the Prometheus model.",
		}),
	}
}

// consume appends md in one transaction. It returns the translation
// warnings, and an error that says what kind of failure it was (see
// grpcCode).
func (c *otlpConverter) consume(ctx context.Context, md pmetric.Metrics) (warnings []string, err error) {
	app := &otlpAppender{
		AppenderV2: c.appendable.AppenderV2(ctx),
		maxTime:    timestamp.FromTime(time.Now().Add(maxAheadTime)),
	}
	conv := c.pool.Get().(*otlptranslator.PrometheusConverter)
	conv.Reset(app)
	defer func() {
		conv.Reset(nil)
		c.pool.Put(conv)
	}()
	annots, err := conv.FromMetrics(ctx, md, c.settings)
	if ws, _ := annots.AsStrings("", 0, 0); len(ws) > 0 {
		warnings = ws
		c.warnings.Add(float64(len(ws)))
		c.logger.Warn("Warnings translating OTLP metrics to Prometheus", "warnings", ws)
	}
	if err != nil {
		_ = app.Rollback()
		if app.storageErr != nil {
			return warnings, &appendError{err: app.storageErr}
		}
		return warnings, err
	}
	if err := app.Commit(); err != nil {
		return warnings, &appendError{err: err}
	}
	return warnings, nil
}

// appendError marks a failure of the storage rather than of the data.
type appendError struct{ err error }

func (e *appendError) Error() string { return e.err.Error() }
func (e *appendError) Unwrap() error { return e.err }

// grpcCode classifies a consume error: data the storage refuses for good
// (out of order, too old, too far ahead) and data that does not translate
// are InvalidArgument, which OTLP clients do not retry; a failing storage
// is Unavailable, which they retry; a cancelled request is what its
// context says.
func grpcCode(err error) codes.Code {
	switch {
	case errors.Is(err, context.Canceled):
		return codes.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		return codes.DeadlineExceeded
	case errors.Is(err, record.ErrNotReady):
		return codes.Unavailable
	case isBadDataError(err):
		return codes.InvalidArgument
	}
	var ae *appendError
	if errors.As(err, &ae) {
		return codes.Unavailable
	}
	return codes.InvalidArgument
}

// isBadDataError is what Prometheus's receivers answer 400 for.
func isBadDataError(err error) bool {
	var herr histogram.Error
	return errors.Is(err, storage.ErrOutOfOrderSample) || errors.Is(err, storage.ErrOutOfBounds) ||
		errors.Is(err, storage.ErrDuplicateSampleForTimestamp) || errors.Is(err, storage.ErrTooOldSample) ||
		errors.As(err, &herr)
}

// otlpAppender refuses samples too far in the future, ignores exemplars
// the storage refuses (the sample itself was written), and remembers the
// first error that came from the storage rather than from the data, as
// Prometheus's OTLP handler does with its unexported appender wrappers.
type otlpAppender struct {
	storage.AppenderV2
	maxTime    int64
	storageErr error
}

func (a *otlpAppender) Append(ref storage.SeriesRef, ls labels.Labels, st, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, opts storage.AOptions) (storage.SeriesRef, error) {
	if t > a.maxTime {
		return 0, errTooFarAhead
	}
	ref, err := a.AppenderV2.Append(ref, ls, st, t, v, h, fh, opts)
	if err == nil {
		return ref, nil
	}
	var partial *storage.AppendPartialError
	if _, herr := partial.Handle(err); herr == nil {
		return ref, nil // only exemplars were refused
	}
	if !isBadDataError(err) && a.storageErr == nil {
		a.storageErr = err
	}
	return 0, err
}

var errTooFarAhead = fmt.Errorf("%w: timestamp is too far in the future", storage.ErrOutOfBounds)

// otlpMetricsGRPC is the OTLP/gRPC metrics service.
type otlpMetricsGRPC struct {
	pmetricotlp.UnimplementedGRPCServer
	limiter *inflightLimiter
	conv    *otlpConverter
	sizer   pmetric.ProtoMarshaler
	results *prometheus.CounterVec
	// ready refuses while the storage opens (nil: never); retryAfter is
	// the delay when the refusal does not say.
	ready      func() error
	retryAfter time.Duration
}

// Export implements pmetricotlp.GRPCServer. Warnings come back as a
// partial success with nothing rejected.
func (s *otlpMetricsGRPC) Export(ctx context.Context, req pmetricotlp.ExportRequest) (pmetricotlp.ExportResponse, error) {
	md := req.Metrics()
	release, err := s.limiter.acquire(receiverOTLPGRPC, int64(s.sizer.MetricsSize(md)))
	if err != nil {
		s.results.WithLabelValues(receiverOTLPGRPC, codes.ResourceExhausted.String()).Inc()
		return pmetricotlp.NewExportResponse(), s.limiter.grpcStatus(err)
	}
	defer release()
	if s.ready != nil {
		if err := s.ready(); err != nil {
			s.results.WithLabelValues(receiverOTLPGRPC, codes.Unavailable.String()).Inc()
			return pmetricotlp.NewExportResponse(), notReadyStatus(err, s.retryAfter).Err()
		}
	}
	warnings, err := s.conv.consume(ctx, md)
	if record.IsStorageFull(err) {
		s.limiter.rejected.WithLabelValues(receiverOTLPGRPC, reasonStorageFull).Inc()
		s.results.WithLabelValues(receiverOTLPGRPC, codes.ResourceExhausted.String()).Inc()
		return pmetricotlp.NewExportResponse(), storageFullStatus(err, s.limiter.retryAfter).Err()
	}
	if err != nil {
		code := grpcCode(err)
		s.results.WithLabelValues(receiverOTLPGRPC, code.String()).Inc()
		return pmetricotlp.NewExportResponse(), status.Error(code, err.Error())
	}
	s.results.WithLabelValues(receiverOTLPGRPC, codes.OK.String()).Inc()
	resp := pmetricotlp.NewExportResponse()
	if len(warnings) > 0 {
		resp.PartialSuccess().SetErrorMessage(strings.Join(warnings, "; "))
	}
	return resp, nil
}
