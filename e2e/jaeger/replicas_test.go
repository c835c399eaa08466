package jaeger

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	semconv "go.opentelemetry.io/otel/semconv/v1.34.0"
	"go.opentelemetry.io/otel/trace"
)

// sentSpan is what the test sent of one span, to compare with what comes
// back.
type sentSpan struct {
	service, name, spanID, parentID string
}

// service is one instrumented service: the real OpenTelemetry SDK, whose
// ended spans are exported with the real OTLP/gRPC exporter to one replica.
type service struct {
	name string
	rec  *tracetest.SpanRecorder
	tp   *sdktrace.TracerProvider
}

func newService(t *testing.T, name string) *service {
	t.Helper()
	s := &service{name: name, rec: tracetest.NewSpanRecorder()}
	s.tp = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(s.rec),
		sdktrace.WithResource(resource.NewSchemaless(semconv.ServiceName(name))))
	t.Cleanup(func() { _ = s.tp.Shutdown(context.Background()) })
	return s
}

// exportTo sends the service's ended spans to r over OTLP/gRPC (glassmesh
// serves OTLP on --grpc-addr) and fails the test unless r accepts them.
func (s *service) exportTo(t *testing.T, r *replica) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	exp, err := otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(r.GRPCAddr), otlptracegrpc.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = exp.Shutdown(context.Background()) }()
	if err := exp.ExportSpans(ctx, s.rec.Ended()); err != nil {
		t.Fatalf("%s → %s: %v", s.name, r.name, err)
	}
	s.rec.Reset()
}

// sendSplitTrace makes one trace frontend → backend → db and sends
// frontend's and db's spans to a, backend's to b: neither replica holds
// the whole trace.
func sendSplitTrace(t *testing.T, a, b *replica) (string, []sentSpan) {
	t.Helper()
	fe, be, db := newService(t, "frontend"), newService(t, "backend"), newService(t, "db")
	var sent []sentSpan
	start := func(ctx context.Context, s *service, name string, kind trace.SpanKind) (context.Context, trace.Span) {
		parent := trace.SpanContextFromContext(ctx)
		ctx, sp := s.tp.Tracer("e2e").Start(ctx, name, trace.WithSpanKind(kind))
		ss := sentSpan{service: s.name, name: name, spanID: sp.SpanContext().SpanID().String()}
		if parent.IsValid() {
			ss.parentID = parent.SpanID().String()
		}
		sent = append(sent, ss)
		return ctx, sp
	}
	ctx, root := start(context.Background(), fe, "GET /home", trace.SpanKindServer)
	ctx, call := start(ctx, fe, "GET /api", trace.SpanKindClient)
	ctx, api := start(ctx, be, "GET /api", trace.SpanKindServer)
	ctx, sel := start(ctx, be, "SELECT", trace.SpanKindClient)
	_, q := start(ctx, db, "query", trace.SpanKindServer)
	for _, sp := range []trace.Span{q, sel, api, call, root} {
		sp.End()
	}
	fe.exportTo(t, a)
	db.exportTo(t, a)
	be.exportTo(t, b)
	return root.SpanContext().TraceID().String(), sent
}

// uiTrace is the part of the Jaeger UI model (/api/traces) checked here.
type uiTrace struct {
	TraceID string `json:"traceID"`
	Spans   []struct {
		SpanID        string `json:"spanID"`
		OperationName string `json:"operationName"`
		ProcessID     string `json:"processID"`
		References    []struct {
			RefType string `json:"refType"`
			SpanID  string `json:"spanID"`
		} `json:"references"`
	} `json:"spans"`
	Processes map[string]struct {
		ServiceName string `json:"serviceName"`
	} `json:"processes"`
}

func (u uiTrace) spans() []sentSpan {
	var out []sentSpan
	for _, sp := range u.Spans {
		s := sentSpan{service: u.Processes[sp.ProcessID].ServiceName, name: sp.OperationName, spanID: sp.SpanID}
		for _, ref := range sp.References {
			if ref.RefType == "CHILD_OF" {
				s.parentID = ref.SpanID
			}
		}
		out = append(out, s)
	}
	return out
}

// otlpJSON is the part of API v3's OTLP JSON checked here.
type otlpJSON struct {
	Result struct {
		ResourceSpans []struct {
			Resource struct {
				Attributes []struct {
					Key   string `json:"key"`
					Value struct {
						StringValue string `json:"stringValue"`
					} `json:"value"`
				} `json:"attributes"`
			} `json:"resource"`
			ScopeSpans []struct {
				Spans []struct {
					TraceID      string `json:"traceId"`
					SpanID       string `json:"spanId"`
					ParentSpanID string `json:"parentSpanId"`
					Name         string `json:"name"`
				} `json:"spans"`
			} `json:"scopeSpans"`
		} `json:"resourceSpans"`
	} `json:"result"`
}

// spans are the spans of trace id in the answer.
func (o otlpJSON) spans(id string) []sentSpan {
	var out []sentSpan
	for _, rs := range o.Result.ResourceSpans {
		svc := ""
		for _, a := range rs.Resource.Attributes {
			if a.Key == "service.name" {
				svc = a.Value.StringValue
			}
		}
		for _, ss := range rs.ScopeSpans {
			for _, sp := range ss.Spans {
				if sp.TraceID == id {
					out = append(out, sentSpan{service: svc, name: sp.Name, spanID: sp.SpanID, parentID: sp.ParentSpanID})
				}
			}
		}
	}
	return out
}

// sameSpans compares span sets whatever the order.
func sameSpans(got, want []sentSpan) error {
	key := func(a, b sentSpan) int { return strings.Compare(a.spanID, b.spanID) }
	got, want = slices.Clone(got), slices.Clone(want)
	slices.SortFunc(got, key)
	slices.SortFunc(want, key)
	if !slices.Equal(got, want) {
		return fmt.Errorf("spans %+v, want %+v", got, want)
	}
	return nil
}

// checkWhole checks that r answers the whole trace, with the right
// parents, through the Jaeger API and API v3, by id and by search.
func checkWhole(r *replica, id string, want []sentSpan) error {
	var ui struct{ Data []uiTrace }
	if err := r.getJSON("/api/traces/"+id, &ui); err != nil {
		return err
	}
	if len(ui.Data) != 1 {
		return fmt.Errorf("%s: /api/traces/%s: %d traces", r.name, id, len(ui.Data))
	}
	if err := sameSpans(ui.Data[0].spans(), want); err != nil {
		return fmt.Errorf("%s: /api/traces/%s: %w", r.name, id, err)
	}
	var v3 otlpJSON
	if err := r.getJSON("/api/v3/traces/"+id, &v3); err != nil {
		return err
	}
	if err := sameSpans(v3.spans(id), want); err != nil {
		return fmt.Errorf("%s: /api/v3/traces/%s: %w", r.name, id, err)
	}
	// Searches by the service whose spans the other replica took.
	var found struct{ Data []uiTrace }
	if err := r.getJSON("/api/traces?service=backend&lookback=1h&limit=100", &found); err != nil {
		return err
	}
	i := slices.IndexFunc(found.Data, func(u uiTrace) bool { return u.TraceID == id })
	if i < 0 {
		return fmt.Errorf("%s: /api/traces?service=backend does not find %s", r.name, id)
	}
	if err := sameSpans(found.Data[i].spans(), want); err != nil {
		return fmt.Errorf("%s: /api/traces?service=backend: %w", r.name, err)
	}
	now := time.Now().UTC()
	q := url.Values{"query.service_name": {"db"}, "query.start_time_min": {now.Add(-time.Hour).Format(time.RFC3339Nano)},
		"query.start_time_max": {now.Add(time.Minute).Format(time.RFC3339Nano)}}
	var v3found otlpJSON
	if err := r.getJSON("/api/v3/traces?"+q.Encode(), &v3found); err != nil {
		return err
	}
	if err := sameSpans(v3found.spans(id), want); err != nil {
		return fmt.Errorf("%s: /api/v3/traces?query.service_name=db: %w", r.name, err)
	}
	return nil
}

// checkEdges checks the span-based calls frontend → backend → db in r's
// /api/dependencies and as edges of its service graph.
func checkEdges(r *replica) error {
	var deps struct {
		Data []struct {
			Parent, Child string
			CallCount     int
		}
	}
	if err := r.getJSON(fmt.Sprintf("/api/dependencies?endTs=%d&lookback=3600000", time.Now().Add(time.Minute).UnixMilli()), &deps); err != nil {
		return err
	}
	var calls []string
	for _, d := range deps.Data {
		calls = append(calls, d.Parent+"→"+d.Child)
	}
	for _, want := range []string{"frontend→backend", "backend→db"} {
		if !slices.Contains(calls, want) {
			return fmt.Errorf("%s: /api/dependencies has %v, not %s", r.name, calls, want)
		}
	}
	var g struct {
		Elements struct {
			Nodes []struct{ Data struct{ ID, App string } }
			Edges []struct {
				Data struct{ Source, Target, DataSource string }
			}
		}
	}
	if err := r.getJSON("/api/namespaces/graph?graphType=app&duration=1h", &g); err != nil {
		return err
	}
	app := map[string]string{}
	for _, n := range g.Elements.Nodes {
		app[n.Data.ID] = n.Data.App
	}
	var edges []string
	for _, e := range g.Elements.Edges {
		if e.Data.DataSource == "spans" {
			edges = append(edges, app[e.Data.Source]+"→"+app[e.Data.Target])
		}
	}
	for _, want := range []string{"frontend→backend", "backend→db"} {
		if !slices.Contains(edges, want) {
			return fmt.Errorf("%s: the graph's span edges are %v, not %s", r.name, edges, want)
		}
	}
	return nil
}

// checkStoreError checks that every trace read on r fails with 503 naming
// the shared store, and never answers a part of a trace.
func checkStoreError(r *replica, store, id string) error {
	for _, path := range []string{"/api/traces/" + id, "/api/v3/traces/" + id, "/api/traces?service=backend&lookback=1h",
		"/api/services", "/api/dependencies", "/api/namespaces/graph?graphType=app&duration=1h"} {
		code, body, err := get("http://" + r.HTTPAddr + path)
		if err != nil {
			return err
		}
		if code != 503 || !strings.Contains(body, "trace store "+store) {
			return fmt.Errorf("%s: GET %s = %d %.300s; want 503 naming %s", r.name, path, code, body, store)
		}
	}
	return nil
}

// TestReplicasShareJaeger: two replicas forward to one Jaeger and read
// from it, so a trace whose spans went to both comes back whole from
// either; with Jaeger down both say so, and both recover when it returns.
func TestReplicasShareJaeger(t *testing.T) {
	j := startJaeger(t)
	a, b := startReplica(t, "replica-a", j), startReplica(t, "replica-b", j)

	id, want := sendSplitTrace(t, a, b)
	t.Run("a trace split between the replicas is whole from either", func(t *testing.T) {
		for _, r := range []*replica{a, b} {
			eventually(t, 120*time.Second, func() error { return checkWhole(r, id, want) })
		}
	})
	t.Run("span dependencies and graph edges show on both", func(t *testing.T) {
		for _, r := range []*replica{a, b} {
			eventually(t, 120*time.Second, func() error { return checkEdges(r) })
		}
	})

	j.stop()
	t.Run("with Jaeger down both answer 503 naming it", func(t *testing.T) {
		for _, r := range []*replica{a, b} {
			eventually(t, 60*time.Second, func() error { return checkStoreError(r, j.QueryURL, id) })
		}
	})
	// Accepted while Jaeger is down: in each replica's WAL, forwarded later.
	id2, want2 := sendSplitTrace(t, b, a)

	j.start()
	t.Run("when Jaeger returns both read every trace whole again", func(t *testing.T) {
		for _, r := range []*replica{a, b} {
			eventually(t, 180*time.Second, func() error { return checkWhole(r, id, want) })
			eventually(t, 180*time.Second, func() error { return checkWhole(r, id2, want2) })
			eventually(t, 60*time.Second, func() error { return checkEdges(r) })
		}
	})
}
