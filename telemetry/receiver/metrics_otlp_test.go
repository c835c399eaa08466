package receiver

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/timestamp"
	"github.com/prometheus/prometheus/tsdb"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// otlpTestRequest is one resource (service shop/checkout, instance i-1,
// a pod name that becomes target_info) with a gauge, a cumulative counter and a histogram whose bucket carries
// an exemplar, all at nowMs.
func otlpTestRequest(nowMs int64) pmetricotlp.ExportRequest {
	md := pmetric.NewMetrics()
	rm := md.ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", "checkout")
	rm.Resource().Attributes().PutStr("service.namespace", "shop")
	rm.Resource().Attributes().PutStr("service.instance.id", "i-1")
	rm.Resource().Attributes().PutStr("k8s.pod.name", "checkout-7d9f")
	ms := rm.ScopeMetrics().AppendEmpty().Metrics()
	now := pcommon.NewTimestampFromTime(timestamp.Time(nowMs))
	start := pcommon.NewTimestampFromTime(timestamp.Time(nowMs).Add(-time.Minute))

	g := ms.AppendEmpty()
	g.SetName("queue.depth")
	gp := g.SetEmptyGauge().DataPoints().AppendEmpty()
	gp.SetTimestamp(now)
	gp.SetDoubleValue(7)

	c := ms.AppendEmpty()
	c.SetName("requests")
	sum := c.SetEmptySum()
	sum.SetIsMonotonic(true)
	sum.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	cp := sum.DataPoints().AppendEmpty()
	cp.SetStartTimestamp(start)
	cp.SetTimestamp(now)
	cp.SetIntValue(42)
	cp.Attributes().PutStr("code", "200")

	h := ms.AppendEmpty()
	h.SetName("request.duration")
	h.SetUnit("ms")
	hist := h.SetEmptyHistogram()
	hist.SetAggregationTemporality(pmetric.AggregationTemporalityCumulative)
	hp := hist.DataPoints().AppendEmpty()
	hp.SetStartTimestamp(start)
	hp.SetTimestamp(now)
	hp.SetCount(3)
	hp.SetSum(30)
	hp.ExplicitBounds().FromRaw([]float64{5, 50})
	hp.BucketCounts().FromRaw([]uint64{1, 2, 0})
	ex := hp.Exemplars().AppendEmpty()
	ex.SetTimestamp(now)
	ex.SetDoubleValue(12)
	ex.SetTraceID(pcommon.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36})
	return pmetricotlp.NewExportRequestFromMetrics(md)
}

// otlpDeltaRequest is a delta counter, which Prometheus refuses by default.
func otlpDeltaRequest(nowMs int64) pmetricotlp.ExportRequest {
	md := pmetric.NewMetrics()
	m := md.ResourceMetrics().AppendEmpty().ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
	m.SetName("delta.requests")
	s := m.SetEmptySum()
	s.SetIsMonotonic(true)
	s.SetAggregationTemporality(pmetric.AggregationTemporalityDelta)
	p := s.DataPoints().AppendEmpty()
	p.SetTimestamp(pcommon.NewTimestampFromTime(timestamp.Time(nowMs)))
	p.SetIntValue(1)
	return pmetricotlp.NewExportRequestFromMetrics(md)
}

func otlpPostHTTP(t *testing.T, url string, req pmetricotlp.ExportRequest) (int, string) {
	t.Helper()
	body, err := req.MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	return otlpPostRaw(t, url, "application/x-protobuf", "", body)
}

func otlpPostRaw(t *testing.T, url, contentType, encoding string, body []byte) (int, string) {
	t.Helper()
	headers := []string{"Content-Type", contentType}
	if encoding != "" {
		headers = append(headers, "Content-Encoding", encoding)
	}
	resp, b := postWith(t, url, body, headers...)
	return resp.StatusCode, b
}

// otlpGRPCClient serves the env's OTLP/gRPC service on a loopback port and
// returns a real OTLP gRPC client for it.
func otlpGRPCClient(t *testing.T, e *ingestEnv) pmetricotlp.GRPCClient {
	t.Helper()
	return pmetricotlp.NewGRPCClient(otlpGRPCConn(t, e))
}

func otlpGRPCConn(t *testing.T, e *ingestEnv) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(otlpGRPCServe(t, e), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// otlpGRPCServe serves the env's OTLP/gRPC service on a loopback port
// until the test ends and returns its address.
func otlpGRPCServe(t *testing.T, e *ingestEnv) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	e.recv.RegisterGRPC(s)
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Serve(lis) }()
	t.Cleanup(func() {
		s.Stop()
		<-done
	})
	return lis.Addr().String()
}

const otlpCounterKey = `{__name__="requests_total", code="200", instance="i-1", job="shop/checkout"}`

func TestOTLPHTTP(t *testing.T) {
	e := newIngestEnv(t, ingestEnvOptions{})
	now := timestamp.FromTime(time.Now())
	json, err := otlpTestRequest(now).MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write(json)
	_ = zw.Close()
	tests := []struct {
		name, path, contentType, encoding string
		body                              []byte
		code                              int
		reason                            string
	}{
		{"protobuf on the Prometheus path is stored", "/api/v1/otlp/v1/metrics", "application/x-protobuf", "",
			otlpProto(t, otlpTestRequest(now)), http.StatusOK, ""},
		{"gzipped JSON on the OTLP path is stored", "/v1/metrics", "application/json", "gzip", gz.Bytes(), http.StatusOK, ""},
		{"a malformed protobuf is a bad request", "/v1/metrics", "application/x-protobuf", "", []byte("\x0a\xff\xff"),
			http.StatusBadRequest, "EOF"},
		{"malformed JSON is a bad request", "/v1/metrics", "application/json", "", []byte(`{"resourceMetrics": [`),
			http.StatusBadRequest, ""},
		{"an unknown content type is a bad request", "/v1/metrics", "text/plain", "", []byte("x"),
			http.StatusBadRequest, "unsupported content type"},
		{"an unknown encoding is a bad request", "/v1/metrics", "application/json", "br", json,
			http.StatusBadRequest, "unsupported compression"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := otlpPostRaw(t, e.srv.URL+tt.path, tt.contentType, tt.encoding, tt.body)
			if code != tt.code || !strings.Contains(body, tt.reason) {
				t.Fatalf("got %d %q, want %d containing %q", code, body, tt.code, tt.reason)
			}
		})
	}
	t.Run("the series are queryable with job and instance from the resource", func(t *testing.T) {
		got := e.query(t, `{job="shop/checkout"}`)
		for _, key := range []string{
			otlpCounterKey,
			`{__name__="queue_depth", instance="i-1", job="shop/checkout"}`,
			`{__name__="request_duration_milliseconds_count", instance="i-1", job="shop/checkout"}`,
		} {
			if _, ok := got[key]; !ok {
				t.Errorf("missing %s in %v", key, got)
			}
		}
		if got[otlpCounterKey] != "42" {
			t.Fatalf("counter = %q", got[otlpCounterKey])
		}
	})
	t.Run("a delta counter is refused as Prometheus refuses it", func(t *testing.T) {
		code, body := otlpPostHTTP(t, e.srv.URL+"/v1/metrics", otlpDeltaRequest(now))
		if code != http.StatusInternalServerError || !strings.Contains(body, "invalid temporality") {
			t.Fatalf("got %d %q", code, body)
		}
	})
}

func otlpProto(t *testing.T, req pmetricotlp.ExportRequest) []byte {
	b, err := req.MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestOTLPGRPC(t *testing.T) {
	e := newIngestEnv(t, ingestEnvOptions{})
	client := otlpGRPCClient(t, e)
	now := timestamp.FromTime(time.Now())
	ctx := context.Background()

	t.Run("an export is stored and queryable", func(t *testing.T) {
		resp, err := client.Export(ctx, otlpTestRequest(now))
		if err != nil {
			t.Fatal(err)
		}
		if msg := resp.PartialSuccess().ErrorMessage(); msg != "" || resp.PartialSuccess().RejectedDataPoints() != 0 {
			t.Fatalf("partial success %q", msg)
		}
		if got := e.query(t, "requests_total"); got[otlpCounterKey] != "42" {
			t.Fatalf("query = %v", got)
		}
	})
	tests := []struct {
		name   string
		req    pmetricotlp.ExportRequest
		code   codes.Code
		reason string
	}{
		{"a delta counter is InvalidArgument", otlpDeltaRequest(now), codes.InvalidArgument, "invalid temporality"},
		{"a metric without a type is InvalidArgument", otlpUntyped(now), codes.InvalidArgument, "unsupported metric type Empty"},
		{"a sample too far ahead is InvalidArgument", otlpGaugeOnly(now + time.Hour.Milliseconds()), codes.InvalidArgument, "too far in the future"},
		{"an out-of-order sample is InvalidArgument", otlpGaugeOnly(now - time.Minute.Milliseconds()), codes.InvalidArgument, "out of order"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := client.Export(ctx, tt.req)
			if status.Code(err) != tt.code || !strings.Contains(err.Error(), tt.reason) {
				t.Fatalf("got %v, want %s containing %q", err, tt.code, tt.reason)
			}
		})
	}
	t.Run("a refused request stores nothing of itself", func(t *testing.T) {
		req := otlpDeltaRequest(now)
		g := req.Metrics().ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().AppendEmpty()
		g.SetName("refused.gauge")
		p := g.SetEmptyGauge().DataPoints().AppendEmpty()
		p.SetTimestamp(pcommon.NewTimestampFromTime(timestamp.Time(now)))
		p.SetDoubleValue(1)
		if _, err := client.Export(ctx, req); status.Code(err) != codes.InvalidArgument {
			t.Fatalf("got %v", err)
		}
		if got := e.query(t, "refused_gauge"); len(got) != 0 {
			t.Fatalf("the gauge of the refused request was stored: %v", got)
		}
	})
	t.Run("translation warnings come back as a partial success", func(t *testing.T) {
		req := otlpGaugeOnly(now + 2000)
		m := req.Metrics().ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().AppendEmpty()
		m.SetName("no.points")
		m.SetEmptyGauge()
		resp, err := client.Export(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		ps := resp.PartialSuccess()
		if ps.RejectedDataPoints() != 0 || !strings.Contains(ps.ErrorMessage(), "no.points") {
			t.Fatalf("partial success: rejected %d, message %q", ps.RejectedDataPoints(), ps.ErrorMessage())
		}
	})
}

// otlpGaugeOnly is a valid request with only the gauge, at ts.
func otlpGaugeOnly(ts int64) pmetricotlp.ExportRequest {
	req := otlpTestRequest(ts)
	ms := req.Metrics().ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics()
	ms.RemoveIf(func(m pmetric.Metric) bool { return m.Name() != "queue.depth" })
	return req
}

// otlpUntyped is a request whose metric has a name and no data type.
func otlpUntyped(ts int64) pmetricotlp.ExportRequest {
	req := otlpGaugeOnly(ts)
	req.Metrics().ResourceMetrics().At(0).ScopeMetrics().At(0).Metrics().AppendEmpty().SetName("untyped")
	return req
}

func TestOTLPGRPCOverload(t *testing.T) {
	var blocking *blockingAppendable
	wrap := withBlockingAppendable(&blocking)
	now := timestamp.FromTime(time.Now())
	e := newIngestEnv(t, ingestEnvOptions{wrap: wrap, cfg: MetricsConfig{MaxInflightRequests: 1, MaxInflightBytes: 4096, RetryAfter: 3 * time.Second}})
	client := otlpGRPCClient(t, e)
	first := make(chan error, 1)
	go func() {
		_, err := client.Export(context.Background(), otlpTestRequest(now))
		first <- err
	}()
	<-blocking.entered

	t.Run("over capacity is RESOURCE_EXHAUSTED with a retry delay", func(t *testing.T) {
		_, err := client.Export(context.Background(), otlpTestRequest(now))
		st := status.Convert(err)
		if st.Code() != codes.ResourceExhausted {
			t.Fatalf("got %v", err)
		}
		if d := otlpRetryDelay(st); d != 3*time.Second {
			t.Fatalf("retry delay %s, want 3s", d)
		}
	})
	t.Run("a request larger than the byte limit is RESOURCE_EXHAUSTED without retry", func(t *testing.T) {
		big := otlpTestRequest(now)
		big.Metrics().ResourceMetrics().At(0).Resource().Attributes().PutStr("padding", strings.Repeat("x", 8192))
		_, err := client.Export(context.Background(), big)
		st := status.Convert(err)
		if st.Code() != codes.ResourceExhausted || otlpRetryDelay(st) != 0 || !strings.Contains(st.Message(), "larger than") {
			t.Fatalf("got %v", err)
		}
	})
	close(blocking.release)
	if err := <-first; err != nil {
		t.Fatalf("held export: %v", err)
	}
}

func otlpRetryDelay(st *status.Status) time.Duration {
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			return ri.GetRetryDelay().AsDuration()
		}
	}
	return 0
}

// TestOTLPGRPCMatchesHTTP feeds the same request to Prometheus's OTLP/HTTP
// handler and to the gRPC receiver and compares every stored sample and
// exemplar: the gRPC path re-implements the handler's unexported glue and
// must not drift from it.
func TestOTLPGRPCMatchesHTTP(t *testing.T) {
	now := timestamp.FromTime(time.Now())
	req := otlpTestRequest(now)
	viaHTTP, viaGRPC := newIngestEnv(t, ingestEnvOptions{}), newIngestEnv(t, ingestEnvOptions{})
	if code, body := otlpPostHTTP(t, viaHTTP.srv.URL+"/v1/metrics", req); code != http.StatusOK {
		t.Fatalf("HTTP: %d %s", code, body)
	}
	if _, err := otlpGRPCClient(t, viaGRPC).Export(context.Background(), req); err != nil {
		t.Fatalf("gRPC: %v", err)
	}
	h, g := otlpDump(t, viaHTTP.db), otlpDump(t, viaGRPC.db)
	if len(h) < 5 {
		t.Fatalf("HTTP stored only %v", h)
	}
	if !slices.Equal(h, g) {
		t.Fatalf("HTTP stored:\n%s\ngRPC stored:\n%s", strings.Join(h, "\n"), strings.Join(g, "\n"))
	}
}

// otlpDump lists every sample and exemplar in db, sorted.
func otlpDump(t *testing.T, db *tsdb.DB) []string {
	t.Helper()
	ctx := context.Background()
	all := labels.MustNewMatcher(labels.MatchRegexp, "__name__", ".+")
	q, err := db.Querier(0, 1<<62)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	var out []string
	ss := q.Select(ctx, true, nil, all)
	for ss.Next() {
		it := ss.At().Iterator(nil)
		for it.Next() != 0 {
			ts, v := it.At()
			out = append(out, fmt.Sprintf("%s %d %g", ss.At().Labels(), ts, v))
		}
	}
	if err := errors.Join(ss.Err()); err != nil {
		t.Fatal(err)
	}
	eq, err := db.ExemplarQuerier(ctx)
	if err != nil {
		t.Fatal(err)
	}
	exs, err := eq.Select(0, 1<<62, []*labels.Matcher{all})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range exs {
		for _, x := range e.Exemplars {
			out = append(out, fmt.Sprintf("exemplar %s %s %d %g", e.SeriesLabels, x.Labels, x.Ts, x.Value))
		}
	}
	slices.Sort(out)
	return out
}
