package receiver

import (
	"context"

	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// OTLP service and method names (opentelemetry-proto).
const (
	otlpTraceService  = "opentelemetry.proto.collector.trace.v1.TraceService"
	otlpMetricService = "opentelemetry.proto.collector.metrics.v1.MetricsService"
)

// RegisterOTLPMetricsGRPC registers an OTLP metrics service on s so that a
// malformed request ends with INVALID_ARGUMENT and the decoder's reason
// (pmetricotlp.RegisterGRPCServer leaves decoding to grpc-go, which answers
// INTERNAL before any handler runs).
func RegisterOTLPMetricsGRPC(s *grpc.Server, srv pmetricotlp.GRPCServer) {
	registerOTLP(s, otlpMetricService, "metrics", pmetricotlp.NewExportRequest,
		func(ctx context.Context, req pmetricotlp.ExportRequest, _ []byte) (pmetricotlp.ExportResponse, error) {
			return srv.Export(ctx, req)
		})
}

// registerOTLPTraces is RegisterOTLPMetricsGRPC for the trace service; the
// request's bytes go along with it, so the store need not encode it again.
func registerOTLPTraces(s *grpc.Server, export func(context.Context, ptraceotlp.ExportRequest, []byte) (ptraceotlp.ExportResponse, error)) {
	registerOTLP(s, otlpTraceService, "traces", ptraceotlp.NewExportRequest, export)
}

// otlpRequest and otlpResponse are pdata's OTLP export messages.
type (
	otlpRequest  interface{ UnmarshalProto([]byte) error }
	otlpResponse interface{ MarshalProto() ([]byte, error) }
)

// registerOTLP decodes service/Export requests itself and hands them to
// export with their bytes (valid during the call), answering
// INVALID_ARGUMENT for bytes that are no request.
func registerOTLP[Req otlpRequest, Resp otlpResponse](s *grpc.Server, service, what string,
	newReq func() Req, export func(context.Context, Req, []byte) (Resp, error)) {
	registerRawUnary(s, service, func(ctx context.Context, body []byte) ([]byte, error) {
		req := newReq()
		if err := req.UnmarshalProto(body); err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "malformed OTLP %s request: %v", what, err)
		}
		resp, err := export(ctx, req, body)
		if err != nil {
			return nil, err
		}
		return resp.MarshalProto()
	})
}

// registerRawUnary registers service/Export taking and answering raw bytes.
func registerRawUnary(s *grpc.Server, service string, export func(context.Context, []byte) ([]byte, error)) {
	s.RegisterService(&grpc.ServiceDesc{
		ServiceName: service,
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{{
			MethodName: "Export",
			Handler: func(_ any, ctx context.Context, dec func(any) error, ic grpc.UnaryServerInterceptor) (any, error) {
				in := new(rawMessage)
				if err := dec(in); err != nil {
					return nil, err
				}
				call := func(ctx context.Context, req any) (any, error) {
					out, err := export(ctx, req.(*rawMessage).b)
					if err != nil {
						return nil, err
					}
					return &rawMessage{b: out}, nil
				}
				if ic == nil {
					return call(ctx, in)
				}
				return ic(ctx, in, &grpc.UnaryServerInfo{FullMethod: "/" + service + "/Export"}, call)
			},
		}},
	}, struct{}{})
}
