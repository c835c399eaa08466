package receiver

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/glassmesh/glassmesh/telemetry/metrics/metricstest"
	"github.com/glassmesh/glassmesh/telemetry/pipeline"
	"github.com/glassmesh/glassmesh/telemetry/record"
)

// opening is the error of a store that is still replaying its WAL.
func opening() error {
	return &record.NotReady{What: "metrics storage", Reason: "replaying its WAL (42% of segments)", RetryAfter: 5 * time.Second}
}

// notReadySpans is a trace store still opening.
type notReadySpans struct{}

func (notReadySpans) WriteTraces(context.Context, ptrace.Traces) error {
	return &record.NotReady{What: "trace storage", Reason: "opening", RetryAfter: 2 * time.Second}
}

func TestTraceWritesWhileTheStoreOpensGet503WithRetryAfter(t *testing.T) {
	r, err := NewTraceReceiver(TracesConfig{}, notReadySpans{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		handler http.Handler
		ct      string
		body    []byte
	}{
		{"OTLP/HTTP", r.OTLPHandler(), contentTypeProtobuf, otlpBody(t)},
		{"Zipkin", r.ZipkinHandler(), contentTypeJSON, []byte(`[{"traceId":"4bf92f3577b34da6a3ce929d0e0e4736","id":"00f067aa0ba902b7","name":"get"}]`)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(tc.body))
			req.Header.Set("Content-Type", tc.ct)
			rr := httptest.NewRecorder()
			tc.handler.ServeHTTP(rr, req)
			if rr.Code != http.StatusServiceUnavailable || rr.Header().Get("Retry-After") != "2" {
				t.Fatalf("got %d, Retry-After %q; want 503, 2", rr.Code, rr.Header().Get("Retry-After"))
			}
			if !strings.Contains(rr.Body.String(), "trace storage is opening") {
				t.Errorf("the answer %q does not say why", rr.Body)
			}
		})
	}
	t.Run("OTLP/gRPC", func(t *testing.T) {
		req := ptraceotlp.NewExportRequest()
		_ = req.UnmarshalProto(otlpBody(t))
		_, err := (&otlpGRPC{r: r}).Export(context.Background(), req)
		if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "trace storage is opening") {
			t.Fatalf("got %v, want UNAVAILABLE saying why", err)
		}
		checkRetryInfo(t, err, 2*time.Second)
	})
}

func TestMetricsPushWhileTheTSDBReplaysGets503WithRetryAfter(t *testing.T) {
	app := metricstest.OpenDB(t)
	m, err := NewMetricsReceiver(MetricsConfig{Ready: opening}, app, metricstest.Logger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, h := range map[string]http.Handler{"remote-write": m.RemoteWriteHandler(), "OTLP/HTTP": m.OTLPHandler()} {
		rr := httptest.NewRecorder()
		h.ServeHTTP(rr, httptest.NewRequest(http.MethodPost, RemoteWritePath, strings.NewReader("body")))
		if rr.Code != http.StatusServiceUnavailable || rr.Header().Get("Retry-After") != "5" ||
			!strings.Contains(rr.Body.String(), "replaying its WAL (42% of segments)") {
			t.Errorf("%s: got %d, Retry-After %q, %q; want 503, 5, the replay's progress", name, rr.Code, rr.Header().Get("Retry-After"), rr.Body)
		}
	}
	md := pmetric.NewMetrics()
	md.ResourceMetrics().AppendEmpty().ScopeMetrics().AppendEmpty().Metrics().AppendEmpty().SetEmptyGauge().DataPoints().AppendEmpty().SetDoubleValue(1)
	_, err = m.OTLPGRPC().Export(context.Background(), pmetricotlp.NewExportRequestFromMetrics(md))
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "replaying its WAL") {
		t.Fatalf("OTLP/gRPC: got %v, want UNAVAILABLE with the replay's progress", err)
	}
	checkRetryInfo(t, err, 5*time.Second)
}

// notReadyConsumer is a consumer on a storage still opening.
type notReadyConsumer struct{}

func (notReadyConsumer) ConsumeRequests(context.Context, []record.Request) error { return opening() }

func TestALSStreamsWhileTheTSDBReplaysEndUnavailable(t *testing.T) {
	conn := serve(t, Config{}, newPipeline(t, pipeline.Config{}, notReadyConsumer{}))
	err := stream(context.Background(), conn, sourceMessages())
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "metrics storage is replaying") {
		t.Fatalf("got %v, want UNAVAILABLE saying why", err)
	}
	checkRetryInfo(t, err, 5*time.Second)
}
