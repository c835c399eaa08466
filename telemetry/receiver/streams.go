package receiver

import (
	"context"
	"errors"
	"io"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	alsv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	metricsv3 "github.com/envoyproxy/go-control-plane/envoy/service/metrics/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// Register adds the AccessLogService and MetricsService to s.
//
// They are registered by hand rather than with the generated
// Register…Server functions: a generated handler's Recv decodes with the
// server's codec, and when that fails grpc-go ends the stream with INTERNAL
// itself, whatever the handler returns. Receiving the raw bytes and
// decoding them here lets a malformed message end with INVALID_ARGUMENT.
func (r *Receiver) Register(s *grpc.Server) {
	s.RegisterService(&grpc.ServiceDesc{
		ServiceName: alsv3.AccessLogService_ServiceDesc.ServiceName,
		HandlerType: (*any)(nil),
		Streams: []grpc.StreamDesc{{
			StreamName:    "StreamAccessLogs",
			Handler:       func(_ any, stream grpc.ServerStream) error { return r.streamAccessLogs(stream) },
			ClientStreams: true,
		}},
		Metadata: alsv3.AccessLogService_ServiceDesc.Metadata,
	}, r)
	s.RegisterService(&grpc.ServiceDesc{
		ServiceName: metricsv3.MetricsService_ServiceDesc.ServiceName,
		HandlerType: (*any)(nil),
		Streams: []grpc.StreamDesc{{
			StreamName:    "StreamMetrics",
			Handler:       func(_ any, stream grpc.ServerStream) error { return r.streamMetrics(stream) },
			ClientStreams: true,
		}},
		Metadata: metricsv3.MetricsService_ServiceDesc.Metadata,
	}, r)
}

// rawMessage takes a message's bytes undecoded. grpc-go's proto codec
// accepts it as a legacy (pre-APIv2) message, and protobuf-go hands legacy
// messages with an Unmarshal method the bytes as they are.
type rawMessage struct{ b []byte }

func (m *rawMessage) Reset()         { m.b = m.b[:0] }
func (m *rawMessage) String() string { return "rawMessage" }
func (m *rawMessage) ProtoMessage()  {}

// Unmarshal copies data: grpc-go reuses its buffer after the call.
func (m *rawMessage) Unmarshal(data []byte) error {
	m.b = append(m.b[:0], data...)
	return nil
}

// Marshal exists for symmetry; the receiver never sends a rawMessage.
func (m *rawMessage) Marshal() ([]byte, error) { return m.b, nil }

// maxKeptBuffer is the largest receive buffer a stream keeps between
// messages, so idle streams do not each hold a multi-megabyte buffer.
const maxKeptBuffer = 256 << 10

// decodeOptions drop fields newer proxies send that glassmesh does not know.
var decodeOptions = proto.UnmarshalOptions{DiscardUnknown: true}

// recv reads and decodes the next message into m. It returns io.EOF when
// the client closed its side, INVALID_ARGUMENT for bytes that are no m.
func recv(stream grpc.ServerStream, raw *rawMessage, m proto.Message) error {
	if cap(raw.b) > maxKeptBuffer {
		raw.b = nil
	}
	if err := stream.RecvMsg(raw); err != nil {
		return err
	}
	if err := decodeOptions.Unmarshal(raw.b, m); err != nil {
		return status.Errorf(codes.InvalidArgument, "malformed %s: %v", m.ProtoReflect().Descriptor().Name(), err)
	}
	return nil
}

// streamKind is one kind of telemetry stream: client messages of type M, the
// first of which identifies the sender, answered once at the end.
type streamKind[M proto.Message] struct {
	service  string                                       // for self metrics
	newMsg   func() M                                     // an empty message
	identify func(M) *corev3.Node                         // the identifier's node, or nil
	consume  func(context.Context, *corev3.Node, M) error // hands a message to the pipeline
	done     proto.Message                                // the answer when the client closes
}

// serveStream reads messages until the client closes its side, the pipeline
// refuses one (RESOURCE_EXHAUSTED when overloaded), or one is malformed.
func serveStream[M proto.Message](r *Receiver, ss grpc.ServerStream, s streamKind[M]) (err error) {
	var node *corev3.Node
	defer func() { err = r.finish(s.service, node, err) }()
	release, err := r.admit(s.service)
	if err != nil {
		return err
	}
	defer release()
	ctx := ss.Context()
	var raw rawMessage
	for {
		// Over budget, the stream ends before it reads more: what the
		// client has not sent yet stays with it.
		if err := r.cfg.Memory.Check(); err != nil {
			return r.consumeError(err)
		}
		msg := s.newMsg()
		err := recv(ss, &raw, msg)
		if errors.Is(err, io.EOF) {
			return ss.SendMsg(s.done)
		}
		if err != nil {
			return err
		}
		if n := s.identify(msg); n != nil {
			node = n
		} else if node == nil {
			return status.Errorf(codes.InvalidArgument, "the first %s has no identifier with a node: the sender is unknown", msg.ProtoReflect().Descriptor().Name())
		}
		r.m.messages.WithLabelValues(s.service).Inc()
		if err := consumeAdmitted(ctx, r, s, node, msg, len(raw.b)); err != nil {
			return err
		}
	}
}

// consumeAdmitted hands msg (n bytes received) on once the memory budget
// admits it, holding its share until the consumer is done.
func consumeAdmitted[M proto.Message](ctx context.Context, r *Receiver, s streamKind[M], node *corev3.Node, msg M, n int) error {
	release, err := r.cfg.Memory.Admit(int64(n))
	if err != nil {
		return r.consumeError(err)
	}
	defer release()
	if err := s.consume(ctx, node, msg); err != nil {
		return r.consumeError(err)
	}
	return nil
}

// streamAccessLogs reads batches of HTTP or TCP entries; the identifier
// (the node) arrives on the first message only.
func (r *Receiver) streamAccessLogs(ss grpc.ServerStream) error {
	return serveStream(r, ss, streamKind[*alsv3.StreamAccessLogsMessage]{
		service:  serviceALS,
		newMsg:   func() *alsv3.StreamAccessLogsMessage { return &alsv3.StreamAccessLogsMessage{} },
		identify: func(m *alsv3.StreamAccessLogsMessage) *corev3.Node { return m.GetIdentifier().GetNode() },
		consume:  r.consumeAccessLogs,
		done:     &alsv3.StreamAccessLogsResponse{},
	})
}

func (r *Receiver) consumeAccessLogs(ctx context.Context, node *corev3.Node, msg *alsv3.StreamAccessLogsMessage) error {
	switch logs := msg.GetLogEntries().(type) {
	case *alsv3.StreamAccessLogsMessage_HttpLogs:
		entries := logs.HttpLogs.GetLogEntry()
		r.m.entries.WithLabelValues("http").Add(float64(len(entries)))
		return r.pipeline.ConsumeHTTPLogs(ctx, node, entries)
	case *alsv3.StreamAccessLogsMessage_TcpLogs:
		entries := logs.TcpLogs.GetLogEntry()
		r.m.entries.WithLabelValues("tcp").Add(float64(len(entries)))
		return r.pipeline.ConsumeTCPLogs(ctx, node, entries)
	}
	return nil
}

// streamMetrics reads snapshots of Envoy stats; the identifier arrives on
// the first message only.
func (r *Receiver) streamMetrics(ss grpc.ServerStream) error {
	return serveStream(r, ss, streamKind[*metricsv3.StreamMetricsMessage]{
		service:  serviceMetrics,
		newMsg:   func() *metricsv3.StreamMetricsMessage { return &metricsv3.StreamMetricsMessage{} },
		identify: func(m *metricsv3.StreamMetricsMessage) *corev3.Node { return m.GetIdentifier().GetNode() },
		consume: func(ctx context.Context, node *corev3.Node, m *metricsv3.StreamMetricsMessage) error {
			return r.pipeline.ConsumeEnvoyMetrics(ctx, node, m.GetEnvoyMetrics())
		},
		done: &metricsv3.StreamMetricsResponse{},
	})
}
