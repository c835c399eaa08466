package grpcreport

import (
	"context"
	"fmt"
	"io"
	"net"
	"sort"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/glassmesh/glassmesh/control/model"
	"github.com/glassmesh/glassmesh/telemetry/pipeline"
	"github.com/glassmesh/glassmesh/telemetry/pipeline/pipelinetest"
	"github.com/glassmesh/glassmesh/telemetry/receiver"
	"github.com/glassmesh/glassmesh/telemetry/record"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testService answers the interop TestService's calls of every kind.
type testService struct {
	testgrpc.UnimplementedTestServiceServer
}

func (testService) UnaryCall(_ context.Context, req *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	if c := req.GetResponseStatus().GetCode(); c != 0 {
		return nil, status.Error(codes.Code(c), req.GetResponseStatus().GetMessage())
	}
	return &testgrpc.SimpleResponse{Payload: &testgrpc.Payload{Body: make([]byte, req.GetResponseSize())}}, nil
}

func (testService) StreamingOutputCall(req *testgrpc.StreamingOutputCallRequest, s grpc.ServerStreamingServer[testgrpc.StreamingOutputCallResponse]) error {
	for _, p := range req.GetResponseParameters() {
		if err := s.Send(&testgrpc.StreamingOutputCallResponse{Payload: &testgrpc.Payload{Body: make([]byte, p.GetSize())}}); err != nil {
			return err
		}
	}
	return nil
}

func (testService) StreamingInputCall(s grpc.ClientStreamingServer[testgrpc.StreamingInputCallRequest, testgrpc.StreamingInputCallResponse]) error {
	total := 0
	for {
		req, err := s.Recv()
		if err == io.EOF {
			return s.SendAndClose(&testgrpc.StreamingInputCallResponse{AggregatedPayloadSize: int32(total)})
		}
		if err != nil {
			return err
		}
		total += len(req.GetPayload().GetBody())
	}
}

func (testService) FullDuplexCall(s grpc.BidiStreamingServer[testgrpc.StreamingOutputCallRequest, testgrpc.StreamingOutputCallResponse]) error {
	for {
		req, err := s.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := s.Send(&testgrpc.StreamingOutputCallResponse{Payload: req.GetPayload()}); err != nil {
			return err
		}
	}
}

// meshWith is a mesh where productpage calls reviews and both apps run on
// 127.0.0.1, reviews-v1 on appPort.
func meshWith(t *testing.T, appPort int) *model.Mesh {
	t.Helper()
	yaml := fmt.Sprintf(`apiVersion: glassmesh.io/v1alpha1
kind: Service
metadata: {name: productpage, namespace: default}
spec: {ports: [{name: http, port: 9080, protocol: HTTP}], selector: {app: productpage}}
---
apiVersion: glassmesh.io/v1alpha1
kind: Service
metadata: {name: reviews, namespace: default}
spec: {ports: [{name: grpc, port: 9080, protocol: GRPC}], selector: {app: reviews}}
---
apiVersion: glassmesh.io/v1alpha1
kind: Workload
metadata: {name: productpage-v1, namespace: default, labels: {app: productpage, version: v1}}
spec: {serviceAccount: productpage, endpoints: [{address: 127.0.0.1, ports: {http: 19080}}]}
---
apiVersion: glassmesh.io/v1alpha1
kind: Workload
metadata: {name: reviews-v1, namespace: default, labels: {app: reviews, version: v1}}
spec: {serviceAccount: reviews, endpoints: [{address: 127.0.0.1, ports: {grpc: %d}}]}
`, appPort)
	objs, diags := model.Parse("mesh.yaml", []byte(yaml))
	mesh, errs, _ := model.Validate(objs)
	if len(diags)+len(errs) > 0 {
		t.Fatal(diags, errs)
	}
	return mesh
}

// startALS runs glassmesh's access log service (receiver and pipeline) on
// lis, recording the Requests it produces.
func startALS(t *testing.T, lis net.Listener, mesh *model.Mesh) *pipelinetest.Recorder {
	t.Helper()
	rec := &pipelinetest.Recorder{}
	startALSWith(t, lis, mesh, rec, receiver.Config{})
	return rec
}

func startALSWith(t *testing.T, lis net.Listener, mesh *model.Mesh, rec *pipelinetest.Recorder, cfg receiver.Config) {
	t.Helper()
	p, err := pipeline.New(pipeline.Config{}, func() *model.Mesh { return mesh }, []record.RequestConsumer{rec}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := receiver.New(cfg, p, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	r.Register(srv)
	serveOn(t, srv, lis)
}

func serveOn(t *testing.T, srv *grpc.Server, lis net.Listener) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(lis)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-done
	})
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return lis
}

func newReporter(t *testing.T, target, workload, app string, mutate func(*Config)) *Reporter {
	t.Helper()
	cfg := Config{
		Target: target, IP: "127.0.0.1", Instance: workload, Namespace: "default", Workload: workload,
		Labels: map[string]string{"app": app, "version": "v1"}, FlushInterval: 20 * time.Millisecond,
	}
	if mutate != nil {
		mutate(&cfg)
	}
	r, err := NewReporter(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// startApp serves the test service on lis, reporting through rep (nil: not
// reporting).
func startApp(t *testing.T, lis net.Listener, rep *Reporter) {
	t.Helper()
	var opts []grpc.ServerOption
	if rep != nil {
		opts = append(opts, grpc.ChainUnaryInterceptor(rep.UnaryServerInterceptor()), grpc.ChainStreamInterceptor(rep.StreamServerInterceptor()))
	}
	srv := grpc.NewServer(opts...)
	testgrpc.RegisterTestServiceServer(srv, testService{})
	serveOn(t, srv, lis)
}

// dialApp connects to the app at addr as a mesh client would name it, by
// its service, reporting through rep.
func dialApp(t *testing.T, addr string, rep *Reporter) testgrpc.TestServiceClient {
	t.Helper()
	conn, err := grpc.NewClient("passthrough:///reviews.default.svc.cluster.local:9080",
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		}),
		grpc.WithChainUnaryInterceptor(rep.UnaryClientInterceptor()),
		grpc.WithChainStreamInterceptor(rep.StreamClientInterceptor()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return testgrpc.NewTestServiceClient(conn)
}

func size(msgs ...proto.Message) uint64 {
	var n uint64
	for _, m := range msgs {
		n += uint64(proto.Size(m)) + grpcFrameHeader
	}
	return n
}

// exchange is one call of the test and the sizes both sides should report.
type exchange struct {
	code      codes.Code
	reqBytes  uint64
	respBytes uint64
	traceID   string
}

// callEveryKind makes a unary, a failing unary, a server-streaming, a
// client-streaming and a bidi call.
func callEveryKind(t *testing.T, c testgrpc.TestServiceClient) []exchange {
	t.Helper()
	return []exchange{callUnary(t, c), callFailing(t, c), callServerStream(t, c), callClientStream(t, c), callBidi(t, c)}
}

func callUnary(t *testing.T, c testgrpc.TestServiceClient) exchange {
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	ctx := metadata.AppendToOutgoingContext(context.Background(), "traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
	req := &testgrpc.SimpleRequest{ResponseSize: 300, Payload: &testgrpc.Payload{Body: make([]byte, 40)}}
	resp, err := c.UnaryCall(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	return exchange{codes.OK, size(req), size(resp), traceID}
}

func callFailing(t *testing.T, c testgrpc.TestServiceClient) exchange {
	bad := &testgrpc.SimpleRequest{ResponseStatus: &testgrpc.EchoStatus{Code: int32(codes.NotFound), Message: "no such review"}}
	if _, err := c.UnaryCall(context.Background(), bad); status.Code(err) != codes.NotFound {
		t.Fatalf("got %v, want NotFound", err)
	}
	return exchange{codes.NotFound, size(bad), 0, ""}
}

func callServerStream(t *testing.T, c testgrpc.TestServiceClient) exchange {
	so := &testgrpc.StreamingOutputCallRequest{ResponseParameters: []*testgrpc.ResponseParameters{{Size: 10}, {Size: 20}, {Size: 30}}}
	ss, err := c.StreamingOutputCall(context.Background(), so)
	if err != nil {
		t.Fatal(err)
	}
	var got []proto.Message
	for {
		m, err := ss.Recv()
		if err == io.EOF {
			return exchange{codes.OK, size(so), size(got...), ""}
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, m)
	}
}

func callClientStream(t *testing.T, c testgrpc.TestServiceClient) exchange {
	cs, err := c.StreamingInputCall(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var sent []proto.Message
	for _, n := range []int{7, 9} {
		m := &testgrpc.StreamingInputCallRequest{Payload: &testgrpc.Payload{Body: make([]byte, n)}}
		if err := cs.Send(m); err != nil {
			t.Fatal(err)
		}
		sent = append(sent, m)
	}
	agg, err := cs.CloseAndRecv()
	if err != nil {
		t.Fatal(err)
	}
	return exchange{codes.OK, size(sent...), size(agg), ""}
}

func callBidi(t *testing.T, c testgrpc.TestServiceClient) exchange {
	bidi, err := c.FullDuplexCall(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	echo := &testgrpc.StreamingOutputCallRequest{Payload: &testgrpc.Payload{Body: make([]byte, 5)}}
	if err := bidi.Send(echo); err != nil {
		t.Fatal(err)
	}
	back, err := bidi.Recv()
	if err != nil {
		t.Fatal(err)
	}
	_ = bidi.CloseSend()
	if _, err := bidi.Recv(); err != io.EOF {
		t.Fatalf("bidi ended with %v", err)
	}
	return exchange{codes.OK, size(echo), size(back), ""}
}

func TestBothSidesReportWithTheirWorkloads(t *testing.T) {
	alsLis, appLis := listen(t), listen(t)
	rec := startALS(t, alsLis, meshWith(t, appLis.Addr().(*net.TCPAddr).Port))
	server := newReporter(t, alsLis.Addr().String(), "reviews-v1", "reviews", nil)
	client := newReporter(t, alsLis.Addr().String(), "productpage-v1", "productpage", nil)
	startApp(t, appLis, server)
	calls := callEveryKind(t, dialApp(t, appLis.Addr().String(), client))

	// Close flushes and waits until glassmesh has handled every report.
	if err := client.Close(); err != nil {
		t.Fatal(err)
	}
	if err := server.Close(); err != nil {
		t.Fatal(err)
	}
	got := rec.Take()
	sort.SliceStable(got, func(i, j int) bool { return got[i].Reporter > got[j].Reporter }) // source first
	if len(got) != 2*len(calls) {
		t.Fatalf("got %d reports, want %d: %+v", len(got), 2*len(calls), got)
	}
	productpage := record.Peer{Workload: "productpage-v1", Namespace: "default", App: "productpage", Version: "v1", Principal: "unknown", CanonicalService: "productpage", CanonicalRevision: "v1", Cluster: "Kubernetes"}
	reviews := record.Peer{Workload: "reviews-v1", Namespace: "default", App: "reviews", Version: "v1", Principal: "unknown", CanonicalService: "reviews", CanonicalRevision: "v1", Cluster: "Kubernetes"}
	for i, r := range got {
		c := calls[i%len(calls)]
		want := record.Request{
			Time: r.Time, Duration: r.Duration, Reporter: "source", Source: productpage, Dest: reviews,
			DestinationService: "reviews.default.svc.cluster.local", DestinationServiceName: "reviews", DestinationServiceNamespace: "default",
			Protocol: "grpc", ResponseCode: 200, GRPCStatus: fmt.Sprint(int(c.code)), ResponseFlags: "-", ConnectionSecurityPolicy: "none",
			RequestBytes: c.reqBytes, ResponseBytes: c.respBytes, TraceID: c.traceID,
		}
		if i >= len(calls) {
			want.Reporter = "destination"
		}
		if r != want {
			t.Errorf("report %d:\ngot  %+v\nwant %+v", i, r, want)
		}
		if r.Duration <= 0 || time.Since(r.Time) > time.Minute {
			t.Errorf("report %d: duration %s at %s", i, r.Duration, r.Time)
		}
	}
	if s := client.Stats(); s.Sent != uint64(len(calls)) || s.Dropped != 0 {
		t.Errorf("client stats %+v", s)
	}
}

func TestCallsNeverBlockWhileGlassmeshIsDown(t *testing.T) {
	down := listen(t)
	target := down.Addr().String()
	_ = down.Close() // nothing listens there now
	appLis := listen(t)
	startApp(t, appLis, nil)
	client := newReporter(t, target, "productpage-v1", "productpage", func(c *Config) {
		c.BatchSize, c.QueueSize, c.CloseTimeout = 2, 3, 200*time.Millisecond
	})
	app := dialApp(t, appLis.Addr().String(), client)
	const calls = 50
	start := time.Now()
	for range calls {
		if _, err := app.UnaryCall(context.Background(), &testgrpc.SimpleRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("%d calls took %s", calls, d)
	}
	s := client.Stats()
	// At most a batch and a queue's worth wait; the rest are dropped.
	if s.Queued+s.Dropped != calls || s.Dropped < calls-2-3-1 || s.Sent != 0 {
		t.Errorf("stats %+v: want %d calls, at least %d dropped, none sent", s, calls, calls-6)
	}
	if err := client.Close(); err == nil {
		t.Error("Close reported no undelivered entries")
	}
	if s := client.Stats(); s.Unsent == 0 {
		t.Errorf("stats after Close %+v: want unsent entries", s)
	}
}

func TestReportsFlowOnceGlassmeshComesUp(t *testing.T) {
	reserved := listen(t)
	target := reserved.Addr().String()
	_ = reserved.Close()
	appLis := listen(t)
	startApp(t, appLis, nil)
	client := newReporter(t, target, "productpage-v1", "productpage", nil)
	app := dialApp(t, appLis.Addr().String(), client)
	for range 3 {
		if _, err := app.UnaryCall(context.Background(), &testgrpc.SimpleRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(100 * time.Millisecond) // let a connection attempt fail first
	lis, err := net.Listen("tcp", target)
	if err != nil {
		t.Skipf("the reserved port was taken meanwhile: %v", err)
	}
	rec := startALS(t, lis, meshWith(t, appLis.Addr().(*net.TCPAddr).Port))
	deadline := time.Now().Add(10 * time.Second)
	for rec.Len() < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("after 10s glassmesh has %d reports, stats %+v", rec.Len(), client.Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestPushBackIsHonoured(t *testing.T) {
	alsLis, appLis := listen(t), listen(t)
	rec := &pipelinetest.Recorder{}
	rec.Fail(record.ErrOverloaded)
	startALSWith(t, alsLis, meshWith(t, appLis.Addr().(*net.TCPAddr).Port), rec, receiver.Config{RetryAfter: 300 * time.Millisecond})
	startApp(t, appLis, nil)
	client := newReporter(t, alsLis.Addr().String(), "productpage-v1", "productpage", nil)
	app := dialApp(t, appLis.Addr().String(), client)
	call := func() {
		if _, err := app.UnaryCall(context.Background(), &testgrpc.SimpleRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	// The first batch goes out and is refused: the stream ends with
	// RESOURCE_EXHAUSTED and that batch is lost, as with Envoy (ALS has no
	// acknowledgements). The next one finds the stream ended and waits.
	call()
	waitUntil(t, func() bool { return client.Stats().Sent == 1 })
	time.Sleep(100 * time.Millisecond)
	pushedBack := time.Now()
	call()
	time.Sleep(100 * time.Millisecond)
	rec.Fail(nil)
	waitUntil(t, func() bool { return rec.Len() == 1 })
	if d := time.Since(pushedBack); d < 300*time.Millisecond {
		t.Errorf("delivered %s after the push-back, before the 300ms the server asked for", d)
	}
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
