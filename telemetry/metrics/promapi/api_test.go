package promapi

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/timestamp"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/glassmesh/glassmesh/telemetry/metrics"
	"github.com/glassmesh/glassmesh/telemetry/metrics/metricstest"
)

var updateAPIGolden = flag.Bool("update-api", false, "rewrite the golden files under testdata/api")

// apiT0 is the fixed time (ms) the API fixtures start at, so answers are
// byte-stable.
const apiT0 = int64(1_700_000_000_000)

// apiFixture writes five minutes of known samples, every 15s: two "up"
// series, a counter growing by 10 per step, and one histogram bucket with
// an exemplar carrying a trace id.
func apiFixture(t *testing.T, e *apiEnv) {
	t.Helper()
	var ss []metricstest.Sample
	for i := int64(0); i <= 20; i++ {
		ts := apiT0 + i*15_000
		ss = append(ss,
			metricstest.Sample{Labels: labels.FromStrings("__name__", "up", "job", "api", "instance", "a:9090"), T: ts, V: 1},
			metricstest.Sample{Labels: labels.FromStrings("__name__", "up", "job", "api", "instance", "b:9090"), T: ts, V: 0},
			metricstest.Sample{Labels: labels.FromStrings("__name__", "http_requests_total", "job", "api", "code", "200"), T: ts, V: float64(10 * i)},
		)
	}
	ss = append(ss, metricstest.Sample{
		Labels: labels.FromStrings("__name__", "http_request_duration_seconds_bucket", "job", "api", "le", "0.5"),
		T:      apiT0 + 60_000, V: 7,
		Exemplar: &exemplar.Exemplar{
			Labels: labels.FromStrings("trace_id", "4bf92f3577b34da6a3ce929d0e0e4736"),
			Value:  0.3, Ts: apiT0 + 60_000, HasTs: true,
		},
	})
	metricstest.Append(t, e.db, ss...)
}

func apiSeconds(ms int64) string { return fmt.Sprintf("%d", ms/1000) }

func TestAPIAnswersLikePrometheus(t *testing.T) {
	e := newAPIEnv(t, apiEnvOptions{})
	apiFixture(t, e)
	at := apiSeconds(apiT0 + 60_000)
	tests := []struct {
		name, path, golden string
	}{
		{"an instant query sums the up series", "/api/v1/query?query=sum(up)&time=" + at, "query_sum_up.json"},
		{"an instant query returns every label", "/api/v1/query?query=up&time=" + at, "query_up.json"},
		{"a range query computes rates per step", "/api/v1/query_range?query=" + url.QueryEscape("rate(http_requests_total[1m])") +
			"&start=" + at + "&end=" + apiSeconds(apiT0+120_000) + "&step=30", "query_range_rate.json"},
		{"series lists both up series", "/api/v1/series?match[]=up&start=" + apiSeconds(apiT0) + "&end=" + at, "series_up.json"},
		{"labels lists every label name", "/api/v1/labels", "labels.json"},
		{"label values lists the jobs", "/api/v1/label/job/values", "label_job_values.json"},
		{"exemplars carry the trace id", "/api/v1/query_exemplars?query=http_request_duration_seconds_bucket&start=" +
			apiSeconds(apiT0) + "&end=" + apiSeconds(apiT0+300_000), "query_exemplars.json"},
		{"metadata is empty without scrape targets", "/api/v1/metadata", "metadata.json"},
		{"rules are empty without a rules manager", "/api/v1/rules", "rules_empty.json"},
		{"alerts are empty without a rules manager", "/api/v1/alerts", "alerts_empty.json"},
		{"targets are empty: glassmesh does not scrape", "/api/v1/targets", "targets.json"},
		{"a POSTed form query works like GET", "", "query_sum_up.json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var code int
			var body []byte
			if tt.path == "" {
				resp, err := http.PostForm(e.srv.URL+"/api/v1/query", url.Values{"query": {"sum(up)"}, "time": {at}})
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				code = resp.StatusCode
				var buf bytes.Buffer
				_, _ = buf.ReadFrom(resp.Body)
				body = buf.Bytes()
			} else {
				code, body = e.get(t, tt.path)
			}
			if code != http.StatusOK {
				t.Fatalf("status %d: %s", code, body)
			}
			apiGolden(t, tt.golden, body)
		})
	}
}

func apiGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "api", name)
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, got, "", "  "); err != nil {
		t.Fatalf("answer is not JSON: %v: %s", err, got)
	}
	pretty.WriteByte('\n')
	if *updateAPIGolden {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, pretty.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update-api to create it)", err)
	}
	if !bytes.Equal(want, pretty.Bytes()) {
		t.Errorf("answer differs from %s:\ngot:\n%s\nwant:\n%s", path, pretty.Bytes(), want)
	}
}

func TestAPIErrorsLikePrometheus(t *testing.T) {
	e := newAPIEnv(t, apiEnvOptions{})
	apiFixture(t, e)
	at := apiSeconds(apiT0 + 60_000)
	parseErr := func(q string) string {
		_, err := parser.NewParser(parser.Options{}).ParseExpr(q)
		if err == nil {
			t.Fatalf("%q parses", q)
		}
		return err.Error()
	}
	tests := []struct {
		name     string
		path     string
		code     int
		errType  string
		contains string
	}{
		{"bad PromQL is bad_data with the parser's message", "/api/v1/query?query=" + url.QueryEscape("sum(up"),
			http.StatusBadRequest, "bad_data", `invalid parameter "query": ` + parseErr("sum(up")},
		{"an unknown function is bad_data", "/api/v1/query?query=" + url.QueryEscape("nosuchfn(up)"),
			http.StatusBadRequest, "bad_data", parseErr("nosuchfn(up)")},
		{"a missing query is bad_data", "/api/v1/query_range?start=1&end=2&step=1",
			http.StatusBadRequest, "bad_data", `invalid parameter "query"`},
		{"end before start is bad_data", "/api/v1/query_range?query=up&start=10&end=1&step=1",
			http.StatusBadRequest, "bad_data", "end timestamp must not be before start time"},
		{"a zero step is bad_data", "/api/v1/query_range?query=up&start=1&end=10&step=0",
			http.StatusBadRequest, "bad_data", "zero or negative query resolution step widths are not accepted"},
		{"many-to-many matching is an execution error (422)", "/api/v1/query?time=" + at + "&query=" + url.QueryEscape("up * on(job) up"),
			http.StatusUnprocessableEntity, "execution", "many-to-many matching not allowed"},
		{"a bad series matcher is bad_data", "/api/v1/series?match[]=" + url.QueryEscape("{job="),
			http.StatusBadRequest, "bad_data", "parse error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := e.get(t, tt.path)
			var r apiResponse
			if err := json.Unmarshal(body, &r); err != nil {
				t.Fatalf("%v: %s", err, body)
			}
			if code != tt.code || r.Status != "error" || r.ErrorType != tt.errType || !strings.Contains(r.Error, tt.contains) {
				t.Fatalf("got %d %s/%s %q, want %d error/%s containing %q", code, r.Status, r.ErrorType, r.Error, tt.code, tt.errType, tt.contains)
			}
		})
	}
}

func TestEngineQueryFuncForInProcessReaders(t *testing.T) {
	e := newAPIEnv(t, apiEnvOptions{})
	apiFixture(t, e)
	at := timestamp.Time(apiT0 + 60_000)
	query := e.engine.QueryFunc(e.db)
	tests := []struct {
		name, expr string
		want       float64
	}{
		{"a vector query returns its sample", "sum(up)", 1},
		{"a scalar becomes a one-sample vector", "scalar(sum(http_requests_total))", 40},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := query(context.Background(), tt.expr, at)
			if err != nil {
				t.Fatal(err)
			}
			if len(v) != 1 || v[0].F != tt.want {
				t.Fatalf("%s = %v, want one sample %g", tt.expr, v, tt.want)
			}
		})
	}
	t.Run("a parse error is returned", func(t *testing.T) {
		_, err := query(context.Background(), "sum(", at)
		metricstest.CheckErr(t, err, "unclosed left parenthesis")
	})
}

func TestAPIBuildInfoNamesOurVersion(t *testing.T) {
	e := newAPIEnv(t, apiEnvOptions{})
	code, body := e.get(t, "/api/v1/status/buildinfo")
	if code != http.StatusOK {
		t.Fatalf("%d %s", code, body)
	}
	var r struct {
		Data map[string]string `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatal(err)
	}
	if r.Data["version"] != "0.1.0-test" || r.Data["revision"] != "abc" || r.Data["goVersion"] != runtime.Version() {
		t.Fatalf("buildinfo = %v", r.Data)
	}
}

func TestAPIServesStatusEndpoints(t *testing.T) {
	e := newAPIEnv(t, apiEnvOptions{})
	apiFixture(t, e)
	for _, path := range []string{
		"/api/v1/status/tsdb", "/api/v1/status/runtimeinfo", "/api/v1/status/flags",
		"/api/v1/status/config", "/api/v1/alertmanagers", "/api/v1/format_query?query=sum(up)",
	} {
		t.Run(path+" answers 200", func(t *testing.T) {
			if code, body := e.get(t, path); code != http.StatusOK {
				t.Fatalf("%d %s", code, body)
			}
		})
	}
	t.Run("admin endpoints are refused as Prometheus does when disabled", func(t *testing.T) {
		resp, err := http.Post(e.srv.URL+"/api/v1/admin/tsdb/snapshot", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var r apiResponse
		if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
			t.Fatal(err)
		}
		// Prometheus maps "unavailable" to 500, not 503.
		if resp.StatusCode != http.StatusInternalServerError || r.ErrorType != "unavailable" || r.Error != "admin APIs disabled" {
			t.Fatalf("got %d %s %q", resp.StatusCode, r.ErrorType, r.Error)
		}
	})
}

func TestAPIAnswers503UntilReady(t *testing.T) {
	var ready atomic.Bool
	e := newAPIEnv(t, apiEnvOptions{ready: ready.Load})
	if code, body := e.get(t, "/api/v1/query?query=1"); code != http.StatusServiceUnavailable || string(body) != "Service Unavailable" {
		t.Fatalf("before ready: %d %q", code, body)
	}
	ready.Store(true)
	if code, body := e.get(t, "/api/v1/query?query=1"); code != http.StatusOK {
		t.Fatalf("when ready: %d %s", code, body)
	}
}

func TestAPIConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"an empty config is valid", Config{}, ""},
		{"an absolute external URL is valid", Config{ExternalURL: "https://mesh.example.com/glassmesh"}, ""},
		{"a relative external URL is named", Config{ExternalURL: "/glassmesh"}, "api.external-url"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			metricstest.CheckErr(t, tt.cfg.Validate(), tt.want)
		})
	}
}

func TestEngineConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  metrics.EngineConfig
		want string
	}{
		{"a dir is enough", metrics.EngineConfig{Dir: "d"}, ""},
		{"the dir is required", metrics.EngineConfig{}, "query.dir: must be set"},
		{"a negative timeout is named", metrics.EngineConfig{Dir: "d", Timeout: -1}, "query.timeout"},
		{"negative concurrency is named", metrics.EngineConfig{Dir: "d", MaxConcurrent: -1}, "query.max-concurrency"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			metricstest.CheckErr(t, tt.cfg.Validate(), tt.want)
		})
	}
}

// While the TSDB replays its WAL every endpoint answers 503 with
// Retry-After and the replay's state in Prometheus's error shape; once
// it is open, the same API answers from it.
func TestAPIOverAnOpeningStorageAnswers503UntilOpen(t *testing.T) {
	logger := metricstest.Logger(t)
	o, err := metrics.NewOpening(metrics.StorageConfig{DataDir: t.TempDir()}, logger, nil)
	if err != nil {
		t.Fatal(err)
	}
	eng, err := metrics.NewEngine(metrics.EngineConfig{Dir: t.TempDir()}, logger, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = eng.Close() })
	api, err := New(Config{NotReady: o.Err}, o.Backend(), eng, nil, logger, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	api.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	get := func() (*http.Response, string) {
		resp, err := http.Get(srv.URL + "/api/v1/query?query=vector(1)")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	resp, body := get()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "5" ||
		!strings.Contains(body, `"errorType":"unavailable"`) || !strings.Contains(body, "metrics storage is opening") {
		t.Fatalf("before open: %d, Retry-After %q, %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	st, err := o.Open()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	o.Set(st)
	if resp, body := get(); resp.StatusCode != http.StatusOK {
		t.Fatalf("once open: %d %s", resp.StatusCode, body)
	}
}
