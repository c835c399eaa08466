// Package storetest is the conformance suite every trace store backend
// passes (tracing/store's Memory, tracing/store/durable), with the data it
// is checked on and a generator of realistic traces for benchmarks.
package storetest

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/glassmesh/glassmesh/tracing/store"
)

// Fixture is the data every backend is tested with: four traces over three
// services (frontend → backend → db), written in two batches so trace 1 is
// split across writes.
type Fixture struct {
	Base           time.Time
	T1, T2, T3, T4 pcommon.TraceID
}

// NewFixture makes the Fixture, ten minutes ago.
func NewFixture() Fixture {
	return Fixture{
		Base: time.Now().UTC().Truncate(time.Second).Add(-10 * time.Minute),
		T1:   pcommon.TraceID{1}, T2: pcommon.TraceID{2}, T3: pcommon.TraceID{3}, T4: pcommon.TraceID{4},
	}
}

type spanSpec struct {
	trace     pcommon.TraceID
	id, par   byte
	svc, name string
	kind      ptrace.SpanKind
	at, dur   time.Duration
	err       bool
	attrs     map[string]string
	resAttrs  map[string]string
}

// Batches are the fixture's two write batches.
func (f Fixture) Batches() []ptrace.Traces {
	ms := time.Millisecond
	srv, cli := ptrace.SpanKindServer, ptrace.SpanKindClient
	b1 := []spanSpec{
		{trace: f.T1, id: 1, svc: "frontend", name: "GET /home", kind: srv, dur: 120 * ms, attrs: map[string]string{"http.method": "GET"}},
		{trace: f.T1, id: 2, par: 1, svc: "frontend", name: "GET /api", kind: cli, at: ms, dur: 100 * ms},
		{trace: f.T1, id: 3, par: 2, svc: "backend", name: "GET /api", kind: srv, at: 2 * ms, dur: 90 * ms},
		{trace: f.T2, id: 1, svc: "frontend", name: "GET /home", kind: srv, at: 10 * time.Second, dur: 50 * ms},
		{trace: f.T2, id: 2, par: 1, svc: "frontend", name: "GET /api", kind: cli, at: 10*time.Second + ms, dur: 30 * ms},
		{trace: f.T2, id: 3, par: 2, svc: "backend", name: "GET /api", kind: srv, at: 10*time.Second + 2*ms, dur: 20 * ms, attrs: map[string]string{"customer": "alice"}},
	}
	b2 := []spanSpec{
		{trace: f.T1, id: 4, par: 3, svc: "backend", name: "SELECT", kind: cli, at: 3 * ms, dur: 60 * ms},
		{trace: f.T1, id: 5, par: 4, svc: "db", name: "query", kind: srv, at: 4 * ms, dur: 50 * ms, err: true},
		{trace: f.T3, id: 1, svc: "backend", name: "POST /orders", kind: srv, at: 20 * time.Second, dur: 300 * ms, err: true,
			attrs: map[string]string{"customer": "bob"}, resAttrs: map[string]string{"deployment": "canary"}},
		{trace: f.T3, id: 2, par: 1, svc: "backend", name: "SELECT", kind: cli, at: 20*time.Second + ms, dur: 200 * ms,
			resAttrs: map[string]string{"deployment": "canary"}},
		{trace: f.T3, id: 3, par: 2, svc: "db", name: "query", kind: srv, at: 20*time.Second + 2*ms, dur: 150 * ms},
		{trace: f.T4, id: 1, svc: "frontend", name: "render", kind: ptrace.SpanKindInternal, at: 30 * time.Second, dur: 5 * ms},
	}
	return []ptrace.Traces{f.build(b1), f.build(b2)}
}

func (f Fixture) build(specs []spanSpec) ptrace.Traces {
	td := ptrace.NewTraces()
	for _, s := range specs {
		rs := td.ResourceSpans().AppendEmpty()
		rs.Resource().Attributes().PutStr("service.name", s.svc)
		rs.Resource().Attributes().PutStr("host.name", "node-1")
		for k, v := range s.resAttrs {
			rs.Resource().Attributes().PutStr(k, v)
		}
		ss := rs.ScopeSpans().AppendEmpty()
		ss.Scope().SetName("glassmesh/test")
		sp := ss.Spans().AppendEmpty()
		sp.SetTraceID(s.trace)
		sp.SetSpanID(pcommon.SpanID{s.trace[0], s.id})
		if s.par != 0 {
			sp.SetParentSpanID(pcommon.SpanID{s.trace[0], s.par})
		}
		sp.SetName(s.name)
		sp.SetKind(s.kind)
		start := f.Base.Add(s.at)
		sp.SetStartTimestamp(pcommon.NewTimestampFromTime(start))
		sp.SetEndTimestamp(pcommon.NewTimestampFromTime(start.Add(s.dur)))
		sp.Attributes().PutInt("http.status_code", 200)
		for k, v := range s.attrs {
			sp.Attributes().PutStr(k, v)
		}
		if s.err {
			sp.Status().SetCode(ptrace.StatusCodeError)
			sp.Status().SetMessage("boom")
		}
		ev := sp.Events().AppendEmpty()
		ev.SetName("cache miss")
		ev.SetTimestamp(pcommon.NewTimestampFromTime(start))
	}
	return td
}

// Run is the conformance suite: it writes the fixture to a new store and
// checks every read of the store.Reader contract on it.
func Run(t *testing.T, newStore func(t *testing.T) (store.Reader, store.Writer)) {
	f := NewFixture()
	r, w := newStore(t)
	ctx := context.Background()
	for _, b := range f.Batches() {
		if err := w.WriteTraces(ctx, b); err != nil {
			t.Fatalf("WriteTraces: %v", err)
		}
	}
	t.Run("services are listed sorted", func(t *testing.T) {
		got, err := r.Services(ctx)
		if err != nil || !slices.Equal(got, []string{"backend", "db", "frontend"}) {
			t.Fatalf("Services = %v, %v", got, err)
		}
	})
	t.Run("operations of a service with and without a kind", func(t *testing.T) { testOperations(t, r) })
	t.Run("find applies every filter then the limit, newest first", func(t *testing.T) { testFind(t, r, f) })
	t.Run("get traces by id", func(t *testing.T) { testGet(t, r, f) })
	t.Run("dependencies count cross-service calls in the window", func(t *testing.T) { testDeps(t, r, f) })
}

func testOperations(t *testing.T, r store.Reader) {
	ctx := context.Background()
	ops, err := r.Operations(ctx, store.OperationQuery{Service: "backend"})
	want := []store.Operation{{Name: "GET /api", SpanKind: "server"}, {Name: "POST /orders", SpanKind: "server"}, {Name: "SELECT", SpanKind: "client"}}
	if err != nil || !slices.Equal(ops, want) {
		t.Errorf("Operations(backend) = %v, %v; want %v", ops, err, want)
	}
	ops, err = r.Operations(ctx, store.OperationQuery{Service: "frontend", SpanKind: "client"})
	if want := []store.Operation{{Name: "GET /api", SpanKind: "client"}}; err != nil || !slices.Equal(ops, want) {
		t.Errorf("Operations(frontend, client) = %v, %v; want %v", ops, err, want)
	}
	ops, err = r.Operations(ctx, store.OperationQuery{Service: "nope"})
	if err != nil || len(ops) != 0 {
		t.Errorf("Operations(nope) = %v, %v", ops, err)
	}
}

func testFind(t *testing.T, r store.Reader, f Fixture) {
	ms := time.Millisecond
	cases := []struct {
		name string
		q    store.TraceQuery
		want []pcommon.TraceID
	}{
		{"by service", store.TraceQuery{Service: "frontend"}, ids(f.T4, f.T2, f.T1)},
		{"by service and operation", store.TraceQuery{Service: "backend", Operation: "GET /api"}, ids(f.T2, f.T1)},
		{"by operation alone", store.TraceQuery{Operation: "query"}, ids(f.T3, f.T1)},
		{"by span attribute", store.TraceQuery{Attributes: map[string]string{"customer": "alice"}}, ids(f.T2)},
		{"by int attribute", store.TraceQuery{Service: "db", Attributes: map[string]string{"http.status_code": "200"}}, ids(f.T3, f.T1)},
		{"by resource attribute", store.TraceQuery{Attributes: map[string]string{"deployment": "canary"}}, ids(f.T3)},
		{"by error", store.TraceQuery{Attributes: map[string]string{"error": "true"}}, ids(f.T3, f.T1)},
		{"by error on one span", store.TraceQuery{Service: "backend", Attributes: map[string]string{"error": "true"}}, ids(f.T3)},
		{"by span kind", store.TraceQuery{Attributes: map[string]string{"span.kind": "internal"}}, ids(f.T4)},
		{"by service and kind", store.TraceQuery{Service: "db", Attributes: map[string]string{"span.kind": "client"}}, nil},
		{"by start min", store.TraceQuery{StartMin: f.Base.Add(15 * time.Second)}, ids(f.T4, f.T3)},
		{"by start max", store.TraceQuery{StartMax: f.Base.Add(15 * time.Second)}, ids(f.T2, f.T1)},
		{"by duration min", store.TraceQuery{DurationMin: 250 * ms}, ids(f.T3)},
		{"by duration max", store.TraceQuery{DurationMax: 10 * ms}, ids(f.T4)},
		{"by duration range", store.TraceQuery{DurationMin: 25 * ms, DurationMax: 35 * ms}, ids(f.T2)},
		{"by service and duration", store.TraceQuery{Service: "frontend", DurationMin: 100 * ms}, ids(f.T1)},
		{"limit after filters", store.TraceQuery{Service: "frontend", Limit: 2}, ids(f.T4, f.T2)},
		{"limit after attribute filter", store.TraceQuery{Attributes: map[string]string{"error": "true"}, Limit: 1}, ids(f.T3)},
		{"unknown service", store.TraceQuery{Service: "nope"}, nil},
		{"unknown attribute value", store.TraceQuery{Attributes: map[string]string{"customer": "carol"}}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := FindIDs(t, r, c.q)
			if !slices.Equal(got, c.want) {
				t.Errorf("FindTraceIDs = %v, want %v", got, c.want)
			}
			var traced []pcommon.TraceID
			for td, err := range r.FindTraces(context.Background(), c.q) {
				if err != nil {
					t.Fatal(err)
				}
				traced = appendTraceIDs(traced, td)
			}
			if !slices.Equal(traced, c.want) {
				t.Errorf("FindTraces = %v, want %v", traced, c.want)
			}
		})
	}
	t.Run("found start is the matching span's", func(t *testing.T) {
		for found, err := range r.FindTraceIDs(context.Background(), store.TraceQuery{Service: "db", Attributes: map[string]string{"error": "true"}}) {
			if err != nil || len(found) != 1 || !found[0].Start.Equal(f.Base.Add(4*ms)) {
				t.Errorf("found = %v, %v", found, err)
			}
		}
	})
}

func testGet(t *testing.T, r store.Reader, f Fixture) {
	ctx := context.Background()
	missing := pcommon.TraceID{9}
	spans, names := GetSpans(t, r, store.TraceRequest{TraceID: f.T1})
	if spans != 5 || !slices.Equal(names, []string{"GET /api", "GET /api", "GET /home", "SELECT", "query"}) {
		t.Errorf("trace 1: %d spans %v", spans, names)
	}
	if n, _ := GetSpans(t, r, store.TraceRequest{TraceID: f.T1, Start: f.Base.Add(-time.Minute), End: f.Base.Add(time.Minute)}); n != 5 {
		t.Errorf("trace 1 in its window: %d spans", n)
	}
	if n, _ := GetSpans(t, r, store.TraceRequest{TraceID: f.T1, Start: f.Base.Add(time.Hour), End: f.Base.Add(2 * time.Hour)}); n != 0 {
		t.Errorf("trace 1 outside its window: %d spans", n)
	}
	if n, _ := GetSpans(t, r, store.TraceRequest{TraceID: missing}); n != 0 {
		t.Errorf("missing trace: %d spans", n)
	}
	var order []pcommon.TraceID
	for td, err := range r.GetTraces(ctx, store.TraceRequest{TraceID: f.T3}, store.TraceRequest{TraceID: missing}, store.TraceRequest{TraceID: f.T1}) {
		if err != nil {
			t.Fatal(err)
		}
		order = appendTraceIDs(order, td)
	}
	if !slices.Equal(order, ids(f.T3, f.T1)) {
		t.Errorf("GetTraces order = %v", order)
	}
	checkSpanDetail(t, r, f)
}

// checkSpanDetail checks that a stored span keeps its events, attributes,
// status, parent and resource.
func checkSpanDetail(t *testing.T, r store.Reader, f Fixture) {
	for tds, err := range r.GetTraces(context.Background(), store.TraceRequest{TraceID: f.T3}) {
		if err != nil {
			t.Fatal(err)
		}
		for _, td := range tds {
			store.ForEachSpan(td, func(svc string, res pcommon.Map, sp ptrace.Span) {
				if sp.Name() != "POST /orders" {
					return
				}
				c, _ := sp.Attributes().Get("customer")
				d, _ := res.Get("deployment")
				if svc != "backend" || c.Str() != "bob" || d.Str() != "canary" || sp.Events().Len() != 1 ||
					sp.Status().Code() != ptrace.StatusCodeError || sp.Status().Message() != "boom" {
					t.Errorf("span lost detail: svc=%s attrs=%v res=%v events=%d", svc, sp.Attributes().AsRaw(), res.AsRaw(), sp.Events().Len())
				}
			})
		}
	}
}

func testDeps(t *testing.T, r store.Reader, f Fixture) {
	ctx := context.Background()
	all, err := r.Dependencies(ctx, f.Base.Add(-time.Minute), f.Base.Add(time.Minute))
	want := []store.Dependency{{Parent: "backend", Child: "db", CallCount: 2}, {Parent: "frontend", Child: "backend", CallCount: 2}}
	if err != nil || !slices.Equal(all, want) {
		t.Errorf("Dependencies(all) = %v, %v; want %v", all, err, want)
	}
	some, err := r.Dependencies(ctx, f.Base.Add(5*time.Second), f.Base.Add(25*time.Second))
	want = []store.Dependency{{Parent: "backend", Child: "db", CallCount: 1}, {Parent: "frontend", Child: "backend", CallCount: 1}}
	if err != nil || !slices.Equal(some, want) {
		t.Errorf("Dependencies(window) = %v, %v; want %v", some, err, want)
	}
	none, err := r.Dependencies(ctx, f.Base.Add(time.Hour), f.Base.Add(2*time.Hour))
	if err != nil || len(none) != 0 {
		t.Errorf("Dependencies(later) = %v, %v", none, err)
	}
}

func ids(x ...pcommon.TraceID) []pcommon.TraceID { return x }

// FindIDs returns the ids FindTraceIDs yields for q, in order.
func FindIDs(t *testing.T, r store.Reader, q store.TraceQuery) []pcommon.TraceID {
	t.Helper()
	var out []pcommon.TraceID
	for found, err := range r.FindTraceIDs(context.Background(), q) {
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range found {
			out = append(out, f.TraceID)
		}
	}
	return out
}

// appendTraceIDs appends the trace ids of tds, collapsing consecutive chunks
// of one trace.
func appendTraceIDs(out []pcommon.TraceID, tds []ptrace.Traces) []pcommon.TraceID {
	for _, td := range tds {
		store.ForEachSpan(td, func(_ string, _ pcommon.Map, sp ptrace.Span) {
			if len(out) == 0 || out[len(out)-1] != sp.TraceID() {
				out = append(out, sp.TraceID())
			}
		})
	}
	return out
}

// GetSpans returns the span count and sorted span names of one trace.
func GetSpans(t *testing.T, r store.Reader, req store.TraceRequest) (int, []string) {
	t.Helper()
	var names []string
	for tds, err := range r.GetTraces(context.Background(), req) {
		if err != nil {
			t.Fatal(err)
		}
		for _, td := range tds {
			store.ForEachSpan(td, func(_ string, _ pcommon.Map, sp ptrace.Span) {
				if sp.TraceID() != req.TraceID {
					panic(fmt.Sprintf("span of %v in %v", sp.TraceID(), req.TraceID))
				}
				names = append(names, sp.Name())
			})
		}
	}
	slices.Sort(names)
	return len(names), names
}
