package receiver

import (
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

// errNoIdentifier ends a stream whose first message does not say who sends.
func errNoIdentifier(message string) error {
	return status.Errorf(codes.InvalidArgument, "the first %s has no identifier with a node: the sender is unknown", message)
}

// streamAccessLogs reads batches of HTTP or TCP entries; the identifier
// (the node) arrives on the first message only.
func (r *Receiver) streamAccessLogs(stream grpc.ServerStream) (err error) {
	var node *corev3.Node
	defer func() { err = r.finish(serviceALS, node, err) }()
	release, err := r.admit(serviceALS)
	if err != nil {
		return err
	}
	defer release()
	ctx := stream.Context()
	var raw rawMessage
	for {
		msg := &alsv3.StreamAccessLogsMessage{}
		err := recv(stream, &raw, msg)
		if errors.Is(err, io.EOF) {
			return stream.SendMsg(&alsv3.StreamAccessLogsResponse{})
		}
		if err != nil {
			return err
		}
		if n := msg.GetIdentifier().GetNode(); n != nil {
			node = n
		} else if node == nil {
			return errNoIdentifier("StreamAccessLogsMessage")
		}
		r.m.messages.WithLabelValues(serviceALS).Inc()
		switch logs := msg.GetLogEntries().(type) {
		case *alsv3.StreamAccessLogsMessage_HttpLogs:
			entries := logs.HttpLogs.GetLogEntry()
			r.m.entries.WithLabelValues("http").Add(float64(len(entries)))
			err = r.pipeline.ConsumeHTTPLogs(ctx, node, entries)
		case *alsv3.StreamAccessLogsMessage_TcpLogs:
			entries := logs.TcpLogs.GetLogEntry()
			r.m.entries.WithLabelValues("tcp").Add(float64(len(entries)))
			err = r.pipeline.ConsumeTCPLogs(ctx, node, entries)
		}
		if err != nil {
			return r.consumeError(err)
		}
	}
}

// streamMetrics reads snapshots of Envoy stats; the identifier arrives on
// the first message only.
func (r *Receiver) streamMetrics(stream grpc.ServerStream) (err error) {
	var node *corev3.Node
	defer func() { err = r.finish(serviceMetrics, node, err) }()
	release, err := r.admit(serviceMetrics)
	if err != nil {
		return err
	}
	defer release()
	ctx := stream.Context()
	var raw rawMessage
	for {
		msg := &metricsv3.StreamMetricsMessage{}
		err := recv(stream, &raw, msg)
		if errors.Is(err, io.EOF) {
			return stream.SendMsg(&metricsv3.StreamMetricsResponse{})
		}
		if err != nil {
			return err
		}
		if n := msg.GetIdentifier().GetNode(); n != nil {
			node = n
		} else if node == nil {
			return errNoIdentifier("StreamMetricsMessage")
		}
		r.m.messages.WithLabelValues(serviceMetrics).Inc()
		if err := r.pipeline.ConsumeEnvoyMetrics(ctx, node, msg.GetEnvoyMetrics()); err != nil {
			return r.consumeError(err)
		}
	}
}
