package pipeline

import (
	"context"
	"net/netip"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	accesslogdatav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	"google.golang.org/protobuf/proto"

	"github.com/glassmesh/glassmesh/control/naming"
	"github.com/glassmesh/glassmesh/telemetry/record"
)

// FuzzHTTPEntry feeds arbitrary protobuf bytes, decoded as an access log
// entry, through the conversion: it must never panic, and every label must
// be filled.
func FuzzHTTPEntry(f *testing.F) {
	for _, e := range benchEntries(8) {
		b, err := proto.Marshal(e)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, uint8(0))
	}
	rec := &recorder{}
	p := newTestPipeline(f, Config{}, rec)
	nodes := []*corev3.Node{productpageNode, reviewsV2Node, proxylessNode("127.0.0.1", "ratings-v1", "default"), nil}
	f.Fuzz(func(t *testing.T, b []byte, which uint8) {
		e := &accesslogdatav3.HTTPAccessLogEntry{}
		if proto.Unmarshal(b, e) != nil {
			return
		}
		if err := p.ConsumeHTTPLogs(context.Background(), nodes[int(which)%len(nodes)], []*accesslogdatav3.HTTPAccessLogEntry{e}); err != nil {
			t.Fatal(err)
		}
		for _, r := range rec.Take() {
			checkFilled(t, r)
		}
	})
}

func checkFilled(t *testing.T, r record.Request) {
	t.Helper()
	for name, v := range map[string]string{
		"reporter": r.Reporter, "source_workload": r.Source.Workload, "source_namespace": r.Source.Namespace,
		"destination_workload": r.Dest.Workload, "destination_namespace": r.Dest.Namespace,
		"destination_service": r.DestinationService, "destination_service_name": r.DestinationServiceName,
		"destination_service_namespace": r.DestinationServiceNamespace, "protocol": r.Protocol,
		"response_flags": r.ResponseFlags, "connection_security_policy": r.ConnectionSecurityPolicy,
		"source_principal": r.Source.Principal, "destination_principal": r.Dest.Principal,
	} {
		if v == "" {
			t.Errorf("%s is empty in %+v", name, r)
		}
	}
}

// FuzzTraceID checks that whatever the headers, a trace id is either absent
// or 32 lower-case hex characters, not all zero.
func FuzzTraceID(f *testing.F) {
	f.Add("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "", "")
	f.Add("", "a3ce929d0e0e4736-00f067aa0ba902b7-1-0020000000000001", "")
	f.Add("", "", "a3ce929d0e0e4736")
	f.Add("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-", "1", "0")
	f.Fuzz(func(t *testing.T, traceparent, b3, b3TraceID string) {
		id := traceIDFromHeaders(map[string]string{"traceparent": traceparent, "b3": b3, "x-b3-traceid": b3TraceID})
		if id == "" {
			return
		}
		if len(id) != 32 || !isLowerHex(id) || allZero(id) {
			t.Fatalf("trace id %q from %q %q %q", id, traceparent, b3, b3TraceID)
		}
	})
}

// FuzzPeerHeader resolves arbitrary x-glassmesh-peer values: the pipeline's
// allocation-free node id parser agrees with naming.ParseNodeID, a valid node
// id always yields its namespace, and nothing panics.
func FuzzPeerHeader(f *testing.F) {
	f.Add(naming.NodeID("127.0.0.1", "details-v1", "shop"))
	f.Add(naming.NodeID("10.0.0.3", "reviews-v2-5b64f47f-xk2p9", "default"))
	f.Add("sidecar~~~")
	f.Add("sidecar~1~-.x~x.svc.cluster.local")
	ix := buildIndex(testMesh(f), DefaultClusterID, DefaultTrustDomain)
	f.Fuzz(func(t *testing.T, header string) {
		peer, wi := resolvePeer(ix, header, "", netip.Addr{}, 0, false)
		parts, ok := naming.ParseNodeID(header)
		instance, namespace, ok2 := parseNodeID(header)
		if ok != ok2 || instance != parts.Instance || namespace != parts.Namespace {
			t.Fatalf("%q: parseNodeID %q %q %v, naming.ParseNodeID %+v %v", header, instance, namespace, ok2, parts, ok)
		}
		switch {
		case ok && peer.Namespace != parts.Namespace:
			t.Fatalf("%q: namespace %q, want %q", header, peer.Namespace, parts.Namespace)
		case !ok && (wi != nil || peer.Workload != record.Unknown):
			t.Fatalf("%q is no node id but named workload %q", header, peer.Workload)
		}
	})
}

// FuzzNames runs the small string decoders (cluster names, :authority,
// SPIFFE ids) on arbitrary input.
func FuzzNames(f *testing.F) {
	f.Add("outbound|9080|v1|reviews.default.svc.cluster.local")
	f.Add("inbound|19082||")
	f.Add("reviews.default.svc:9080")
	f.Add("spiffe://cluster.local/ns/default/sa/reviews")
	f.Fuzz(func(t *testing.T, s string) {
		c := parseCluster(s)
		if c.inbound && c.host != "" {
			t.Fatalf("%q: inbound cluster with host %q", s, c.host)
		}
		if name, ns, ok := splitServiceHost(s); ok && name+"."+ns+clusterDomain != s {
			t.Fatalf("%q split into %q %q", s, name, ns)
		}
		if name, ns, ok := authorityService(s, "default"); ok && (name == "" || ns == "") {
			t.Fatalf("%q: empty name or namespace", s)
		}
		if ns, sa, ok := parseSPIFFE(s); ok && naming.SPIFFEID("x", ns, sa) == "" {
			t.Fatal("unreachable")
		}
	})
}

// FuzzNode identifies arbitrary nodes (ids and metadata) as reporters.
func FuzzNode(f *testing.F) {
	for _, n := range []*corev3.Node{productpageNode, reviewsV2Node, proxylessNode("127.0.0.1", "ratings-v1", "default")} {
		b, err := proto.Marshal(n)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	ix := buildIndex(testMesh(f), DefaultClusterID, DefaultTrustDomain)
	f.Fuzz(func(t *testing.T, b []byte) {
		n := &corev3.Node{}
		if proto.Unmarshal(b, n) != nil {
			return
		}
		r := reporterOf(ix, n)
		if r.peer.Workload == "" || r.peer.Namespace == "" || r.peer.Cluster == "" {
			t.Fatalf("empty labels for %v: %+v", n, r.peer)
		}
	})
}
