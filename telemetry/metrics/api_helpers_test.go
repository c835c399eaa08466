package metrics

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
)

// apiEnv is a glassmesh metrics API over a temp-dir TSDB, served by an
// httptest server: the real handlers, the real engine, the real storage.
type apiEnv struct {
	db     *tsdb.DB
	engine *Engine
	api    *API
	rules  *Rules
	reg    *prometheus.Registry
	srv    *httptest.Server
}

type apiEnvOptions struct {
	rules   *RulesConfig          // nil: no rules manager
	backend func(Backend) Backend // wraps the backend (overload tests)
	ready   func() bool
}

func apiTestLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func apiOpenDB(t *testing.T) *tsdb.DB {
	t.Helper()
	opts := tsdb.DefaultOptions()
	opts.EnableExemplarStorage = true
	opts.MaxExemplars = 1000
	db, err := tsdb.Open(t.TempDir(), slog.New(slog.DiscardHandler), nil, opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func newAPIEnv(t *testing.T, o apiEnvOptions) *apiEnv {
	t.Helper()
	logger := apiTestLogger(t)
	e := &apiEnv{db: apiOpenDB(t), reg: prometheus.NewRegistry()}
	b := BackendFromDB(e.db)
	if o.backend != nil {
		b = o.backend(b)
	}
	var err error
	e.engine, err = NewEngine(EngineConfig{Dir: t.TempDir()}, logger, e.reg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.engine.Close() })
	if o.rules != nil {
		e.rules, err = NewRules(*o.rules, b, e.engine, logger, e.reg)
		if err != nil {
			t.Fatal(err)
		}
		apiRun(t, e.rules.Run)
	}
	e.api, err = NewAPI(APIConfig{Version: "0.1.0-test", Revision: "abc", Ready: o.ready}, b, e.engine, e.rules, logger, e.reg)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	e.api.Register(mux)
	e.srv = httptest.NewServer(mux)
	t.Cleanup(e.srv.Close)
	return e
}

// apiRun runs fn until the test ends, and waits for it.
func apiRun(t *testing.T, fn func(context.Context) error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fn(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
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

// eventually polls cond until it holds or the deadline passes.
func apiEventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// apiSample is one float sample, optionally with an exemplar.
type apiSample struct {
	lbls     labels.Labels
	t        int64
	v        float64
	exemplar *exemplar.Exemplar
}

func apiAppend(t *testing.T, app storage.AppendableV2, samples ...apiSample) {
	t.Helper()
	a := app.AppenderV2(context.Background())
	for _, s := range samples {
		opts := storage.AOptions{}
		if s.exemplar != nil {
			opts.Exemplars = []exemplar.Exemplar{*s.exemplar}
		}
		if _, err := a.Append(0, s.lbls, 0, s.t, s.v, nil, nil, opts); err != nil {
			t.Fatalf("append %s: %v", s.lbls, err)
		}
	}
	if err := a.Commit(); err != nil {
		t.Fatal(err)
	}
}
