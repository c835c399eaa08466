package jaegerquery_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/glassmesh/glassmesh/tracing/query"
	"github.com/glassmesh/glassmesh/tracing/store"
	"github.com/glassmesh/glassmesh/tracing/store/jaegerquery"
	"github.com/glassmesh/glassmesh/tracing/store/storetest"
)

// serveAPI serves glassmesh's own query API (the same API v3 as Jaeger's)
// over st, and returns its URL.
func serveAPI(t *testing.T, st store.Reader) string {
	t.Helper()
	mux := http.NewServeMux()
	query.New(st, nil).Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

func newReader(t *testing.T, cfg jaegerquery.Config) *jaegerquery.Reader {
	t.Helper()
	r, err := jaegerquery.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestConformance holds the Reader over the API to the suite every store
// passes: what it reads through the API is what the store behind holds.
func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) (store.Reader, store.Writer) {
		mem := store.NewMemory(0)
		return newReader(t, jaegerquery.Config{URL: serveAPI(t, mem)}), mem
	})
}

func TestConformanceUnderAPathPrefix(t *testing.T) {
	storetest.Run(t, func(t *testing.T) (store.Reader, store.Writer) {
		mem := store.NewMemory(0)
		mux := http.NewServeMux()
		mux.Handle("/jaeger/", http.StripPrefix("/jaeger", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			inner := http.NewServeMux()
			query.New(mem, nil).Register(inner)
			inner.ServeHTTP(w, r)
		})))
		srv := httptest.NewServer(mux)
		t.Cleanup(srv.Close)
		return newReader(t, jaegerquery.Config{URL: srv.URL + "/jaeger/"}), mem
	})
}

// TestAttributesAreCheckedHere: a store that ignores query.attributes
// (Jaeger's API v3 over HTTP does) must not make a search return traces
// that do not match.
func TestAttributesAreCheckedHere(t *testing.T) {
	mem := store.NewMemory(0)
	f := storetest.NewFixture()
	for _, b := range f.Batches() {
		if err := mem.WriteTraces(context.Background(), b); err != nil {
			t.Fatal(err)
		}
	}
	api := serveAPI(t, mem)
	ignoring := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		q.Del("query.attributes")
		u, _ := http.NewRequest(http.MethodGet, api+r.URL.Path+"?"+q.Encode(), nil)
		resp, err := http.DefaultClient.Do(u)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
	}))
	t.Cleanup(ignoring.Close)
	r := newReader(t, jaegerquery.Config{URL: ignoring.URL})
	got := storetest.FindIDs(t, r, store.TraceQuery{Attributes: map[string]string{"customer": "bob"}})
	if !slices.Equal(got, []pcommon.TraceID{f.T3}) {
		t.Fatalf("customer=bob found %v, want only %v", got, f.T3)
	}
}

// TestWindowIsCheckedHere: a get with a window returns nothing when no
// span of the trace starts in it, whatever the store does with the window.
func TestWindowIsCheckedHere(t *testing.T) {
	mem := store.NewMemory(0)
	f := storetest.NewFixture()
	for _, b := range f.Batches() {
		if err := mem.WriteTraces(context.Background(), b); err != nil {
			t.Fatal(err)
		}
	}
	r := newReader(t, jaegerquery.Config{URL: serveAPI(t, mem)})
	n, _ := storetest.GetSpans(t, r, store.TraceRequest{TraceID: f.T1, Start: f.Base.Add(time.Hour), End: f.Base.Add(2 * time.Hour)})
	if n != 0 {
		t.Fatalf("trace 1 outside the window: %d spans, want none", n)
	}
	n, _ = storetest.GetSpans(t, r, store.TraceRequest{TraceID: f.T1, Start: f.Base.Add(-time.Minute), End: f.Base.Add(time.Minute)})
	if n != 5 {
		t.Fatalf("trace 1 inside the window: %d spans, want 5", n)
	}
}

// TestBigTraceComesBackWhole reads a trace larger than one chunk of the
// local stores.
func TestBigTraceComesBackWhole(t *testing.T) {
	mem := store.NewMemory(0)
	id := pcommon.TraceID{9}
	td := ptrace.NewTraces()
	ss := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty()
	for i := range 5000 {
		sp := ss.Spans().AppendEmpty()
		sp.SetTraceID(id)
		sp.SetSpanID(pcommon.SpanID{1, byte(i >> 8), byte(i)})
		sp.SetName("op")
		sp.SetStartTimestamp(pcommon.NewTimestampFromTime(time.Now()))
	}
	if err := mem.WriteTraces(context.Background(), td); err != nil {
		t.Fatal(err)
	}
	r := newReader(t, jaegerquery.Config{URL: serveAPI(t, mem)})
	if n, _ := storetest.GetSpans(t, r, store.TraceRequest{TraceID: id}); n != 5000 {
		t.Fatalf("got %d spans, want 5000", n)
	}
}

func TestConfigValidateNamesTheField(t *testing.T) {
	for _, tc := range []struct {
		cfg  jaegerquery.Config
		want string
	}{
		{jaegerquery.Config{URL: ""}, "url:"},
		{jaegerquery.Config{URL: "jaeger:16686"}, "url:"},
		{jaegerquery.Config{URL: "ftp://jaeger"}, "url:"},
		{jaegerquery.Config{URL: "http://"}, "url:"},
		{jaegerquery.Config{URL: "http://jaeger:16686/?x=1"}, "url:"},
		{jaegerquery.Config{URL: "http://jaeger:16686", Timeout: -1}, "timeout:"},
		{jaegerquery.Config{URL: "http://jaeger:16686", MaxResponseBytes: -1}, "max-response-bytes:"},
	} {
		err := tc.cfg.Validate()
		if err == nil || !startsWith(err.Error(), tc.want) {
			t.Errorf("Validate(%+v) = %v, want an error starting %q", tc.cfg, err, tc.want)
		}
	}
	ok := jaegerquery.Config{URL: "https://user:secret@jaeger:16686/base"}
	if err := ok.Validate(); err != nil {
		t.Fatalf("Validate(%+v) = %v", ok, err)
	}
	r := newReader(t, ok)
	if got := r.URL(); got != "https://user:xxxxx@jaeger:16686/base" {
		t.Fatalf("URL() = %q, want the password hidden", got)
	}
}

func startsWith(s, prefix string) bool { return len(s) >= len(prefix) && s[:len(prefix)] == prefix }
