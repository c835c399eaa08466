package receiver

import (
	"context"

	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/glassmesh/glassmesh/telemetry/admission"
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
	registerOTLPMetrics(s, nil, srv)
}

// registerOTLPMetrics is RegisterOTLPMetricsGRPC with each request
// admitted by mem before it is decoded.
func registerOTLPMetrics(s *grpc.Server, mem *admission.Budget, srv pmetricotlp.GRPCServer) {
	registerOTLP(s, mem, otlpMetricService, "metrics", pmetricotlp.NewExportRequest,
		func(ctx context.Context, req pmetricotlp.ExportRequest, _ []byte) (pmetricotlp.ExportResponse, error) {
			return srv.Export(ctx, req)
		})
}

// registerOTLPTraces is RegisterOTLPMetricsGRPC for the trace service; the
// request's bytes go along with it, so the store need not encode it again.
func registerOTLPTraces(s *grpc.Server, mem *admission.Budget, export func(context.Context, ptraceotlp.ExportRequest, []byte) (ptraceotlp.ExportResponse, error)) {
	registerOTLP(s, mem, otlpTraceService, "traces", ptraceotlp.NewExportRequest, export)
}

// otlpRequest and otlpResponse are pdata's OTLP export messages.
type (
	otlpRequest  interface{ UnmarshalProto([]byte) error }
	otlpResponse interface{ MarshalProto() ([]byte, error) }
)

// registerOTLP decodes service/Export requests itself and hands them to
// export with their bytes (valid during the call), answering
// INVALID_ARGUMENT for bytes that are no request. mem admits each request
// before it is decoded (the decoded form takes several times its bytes).
func registerOTLP[Req otlpRequest, Resp otlpResponse](s *grpc.Server, mem *admission.Budget, service, what string,
	newReq func() Req, export func(context.Context, Req, []byte) (Resp, error)) {
	registerRawUnary(s, service, func(ctx context.Context, body []byte) ([]byte, error) {
		release, err := admitGRPC(mem, len(body))
		if err != nil {
			return nil, err
		}
		defer release()
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
