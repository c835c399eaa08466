// Package promapitest serves glassmesh's Prometheus HTTP API in tests: the
// stand-in for the shared store that several replicas read
// (--metrics.query-url), with Prometheus's own API and engine.
package promapitest

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/glassmesh/glassmesh/telemetry/metrics"
	"github.com/glassmesh/glassmesh/telemetry/metrics/promapi"
)

// Serve serves the Prometheus HTTP API over b, queries evaluated by eng,
// on a loopback server that is closed when tb ends (or before, by the
// caller: a store that went down).
func Serve(tb testing.TB, b metrics.Backend, eng *metrics.Engine) *httptest.Server {
	tb.Helper()
	api, err := promapi.New(promapi.Config{}, b, eng, nil, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		tb.Fatal(err)
	}
	mux := http.NewServeMux()
	api.Register(mux)
	srv := httptest.NewServer(mux)
	tb.Cleanup(srv.Close)
	return srv
}
