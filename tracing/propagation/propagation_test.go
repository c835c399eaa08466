package propagation_test

import (
	"context"
	"net/http"
	"testing"

	"go.opentelemetry.io/contrib/propagators/b3"
	otelprop "go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/glassmesh/glassmesh/tracing/propagation"
)

// hop extracts the incoming headers with p, starts a child span and
// injects its context into fresh headers written by out.
func hop(t *testing.T, tp trace.TracerProvider, in http.Header, p, out otelprop.TextMapPropagator) (trace.SpanContext, trace.SpanContext, http.Header) {
	t.Helper()
	ctx := p.Extract(context.Background(), otelprop.HeaderCarrier(in))
	parent := trace.SpanContextFromContext(ctx)
	ctx, span := tp.Tracer("test").Start(ctx, "hop")
	defer span.End()
	h := http.Header{}
	out.Inject(ctx, otelprop.HeaderCarrier(h))
	return parent, span.SpanContext(), h
}

func TestTraceCrossesB3AndW3CWithIDsPreserved(t *testing.T) {
	tp := sdktrace.NewTracerProvider()
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	mesh := propagation.Default()
	b3only := b3.New(b3.WithInjectEncoding(b3.B3MultipleHeader))
	w3conly := otelprop.TraceContext{}

	// A B3 app starts the trace.
	_, root, h := hop(t, tp, http.Header{}, b3only, b3only)
	// A mesh app continues it and writes both formats.
	parent, mid, h := hop(t, tp, h, mesh, mesh)
	if parent.TraceID() != root.TraceID() || parent.SpanID() != root.SpanID() {
		t.Fatalf("B3 -> mesh: parent %v, want %v", parent, root)
	}
	if h.Get("traceparent") == "" || h.Get("X-B3-Traceid") == "" {
		t.Fatalf("mesh injected %v, want W3C and B3 multi", h)
	}
	// A W3C-only app reads it, and writes only W3C.
	parent, leaf, h := hop(t, tp, http.Header{"Traceparent": h["Traceparent"]}, w3conly, w3conly)
	if parent.TraceID() != root.TraceID() || parent.SpanID() != mid.SpanID() {
		t.Fatalf("mesh -> W3C: parent %v, want trace %v span %v", parent, root.TraceID(), mid.SpanID())
	}
	// Back through the mesh to a B3 app.
	_, mid2, h := hop(t, tp, h, mesh, mesh)
	parent, _, _ = hop(t, tp, h, b3only, b3only)
	if parent.TraceID() != leaf.TraceID() || parent.SpanID() != mid2.SpanID() {
		t.Fatalf("W3C -> mesh -> B3: parent %v, want trace %v span %v", parent, leaf.TraceID(), mid2.SpanID())
	}
}

func TestExtract(t *testing.T) {
	const (
		w3cTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
		span     = "00f067aa0ba902b7"
	)
	tests := []struct {
		name    string
		headers map[string]string
		trace   string
		sampled bool
	}{
		{"W3C traceparent", map[string]string{"traceparent": "00-" + w3cTrace + "-" + span + "-01"}, w3cTrace, true},
		{"B3 multi with a 128-bit id", map[string]string{"x-b3-traceid": w3cTrace, "x-b3-spanid": span, "x-b3-sampled": "1"}, w3cTrace, true},
		{"B3 multi with a 64-bit id is zero padded", map[string]string{"x-b3-traceid": "a3ce929d0e0e4736", "x-b3-spanid": span, "x-b3-sampled": "0"}, "0000000000000000a3ce929d0e0e4736", false},
		{"B3 single with a 64-bit id is zero padded", map[string]string{"b3": "a3ce929d0e0e4736-" + span + "-1"}, "0000000000000000a3ce929d0e0e4736", true},
		{"W3C wins over B3 when both are sent", map[string]string{"traceparent": "00-" + w3cTrace + "-" + span + "-01", "b3": "a3ce929d0e0e4736-" + span + "-1"}, w3cTrace, true},
	}
	p := propagation.Default()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sc := trace.SpanContextFromContext(p.Extract(context.Background(), otelprop.MapCarrier(tt.headers)))
			if sc.TraceID().String() != tt.trace || sc.SpanID().String() != span || sc.IsSampled() != tt.sampled || !sc.IsRemote() {
				t.Fatalf("got trace %s span %s sampled %v remote %v", sc.TraceID(), sc.SpanID(), sc.IsSampled(), sc.IsRemote())
			}
		})
	}
}

func TestInjectWritesTheConfiguredFormats(t *testing.T) {
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{0: 1, 15: 2}, SpanID: trace.SpanID{7: 3}, TraceFlags: trace.FlagsSampled,
	})
	ctx := trace.ContextWithSpanContext(context.Background(), sc)
	tests := []struct {
		name   string
		cfg    string
		want   []string
		absent []string
	}{
		{"default writes W3C and B3 multi", "", []string{"traceparent", "x-b3-traceid", "x-b3-spanid", "x-b3-sampled"}, []string{"b3"}},
		{"b3 writes the single header only", "b3", []string{"b3"}, []string{"traceparent", "x-b3-traceid"}},
		{"tracecontext,b3 writes both", "tracecontext, b3", []string{"traceparent", "b3"}, []string{"x-b3-traceid"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := propagation.ParseFormats(tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			p, err := propagation.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			m := otelprop.MapCarrier{}
			p.Inject(ctx, m)
			for _, k := range tt.want {
				if m[k] == "" {
					t.Errorf("%s missing from %v", k, m)
				}
			}
			for _, k := range tt.absent {
				if m[k] != "" {
					t.Errorf("%s present in %v", k, m)
				}
			}
			if got := trace.SpanContextFromContext(p.Extract(context.Background(), m)); got.TraceID() != sc.TraceID() || got.SpanID() != sc.SpanID() {
				t.Errorf("round trip: %v, want %v", got, sc)
			}
		})
	}
}

func TestConfigValidateNamesTheKey(t *testing.T) {
	for _, s := range []string{"jaeger", "b3,b3"} {
		if _, err := propagation.ParseFormats(s); err == nil {
			t.Errorf("ParseFormats(%q): no error", s)
		}
	}
}

func TestIDsFromHex(t *testing.T) {
	id, err := propagation.TraceIDFromHex("a3ce929d0e0e4736")
	if err != nil || id.String() != "0000000000000000a3ce929d0e0e4736" {
		t.Fatalf("64-bit: %v %v", id, err)
	}
	for _, bad := range []string{"", "xyz", "0000", "0123456789abcdef0123456789abcdef0"} {
		if _, err := propagation.TraceIDFromHex(bad); err == nil {
			t.Errorf("TraceIDFromHex(%q): no error", bad)
		}
	}
	if s, err := propagation.SpanIDFromHex("b7"); err != nil || s.String() != "00000000000000b7" {
		t.Fatalf("span: %v %v", s, err)
	}
}

func TestHeaderNamesCoverEveryExtractedHeader(t *testing.T) {
	names := map[string]bool{}
	for _, h := range propagation.HeaderNames() {
		names[h] = true
	}
	for _, p := range []otelprop.TextMapPropagator{
		otelprop.TraceContext{}, otelprop.Baggage{},
		b3.New(b3.WithInjectEncoding(b3.B3MultipleHeader | b3.B3SingleHeader)),
	} {
		for _, f := range p.Fields() {
			if !names[f] {
				t.Errorf("%s missing from HeaderNames", f)
			}
		}
	}
}
