package receiver

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	accesslogdatav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	alsv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/glassmesh/glassmesh/control/naming"
	"github.com/glassmesh/glassmesh/telemetry/pipeline"
	"github.com/glassmesh/glassmesh/telemetry/record"
)

const (
	spiffePage    = "spiffe://cluster.local/ns/default/sa/productpage"
	spiffeReviews = "spiffe://cluster.local/ns/default/sa/reviews"
	traceID       = "4bf92f3577b34da6a3ce929d0e0e4736"
)

var (
	productpageNode = sidecar("10.0.0.1", "productpage-v1-7d9f8c-abcde", "default", "productpage-v1", map[string]any{"app": "productpage", "version": "v1"})
	reviewsV2Node   = sidecar("10.0.0.3", "reviews-v2-5b64f47f-xk2p9", "default", "reviews-v2", map[string]any{"app": "reviews", "version": "v2"})

	productpage = record.Peer{Workload: "productpage-v1", Namespace: "default", App: "productpage", Version: "v1", Principal: "unknown", CanonicalService: "productpage", CanonicalRevision: "v1", Cluster: "Kubernetes"}
	reviewsV2   = record.Peer{Workload: "reviews-v2", Namespace: "default", App: "reviews", Version: "v2", Principal: "unknown", CanonicalService: "reviews", CanonicalRevision: "v2", Cluster: "Kubernetes"}
	ratings     = record.Peer{Workload: "ratings-v1", Namespace: "default", App: "ratings", Version: "v1", Principal: "unknown", CanonicalService: "ratings", CanonicalRevision: "v1", Cluster: "Kubernetes"}
	details     = record.Peer{Workload: "details-v1", Namespace: "shop", App: "details", Version: "unknown", Principal: "unknown", CanonicalService: "details", CanonicalRevision: "latest", Cluster: "Kubernetes"}
	nobody      = record.Peer{Workload: "unknown", Namespace: "unknown", App: "unknown", Version: "unknown", Principal: "unknown", CanonicalService: "unknown", CanonicalRevision: "latest", Cluster: "unknown"}
)

// sourceMessages is what productpage's sidecar streams: its outbound calls.
func sourceMessages() []*alsv3.StreamAccessLogsMessage {
	http := []*accesslogdatav3.HTTPAccessLogEntry{
		httpEntry("outbound|9080||reviews.default.svc.cluster.local", 200, func(e *accesslogdatav3.HTTPAccessLogEntry) {
			e.CommonProperties.UpstreamRemoteAddress = addr("10.0.0.3", 9080)
			e.Request.RequestHeaders = map[string]string{"traceparent": "00-" + traceID + "-00f067aa0ba902b7-01"}
			e.Response.ResponseTrailers = map[string]string{"grpc-status": "0"}
		}),
		httpEntry("outbound|9080||ratings.default.svc.cluster.local", 503, func(e *accesslogdatav3.HTTPAccessLogEntry) {
			e.CommonProperties.ResponseFlags = &accesslogdatav3.ResponseFlags{NoHealthyUpstream: true}
		}),
	}
	more := []*accesslogdatav3.HTTPAccessLogEntry{
		httpEntry("outbound|9080||details.shop.svc.cluster.local", 200, func(e *accesslogdatav3.HTTPAccessLogEntry) {
			e.CommonProperties.UpstreamRemoteAddress = addr("127.0.0.1", 19085)
		}),
	}
	tcp := []*accesslogdatav3.TCPAccessLogEntry{{
		CommonProperties: &accesslogdatav3.AccessLogCommon{
			StartTime:             timestamppb.New(t0),
			UpstreamCluster:       "outbound|3306||ratings.default.svc.cluster.local",
			UpstreamRemoteAddress: addr("127.0.0.1", 13306),
			AccessLogType:         accesslogdatav3.AccessLogType_TcpConnectionEnd,
		},
		ConnectionProperties: &accesslogdatav3.ConnectionProperties{SentBytes: 700, ReceivedBytes: 80},
	}}
	return []*alsv3.StreamAccessLogsMessage{
		{Identifier: &alsv3.StreamAccessLogsMessage_Identifier{Node: productpageNode, LogName: "glassmesh"}, LogEntries: httpLogs(http...)},
		{LogEntries: httpLogs(more...)},
		{LogEntries: &alsv3.StreamAccessLogsMessage_TcpLogs{TcpLogs: &alsv3.StreamAccessLogsMessage_TCPAccessLogEntries{LogEntry: tcp}}},
	}
}

// destinationMessages is what reviews-v2's sidecar streams: its inbound calls.
func destinationMessages() []*alsv3.StreamAccessLogsMessage {
	http := []*accesslogdatav3.HTTPAccessLogEntry{
		httpEntry("inbound|9080||", 200, func(e *accesslogdatav3.HTTPAccessLogEntry) {
			e.CommonProperties.DownstreamRemoteAddress = addr("10.0.0.1", 51000)
			e.CommonProperties.TlsProperties = &accesslogdatav3.TLSProperties{
				LocalCertificateProperties: cert(spiffeReviews), PeerCertificateProperties: cert(spiffePage),
			}
			e.Request.Authority = "reviews:9080"
			e.Request.RequestHeaders = map[string]string{"x-b3-traceid": "a3ce929d0e0e4736"}
			e.Response.ResponseTrailers = map[string]string{"grpc-status": "0"}
		}),
		httpEntry("inbound|9080||", 503, func(e *accesslogdatav3.HTTPAccessLogEntry) {
			e.CommonProperties.DownstreamRemoteAddress = addr("192.168.50.5", 40000)
			e.CommonProperties.ResponseFlags = &accesslogdatav3.ResponseFlags{UpstreamConnectionFailure: true, UpstreamRetryLimitExceeded: true}
			e.Response.ResponseHeaders = map[string]string{"grpc-status": "14"}
		}),
		httpEntry("inbound|9080||", 200, func(e *accesslogdatav3.HTTPAccessLogEntry) {
			e.CommonProperties.DownstreamRemoteAddress = addr("127.0.0.1", 40001)
			e.Request.RequestHeaders = map[string]string{naming.PeerHeader: naming.NodeID("127.0.0.1", "details-v1", "shop")}
			e.Response.ResponseTrailers = map[string]string{"grpc-status": "7"}
		}),
	}
	return []*alsv3.StreamAccessLogsMessage{
		{Identifier: &alsv3.StreamAccessLogsMessage_Identifier{Node: reviewsV2Node, LogName: "glassmesh"}, LogEntries: httpLogs(http...)},
	}
}

func httpLogs(entries ...*accesslogdatav3.HTTPAccessLogEntry) *alsv3.StreamAccessLogsMessage_HttpLogs {
	return &alsv3.StreamAccessLogsMessage_HttpLogs{HttpLogs: &alsv3.StreamAccessLogsMessage_HTTPAccessLogEntries{LogEntry: entries}}
}

// stream sends msgs on one ALS stream and returns how it ended.
func stream(ctx context.Context, conn *grpc.ClientConn, msgs []*alsv3.StreamAccessLogsMessage) error {
	s, err := alsv3.NewAccessLogServiceClient(conn).StreamAccessLogs(ctx)
	if err != nil {
		return err
	}
	for _, m := range msgs {
		if err := s.Send(m); err != nil {
			break // the server ended the stream; CloseAndRecv says why
		}
	}
	_, err = s.CloseAndRecv()
	return err
}

func TestAccessLogsOfTwoReportersBecomeRequests(t *testing.T) {
	rec := &recorder{}
	conn := serve(t, Config{}, newPipeline(t, pipeline.Config{}, rec))
	ctx := context.Background()
	if err := stream(ctx, conn, sourceMessages()); err != nil {
		t.Fatal(err)
	}
	if err := stream(ctx, conn, destinationMessages()); err != nil {
		t.Fatal(err)
	}
	reviews := service("reviews", "default")
	rt := service("ratings", "default")
	want := []record.Request{
		reviews(record.Request{Reporter: "source", Source: productpage, Dest: reviewsV2, Protocol: "grpc", ResponseCode: 200, GRPCStatus: "0", ResponseFlags: "-", ConnectionSecurityPolicy: "unknown", TraceID: traceID}),
		rt(record.Request{Reporter: "source", Source: productpage, Dest: nobody, Protocol: "grpc", ResponseCode: 503, GRPCStatus: "14", ResponseFlags: "UH", ConnectionSecurityPolicy: "unknown"}),
		service("details", "shop")(record.Request{Reporter: "source", Source: productpage, Dest: details, Protocol: "http", ResponseCode: 200, ResponseFlags: "-", ConnectionSecurityPolicy: "unknown"}),
		rt(record.Request{Reporter: "source", Source: productpage, Dest: ratings, Protocol: "tcp", ResponseFlags: "-", ConnectionSecurityPolicy: "unknown", TCPSentBytes: 700, TCPReceivedBytes: 80, TCPOpened: true, TCPClosed: true}),
		reviews(record.Request{
			Reporter: "destination", Source: withPrincipal(productpage, spiffePage), Dest: withPrincipal(reviewsV2, spiffeReviews),
			Protocol: "grpc", ResponseCode: 200, GRPCStatus: "0", ResponseFlags: "-", ConnectionSecurityPolicy: "mutual_tls", TraceID: "0000000000000000a3ce929d0e0e4736",
		}),
		reviews(record.Request{Reporter: "destination", Source: nobody, Dest: reviewsV2, Protocol: "grpc", ResponseCode: 503, GRPCStatus: "14", ResponseFlags: "UF,URX", ConnectionSecurityPolicy: "none"}),
		reviews(record.Request{Reporter: "destination", Source: details, Dest: reviewsV2, Protocol: "grpc", ResponseCode: 200, GRPCStatus: "7", ResponseFlags: "-", ConnectionSecurityPolicy: "none"}),
	}
	got := rec.Take()
	if len(got) != len(want) {
		t.Fatalf("got %d requests, want %d:\n%+v", len(got), len(want), got)
	}
	for i := range want {
		w := want[i]
		w.Time = t0
		if w.Protocol != "tcp" {
			w.Duration, w.RequestBytes, w.ResponseBytes = 10*time.Millisecond, 120, 450
		}
		if !reflect.DeepEqual(got[i], w) {
			t.Errorf("request %d:\ngot  %+v\nwant %+v", i, got[i], w)
		}
	}
}

func service(name, ns string) func(record.Request) record.Request {
	return func(r record.Request) record.Request {
		r.DestinationService = name + "." + ns + ".svc.cluster.local"
		r.DestinationServiceName, r.DestinationServiceNamespace = name, ns
		return r
	}
}

func withPrincipal(p record.Peer, id string) record.Peer {
	p.Principal = id
	return p
}

func TestStreamErrors(t *testing.T) {
	node := &alsv3.StreamAccessLogsMessage_Identifier{Node: productpageNode}
	entries := httpLogs(httpEntry("inbound|9080||", 200, nil))
	tests := []struct {
		name     string
		consumer *recorder
		cfg      Config
		msgs     []*alsv3.StreamAccessLogsMessage
		want     codes.Code
	}{
		{"a first message without identifier is INVALID_ARGUMENT", &recorder{}, Config{}, []*alsv3.StreamAccessLogsMessage{{LogEntries: entries}}, codes.InvalidArgument},
		{"an identifier without a node is INVALID_ARGUMENT", &recorder{}, Config{}, []*alsv3.StreamAccessLogsMessage{{Identifier: &alsv3.StreamAccessLogsMessage_Identifier{LogName: "x"}, LogEntries: entries}}, codes.InvalidArgument},
		{"an overloaded consumer is RESOURCE_EXHAUSTED with a retry delay", failing(fmt.Errorf("aggregator full: %w", record.ErrOverloaded)), Config{RetryAfter: 3 * time.Second}, []*alsv3.StreamAccessLogsMessage{{Identifier: node, LogEntries: entries}}, codes.ResourceExhausted},
		{"another consumer failure is INTERNAL", failing(errors.New("disk on fire")), Config{}, []*alsv3.StreamAccessLogsMessage{{Identifier: node, LogEntries: entries}}, codes.Internal},
		{"an identifier alone is fine", &recorder{}, Config{}, []*alsv3.StreamAccessLogsMessage{{Identifier: node}}, codes.OK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			conn := serve(t, tc.cfg, newPipeline(t, pipeline.Config{}, tc.consumer))
			err := stream(context.Background(), conn, tc.msgs)
			if got := status.Code(err); got != tc.want {
				t.Fatalf("got %v (%v), want %v", got, err, tc.want)
			}
			if tc.want == codes.ResourceExhausted {
				checkRetryInfo(t, err, 3*time.Second)
			}
		})
	}
}

func checkRetryInfo(t *testing.T, err error, want time.Duration) {
	t.Helper()
	for _, d := range status.Convert(err).Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			if got := ri.GetRetryDelay().AsDuration(); got != want {
				t.Errorf("retry delay %s, want %s", got, want)
			}
			return
		}
	}
	t.Errorf("%v carries no RetryInfo", err)
}

func TestStreamLimit(t *testing.T) {
	rec := &recorder{}
	conn := serve(t, Config{MaxStreams: 1}, newPipeline(t, pipeline.Config{}, rec))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	first, err := alsv3.NewAccessLogServiceClient(conn).StreamAccessLogs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Send(&alsv3.StreamAccessLogsMessage{
		Identifier: &alsv3.StreamAccessLogsMessage_Identifier{Node: productpageNode}, LogEntries: httpLogs(httpEntry("inbound|9080||", 200, nil)),
	}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return rec.Len() == 1 })
	err = stream(ctx, conn, destinationMessages())
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("a second stream got %v, want RESOURCE_EXHAUSTED", err)
	}
	if _, err := first.CloseAndRecv(); err != nil {
		t.Fatal(err)
	}
	// The slot is free again once the first stream ended.
	waitFor(t, func() bool { return stream(ctx, conn, destinationMessages()) == nil })
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
