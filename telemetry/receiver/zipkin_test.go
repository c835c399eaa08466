package receiver_test

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	zipkinmodel "github.com/openzipkin/zipkin-go/model"
	zipkinproto "github.com/openzipkin/zipkin-go/proto/zipkin_proto3"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/otel/exporters/zipkin"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"

	"github.com/glassmesh/glassmesh/telemetry/receiver"
)

// sharedSpanJSON is a client call and its server half sharing span id
// 0000000000000002, and a child of the server, with a 64-bit trace id.
const sharedSpanJSON = `[
 {"traceId":"a3ce929d0e0e4736","id":"0000000000000001","name":"get /","kind":"SERVER",
  "timestamp":1700000000000000,"duration":50000,"localEndpoint":{"serviceName":"productpage"}},
 {"traceId":"a3ce929d0e0e4736","parentId":"0000000000000001","id":"0000000000000002","name":"get reviews","kind":"CLIENT",
  "timestamp":1700000000001000,"duration":20000,"localEndpoint":{"serviceName":"productpage"},
  "remoteEndpoint":{"serviceName":"reviews","ipv4":"10.0.0.2","port":9080},
  "tags":{"http.method":"GET","error":"upstream reset"},
  "annotations":[{"timestamp":1700000000001500,"value":"ws"}]},
 {"traceId":"a3ce929d0e0e4736","parentId":"0000000000000001","id":"0000000000000002","name":"get reviews","kind":"SERVER","shared":true,
  "timestamp":1700000000002000,"duration":10000,"localEndpoint":{"serviceName":"reviews"}},
 {"traceId":"a3ce929d0e0e4736","parentId":"0000000000000002","id":"0000000000000003","name":"db",
  "timestamp":1700000000003000,"duration":1000,"localEndpoint":{"serviceName":"reviews"}}
]`

func TestZipkinJSONSharedSpansAndMapping(t *testing.T) {
	w := &spanWriter{}
	s := startTraceReceiver(t, receiver.TracesConfig{}, w)
	resp, body := post(t, s.ZipkinURL, "application/json", "", []byte(sharedSpanJSON))
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("got %d %q, want 202", resp.StatusCode, body)
	}
	if n := w.count(); n != 4 {
		t.Fatalf("got %d spans, want 4 (both halves of the shared span kept)", n)
	}
	var client, server ptrace.Span
	for id, sp := range w.spans {
		switch {
		case sp.Kind() == ptrace.SpanKindClient:
			client = sp
		case sp.Kind() == ptrace.SpanKindServer && sp.Name() == "get reviews":
			server = sp
			if w.svc[id] != "reviews" {
				t.Errorf("server half service %q, want reviews", w.svc[id])
			}
		}
	}
	if got := client.TraceID().String(); got != "0000000000000000a3ce929d0e0e4736" {
		t.Errorf("trace id %s, want the 64-bit id zero padded", got)
	}
	if server.ParentSpanID() != client.SpanID() || server.SpanID() == client.SpanID() {
		t.Errorf("server half: id %s parent %s; client id %s", server.SpanID(), server.ParentSpanID(), client.SpanID())
	}
	if db := w.byName()["db"]; db.ParentSpanID() != server.SpanID() {
		t.Errorf("the server's child has parent %s, want the server half %s", db.ParentSpanID(), server.SpanID())
	}
	attrs := client.Attributes().AsRaw()
	if attrs["peer.service"] != "reviews" || attrs["network.peer.address"] != "10.0.0.2" || attrs["network.peer.port"] != int64(9080) || attrs["http.method"] != "GET" {
		t.Errorf("client attributes %v", attrs)
	}
	if client.Status().Code() != ptrace.StatusCodeError || client.Status().Message() != "upstream reset" {
		t.Errorf("client status %v %q, want error from the error tag", client.Status().Code(), client.Status().Message())
	}
	if client.Events().Len() != 1 || client.Events().At(0).Name() != "ws" {
		t.Errorf("client events: %d", client.Events().Len())
	}
	if d := client.EndTimestamp().AsTime().Sub(client.StartTimestamp().AsTime()); d != 20*time.Millisecond {
		t.Errorf("duration %s, want 20ms", d)
	}
	// Sending the same spans again is idempotent: the server half gets the
	// same derived id.
	post(t, s.ZipkinURL, "application/json", "", []byte(sharedSpanJSON))
	if n := w.count(); n != 4 {
		t.Fatalf("after a retry %d spans, want 4", n)
	}
}

func TestZipkinProto3(t *testing.T) {
	w := &spanWriter{}
	s := startTraceReceiver(t, receiver.TracesConfig{}, w)
	parent := zipkinmodel.ID(1)
	blob, err := zipkinproto.SpanSerializer{}.Serialize([]*zipkinmodel.SpanModel{{
		SpanContext: zipkinmodel.SpanContext{
			TraceID: zipkinmodel.TraceID{High: 7, Low: 8}, ID: 9, ParentID: &parent,
		},
		Name: "rate", Kind: zipkinmodel.Server, Shared: true,
		Timestamp: time.UnixMicro(1_700_000_000_000_000), Duration: time.Millisecond,
		LocalEndpoint:  &zipkinmodel.Endpoint{ServiceName: "ratings", IPv4: net.IPv4(10, 0, 0, 3), Port: 9080},
		RemoteEndpoint: &zipkinmodel.Endpoint{ServiceName: "reviews", IPv6: net.ParseIP("fd00::1")},
		Annotations:    []zipkinmodel.Annotation{{Timestamp: time.UnixMicro(1_700_000_000_000_500), Value: "sr"}},
		Tags:           map[string]string{"k": "v"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	resp, body := post(t, s.ZipkinURL, "application/x-protobuf", "gzip", gz(t, blob))
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
	got := w.byName()["rate"]
	if got.TraceID().String() != "00000000000000070000000000000008" || got.ParentSpanID().String() != "0000000000000009" ||
		got.Kind() != ptrace.SpanKindServer || got.Events().Len() != 1 {
		t.Fatalf("got trace %s parent %s kind %v events %d", got.TraceID(), got.ParentSpanID(), got.Kind(), got.Events().Len())
	}
	if a := got.Attributes().AsRaw(); a["k"] != "v" || a["network.peer.address"] != "fd00::1" || a["peer.service"] != "reviews" {
		t.Fatalf("attributes %v", a)
	}
}

func TestZipkinExporterReachesTheWriter(t *testing.T) {
	w := &spanWriter{}
	s := startTraceReceiver(t, receiver.TracesConfig{}, w)
	exp, err := zipkin.New(s.ZipkinURL)
	if err != nil {
		t.Fatal(err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp),
		sdktrace.WithResource(resource.NewSchemaless(semconv.ServiceName("ratings"))))
	ctx, p := tp.Tracer("t").Start(context.Background(), "parent")
	_, c := tp.Tracer("t").Start(ctx, "child")
	c.End()
	p.End()
	if err := tp.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := w.byName()
	if len(got) != 2 || got["child"].ParentSpanID() != got["parent"].SpanID() || w.svc[got["child"].SpanID().String()] != "ratings" {
		t.Fatalf("got %d spans", len(got))
	}
}

func TestZipkinMalformedIs400(t *testing.T) {
	s := startTraceReceiver(t, receiver.TracesConfig{}, &spanWriter{})
	tests := []struct {
		name, ct string
		body     string
		want     string
	}{
		{"not a JSON list", "application/json", `{"traceId":"1"}`, "malformed Zipkin v2 JSON"},
		{"a non-hex trace id", "application/json", `[{"traceId":"xyz","id":"1"}]`, "span 0: trace id"},
		{"an over-long span id", "application/json", `[{"traceId":"1","id":"00000000000000001"}]`, "span id"},
		{"a missing id", "application/json", `[{"traceId":"1"}]`, "span id"},
		{"truncated proto", "application/x-protobuf", "\x0a\x05\x0a", "malformed Zipkin proto3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := post(t, s.ZipkinURL, tt.ct, "", []byte(tt.body))
			if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, tt.want) {
				t.Fatalf("got %d %q, want 400 with %q", resp.StatusCode, body, tt.want)
			}
		})
	}
}
