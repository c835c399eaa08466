package receiver

import (
	"net"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	accesslogdatav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/glassmesh/glassmesh/control/model"
	"github.com/glassmesh/glassmesh/telemetry/pipeline"
	"github.com/glassmesh/glassmesh/telemetry/pipeline/pipelinetest"
	"github.com/glassmesh/glassmesh/telemetry/record"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// t0 is when every test request starts.
var t0 = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

// recorder records what the pipeline hands on.
type recorder = pipelinetest.Recorder

// failing is a recorder refusing every batch with err.
func failing(err error) *recorder {
	r := &recorder{}
	r.Fail(err)
	return r
}

func testMesh(tb testing.TB) *model.Mesh { return pipelinetest.Mesh(tb) }

func newPipeline(tb testing.TB, cfg pipeline.Config, consumers ...record.RequestConsumer) *pipeline.Pipeline {
	tb.Helper()
	mesh := testMesh(tb)
	p, err := pipeline.New(cfg, func() *model.Mesh { return mesh }, consumers, nil, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// serve starts a receiver for p on 127.0.0.1:0 and returns a client
// connection to it; both stop at cleanup.
func serve(tb testing.TB, cfg Config, p Pipeline) *grpc.ClientConn {
	tb.Helper()
	r, err := New(cfg, p, nil, nil)
	if err != nil {
		tb.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	srv := grpc.NewServer()
	r.Register(srv)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(lis)
	}()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		_ = conn.Close()
		srv.Stop()
		<-done
	})
	return conn
}

// httpEntry is an access log entry with what every test entry has.
func httpEntry(cluster string, code uint32, mutate func(*accesslogdatav3.HTTPAccessLogEntry)) *accesslogdatav3.HTTPAccessLogEntry {
	e := &accesslogdatav3.HTTPAccessLogEntry{
		CommonProperties: &accesslogdatav3.AccessLogCommon{
			StartTime:                  timestamppb.New(t0),
			UpstreamCluster:            cluster,
			TimeToLastDownstreamTxByte: durationpb.New(10 * time.Millisecond),
		},
		ProtocolVersion: accesslogdatav3.HTTPAccessLogEntry_HTTP2,
		Request:         &accesslogdatav3.HTTPRequestProperties{RequestMethod: corev3.RequestMethod_POST, Path: "/x.Y/Z", RequestHeadersBytes: 100, RequestBodyBytes: 20},
		Response:        &accesslogdatav3.HTTPResponseProperties{ResponseHeadersBytes: 50, ResponseBodyBytes: 400},
	}
	if code != 0 {
		e.Response.ResponseCode = wrapperspb.UInt32(code)
	}
	if mutate != nil {
		mutate(e)
	}
	return e
}

var (
	sidecar = pipelinetest.Sidecar
	addr    = pipelinetest.Addr
	cert    = pipelinetest.Cert
)
