package pipeline

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	accesslogdatav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"

	"github.com/glassmesh/glassmesh/control/naming"
	"github.com/glassmesh/glassmesh/telemetry/record"
)

const (
	reviewsCluster = "outbound|9080||reviews.default.svc.cluster.local"
	reviewsHost    = "reviews.default.svc.cluster.local"
	spiffeReviews  = "spiffe://cluster.local/ns/default/sa/reviews"
	spiffePage     = "spiffe://cluster.local/ns/default/sa/productpage"
	traceHex       = "4bf92f3577b34da6a3ce929d0e0e4736"
)

func TestConvertHTTP(t *testing.T) {
	proxyless := &corev3.Node{Id: naming.NodeID("127.0.0.1", "ratings-v1", "default")}
	tests := []struct {
		name  string
		node  *corev3.Node
		entry entry
		want  record.Request
	}{{
		name: "an outbound call to a known endpoint is reported by the source, for the cluster's service",
		node: productpageNode,
		entry: entry{
			cluster: reviewsCluster, upstream: addr("10.0.0.3", 9080), downstream: addr("127.0.0.1", 40000),
			authority: "reviews:9080", code: 200, trailers: map[string]string{"grpc-status": "0"},
			headers:  map[string]string{"traceparent": "00-" + traceHex + "-00f067aa0ba902b7-01"},
			reqBytes: [2]uint64{120, 30}, respBytes: [2]uint64{60, 500}, durationMS: 12,
		},
		want: record.Request{
			Time: t0, Reporter: "source", Source: productpage, Dest: reviewsV2,
			DestinationService: reviewsHost, DestinationServiceName: "reviews", DestinationServiceNamespace: "default",
			Protocol: "grpc", ResponseCode: 200, GRPCStatus: "0", ResponseFlags: "-", ConnectionSecurityPolicy: "unknown",
			Duration: 12 * time.Millisecond, RequestBytes: 150, ResponseBytes: 560, TraceID: traceHex,
		},
	}, {
		name: "an inbound call over mutual TLS takes principals from both certificates",
		node: reviewsV2Node,
		entry: entry{
			cluster: "inbound|9080||", downstream: addr("10.0.0.1", 51234), tls: mtls(spiffeReviews, spiffePage),
			authority: "reviews.default.svc.cluster.local:9080", code: 200, trailers: map[string]string{"grpc-status": "5"},
			headers: map[string]string{"b3": "a3ce929d0e0e4736-00f067aa0ba902b7-1"}, durationMS: 7,
		},
		want: record.Request{
			Time: t0, Reporter: "destination", Source: principal(productpage, spiffePage), Dest: principal(reviewsV2, spiffeReviews),
			DestinationService: reviewsHost, DestinationServiceName: "reviews", DestinationServiceNamespace: "default",
			Protocol: "grpc", ResponseCode: 200, GRPCStatus: "5", ResponseFlags: "-", ConnectionSecurityPolicy: "mutual_tls",
			Duration: 7 * time.Millisecond, TraceID: "0000000000000000a3ce929d0e0e4736",
		},
	}, {
		name: "an inbound call from an address outside the mesh is labelled unknown, not dropped",
		node: reviewsV2Node,
		entry: entry{
			cluster: "inbound|9080||", downstream: addr("192.168.7.7", 40000), authority: "10.0.0.3:9080",
			code: 503, respHeaders: map[string]string{"grpc-status": "14"}, headers: map[string]string{"x-b3-traceid": traceHex},
			flags: &accesslogdatav3.ResponseFlags{UpstreamConnectionFailure: true, UpstreamRetryLimitExceeded: true, NoHealthyUpstream: true},
		},
		want: record.Request{
			Time: t0, Reporter: "destination", Source: nobody, Dest: reviewsV2,
			DestinationService: reviewsHost, DestinationServiceName: "reviews", DestinationServiceNamespace: "default",
			Protocol: "grpc", ResponseCode: 503, GRPCStatus: "14", ResponseFlags: "UH,UF,URX", ConnectionSecurityPolicy: "none",
			TraceID: traceHex,
		},
	}, {
		name: "x-glassmesh-peer names the caller even when every app shares 127.0.0.1",
		node: proxyless,
		entry: entry{
			cluster: "inbound|19084||", downstream: addr("127.0.0.1", 40001),
			headers: map[string]string{naming.PeerHeader: naming.NodeID("127.0.0.1", "details-v1", "shop")},
			code:    200, trailers: map[string]string{"grpc-status": "0"},
		},
		want: record.Request{
			Time: t0, Reporter: "destination", Source: details, Dest: ratings,
			DestinationService: "ratings.default.svc.cluster.local", DestinationServiceName: "ratings", DestinationServiceNamespace: "default",
			Protocol: "grpc", ResponseCode: 200, GRPCStatus: "0", ResponseFlags: "-", ConnectionSecurityPolicy: "none",
		},
	}, {
		name:  "a shared address without x-glassmesh-peer names no caller",
		node:  proxyless,
		entry: entry{cluster: "inbound|19084||", downstream: addr("127.0.0.1", 40001), code: 200, trailers: map[string]string{"grpc-status": "0"}},
		want: record.Request{
			Time: t0, Reporter: "destination", Source: nobody, Dest: ratings,
			DestinationService: "ratings.default.svc.cluster.local", DestinationServiceName: "ratings", DestinationServiceNamespace: "default",
			Protocol: "grpc", ResponseCode: 200, GRPCStatus: "0", ResponseFlags: "-", ConnectionSecurityPolicy: "none",
		},
	}, {
		name: "a peer id of a workload the mesh does not know keeps its namespace",
		node: reviewsV2Node,
		entry: entry{
			cluster: "inbound|9080||", headers: map[string]string{naming.PeerHeader: naming.NodeID("10.9.9.9", "ghost-1", "other")},
			code: 404, authority: "reviews",
		},
		want: record.Request{
			Time: t0, Reporter: "destination", Source: func() record.Peer { p := nobody; p.Namespace = "other"; return p }(), Dest: reviewsV2,
			DestinationService: reviewsHost, DestinationServiceName: "reviews", DestinationServiceNamespace: "default",
			Protocol: "grpc", ResponseCode: 404, GRPCStatus: "12", ResponseFlags: "-", ConnectionSecurityPolicy: "none",
		},
	}, {
		name: "an HTTP call with no response has code 0 and Envoy's flags",
		node: productpageNode,
		entry: entry{
			cluster: "outbound|9080||details.shop.svc.cluster.local", upstream: addr("127.0.0.1", 19085),
			flags: &accesslogdatav3.ResponseFlags{DownstreamConnectionTermination: true}, durationMS: 3,
		},
		want: record.Request{
			Time: t0, Reporter: "source", Source: productpage, Dest: details,
			DestinationService: "details.shop.svc.cluster.local", DestinationServiceName: "details", DestinationServiceNamespace: "shop",
			Protocol: "http", ResponseFlags: "DC", ConnectionSecurityPolicy: "unknown", Duration: 3 * time.Millisecond,
		},
	}, {
		name:  "a call to a service outside the mesh keeps the cluster's host",
		node:  productpageNode,
		entry: entry{cluster: "outbound|443||api.example.com", upstream: addr("93.184.216.34", 443), code: 200},
		want: record.Request{
			Time: t0, Reporter: "source", Source: productpage, Dest: nobody,
			DestinationService: "api.example.com", DestinationServiceName: "api.example.com", DestinationServiceNamespace: "unknown",
			Protocol: "http", ResponseCode: 200, ResponseFlags: "-", ConnectionSecurityPolicy: "unknown",
		},
	}, {
		name: "a proxyless call to an address finds the service through the workload",
		node: proxylessNode("127.0.0.1", "details-v1", "shop"),
		entry: entry{
			cluster: "outbound|19084||127.0.0.1", upstream: addr("127.0.0.1", 19084), code: 200,
			trailers: map[string]string{"grpc-status": "0"},
		},
		want: record.Request{
			Time: t0, Reporter: "source", Source: details, Dest: ratings,
			DestinationService: "ratings.default.svc.cluster.local", DestinationServiceName: "ratings", DestinationServiceNamespace: "default",
			Protocol: "grpc", ResponseCode: 200, GRPCStatus: "0", ResponseFlags: "-", ConnectionSecurityPolicy: "none",
		},
	}, {
		name: "a gRPC port without grpc-status maps the HTTP code as Envoy does",
		node: productpageNode,
		entry: entry{
			cluster: reviewsCluster, upstream: addr("10.0.0.2", 9080), code: 503,
			flags: &accesslogdatav3.ResponseFlags{UpstreamOverflow: true},
		},
		want: record.Request{
			Time: t0, Reporter: "source", Source: productpage, Dest: reviewsV1,
			DestinationService: reviewsHost, DestinationServiceName: "reviews", DestinationServiceNamespace: "default",
			Protocol: "grpc", ResponseCode: 503, GRPCStatus: "14", ResponseFlags: "UO", ConnectionSecurityPolicy: "unknown",
		},
	}, {
		name: "mutual TLS with an ambiguous service account picks the workload by address",
		node: proxylessNode("10.0.0.1", "productpage-v1", "default"),
		entry: entry{
			cluster: reviewsCluster, upstream: addr("10.0.0.2", 9080), tls: mtls(spiffePage, spiffeReviews), code: 200,
			trailers: map[string]string{"grpc-status": "0"},
		},
		want: record.Request{
			Time: t0, Reporter: "source", Source: principal(productpage, spiffePage), Dest: principal(reviewsV1, spiffeReviews),
			DestinationService: reviewsHost, DestinationServiceName: "reviews", DestinationServiceNamespace: "default",
			Protocol: "grpc", ResponseCode: 200, GRPCStatus: "0", ResponseFlags: "-", ConnectionSecurityPolicy: "mutual_tls",
		},
	}, {
		name: "a sidecar's TLS on an outbound entry is its downstream's and says nothing of the callee",
		node: productpageNode,
		entry: entry{
			cluster: reviewsCluster, upstream: addr("10.0.0.2", 9080), tls: mtls("spiffe://cluster.local/ns/edge/sa/gateway", "spiffe://cluster.local/ns/edge/sa/browser"), code: 200,
			trailers: map[string]string{"grpc-status": "0"},
		},
		want: record.Request{
			Time: t0, Reporter: "source", Source: productpage, Dest: reviewsV1,
			DestinationService: reviewsHost, DestinationServiceName: "reviews", DestinationServiceNamespace: "default",
			Protocol: "grpc", ResponseCode: 200, GRPCStatus: "0", ResponseFlags: "-", ConnectionSecurityPolicy: "unknown",
		},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{}
			p := newTestPipeline(t, Config{}, rec)
			if err := p.ConsumeHTTPLogs(context.Background(), tc.node, []*accesslogdatav3.HTTPAccessLogEntry{tc.entry.build()}); err != nil {
				t.Fatal(err)
			}
			got := rec.Take()
			if len(got) != 1 {
				t.Fatalf("got %d requests, want 1", len(got))
			}
			if d := diffRequest(got[0], tc.want); d != "" {
				t.Error(d)
			}
		})
	}
}

// diffRequest lists the fields where got differs from want, "" if none.
func diffRequest(got, want record.Request) string {
	var b strings.Builder
	diffFields(&b, "", reflect.ValueOf(got), reflect.ValueOf(want))
	return b.String()
}

func diffFields(b *strings.Builder, prefix string, got, want reflect.Value) {
	if got.Kind() == reflect.Struct && got.Type() != reflect.TypeOf(time.Time{}) {
		for i := range got.NumField() {
			diffFields(b, prefix+got.Type().Field(i).Name+".", got.Field(i), want.Field(i))
		}
		return
	}
	if !reflect.DeepEqual(got.Interface(), want.Interface()) {
		fmt.Fprintf(b, "\n%s got %q, want %q", strings.TrimSuffix(prefix, "."), fmt.Sprint(got.Interface()), fmt.Sprint(want.Interface()))
	}
}
