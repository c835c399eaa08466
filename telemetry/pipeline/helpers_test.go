package pipeline

import (
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	accesslogdatav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/glassmesh/glassmesh/control/model"
	"github.com/glassmesh/glassmesh/control/naming"
	"github.com/glassmesh/glassmesh/telemetry/pipeline/pipelinetest"
	"github.com/glassmesh/glassmesh/telemetry/record"
)

// t0 is when every test request starts.
var t0 = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

func testMesh(tb testing.TB) *model.Mesh { return pipelinetest.Mesh(tb) }

// recorder records what the pipeline hands on.
type recorder = pipelinetest.Recorder

func newTestPipeline(tb testing.TB, cfg Config, consumers ...record.RequestConsumer) *Pipeline {
	tb.Helper()
	mesh := testMesh(tb)
	p, err := New(cfg, func() *model.Mesh { return mesh }, consumers, nil, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// proxylessNode is a proxyless app's node: an id and GENERATOR only.
func proxylessNode(ip, instance, ns string) *corev3.Node {
	md, err := structpb.NewStruct(map[string]any{naming.NodeMetaGenerator: naming.GeneratorGRPC})
	if err != nil {
		panic(err)
	}
	return &corev3.Node{Id: naming.NodeID(ip, instance, ns), Metadata: md}
}

var (
	productpageNode = sidecar("10.0.0.1", "productpage-v1-7d9f8c-abcde", "default", "productpage-v1", map[string]any{"app": "productpage", "version": "v1"})
	reviewsV2Node   = sidecar("10.0.0.3", "reviews-v2-5b64f47f-xk2p9", "default", "reviews-v2", map[string]any{"app": "reviews", "version": "v2"})
)

// Peers as the pipeline labels the test mesh's workloads (principals
// unknown: set them with principal for mTLS).
var (
	productpage = record.Peer{Workload: "productpage-v1", Namespace: "default", App: "productpage", Version: "v1", Principal: "unknown", CanonicalService: "productpage", CanonicalRevision: "v1", Cluster: "Kubernetes"}
	reviewsV1   = record.Peer{Workload: "reviews-v1", Namespace: "default", App: "reviews", Version: "v1", Principal: "unknown", CanonicalService: "reviews", CanonicalRevision: "v1", Cluster: "Kubernetes"}
	reviewsV2   = record.Peer{Workload: "reviews-v2", Namespace: "default", App: "reviews", Version: "v2", Principal: "unknown", CanonicalService: "reviews", CanonicalRevision: "v2", Cluster: "Kubernetes"}
	ratings     = record.Peer{Workload: "ratings-v1", Namespace: "default", App: "ratings", Version: "v1", Principal: "unknown", CanonicalService: "ratings", CanonicalRevision: "v1", Cluster: "Kubernetes"}
	details     = record.Peer{Workload: "details-v1", Namespace: "shop", App: "details", Version: "unknown", Principal: "unknown", CanonicalService: "details", CanonicalRevision: "latest", Cluster: "Kubernetes"}
	nobody      = record.Peer{Workload: "unknown", Namespace: "unknown", App: "unknown", Version: "unknown", Principal: "unknown", CanonicalService: "unknown", CanonicalRevision: "latest", Cluster: "unknown"}
)

func principal(p record.Peer, id string) record.Peer {
	p.Principal = id
	return p
}

func ms(n int) *durationpb.Duration { return durationpb.New(time.Duration(n) * time.Millisecond) }

func mtls(local, peer string) *accesslogdatav3.TLSProperties {
	return &accesslogdatav3.TLSProperties{
		TlsVersion:                 accesslogdatav3.TLSProperties_TLSv1_3,
		LocalCertificateProperties: cert(local),
		PeerCertificateProperties:  cert(peer),
	}
}

// entry is an HTTP entry with the common fields every test sets.
type entry struct {
	cluster     string
	upstream    *corev3.Address
	downstream  *corev3.Address
	tls         *accesslogdatav3.TLSProperties
	flags       *accesslogdatav3.ResponseFlags
	authority   string
	headers     map[string]string
	code        uint32 // 0: no response
	respHeaders map[string]string
	trailers    map[string]string
	reqBytes    [2]uint64 // headers, body
	respBytes   [2]uint64
	durationMS  int
}

func (e entry) build() *accesslogdatav3.HTTPAccessLogEntry {
	out := &accesslogdatav3.HTTPAccessLogEntry{
		CommonProperties: &accesslogdatav3.AccessLogCommon{
			StartTime:                  timestamppb.New(t0),
			UpstreamCluster:            e.cluster,
			UpstreamRemoteAddress:      e.upstream,
			DownstreamRemoteAddress:    e.downstream,
			TlsProperties:              e.tls,
			ResponseFlags:              e.flags,
			TimeToLastDownstreamTxByte: ms(e.durationMS),
		},
		ProtocolVersion: accesslogdatav3.HTTPAccessLogEntry_HTTP2,
		Request: &accesslogdatav3.HTTPRequestProperties{
			RequestMethod:       corev3.RequestMethod_POST,
			Authority:           e.authority,
			Path:                "/svc/Method",
			RequestHeaders:      e.headers,
			RequestHeadersBytes: e.reqBytes[0],
			RequestBodyBytes:    e.reqBytes[1],
		},
		Response: &accesslogdatav3.HTTPResponseProperties{
			ResponseHeaders:      e.respHeaders,
			ResponseTrailers:     e.trailers,
			ResponseHeadersBytes: e.respBytes[0],
			ResponseBodyBytes:    e.respBytes[1],
		},
	}
	if e.code != 0 {
		out.Response.ResponseCode = wrapperspb.UInt32(e.code)
	}
	return out
}

var (
	sidecar = pipelinetest.Sidecar
	addr    = pipelinetest.Addr
	cert    = pipelinetest.Cert
)
