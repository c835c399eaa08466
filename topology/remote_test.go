package topology

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/rules"

	"github.com/glassmesh/glassmesh/telemetry/metrics"
	"github.com/glassmesh/glassmesh/telemetry/metrics/promapi/promapitest"
)

// metricsAPIFixture writes the fixture through the metrics Aggregator into
// a temp-dir TSDB and serves glassmesh's Prometheus HTTP API over it. It
// returns the in-process query function, the API's URL and the flush time.
func metricsAPIFixture(t *testing.T) (rules.QueryFunc, string, time.Time) {
	t.Helper()
	st := fixtureStorage(t)
	logger := slog.New(slog.DiscardHandler)
	eng, err := metrics.NewEngine(metrics.EngineConfig{Dir: t.TempDir()}, logger, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = eng.Close() })
	srv := promapitest.Serve(t, st.Backend(), eng)
	local := rules.EngineQueryFunc(eng.PromQL(), st.Queryable())
	return local, srv.URL, flushTime(t, local)
}

func TestRemoteQueryDrawsTheGraphTheEngineDraws(t *testing.T) {
	local, url, at := metricsAPIFixture(t)
	remote, err := metrics.NewRemoteQuery(metrics.RemoteQueryConfig{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	for _, query := range []string{"graphType=workload", "graphType=versionedApp&boxBy=app&responseTime=99",
		"graphType=service", "graphType=app&rateTcp=total&namespaces=bookinfo", "injectServiceNodes=true&appenders=health,securityPolicy"} {
		t.Run(query, func(t *testing.T) {
			o := mustOptions(t, query)
			o.QueryTime = at
			var bodies [2][]byte
			for i, q := range []rules.QueryFunc{local, remote.Query} {
				g, err := New(Config{PreferQuerier: true}, q, fixtureSpans(), nil, nil)
				if err != nil {
					t.Fatal(err)
				}
				if bodies[i], err = g.buildFrom(context.Background(), o, pathAuto); err != nil {
					t.Fatal(err)
				}
			}
			if !bytes.Equal(bodies[0], bodies[1]) {
				t.Errorf("remote graph differs:\n got %s\nwant %s", bodies[1], bodies[0])
			}
			if !bytes.Contains(bodies[1], []byte(`"edges":[{`)) {
				t.Errorf("no edges: %s", bodies[1])
			}
		})
	}
	o := mustOptions(t, "graphType=workload")
	o.QueryTime = at
	_, _, nodes, edges := summary(buildGraph(t, mustGraph(t, remote.Query), o, pathPromQL))
	checkFixtureTraffic(t, nodes, edges)
}

func mustGraph(t *testing.T, q rules.QueryFunc) *Graph {
	t.Helper()
	g, err := New(Config{PreferQuerier: true}, q, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestRemoteQueryErrorsNameTheStore(t *testing.T) {
	_, url, at := metricsAPIFixture(t)
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()
	for _, tc := range []struct {
		name, url, query string
	}{
		{"a bad query", url, "sum(("},
		{"a string answer", url, `"x"`},
		{"a store that is down", down.URL, "up"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q, err := metrics.NewRemoteQuery(metrics.RemoteQueryConfig{URL: tc.url, Timeout: 5 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := q.Query(context.Background(), tc.query, at); err == nil || !strings.Contains(err.Error(), "metrics store "+tc.url) {
				t.Errorf("error %v does not name the store %s", err, tc.url)
			}
		})
	}
	// A scalar is a one-sample vector without labels, as the engine's
	// rules.EngineQueryFunc answers it.
	q, err := metrics.NewRemoteQuery(metrics.RemoteQueryConfig{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	if vec, err := q.Query(context.Background(), "1.5", at); err != nil || len(vec) != 1 || vec[0].F != 1.5 || !vec[0].Metric.IsEmpty() {
		t.Errorf("scalar 1.5: %v %v", vec, err)
	}
	for _, bad := range []metrics.RemoteQueryConfig{{URL: ""}, {URL: "prometheus:9090"}, {URL: "ftp://x"}, {URL: "http://x", Timeout: -1}} {
		if _, err := metrics.NewRemoteQuery(bad); err == nil || !strings.Contains(err.Error(), "metrics.query-url") {
			t.Errorf("%+v: %v, want an error naming metrics.query-url", bad, err)
		}
	}
}
