package receiver_test

import (
	"context"
	"sync"
	"testing"

	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/glassmesh/glassmesh/telemetry/receiver"
)

// encodedWriter is a spanWriter that also takes the request's protobuf,
// checking that it still encodes the spans written.
type encodedWriter struct {
	spanWriter
	t       *testing.T
	mu      sync.Mutex
	encoded []bool // per write: whether it came with the protobuf
}

func (w *encodedWriter) WriteTraces(ctx context.Context, td ptrace.Traces) error {
	w.note(false)
	return w.spanWriter.WriteTraces(ctx, td)
}

func (w *encodedWriter) WriteTracesEncoded(ctx context.Context, td ptrace.Traces, raw []byte) error {
	var u ptrace.ProtoUnmarshaler
	got, err := u.UnmarshalTraces(raw)
	if err != nil || got.SpanCount() != td.SpanCount() {
		w.t.Errorf("protobuf of %d spans (%v) with a batch of %d", got.SpanCount(), err, td.SpanCount())
	}
	w.note(true)
	return w.spanWriter.WriteTraces(ctx, td)
}

func (w *encodedWriter) note(encoded bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.encoded = append(w.encoded, encoded)
}

func (w *encodedWriter) last() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.encoded) > 0 && w.encoded[len(w.encoded)-1]
}

func TestOTLPProtobufGoesToTheWriterWhileItEncodesTheSpans(t *testing.T) {
	w := &encodedWriter{t: t}
	s := startTraceReceiver(t, receiver.TracesConfig{}, w)
	conn, err := grpc.NewClient(s.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := ptraceotlp.NewGRPCClient(conn)
	pb, _ := request(3, 0).MarshalProto()
	pbBad, _ := request(3, 1).MarshalProto()
	js, _ := request(3, 0).MarshalJSON()
	tests := []struct {
		name    string
		send    func() error
		encoded bool
	}{
		{"gRPC: with the request", func() error { _, err := client.Export(context.Background(), request(3, 0)); return err }, true},
		{"gRPC with a span dropped: without", func() error { _, err := client.Export(context.Background(), request(3, 1)); return err }, false},
		{"HTTP protobuf: with the body", func() error { post(t, s.OTLPURL, "application/x-protobuf", "", pb); return nil }, true},
		{"HTTP protobuf with a span dropped: without", func() error { post(t, s.OTLPURL, "application/x-protobuf", "", pbBad); return nil }, false},
		{"HTTP JSON: without", func() error { post(t, s.OTLPURL, "application/json", "", js); return nil }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.send(); err != nil {
				t.Fatal(err)
			}
			if w.last() != tt.encoded {
				t.Fatalf("written with the protobuf: %v, want %v", w.last(), tt.encoded)
			}
		})
	}
}
