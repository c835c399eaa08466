package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	accesslogdatav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	alsv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/glassmesh/glassmesh/control/naming"
)

// A four-service mesh on distinct addresses, so the registry can name peers.
const telemetryMesh = `apiVersion: glassmesh.io/v1alpha1
kind: Service
metadata: {name: productpage}
spec: {ports: [{name: http, port: 9080, protocol: HTTP}], selector: {app: productpage}}
---
apiVersion: glassmesh.io/v1alpha1
kind: Service
metadata: {name: reviews}
spec: {ports: [{name: grpc, port: 9080, protocol: GRPC}], selector: {app: reviews}}
---
apiVersion: glassmesh.io/v1alpha1
kind: Service
metadata: {name: ratings}
spec: {ports: [{name: grpc, port: 9080, protocol: GRPC}], selector: {app: ratings}}
---
apiVersion: glassmesh.io/v1alpha1
kind: Service
metadata: {name: details}
spec: {ports: [{name: http, port: 9080, protocol: HTTP}], selector: {app: details}}
---
apiVersion: glassmesh.io/v1alpha1
kind: Workload
metadata: {name: productpage-v1, labels: {app: productpage, version: v1}}
spec: {serviceAccount: productpage, endpoints: [{address: 10.1.0.1, ports: {http: 9080}}]}
---
apiVersion: glassmesh.io/v1alpha1
kind: Workload
metadata: {name: reviews-v1, labels: {app: reviews, version: v1}}
spec: {serviceAccount: reviews, endpoints: [{address: 10.1.0.2, ports: {grpc: 9080}}]}
---
apiVersion: glassmesh.io/v1alpha1
kind: Workload
metadata: {name: ratings-v1, labels: {app: ratings, version: v1}}
spec: {serviceAccount: ratings, endpoints: [{address: 10.1.0.3, ports: {grpc: 9080}}]}
---
apiVersion: glassmesh.io/v1alpha1
kind: Workload
metadata: {name: details-v1, labels: {app: details, version: v1}}
spec: {serviceAccount: details, endpoints: [{address: 10.1.0.4, ports: {http: 9080}}]}
`

// envoyNode is the ALS identifier of a sidecar of a workload.
func envoyNode(workload, app, ip string) *corev3.Node {
	meta, _ := structpb.NewStruct(map[string]any{
		naming.NodeMetaNamespace: "default", naming.NodeMetaWorkloadName: workload,
		naming.NodeMetaLabels: map[string]any{"app": app, "version": "v1"},
	})
	return &corev3.Node{Id: naming.NodeID(ip, workload+"-0", "default"), Metadata: meta}
}

func sockAddr(ip string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: ip, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port}}}}
}

// grpcEntry is an access log entry of one gRPC call as Envoy writes it.
type grpcEntry struct {
	cluster, upstream, downstream string
	code                          uint32
	grpcStatus                    string
	flags                         *accesslogdatav3.ResponseFlags
	peerHeader                    string
	mtlsPeer                      string // URI SAN of the peer certificate
	traceparent                   string
}

func (e grpcEntry) proto() *accesslogdatav3.HTTPAccessLogEntry {
	host, port, _ := net.SplitHostPort(e.upstream)
	p, _ := strconv.Atoi(port)
	dhost, dport, _ := net.SplitHostPort(e.downstream)
	dp, _ := strconv.Atoi(dport)
	reqHeaders := map[string]string{"content-type": "application/grpc"}
	if e.peerHeader != "" {
		reqHeaders[naming.PeerHeader] = e.peerHeader
	}
	if e.traceparent != "" {
		reqHeaders["traceparent"] = e.traceparent
	}
	c := &accesslogdatav3.AccessLogCommon{
		UpstreamCluster: e.cluster, UpstreamRemoteAddress: sockAddr(host, uint32(p)),
		DownstreamRemoteAddress: sockAddr(dhost, uint32(dp)),
		StartTime:               timestamppb.Now(), TimeToLastDownstreamTxByte: durationpb.New(12 * time.Millisecond),
		ResponseFlags: e.flags,
	}
	if e.mtlsPeer != "" {
		c.TlsProperties = &accesslogdatav3.TLSProperties{
			TlsVersion: accesslogdatav3.TLSProperties_TLSv1_3,
			PeerCertificateProperties: &accesslogdatav3.TLSProperties_CertificateProperties{
				SubjectAltName: []*accesslogdatav3.TLSProperties_CertificateProperties_SubjectAltName{{
					San: &accesslogdatav3.TLSProperties_CertificateProperties_SubjectAltName_Uri{Uri: e.mtlsPeer}}}},
			LocalCertificateProperties: &accesslogdatav3.TLSProperties_CertificateProperties{
				SubjectAltName: []*accesslogdatav3.TLSProperties_CertificateProperties_SubjectAltName{{
					San: &accesslogdatav3.TLSProperties_CertificateProperties_SubjectAltName_Uri{Uri: "spiffe://cluster.local/ns/default/sa/reviews"}}}},
		}
	}
	resp := &accesslogdatav3.HTTPResponseProperties{ResponseCode: wrapperspb.UInt32(e.code), ResponseBodyBytes: 40, ResponseHeadersBytes: 60}
	if e.grpcStatus != "" {
		resp.ResponseTrailers = map[string]string{"grpc-status": e.grpcStatus}
	}
	return &accesslogdatav3.HTTPAccessLogEntry{
		CommonProperties: c, ProtocolVersion: accesslogdatav3.HTTPAccessLogEntry_HTTP2,
		Request: &accesslogdatav3.HTTPRequestProperties{RequestMethod: corev3.RequestMethod_POST,
			Path: "/reviews.Reviews/Get", Authority: "reviews:9080", RequestHeaders: reqHeaders,
			RequestHeadersBytes: 100, RequestBodyBytes: 20},
		Response: resp,
	}
}

// streamALS sends entries over one ALS stream as a sidecar of node would.
func streamALS(t *testing.T, addr string, node *corev3.Node, entries ...grpcEntry) {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := alsv3.NewAccessLogServiceClient(cc).StreamAccessLogs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var logs []*accesslogdatav3.HTTPAccessLogEntry
	for _, e := range entries {
		logs = append(logs, e.proto())
	}
	msg := &alsv3.StreamAccessLogsMessage{
		Identifier: &alsv3.StreamAccessLogsMessage_Identifier{Node: node, LogName: "glassmesh"},
		LogEntries: &alsv3.StreamAccessLogsMessage_HttpLogs{HttpLogs: &alsv3.StreamAccessLogsMessage_HTTPAccessLogEntries{LogEntry: logs}},
	}
	if err := st.Send(msg); err != nil {
		t.Fatal(err)
	}
	if _, err := st.CloseAndRecv(); err != nil {
		t.Fatalf("ALS stream: %v", err)
	}
}

func repeat(e grpcEntry, n int) []grpcEntry {
	out := make([]grpcEntry, n)
	for i := range out {
		out[i] = e
	}
	return out
}

// promResult is one series of a Prometheus instant vector.
type promResult struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

func (p promResult) float(t testing.TB) float64 {
	v, err := strconv.ParseFloat(p.Value[1].(string), 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// query runs an instant PromQL query against the instance.
func (in *instance) query(t testing.TB, q string) []promResult {
	t.Helper()
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []promResult `json:"result"`
		} `json:"data"`
	}
	resp, err := http.Get("http://" + in.HTTPAddr + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.Status != "success" {
		t.Fatalf("query %s: %v %s", q, err, body.Error)
	}
	return body.Data.Result
}

// scalar waits until q returns one sample equal to want.
func (in *instance) waitValue(t testing.TB, q string, want float64) {
	t.Helper()
	eventually(t, 15*time.Second, func() error {
		r := in.query(t, q)
		if len(r) != 1 || r[0].float(t) != want {
			return fmt.Errorf("%s = %v, want %v", q, r, want)
		}
		return nil
	})
}

func TestAccessLogsBecomeIstioMetrics(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "mesh.yaml"), telemetryMesh)
	dataDir := t.TempDir()
	gm := startIn(t, dir, dataDir)

	productpage := envoyNode("productpage-v1", "productpage", "10.1.0.1")
	reviews := envoyNode("reviews-v1", "reviews", "10.1.0.2")
	out := "outbound|9080||reviews.default.svc.cluster.local"
	ok := grpcEntry{cluster: out, upstream: "10.1.0.2:9080", downstream: "10.1.0.1:40000", code: 200, grpcStatus: "0",
		traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
	noHealthy := grpcEntry{cluster: out, upstream: "10.1.0.2:9080", downstream: "10.1.0.1:40000", code: 503,
		flags: &accesslogdatav3.ResponseFlags{NoHealthyUpstream: true}}
	streamALS(t, gm.GRPCAddr, productpage, append(repeat(ok, 10), repeat(noHealthy, 2)...)...)

	in := grpcEntry{cluster: "inbound|9080||", upstream: "127.0.0.1:9080", downstream: "10.1.0.1:40000", code: 200, grpcStatus: "0",
		peerHeader: productpage.Id, mtlsPeer: "spiffe://cluster.local/ns/default/sa/productpage"}
	unavailable := in
	unavailable.grpcStatus = "14"
	stranger := grpcEntry{cluster: "inbound|9080||", upstream: "127.0.0.1:9080", downstream: "192.168.7.7:5555", code: 200, grpcStatus: "0"}
	streamALS(t, gm.GRPCAddr, reviews, append(append(repeat(in, 10), unavailable), repeat(stranger, 3)...)...)

	gm.waitValue(t, `sum(istio_requests_total)`, 26)
	t.Run("source reports carry the caller, the callee and the flags", func(t *testing.T) {
		r := gm.query(t, `istio_requests_total{reporter="source", response_flags="UH"}`)
		if len(r) != 1 || r[0].float(t) != 2 {
			t.Fatalf("UH series: %+v", r)
		}
		want := map[string]string{
			"source_workload": "productpage-v1", "source_workload_namespace": "default", "source_app": "productpage",
			"source_version": "v1", "source_canonical_service": "productpage", "source_canonical_revision": "v1",
			"destination_workload": "reviews-v1", "destination_workload_namespace": "default", "destination_app": "reviews",
			"destination_version": "v1", "destination_service": "reviews.default.svc.cluster.local",
			"destination_service_name": "reviews", "destination_service_namespace": "default",
			"request_protocol": "grpc", "response_code": "503", "response_flags": "UH",
		}
		checkLabels(t, r[0].Metric, want)
	})
	t.Run("destination reports name the caller from x-glassmesh-peer and mTLS", func(t *testing.T) {
		r := gm.query(t, `istio_requests_total{reporter="destination", grpc_response_status="14"}`)
		if len(r) != 1 || r[0].float(t) != 1 {
			t.Fatalf("UNAVAILABLE series: %+v", r)
		}
		checkLabels(t, r[0].Metric, map[string]string{
			"source_workload": "productpage-v1", "destination_workload": "reviews-v1",
			"source_principal":           "spiffe://cluster.local/ns/default/sa/productpage",
			"destination_principal":      "spiffe://cluster.local/ns/default/sa/reviews",
			"connection_security_policy": "mutual_tls", "response_code": "200", "response_flags": "-",
		})
	})
	t.Run("a caller nobody knows is counted as unknown", func(t *testing.T) {
		r := gm.query(t, `istio_requests_total{reporter="destination", source_workload="unknown"}`)
		if len(r) != 1 || r[0].float(t) != 3 {
			t.Fatalf("unknown-source series: %+v", r)
		}
	})
	t.Run("the duration histogram has the trace id as an exemplar", func(t *testing.T) {
		eventually(t, 15*time.Second, func() error {
			end := time.Now().Add(time.Minute).Unix()
			resp, err := http.Get(fmt.Sprintf("http://%s/api/v1/query_exemplars?query=%s&start=%d&end=%d", gm.HTTPAddr,
				url.QueryEscape(`istio_request_duration_milliseconds_bucket`), end-600, end))
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				return err
			}
			if !strings.Contains(string(body), "4bf92f3577b34da6a3ce929d0e0e4736") {
				return fmt.Errorf("no exemplar with the trace id: %s", body)
			}
			return nil
		})
	})
	t.Run("promtool can query it", func(t *testing.T) {
		if _, err := exec.LookPath("promtool"); err != nil {
			t.Skip("promtool not installed (.ci/run installs Debian's prometheus package)")
		}
		out, err := exec.Command("promtool", "query", "instant", "http://"+gm.HTTPAddr, `sum(istio_requests_total)`).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "=> 26") {
			t.Fatalf("promtool: %v\n%s", err, out)
		}
	})
	t.Run("bad input gets a 400 with the reason", func(t *testing.T) {
		resp, err := http.Get("http://" + gm.HTTPAddr + "/api/v1/query?query=" + url.QueryEscape("sum(rate(x[1m])"))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 400 || !strings.Contains(string(body), `"errorType":"bad_data"`) || !strings.Contains(string(body), "unclosed") {
			t.Errorf("bad PromQL: %s %s", resp.Status, body)
		}
		resp, err = http.Post("http://"+gm.HTTPAddr+"/api/v1/write", "application/x-protobuf", strings.NewReader("not snappy"))
		if err != nil {
			t.Fatal(err)
		}
		body, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 400 || len(body) == 0 {
			t.Errorf("non-snappy remote-write: %s %q", resp.Status, body)
		}
	})
	t.Run("counts survive kill -9 and continue without a reset", func(t *testing.T) {
		gm.kill()
		gm2 := startIn(t, dir, dataDir)
		gm2.waitValue(t, `sum(istio_requests_total)`, 26)
		streamALS(t, gm2.GRPCAddr, productpage, repeat(ok, 5)...)
		gm2.waitValue(t, `sum(istio_requests_total)`, 31)
		gm2.waitValue(t, `sum(resets(istio_requests_total[10m]))`, 0)
	})
}

func checkLabels(t *testing.T, got, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if got[k] != v {
			t.Errorf("label %s = %q, want %q (series %v)", k, got[k], v, got)
		}
	}
}
