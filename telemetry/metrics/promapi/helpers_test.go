package promapi

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/glassmesh/glassmesh/telemetry/metrics"
	"github.com/glassmesh/glassmesh/telemetry/metrics/metricstest"
	"github.com/glassmesh/glassmesh/telemetry/metrics/ruler"
)

// apiEnv is a glassmesh metrics API over a temp-dir TSDB, served by an
// httptest server: the real handlers, the real engine, the real storage.
type apiEnv struct {
	db     *tsdb.DB
	engine *metrics.Engine
	api    *API
	rules  *ruler.Ruler
	reg    *prometheus.Registry
	srv    *httptest.Server
}

type apiEnvOptions struct {
	rules   *ruler.Config                         // nil: no rules manager
	backend func(metrics.Backend) metrics.Backend // wraps the backend (overload tests)
	ready   func() bool
	store   string // Config.Store
}

func newAPIEnv(t *testing.T, o apiEnvOptions) *apiEnv {
	t.Helper()
	logger := metricstest.Logger(t)
	e := &apiEnv{db: metricstest.OpenDB(t), reg: prometheus.NewRegistry()}
	b := metrics.BackendFromDB(e.db)
	if o.backend != nil {
		b = o.backend(b)
	}
	var err error
	e.engine, err = metrics.NewEngine(metrics.EngineConfig{Dir: t.TempDir()}, logger, e.reg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.engine.Close() })
	if o.rules != nil {
		e.rules, err = ruler.New(*o.rules, b, e.engine, logger, e.reg)
		if err != nil {
			t.Fatal(err)
		}
		metricstest.Run(t, e.rules.Run)
	}
	e.api, err = New(Config{Version: "0.1.0-test", Revision: "abc", Ready: o.ready, Store: o.store}, b, e.engine, e.rules, logger, e.reg)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	e.api.Register(mux)
	e.srv = httptest.NewServer(mux)
	t.Cleanup(e.srv.Close)
	return e
}

// get fetches path and returns the status code and body.
func (e *apiEnv) get(t *testing.T, path string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(e.srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, body
}

// apiResponse is Prometheus's response envelope.
type apiResponse struct {
	Status    string          `json:"status"`
	Data      json.RawMessage `json:"data"`
	ErrorType string          `json:"errorType"`
	Error     string          `json:"error"`
}

// query runs an instant PromQL query now and returns the vector's values
// by their labels' string form.
func (e *apiEnv) query(t *testing.T, q string) map[string]string {
	t.Helper()
	code, body := e.get(t, "/api/v1/query?query="+url.QueryEscape(q))
	if code != http.StatusOK {
		t.Fatalf("query %q: %d %s", q, code, body)
	}
	var r apiResponse
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatal(err)
	}
	var data struct {
		Result []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		} `json:"result"`
	}
	if err := json.Unmarshal(r.Data, &data); err != nil {
		t.Fatalf("query %q: %v in %s", q, err, body)
	}
	out := map[string]string{}
	for _, s := range data.Result {
		out[labels.FromMap(s.Metric).String()] = s.Value[1].(string)
	}
	return out
}
