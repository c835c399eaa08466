package promapi

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/timestamp"

	"github.com/glassmesh/glassmesh/telemetry/metrics/metricstest"
)

// With a shared store, data reads answer from the store (every replica's
// series), while rules and the TSDB's status stay this replica's.
func TestStoreReadsGoToTheSharedStore(t *testing.T) {
	store := newAPIEnv(t, apiEnvOptions{})
	now := timestamp.FromTime(time.Now())
	metricstest.Append(t, store.db,
		metricstest.Sample{Labels: labels.FromStrings("__name__", "istio_requests_total", "replica", "a", "app", "reviews"), T: now, V: 3},
		metricstest.Sample{Labels: labels.FromStrings("__name__", "istio_requests_total", "replica", "b", "app", "reviews"), T: now, V: 4})
	var sawAuth []string
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sawAuth = append(sawAuth, r.Header.Get("Authorization"))
		store.srv.Config.Handler.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	storeURL := strings.Replace(front.URL, "http://", "http://mesh:pw@", 1) + "/"
	local := newAPIEnv(t, apiEnvOptions{store: storeURL})
	metricstest.Append(t, local.db,
		metricstest.Sample{Labels: labels.FromStrings("__name__", "istio_requests_total", "app", "local-only"), T: now, V: 1})

	code, body := local.get(t, "/api/v1/query?query="+url.QueryEscape("sum(istio_requests_total)"))
	if code != 200 || !strings.Contains(string(body), `"7"`) {
		t.Fatalf("query: %d %s, want the store's sum 7", code, body)
	}
	resp, err := http.PostForm(local.srv.URL+"/api/v1/query_range", url.Values{"query": {"sum(istio_requests_total)"},
		"start": {"0"}, "end": {"1"}, "step": {"1"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("POST query_range: %s", resp.Status)
	}
	code, body = local.get(t, "/api/v1/label/replica/values")
	if code != 200 || !strings.Contains(string(body), `["a","b"]`) {
		t.Fatalf("label values: %d %s", code, body)
	}
	for _, a := range sawAuth {
		if a == "" || strings.HasPrefix(a, "Bearer") {
			t.Fatalf("the store got Authorization %q, want the URL's basic auth", a)
		}
	}
	// The TSDB status is this replica's own.
	code, body = local.get(t, "/api/v1/status/tsdb")
	if code != 200 || !strings.Contains(string(body), `"numSeries":1`) {
		t.Fatalf("tsdb status: %d %s, want the local head's one series", code, body)
	}

	// A bad query is the user's: the store's 400 passes as it is.
	code, body = local.get(t, "/api/v1/query?query="+url.QueryEscape("sum("))
	if code != 400 || strings.Contains(string(body), "metrics store") {
		t.Fatalf("bad query: %d %s", code, body)
	}
	// A store that is down: 502 naming it (without its password).
	front.Close()
	code, body = local.get(t, "/api/v1/query?query=up")
	if code != http.StatusBadGateway || !strings.Contains(string(body), "metrics store http://127.0.0.1") ||
		strings.Contains(string(body), "pw") || !strings.Contains(string(body), `"status":"error"`) {
		t.Fatalf("store down: %d %s", code, body)
	}
}

// A store answering 5xx: its message comes through with the store named.
func TestStoreErrorsNameTheStore(t *testing.T) {
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"status":"error","errorType":"unavailable","error":"ingesters are unhealthy"}`))
	}))
	t.Cleanup(failing.Close)
	local := newAPIEnv(t, apiEnvOptions{store: failing.URL})
	code, body := local.get(t, "/api/v1/query_range?query=up&start=0&end=1&step=1")
	if code != http.StatusServiceUnavailable || !strings.Contains(string(body), "metrics store "+failing.URL+": ingesters are unhealthy") {
		t.Fatalf("store 503: %d %s", code, body)
	}
}

// query_exemplars answers from the store when it has exemplars, else from
// this replica (remote-write does not ship exemplars by default).
func TestStoreExemplarsFallBackToTheReplicas(t *testing.T) {
	store := newAPIEnv(t, apiEnvOptions{})
	local := newAPIEnv(t, apiEnvOptions{store: store.srv.URL})
	now := time.Now()
	withExemplar := func(traceID string) metricstest.Sample {
		return metricstest.Sample{Labels: labels.FromStrings("__name__", "istio_request_duration_milliseconds_bucket", "le", "+Inf"),
			T: timestamp.FromTime(now), V: 1, Exemplar: &exemplar.Exemplar{Labels: labels.FromStrings("trace_id", traceID),
				Value: 1, Ts: timestamp.FromTime(now), HasTs: true}}
	}
	path := "/api/v1/query_exemplars?" + url.Values{"query": {"istio_request_duration_milliseconds_bucket"},
		"start": {fmt.Sprint(now.Add(-time.Minute).Unix())}, "end": {fmt.Sprint(now.Add(time.Minute).Unix())}}.Encode()

	metricstest.Append(t, local.db, withExemplar("aaaa"))
	code, body := local.get(t, path)
	if code != 200 || !strings.Contains(string(body), `"aaaa"`) {
		t.Fatalf("the store has none: %d %s, want this replica's exemplar", code, body)
	}
	metricstest.Append(t, store.db, withExemplar("bbbb"))
	code, body = local.get(t, path)
	if code != 200 || !strings.Contains(string(body), `"bbbb"`) || strings.Contains(string(body), `"aaaa"`) {
		t.Fatalf("the store has some: %d %s, want the store's", code, body)
	}
	resp, err := http.PostForm(local.srv.URL+"/api/v1/query_exemplars", url.Values{"query": {"istio_request_duration_milliseconds_bucket"},
		"start": {fmt.Sprint(now.Add(-time.Minute).Unix())}, "end": {fmt.Sprint(now.Add(time.Minute).Unix())}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"bbbb"`) {
		t.Fatalf("POST: %s %s", resp.Status, b)
	}
}
