package metrics

import (
	"context"
	"log/slog"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"

	"github.com/glassmesh/glassmesh/telemetry/record"
)

// testEnv is a real TSDB in a temp dir, an Aggregator on it and a PromQL
// engine to check what it wrote.
type testEnv struct {
	st  *Storage
	agg *Aggregator
	eng *promql.Engine
	reg *prometheus.Registry
}

func newTestEnv(t testing.TB, dir string, cfg AggregatorConfig) *testEnv {
	return newTestEnvLogger(t, dir, cfg, nil)
}

func newTestEnvLogger(t testing.TB, dir string, cfg AggregatorConfig, logger *slog.Logger) *testEnv {
	t.Helper()
	st, err := OpenStorage(StorageConfig{DataDir: dir}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	reg := prometheus.NewRegistry()
	agg, err := NewAggregator(cfg, st, logger, reg)
	if err != nil {
		t.Fatal(err)
	}
	return &testEnv{st: st, agg: agg, eng: newTestEngine(), reg: reg}
}

func newTestEngine() *promql.Engine {
	return promql.NewEngine(promql.EngineOpts{MaxSamples: 1e7, Timeout: time.Minute, LookbackDelta: 5 * time.Minute})
}

// query evaluates an instant PromQL query.
func (e *testEnv) query(t testing.TB, q string, at time.Time) promql.Vector {
	t.Helper()
	qry, err := e.eng.NewInstantQuery(context.Background(), e.st.Queryable(), nil, q, at)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer qry.Close()
	res := qry.Exec(context.Background())
	if res.Err != nil {
		t.Fatalf("%s: %v", q, res.Err)
	}
	switch v := res.Value.(type) {
	case promql.Vector:
		return v
	case promql.Scalar:
		return promql.Vector{{F: v.V}}
	}
	t.Fatalf("%s: unexpected result type %s", q, res.Value.Type())
	return nil
}

// value evaluates a query that must return exactly one sample.
func (e *testEnv) value(t testing.TB, q string, at time.Time) float64 {
	t.Helper()
	v := e.query(t, q, at)
	if len(v) != 1 {
		t.Fatalf("%s returned %d samples, want 1: %v", q, len(v), v)
	}
	return v[0].F
}

func consume(t testing.TB, agg *Aggregator, reqs ...record.Request) {
	t.Helper()
	if err := agg.ConsumeRequests(context.Background(), reqs); err != nil {
		t.Fatal(err)
	}
}

// httpReq is a fully labelled gRPC request from productpage to reviews.
func httpReq(reporter string, code int, d time.Duration) record.Request {
	return record.Request{
		Reporter: reporter,
		Source: record.Peer{Workload: "productpage-v1", Namespace: "bookinfo", App: "productpage", Version: "v1",
			Principal: "spiffe://cluster.local/ns/bookinfo/sa/productpage", CanonicalService: "productpage",
			CanonicalRevision: "v1", Cluster: "east"},
		Dest: record.Peer{Workload: "reviews-v2", Namespace: "bookinfo", App: "reviews", Version: "v2",
			Principal: "spiffe://cluster.local/ns/bookinfo/sa/reviews", CanonicalService: "reviews",
			CanonicalRevision: "v2", Cluster: "west"},
		DestinationService:          "reviews.bookinfo.svc.cluster.local",
		DestinationServiceName:      "reviews",
		DestinationServiceNamespace: "bookinfo",
		Protocol:                    record.ProtocolGRPC,
		ResponseCode:                code,
		GRPCStatus:                  "0",
		ResponseFlags:               "-",
		ConnectionSecurityPolicy:    "mutual_tls",
		Duration:                    d,
		RequestBytes:                120,
		ResponseBytes:               2048,
	}
}

// tcpReq is a TCP report from productpage to a database.
func tcpReq(sent, received uint64, opened, closed bool) record.Request {
	r := httpReq(record.ReporterSource, 0, 0)
	r.Protocol, r.GRPCStatus, r.ResponseFlags = record.ProtocolTCP, "", "UF"
	r.TCPSentBytes, r.TCPReceivedBytes, r.TCPOpened, r.TCPClosed = sent, received, opened, closed
	return r
}

func with(r record.Request, f func(*record.Request)) record.Request {
	f(&r)
	return r
}

func TestAggregatorConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  AggregatorConfig
		want string
	}{
		{"zero takes the defaults", AggregatorConfig{}, ""},
		{"negative interval names its key", AggregatorConfig{Interval: -time.Second}, "metrics.interval: must be > 0"},
		{"negative limit names its key", AggregatorConfig{MaxSeriesPerMetric: -1}, "metrics.max-series-per-metric: must be > 0"},
		{"negative lookback names its key", AggregatorConfig{RestoreLookback: -1}, "metrics.restore-lookback"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if (tt.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.want)) {
				t.Fatalf("Validate() = %v, want %q", err, tt.want)
			}
		})
	}
}

// writeCase is requests in, and PromQL queries with the single value each
// must return after one flush.
type writeCase struct {
	name   string
	reqs   []record.Request
	checks map[string]float64
}

func writeCases() []writeCase {
	src, dst := record.ReporterSource, record.ReporterDestination
	return []writeCase{
		{
			name: "requests of two reporters are counted apart",
			reqs: []record.Request{
				httpReq(src, 200, 3*time.Millisecond), httpReq(src, 200, 3*time.Millisecond),
				httpReq(src, 200, 3*time.Millisecond), httpReq(dst, 200, 2*time.Millisecond),
				httpReq(dst, 200, 2*time.Millisecond),
			},
			checks: map[string]float64{
				`sum(istio_requests_total)`:                                            5,
				`sum(istio_requests_total{reporter="source"})`:                         3,
				`sum(istio_requests_total{reporter="destination"})`:                    2,
				`count(istio_requests_total)`:                                          2,
				`sum(istio_request_duration_milliseconds_count)`:                       5,
				`sum(istio_request_duration_milliseconds_sum)`:                         13,
				`sum(istio_request_bytes_sum)`:                                         600,
				`sum(istio_response_bytes_sum{reporter="destination"})`:                4096,
				`sum(istio_request_duration_milliseconds_bucket{le="1.0"})`:            0,
				`sum(istio_request_duration_milliseconds_bucket{le="5.0"})`:            5,
				`sum(istio_request_duration_milliseconds_bucket{le="+Inf"})`:           5,
				`sum(istio_response_bytes_bucket{le="1000.0"})`:                        0,
				`sum(istio_response_bytes_bucket{le="2500.0"})`:                        5,
				`count(istio_request_duration_milliseconds_bucket{reporter="source"})`: float64(numBuckets),
			},
		},
		{
			name: "response codes and gRPC statuses split label sets",
			reqs: []record.Request{
				httpReq(src, 200, time.Millisecond),
				with(httpReq(src, 200, time.Millisecond), func(r *record.Request) { r.GRPCStatus = "14"; r.ResponseFlags = "UH" }),
				with(httpReq(src, 503, time.Millisecond), func(r *record.Request) { r.Protocol, r.GRPCStatus = record.ProtocolHTTP, "" }),
			},
			checks: map[string]float64{
				`count(istio_requests_total)`: 3,
				`sum(istio_requests_total{grpc_response_status="14",response_flags="UH"})`: 1,
				`sum(istio_requests_total{response_code="503",request_protocol="http"})`:   1,
				`count(istio_requests_total{grpc_response_status=""})`:                     1,
			},
		},
		{
			name: "histogram_quantile lands in the right bucket",
			reqs: []record.Request{
				httpReq(src, 200, 30*time.Millisecond), httpReq(src, 200, 40*time.Millisecond),
				httpReq(src, 200, 45*time.Millisecond), httpReq(src, 200, 2*time.Second),
			},
			checks: map[string]float64{
				// 3 of 4 in (25, 50]: the median interpolates to 25 + 25*(2/3).
				`histogram_quantile(0.5, sum by (le) (istio_request_duration_milliseconds_bucket))`: 25 + 25*2.0/3,
				`sum(istio_request_duration_milliseconds_bucket{le="2500.0"})`:                      4,
				`sum(istio_request_duration_milliseconds_bucket{le="1000.0"})`:                      3,
			},
		},
		{
			name: "TCP reports feed the four TCP counters",
			reqs: []record.Request{tcpReq(100, 10, true, false), tcpReq(50, 5, false, false), tcpReq(1, 2, false, true)},
			checks: map[string]float64{
				`sum(istio_tcp_sent_bytes_total)`:                                          151,
				`sum(istio_tcp_received_bytes_total)`:                                      17,
				`sum(istio_tcp_connections_opened_total{request_protocol="tcp"})`:          1,
				`sum(istio_tcp_connections_closed_total{response_flags="UF"})`:             1,
				`count(istio_tcp_sent_bytes_total{response_code!=""})`:                     0,
				`count(istio_tcp_sent_bytes_total{grpc_response_status!=""}) or vector(0)`: 0,
				`count(istio_requests_total) or vector(0)`:                                 0,
			},
		},
	}
}

func TestAggregatorWritesIstioMetrics(t *testing.T) {
	for _, tt := range writeCases() {
		t.Run(tt.name, func(t *testing.T) {
			e := newTestEnv(t, t.TempDir(), AggregatorConfig{})
			consume(t, e.agg, tt.reqs...)
			at := time.Now()
			if err := e.agg.flushAt(context.Background(), at); err != nil {
				t.Fatal(err)
			}
			for q, want := range tt.checks {
				v := e.query(t, q, at)
				got := 0.0
				if len(v) > 1 {
					t.Errorf("%s returned %d samples, want 1", q, len(v))
					continue
				}
				if len(v) == 1 {
					got = v[0].F
				}
				if math.Abs(got-want) > 1e-9 {
					t.Errorf("%s = %v, want %v", q, got, want)
				}
			}
		})
	}
}

func TestAggregatorLabelsAreIstios(t *testing.T) {
	istio := map[string]string{
		"reporter": "destination", "source_workload": "productpage-v1", "source_workload_namespace": "bookinfo",
		"source_app": "productpage", "source_version": "v1",
		"source_principal":         "spiffe://cluster.local/ns/bookinfo/sa/productpage",
		"source_canonical_service": "productpage", "source_canonical_revision": "v1", "source_cluster": "east",
		"destination_service": "reviews.bookinfo.svc.cluster.local", "destination_service_name": "reviews",
		"destination_service_namespace": "bookinfo", "destination_workload": "reviews-v2",
		"destination_workload_namespace": "bookinfo", "destination_app": "reviews", "destination_version": "v2",
		"destination_principal":         "spiffe://cluster.local/ns/bookinfo/sa/reviews",
		"destination_canonical_service": "reviews", "destination_canonical_revision": "v2",
		"destination_cluster": "west", "request_protocol": "grpc", "response_code": "200",
		"grpc_response_status": "0", "response_flags": "-", "connection_security_policy": "mutual_tls",
	}
	tcp := map[string]string{}
	for k, v := range istio {
		tcp[k] = v
	}
	tcp["reporter"], tcp["request_protocol"], tcp["response_flags"] = "source", "tcp", "UF"
	delete(tcp, "response_code")
	delete(tcp, "grpc_response_status")
	unknown := map[string]string{"__name__": MetricRequestsTotal, "response_code": "0", "response_flags": "-"}
	for _, n := range labelNames {
		if _, ok := unknown[n]; !ok && n != "grpc_response_status" {
			unknown[n] = record.Unknown
		}
	}
	tests := []struct {
		name  string
		req   record.Request
		query string
		want  map[string]string
	}{
		{"an HTTP series carries all 25 Istio labels", httpReq(record.ReporterDestination, 200, time.Millisecond), MetricRequestsTotal, withName(istio, MetricRequestsTotal)},
		{"a bucket series adds le", httpReq(record.ReporterDestination, 200, time.Millisecond), MetricRequestDuration + `_bucket{le="1.0"}`, withName(istio, MetricRequestDuration+"_bucket", "le", "1.0")},
		{"a TCP series has no response_code or grpc_response_status", tcpReq(1, 1, true, false), MetricTCPConnectionsOpened, withName(tcp, MetricTCPConnectionsOpened)},
		{"empty labels become unknown, absent flags become -", record.Request{}, MetricRequestsTotal, unknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newTestEnv(t, t.TempDir(), AggregatorConfig{})
			consume(t, e.agg, tt.req)
			at := time.Now()
			if err := e.agg.flushAt(context.Background(), at); err != nil {
				t.Fatal(err)
			}
			// last_over_time keeps __name__ on the result.
			v := e.query(t, `last_over_time(`+tt.query+`[1m])`, at)
			if len(v) != 1 {
				t.Fatalf("%s: %d series, want 1", tt.query, len(v))
			}
			got := v[0].Metric.Map()
			if got["__name__"] == "" { // PromQL drops it from function results
				got["__name__"] = tt.want["__name__"]
			}
			if want := labels.FromMap(tt.want); !labels.Equal(labels.FromMap(got), want) {
				t.Errorf("labels\n got %s\nwant %s", labels.FromMap(got), want)
			}
		})
	}
}

func withName(m map[string]string, name string, kv ...string) map[string]string {
	out := map[string]string{"__name__": name}
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

func TestAggregatorCountsFirstRequests(t *testing.T) {
	e := newTestEnv(t, t.TempDir(), AggregatorConfig{Interval: time.Second})
	const n = 42
	reqs := make([]record.Request, n)
	for i := range reqs {
		reqs[i] = httpReq(record.ReporterSource, 200, 7*time.Millisecond)
	}
	consume(t, e.agg, reqs...)
	at := time.Now()
	if err := e.agg.flushAt(context.Background(), at); err != nil {
		t.Fatal(err)
	}
	for q, want := range map[string]float64{
		`sum(increase(istio_requests_total[1m]))`:                                  n,
		`sum(increase(istio_request_duration_milliseconds_count[1m]))`:             n,
		`sum(increase(istio_request_duration_milliseconds_bucket{le="10.0"}[1m]))`: n,
		`sum(increase(istio_request_duration_milliseconds_bucket{le="5.0"}[1m]))`:  0,
		`sum(rate(istio_requests_total[1m]))`:                                      n / 60.0,
	} {
		if got := e.value(t, q, at); math.Abs(got-want) > 1e-9 {
			t.Errorf("%s = %v, want %v", q, got, want)
		}
	}
	// The zero sample sits one interval before the first value.
	if got := e.value(t, `count_over_time(istio_requests_total[1m])`, at); got != 2 {
		t.Errorf("samples after the first flush = %v, want 2 (zero + first)", got)
	}
	if got := e.value(t, `min_over_time(istio_requests_total[1m])`, at); got != 0 {
		t.Errorf("oldest sample = %v, want the zero sample", got)
	}
	// A second flush adds no zero sample: the series is not new any more.
	consume(t, e.agg, reqs[0])
	at2 := at.Add(time.Second)
	if err := e.agg.flushAt(context.Background(), at2); err != nil {
		t.Fatal(err)
	}
	if got := e.value(t, `count_over_time(istio_requests_total[1m])`, at2); got != 3 {
		t.Errorf("samples after the second flush = %v, want 3", got)
	}
}

func TestAggregatorExemplars(t *testing.T) {
	e := newTestEnv(t, t.TempDir(), AggregatorConfig{})
	now := time.Now()
	traced := func(id string, d time.Duration, at time.Time) record.Request {
		return with(httpReq(record.ReporterSource, 200, d), func(r *record.Request) { r.TraceID, r.Time = id, at })
	}
	consume(t, e.agg,
		traced("4bf92f3577b34da6a3ce929d0e0e4736", 7*time.Millisecond, now.Add(-2*time.Second)),
		traced("00f067aa0ba902b7a3ce929d0e0e4736", 8*time.Millisecond, now.Add(-time.Second)), // newer, same bucket
		traced("a3ce929d0e0e47364bf92f3577b34da6", 700*time.Millisecond, now.Add(-3*time.Second)),
		httpReq(record.ReporterSource, 200, 9*time.Millisecond), // untraced
	)
	if err := e.agg.flushAt(context.Background(), now); err != nil {
		t.Fatal(err)
	}
	eq, err := e.st.ExemplarQueryable().ExemplarQuerier(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	res, err := eq.Select(now.Add(-time.Minute).UnixMilli(), now.UnixMilli(),
		[]*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "__name__", MetricRequestDuration+"_bucket")})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{} // le -> trace id
	for _, r := range res {
		for _, ex := range r.Exemplars {
			got[r.SeriesLabels.Get("le")] += ex.Labels.Get("trace_id")
			if r.SeriesLabels.Get("le") == "10.0" && (ex.Value != 8 || ex.Ts != now.Add(-time.Second).UnixMilli()) {
				t.Errorf("exemplar of le=10.0 = %v@%d, want 8ms at the request's time", ex.Value, ex.Ts)
			}
		}
	}
	want := map[string]string{"10.0": "00f067aa0ba902b7a3ce929d0e0e4736", "1000.0": "a3ce929d0e0e47364bf92f3577b34da6"}
	if len(got) != len(want) || got["10.0"] != want["10.0"] || got["1000.0"] != want["1000.0"] {
		t.Errorf("exemplars by bucket = %v, want %v", got, want)
	}
}
