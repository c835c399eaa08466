package query

import (
	"context"
	"errors"
	"iter"
	"log/slog"

	"go.opentelemetry.io/collector/pdata/ptrace"
	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/glassmesh/glassmesh/tracing/query/jaegerpb/storagev2"
	"github.com/glassmesh/glassmesh/tracing/store"
)

// StorageGRPC serves Jaeger's remote storage v2 API (jaeger.storage.v2
// TraceReader, DependencyReader and Capabilities) over a store.Reader, so
// a stock Jaeger v2 can use glassmesh as its storage: its "grpc" storage
// backend reads here and writes over OTLP, which --grpc-addr also serves.
// In Jaeger v2's config that is
//
//	extensions:
//	  jaeger_storage:
//	    backends:
//	      glassmesh:
//	        grpc:
//	          endpoint: glassmesh:15010
//	          tls: {insecure: true}
//
// Streamed traces are cut into messages under 3 MiB, below grpc-go's
// default 4 MiB receive limit, which Jaeger's client keeps (only a single
// span larger than that goes over it).
type StorageGRPC struct {
	r       store.Reader
	logger  *slog.Logger
	rawSend bool // the codec sends encodedTraces (see rawSendWorks)
}

// NewStorageGRPC returns the remote storage API reading r; a nil logger
// discards.
func NewStorageGRPC(r store.Reader, logger *slog.Logger) *StorageGRPC {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &StorageGRPC{r: r, logger: logger, rawSend: rawSendWorks()}
}

// RegisterGRPC registers TraceReader, DependencyReader and Capabilities on
// s; cmd calls it for the --grpc-addr server.
func (g *StorageGRPC) RegisterGRPC(s *grpc.Server) {
	storagev2.RegisterTraceReaderServer(s, &traceReaderServer{g: g})
	storagev2.RegisterDependencyReaderServer(s, &dependencyReaderServer{g: g})
	storagev2.RegisterCapabilitiesServer(s, capabilitiesServer{})
}

// status turns an error into the gRPC status the client gets: a bad
// argument is InvalidArgument with its reason, a cancelled or expired
// context its own code, an unavailable shared store Unavailable, anything
// else Internal (and logged).
func (g *StorageGRPC) status(rpc string, err error) error {
	var bad *badArgument
	switch {
	case errors.As(err, &bad):
		return invalidArgumentStatus(bad).Err()
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return status.FromContextError(err).Err()
	case errors.Is(err, store.ErrUnavailable):
		g.logger.Warn("jaeger remote storage read failed", "rpc", rpc, "err", err)
		return status.Errorf(codes.Unavailable, "%s: %v", rpc, err)
	}
	if _, ok := status.FromError(err); ok {
		return err // the transport's own status, e.g. from a failed Send
	}
	g.logger.Error("jaeger remote storage read failed", "rpc", rpc, "err", err)
	return status.Errorf(codes.Internal, "%s: %v", rpc, err)
}

// sendTraces streams every chunk of every trace seq yields, one message
// per (part of a) chunk, so no message mixes two traces.
func (g *StorageGRPC) sendTraces(rpc string, seq iter.Seq2[[]ptrace.Traces, error], stream grpc.ServerStream) error {
	for chunks, err := range seq {
		if err != nil {
			return g.status(rpc, err)
		}
		for _, td := range chunks {
			for _, part := range messageParts(td) {
				msg, err := g.message(part)
				if err != nil {
					return g.status(rpc, err)
				}
				if err := stream.SendMsg(msg); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// message is td as the TracesData message to send: its encoding when the
// codec sends that as is, else the generated message.
func (g *StorageGRPC) message(td ptrace.Traces) (any, error) {
	if g.rawSend {
		b, err := encodeTraces(td)
		return encodedTraces(b), err
	}
	return toTracesData(td)
}

// traceReaderServer is jaeger.storage.v2.TraceReader. FindSpans and
// FindTraceSummaries stay UNIMPLEMENTED, which Jaeger reads as "not
// supported" and works around (capabilities say span_search is false).
type traceReaderServer struct {
	storagev2.UnimplementedTraceReaderServer
	g *StorageGRPC
}

// GetTraces streams the traces asked for; missing ones are skipped, so
// none found is an empty stream, as the proto says.
func (s *traceReaderServer) GetTraces(req *storagev2.GetTracesRequest, stream grpc.ServerStreamingServer[tracev1.TracesData]) error {
	reqs, err := traceRequests(req.GetQuery())
	if err != nil {
		return s.g.status("GetTraces", err)
	}
	if len(reqs) == 0 {
		return nil
	}
	return s.g.sendTraces("GetTraces", s.g.r.GetTraces(stream.Context(), reqs...), stream)
}

// GetServices lists the services that have spans.
func (s *traceReaderServer) GetServices(ctx context.Context, _ *storagev2.GetServicesRequest) (*storagev2.GetServicesResponse, error) {
	svcs, err := s.g.r.Services(ctx)
	if err != nil {
		return nil, s.g.status("GetServices", err)
	}
	return &storagev2.GetServicesResponse{Services: svcs}, nil
}

// GetOperations lists a service's span names, of one kind when span_kind
// is given (any case, or OTLP's SPAN_KIND_* spelling); the service is
// required.
func (s *traceReaderServer) GetOperations(ctx context.Context, req *storagev2.GetOperationsRequest) (*storagev2.GetOperationsResponse, error) {
	if req.GetService() == "" {
		return nil, s.g.status("GetOperations", badArg("service", "is required"))
	}
	kind, err := spanKind(req.GetSpanKind())
	if err != nil {
		return nil, s.g.status("GetOperations", err)
	}
	ops, err := s.g.r.Operations(ctx, store.OperationQuery{Service: req.GetService(), SpanKind: kind})
	if err != nil {
		return nil, s.g.status("GetOperations", err)
	}
	resp := &storagev2.GetOperationsResponse{Operations: make([]*storagev2.Operation, len(ops))}
	for i, op := range ops {
		resp.Operations[i] = &storagev2.Operation{Name: op.Name, SpanKind: op.SpanKind}
	}
	return resp, nil
}

// FindTraces streams the traces matching the query, newest first, at most
// search_depth (default 100) of them.
func (s *traceReaderServer) FindTraces(req *storagev2.FindTracesRequest, stream grpc.ServerStreamingServer[tracev1.TracesData]) error {
	tq, err := traceQuery(req.GetQuery(), false)
	if err != nil {
		return s.g.status("FindTraces", err)
	}
	return s.g.sendTraces("FindTraces", s.g.r.FindTraces(stream.Context(), tq), stream)
}

// FindTraceIDs answers the ids of the traces FindTraces would stream, each
// with the start of its newest matching span as the start hint (a bound
// that GetTraces here finds the trace within).
func (s *traceReaderServer) FindTraceIDs(ctx context.Context, req *storagev2.FindTraceIDsRequest) (*storagev2.FindTraceIDsResponse, error) {
	tq, err := traceQuery(req.GetQuery(), true)
	if err != nil {
		return nil, s.g.status("FindTraceIDs", err)
	}
	resp := &storagev2.FindTraceIDsResponse{TraceIds: []*storagev2.FoundTraceID{}}
	for found, err := range s.g.r.FindTraceIDs(ctx, tq) {
		if err != nil {
			return nil, s.g.status("FindTraceIDs", err)
		}
		for _, f := range found {
			id := &storagev2.FoundTraceID{TraceId: f.TraceID[:]}
			if !f.Start.IsZero() {
				id.Start = timestamppb.New(f.Start)
			}
			resp.TraceIds = append(resp.TraceIds, id)
		}
	}
	return resp, nil
}

// dependencyReaderServer is jaeger.storage.v2.DependencyReader.
type dependencyReaderServer struct {
	storagev2.UnimplementedDependencyReaderServer
	g *StorageGRPC
}

// GetDependencies lists the calls between services that started in
// [start_time, end_time); both bounds are required.
func (s *dependencyReaderServer) GetDependencies(ctx context.Context, req *storagev2.GetDependenciesRequest) (*storagev2.GetDependenciesResponse, error) {
	start, end, err := dependencyWindow(req)
	if err != nil {
		return nil, s.g.status("GetDependencies", err)
	}
	deps, err := s.g.r.Dependencies(ctx, start, end)
	if err != nil {
		return nil, s.g.status("GetDependencies", err)
	}
	resp := &storagev2.GetDependenciesResponse{Dependencies: make([]*storagev2.Dependency, len(deps))}
	for i, d := range deps {
		resp.Dependencies[i] = &storagev2.Dependency{Parent: d.Parent, Child: d.Child, CallCount: d.CallCount}
	}
	return resp, nil
}

// capabilitiesServer is jaeger.storage.v2.Capabilities: what the store's
// search can do, so Jaeger offers (or not) what depends on it.
type capabilitiesServer struct {
	storagev2.UnimplementedCapabilitiesServer
}

// GetCapabilities reports that a search may leave the service out and that
// every condition must hold on one span (store.TraceQuery's contract);
// structured filters, pagination and span search are not offered.
func (capabilitiesServer) GetCapabilities(context.Context, *storagev2.GetCapabilitiesRequest) (*storagev2.GetCapabilitiesResponse, error) {
	return &storagev2.GetCapabilitiesResponse{Search: &storagev2.SearchCapabilities{
		WithoutServiceName:  true,
		SameSpanConjunction: true,
	}}, nil
}
