package jaegerquery_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/glassmesh/glassmesh/tracing/query"
	"github.com/glassmesh/glassmesh/tracing/store"
	"github.com/glassmesh/glassmesh/tracing/store/jaegerquery"
)

// reads are every read of the Reader, each returning its error.
var reads = map[string]func(r store.Reader) error{
	"GetTraces": func(r store.Reader) error {
		for _, err := range r.GetTraces(context.Background(), store.TraceRequest{TraceID: pcommon.TraceID{1}}) {
			if err != nil {
				return err
			}
		}
		return nil
	},
	"FindTraces": func(r store.Reader) error {
		for _, err := range r.FindTraces(context.Background(), store.TraceQuery{Service: "a"}) {
			if err != nil {
				return err
			}
		}
		return nil
	},
	"FindTraceIDs": func(r store.Reader) error {
		for _, err := range r.FindTraceIDs(context.Background(), store.TraceQuery{Service: "a"}) {
			if err != nil {
				return err
			}
		}
		return nil
	},
	"Services": func(r store.Reader) error {
		_, err := r.Services(context.Background())
		return err
	},
	"Operations": func(r store.Reader) error {
		_, err := r.Operations(context.Background(), store.OperationQuery{Service: "a"})
		return err
	},
	"Dependencies": func(r store.Reader) error {
		_, err := r.Dependencies(context.Background(), time.Now().Add(-time.Hour), time.Now())
		return err
	},
}

// checkFails runs every read against a store and wants each to fail with
// kind and a message naming the store and containing want.
func checkFails(t *testing.T, r *jaegerquery.Reader, kind error, want string) {
	t.Helper()
	for name, read := range reads {
		err := read(r)
		switch {
		case err == nil:
			t.Errorf("%s succeeded, want an error", name)
		case !errors.Is(err, kind):
			t.Errorf("%s: %v, want it to be %v", name, err, kind)
		case !strings.HasPrefix(err.Error(), "trace store "+r.URL()+": "):
			t.Errorf("%s: %q does not start by naming the store %s", name, err, r.URL())
		case !strings.Contains(err.Error(), want):
			t.Errorf("%s: %q does not say %q", name, err, want)
		}
	}
}

// fake serves h and returns a Reader of it.
func fake(t *testing.T, cfg jaegerquery.Config, h http.HandlerFunc) *jaegerquery.Reader {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	cfg.URL = srv.URL
	return newReader(t, cfg)
}

// validTraces is a one-span API v3 answer, of trace 1, and of the other
// reads' shapes as well (each read takes its own fields).
func validTraces(t *testing.T) []byte {
	t.Helper()
	td := ptrace.NewTraces()
	sp := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	sp.SetTraceID(pcommon.TraceID{1})
	sp.SetSpanID(pcommon.SpanID{1})
	sp.SetName("op")
	b, err := (&ptrace.JSONMarshaler{}).MarshalTraces(td)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Appendf(nil, `{"result":%s}`, b)
}

func TestStoreDown(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close() // nothing listens there now
	r := newReader(t, jaegerquery.Config{URL: "http://" + addr})
	checkFails(t, r, store.ErrUnavailable, "connection refused")
}

func TestStoreTooSlow(t *testing.T) {
	t.Run("no headers in time", func(t *testing.T) {
		done := make(chan struct{})
		r := fake(t, jaegerquery.Config{Timeout: 200 * time.Millisecond}, func(w http.ResponseWriter, req *http.Request) {
			select {
			case <-req.Context().Done():
			case <-done:
			}
		})
		t.Cleanup(func() { close(done) })
		checkFails(t, r, store.ErrUnavailable, "no answer within 200ms")
	})
	t.Run("a body that stops", func(t *testing.T) {
		done := make(chan struct{})
		r := fake(t, jaegerquery.Config{Timeout: 200 * time.Millisecond}, func(w http.ResponseWriter, req *http.Request) {
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write([]byte(`{"result":{"resourceSpans":[`))
			w.(http.Flusher).Flush()
			select {
			case <-req.Context().Done():
			case <-done:
			}
		})
		t.Cleanup(func() { close(done) })
		checkFails(t, r, store.ErrUnavailable, "no answer within 200ms")
	})
}

func TestStoreAnswersAnError(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		body   string
		kind   error
		want   string
	}{
		{"Jaeger's 500 error JSON", 500, `{"error":{"httpCode":500,"message":"search depth must be greater than 0 and less than max traces"}}`,
			store.ErrBadResponse, "answered 500 Internal Server Error: search depth must be"},
		{"the v1 API's error JSON", 500, `{"data":null,"errors":[{"code":500,"msg":"badger: closed"}]}`,
			store.ErrBadResponse, "answered 500 Internal Server Error: badger: closed"},
		{"503 from a proxy", 503, "<html>upstream connect error</html>", store.ErrUnavailable, "answered 503 Service Unavailable: <html>upstream"},
		{"429", 429, "slow down", store.ErrUnavailable, "answered 429 Too Many Requests: slow down"},
		{"404 from something that is not Jaeger", 404, "404 page not found", store.ErrBadResponse, "answered 404 Not Found: 404 page not found"},
		{"401", 401, "", store.ErrBadResponse, "answered 401 Unauthorized"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := fake(t, jaegerquery.Config{}, func(w http.ResponseWriter, _ *http.Request) {
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte(tc.body))
			})
			checkFails(t, r, tc.kind, tc.want)
		})
	}
	t.Run("a long error body is cut in the message", func(t *testing.T) {
		r := fake(t, jaegerquery.Config{}, func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(500)
			_, _ = w.Write([]byte(strings.Repeat("x", 100_000)))
		})
		err := reads["Services"](r)
		if err == nil || len(err.Error()) > 400 {
			t.Fatalf("error of %d bytes, want a short one: %.100v", len(fmt.Sprint(err)), err)
		}
	})
}

func TestStoreAnswersBadly(t *testing.T) {
	for _, tc := range []struct {
		name string
		body func(t *testing.T) string
		want string
	}{
		{"not JSON", func(*testing.T) string { return "{not json" }, "invalid character"},
		{"the UI's page (Jaeger's answer to paths it does not serve)", func(*testing.T) string { return "\n<!DOCTYPE html><html>Jaeger UI</html>" },
			"answered a web page, not JSON: is this the Jaeger query service's HTTP address"},
		{"JSON of another shape", func(*testing.T) string { return `["a"]` }, "cannot unmarshal"},
		{"cut short in the JSON", func(t *testing.T) string { return string(validTraces(t)[:40]) }, "unexpected"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := tc.body(t)
			r := fake(t, jaegerquery.Config{}, func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(body)) })
			checkFails(t, r, store.ErrBadResponse, tc.want)
		})
	}
}

// TestTraceAnswersAreWholeOrFail: every way a traces answer can be partial
// or wrong fails the read, for gets and searches alike.
func TestTraceAnswersAreWholeOrFail(t *testing.T) {
	good := func(t *testing.T) string { return string(validTraces(t)) }
	for _, tc := range []struct {
		name string
		body func(t *testing.T) string
		want string
	}{
		{"an empty 200", func(*testing.T) string { return "" }, "empty answer"},
		{"a chunk without a result", func(*testing.T) string { return `{"result":null}` }, "chunk 0: no result"},
		{"an error chunk after a good one", func(t *testing.T) string {
			return good(t) + "\n" + `{"error":{"httpCode":500,"message":"storage failed mid-stream"}}`
		}, "chunk 1: error 500: storage failed mid-stream"},
		{"a second chunk cut short", func(t *testing.T) string { return good(t) + "\n" + good(t)[:30] }, "chunk 1: unexpected EOF"},
		{"a span without ids", func(*testing.T) string {
			return `{"result":{"resourceSpans":[{"scopeSpans":[{"spans":[{"name":"x"}]}]}]}}`
		}, `span "x" without a trace or span id`},
		{"a malformed trace id", func(*testing.T) string {
			return `{"result":{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"zz","spanId":"0100000000000000"}]}]}]}}`
		}, "decoding OTLP JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := tc.body(t)
			r := fake(t, jaegerquery.Config{}, func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte(body)) })
			for _, name := range []string{"GetTraces", "FindTraces", "FindTraceIDs"} {
				err := reads[name](r)
				if !errors.Is(err, store.ErrBadResponse) || !strings.Contains(fmt.Sprint(err), tc.want) {
					t.Errorf("%s: %v, want a bad response saying %q", name, err, tc.want)
				}
			}
		})
	}
	t.Run("spans of another trace", func(t *testing.T) {
		body := validTraces(t)
		r := fake(t, jaegerquery.Config{}, func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(body) })
		var err error
		for _, e := range r.GetTraces(context.Background(), store.TraceRequest{TraceID: pcommon.TraceID{2}}) {
			err = e
		}
		if !errors.Is(err, store.ErrBadResponse) || !strings.Contains(err.Error(), "answered spans of trace 01000000") {
			t.Fatalf("got %v, want a bad response naming the other trace", err)
		}
	})
}

// TestBodyCutByTheConnection: a connection that closes before the
// declared length fails the read; it is not taken as the whole answer.
func TestBodyCutByTheConnection(t *testing.T) {
	body := validTraces(t)
	r := fake(t, jaegerquery.Config{}, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(len(body)*2))
		_, _ = w.Write(body) // the server closes the connection: less than declared
	})
	checkFails(t, r, store.ErrBadResponse, "answer cut short: unexpected EOF")
}

func TestAnswerLargerThanTheBound(t *testing.T) {
	r := fake(t, jaegerquery.Config{MaxResponseBytes: 4096}, func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(`{"services":["`))
		for range 1000 { // 1 MB, more than the bound
			_, _ = w.Write([]byte(strings.Repeat("a", 1000)))
		}
		_, _ = w.Write([]byte(`"]}`))
	})
	checkFails(t, r, store.ErrBadResponse, "answer larger than 4096 bytes")
}

// TestRequestsInFlightAreBounded: more reads than MaxConcurrent wait; a
// read whose context ends while waiting fails without reaching the store.
func TestRequestsInFlightAreBounded(t *testing.T) {
	var inFlight, most atomic.Int32
	release := make(chan struct{})
	r := fake(t, jaegerquery.Config{MaxConcurrent: 2}, func(w http.ResponseWriter, _ *http.Request) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		<-release
		_, _ = w.Write([]byte(`{"services":["a"]}`))
	})
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	for range 6 {
		wg.Go(func() {
			_, err := r.Services(context.Background())
			errs <- err
		})
	}
	deadline := time.Now().Add(10 * time.Second)
	for inFlight.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	_, err := r.Services(ctx)
	cancel()
	if err == nil || errors.Is(err, store.ErrUnavailable) || !strings.Contains(err.Error(), "waiting for a free connection") {
		t.Errorf("a read that gave up waiting: %v", err)
	}
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("a waiting read failed: %v", err)
		}
	}
	if m := most.Load(); m != 2 {
		t.Errorf("%d requests were in flight at once, want 2", m)
	}
}

// TestQueryAPIsAnswerTheStoresError: through the Jaeger APIs, a shared
// store that fails gives 502/503 naming it, never the part of a trace
// this replica holds.
func TestQueryAPIsAnswerTheStoresError(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status int
		want   int
	}{
		{"unavailable", http.StatusServiceUnavailable, http.StatusServiceUnavailable},
		{"failing", http.StatusInternalServerError, http.StatusBadGateway},
	} {
		t.Run(tc.name, func(t *testing.T) {
			shared := fake(t, jaegerquery.Config{}, func(w http.ResponseWriter, _ *http.Request) {
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte(`{"error":{"httpCode":1,"message":"disk on fire"}}`))
			})
			local := store.NewMemory(0)
			if err := local.WriteTraces(context.Background(), ptraceOf(pcommon.TraceID{1}, 1)); err != nil {
				t.Fatal(err)
			}
			api := serveAPI(t, store.NewLayered(shared, local))
			for _, path := range []string{"/api/traces/01", "/api/v3/traces/01", "/api/services", "/api/v3/services",
				"/api/dependencies", "/api/traces?service=a", "/api/v3/operations?service=a"} {
				code, body := getBody(t, api+path)
				if code != tc.want || !strings.Contains(body, "trace store "+shared.URL()) || !strings.Contains(body, "disk on fire") {
					t.Errorf("GET %s = %d %s, want %d naming the store and its message", path, code, body, tc.want)
				}
				if strings.Contains(body, "spanID") || strings.Contains(body, "spanId") {
					t.Errorf("GET %s answered spans: %s", path, body)
				}
			}
		})
	}
}

func getBody(t *testing.T, u string) (int, string) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v any
	dec := json.NewDecoder(resp.Body)
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("GET %s: not JSON: %v", u, err)
	}
	b, _ := json.Marshal(v)
	return resp.StatusCode, string(b)
}

// ptraceOf is n spans of one trace, of service "a".
func ptraceOf(id pcommon.TraceID, n int) ptrace.Traces {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "a")
	ss := rs.ScopeSpans().AppendEmpty()
	for i := range n {
		sp := ss.Spans().AppendEmpty()
		sp.SetTraceID(id)
		sp.SetSpanID(pcommon.SpanID{byte(i + 1)})
		sp.SetName("op")
		sp.SetStartTimestamp(pcommon.NewTimestampFromTime(time.Now()))
	}
	return td
}

// TestStoreComesBack: a read after the store recovers succeeds; nothing
// about the failure sticks.
func TestStoreComesBack(t *testing.T) {
	var down atomic.Bool
	down.Store(true)
	mem := store.NewMemory(0)
	if err := mem.WriteTraces(context.Background(), ptraceOf(pcommon.TraceID{1}, 3)); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	query.New(mem, nil).Register(mux)
	r := fake(t, jaegerquery.Config{}, func(w http.ResponseWriter, req *http.Request) {
		if down.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		mux.ServeHTTP(w, req)
	})
	if err := reads["GetTraces"](r); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("while down: %v", err)
	}
	down.Store(false)
	n := 0
	for tds, err := range r.GetTraces(context.Background(), store.TraceRequest{TraceID: pcommon.TraceID{1}}) {
		if err != nil {
			t.Fatal(err)
		}
		for _, td := range tds {
			n += td.SpanCount()
		}
	}
	if n != 3 {
		t.Fatalf("after recovery: %d spans, want 3", n)
	}
}
