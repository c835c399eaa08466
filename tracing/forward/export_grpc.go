package forward

import (
	"context"
	"fmt"

	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// GRPCExporter sends spans over OTLP/gRPC (without TLS) to one target.
type GRPCExporter struct {
	target string
	conn   *grpc.ClientConn
	client ptraceotlp.GRPCClient
}

// NewGRPCExporter returns an exporter for host:port; it connects lazily.
func NewGRPCExporter(target string) (*GRPCExporter, error) {
	conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", target, err)
	}
	return &GRPCExporter{target: target, conn: conn, client: ptraceotlp.NewGRPCClient(conn)}, nil
}

// Export implements Exporter. The codes the OTLP specification calls
// retryable are transient (RESOURCE_EXHAUSTED only with RetryInfo, whose
// delay is honoured), and so are INTERNAL and UNKNOWN (a server-side
// failure, like HTTP 5xx); the others are permanent, and so is a partial
// success with rejected spans.
func (e *GRPCExporter) Export(ctx context.Context, td ptrace.Traces) error {
	resp, err := e.client.Export(ctx, ptraceotlp.NewExportRequestFromTraces(td))
	if err == nil {
		ps := resp.PartialSuccess()
		if ps.RejectedSpans() == 0 {
			return nil
		}
		return &ExportError{Err: fmt.Errorf("%s rejected %d spans: %s", e.target, ps.RejectedSpans(), ps.ErrorMessage()),
			Permanent: true, Rejected: ps.RejectedSpans()}
	}
	st := status.Convert(err)
	xe := &ExportError{Err: fmt.Errorf("%s: %w", e.target, err)}
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok && ri.GetRetryDelay() != nil {
			xe.RetryAfter = ri.GetRetryDelay().AsDuration()
		}
	}
	switch st.Code() {
	case codes.Canceled, codes.DeadlineExceeded, codes.Aborted, codes.OutOfRange,
		codes.Unavailable, codes.DataLoss, codes.Internal, codes.Unknown:
	case codes.ResourceExhausted:
		// Only with RetryInfo is it "over capacity, come back"; without, it
		// is a message over the server's limit, which no retry fixes.
		xe.Permanent = xe.RetryAfter == 0
	default:
		xe.Permanent = true
	}
	return xe
}

// Close closes the connection.
func (e *GRPCExporter) Close() error { return e.conn.Close() }
