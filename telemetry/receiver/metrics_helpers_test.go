package receiver

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/glassmesh/glassmesh/telemetry/metrics/metricstest"
)

// ingestEnv is the metrics receivers over a temp-dir TSDB, served by an
// httptest server as cmd mounts them (the Prometheus push paths, and the
// OTLP path of --otlp-http-addr), with Prometheus's engine to read back.
type ingestEnv struct {
	db   *tsdb.DB
	recv *MetricsReceiver
	eng  *promql.Engine
	srv  *httptest.Server
}

type ingestEnvOptions struct {
	cfg  MetricsConfig                                   // limits of the receivers
	wrap func(storage.AppendableV2) storage.AppendableV2 // wraps the TSDB's appender (overload tests)
}

func newIngestEnv(t *testing.T, o ingestEnvOptions) *ingestEnv {
	t.Helper()
	db := metricstest.OpenDB(t)
	var app storage.AppendableV2 = db
	if o.wrap != nil {
		app = o.wrap(app)
	}
	recv, err := NewMetricsReceiver(o.cfg, app, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	recv.Register(mux)
	mux.Handle("POST "+OTLPMetricsPath, recv.OTLPHandler())
	e := &ingestEnv{db: db, recv: recv, srv: httptest.NewServer(mux),
		eng: promql.NewEngine(promql.EngineOpts{MaxSamples: 1e6, Timeout: time.Minute})}
	t.Cleanup(e.srv.Close)
	return e
}

// query runs an instant PromQL query now and returns the vector's values
// by their labels' string form, formatted as Prometheus's API does.
func (e *ingestEnv) query(t *testing.T, q string) map[string]string {
	t.Helper()
	qry, err := e.eng.NewInstantQuery(context.Background(), e.db, nil, q, time.Now())
	if err != nil {
		t.Fatalf("query %q: %v", q, err)
	}
	defer qry.Close()
	res := qry.Exec(context.Background())
	vec, err := res.Vector()
	if err != nil {
		t.Fatalf("query %q: %v", q, err)
	}
	out := map[string]string{}
	for _, s := range vec {
		out[s.Metric.String()] = strconv.FormatFloat(s.F, 'f', -1, 64)
	}
	return out
}

// blockingAppendable holds every AppenderV2 call until released, so a
// test can keep requests in flight.
type blockingAppendable struct {
	storage.AppendableV2
	entered chan struct{}
	release chan struct{}
}

func (b *blockingAppendable) AppenderV2(ctx context.Context) storage.AppenderV2 {
	b.entered <- struct{}{}
	<-b.release
	return b.AppendableV2.AppenderV2(ctx)
}

// withBlockingAppendable is an ingestEnvOptions.wrap that puts a
// blockingAppendable in front of the TSDB's appender and hands it out.
func withBlockingAppendable(out **blockingAppendable) func(storage.AppendableV2) storage.AppendableV2 {
	return func(app storage.AppendableV2) storage.AppendableV2 {
		*out = &blockingAppendable{AppendableV2: app, entered: make(chan struct{}, 16), release: make(chan struct{})}
		return *out
	}
}

// postWith posts body to url with the given header name, value pairs and
// returns the response and its body, read.
func postWith(t *testing.T, url string, body []byte, headers ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}
