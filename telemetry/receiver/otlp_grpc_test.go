package receiver

import (
	"context"
	"net"
	"strings"
	"testing"

	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// countingMetrics is an OTLP metrics server that counts data points.
type countingMetrics struct {
	pmetricotlp.UnimplementedGRPCServer
	points int
}

func (c *countingMetrics) Export(_ context.Context, req pmetricotlp.ExportRequest) (pmetricotlp.ExportResponse, error) {
	c.points += req.Metrics().DataPointCount()
	return pmetricotlp.NewExportResponse(), nil
}

func TestOTLPGRPCMalformedIsInvalidArgument(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	metrics := &countingMetrics{}
	RegisterOTLPMetricsGRPC(s, metrics)
	go s.Serve(lis)
	t.Cleanup(s.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })

	t.Run("a well-formed request reaches the server", func(t *testing.T) {
		md := pmetric.NewMetrics()
		g := md.ResourceMetrics().AppendEmpty().ScopeMetrics().AppendEmpty().Metrics().AppendEmpty()
		g.SetName("up")
		g.SetEmptyGauge().DataPoints().AppendEmpty().SetDoubleValue(1)
		if _, err := pmetricotlp.NewGRPCClient(conn).Export(context.Background(), pmetricotlp.NewExportRequestFromMetrics(md)); err != nil {
			t.Fatal(err)
		}
		if metrics.points != 1 {
			t.Fatalf("server saw %d points, want 1", metrics.points)
		}
	})
	t.Run("garbage is INVALID_ARGUMENT with the decoder's reason", func(t *testing.T) {
		var out []byte
		err := conn.Invoke(context.Background(), "/"+otlpMetricService+"/Export", []byte{0x0a, 0x7f, 0x01}, &out, grpc.ForceCodec(rawCodec{}))
		if st := status.Convert(err); st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), "malformed OTLP metrics") {
			t.Fatalf("got %v, want INVALID_ARGUMENT", err)
		}
	})
}

var _ ptraceotlp.GRPCServer = (*otlpGRPC)(nil)
