package topology

import (
	"strconv"
	"strings"

	"github.com/glassmesh/glassmesh/control/model"
	"github.com/glassmesh/glassmesh/telemetry/record"
)

// bucketBounds are Istio's histogram bounds (the ones telemetry/metrics
// writes), so the in-memory histograms interpolate quantiles exactly as
// histogram_quantile does over the TSDB.
var bucketBounds = model.LatencyBucketsMs()

// numBuckets counts the finite bounds and +Inf.
const numBuckets = len(bucketBounds) + 1

// peer is one side of a row, the labels a node identity is made of.
type peer struct {
	Cluster, Namespace, Workload, App, Version, Principal string
}

// rowKey is one traffic series as the graph groups it: Istio's labels
// without the reporter (the count-once rule has picked one already).
type rowKey struct {
	Src      peer
	Dst      peer
	SvcHost  string // destination_service
	SvcName  string // destination_service_name
	SvcNS    string // destination_service_namespace
	Protocol string
	Code     string // response code (HTTP) or gRPC status (gRPC); "-" for no response; "" for TCP
	Flags    string
	Security string
	TCP      bool
}

// compareRowKeys is a total order of row keys. The workloads come first:
// they tell most rows apart, so a comparison seldom reads further.
func compareRowKeys(a, b *rowKey) int {
	if c := strings.Compare(a.Src.Workload, b.Src.Workload); c != 0 {
		return c
	}
	if c := strings.Compare(a.Dst.Workload, b.Dst.Workload); c != 0 {
		return c
	}
	for _, p := range [...][2]string{{a.Src.Namespace, b.Src.Namespace}, {a.Dst.Namespace, b.Dst.Namespace},
		{a.SvcName, b.SvcName}, {a.Code, b.Code}} {
		if c := strings.Compare(p[0], p[1]); c != 0 {
			return c
		}
	}
	if c := comparePeers(&a.Src, &b.Src); c != 0 {
		return c
	}
	if c := comparePeers(&a.Dst, &b.Dst); c != 0 {
		return c
	}
	for _, p := range [...][2]string{{a.SvcNS, b.SvcNS}, {a.SvcHost, b.SvcHost}, {a.Protocol, b.Protocol},
		{a.Flags, b.Flags}, {a.Security, b.Security}} {
		if c := strings.Compare(p[0], p[1]); c != 0 {
			return c
		}
	}
	switch {
	case a.TCP == b.TCP:
		return 0
	case a.TCP:
		return 1
	}
	return -1
}

// comparePeers orders peers by their remaining labels.
func comparePeers(a, b *peer) int {
	for _, p := range [...][2]string{{a.App, b.App}, {a.Version, b.Version}, {a.Cluster, b.Cluster}, {a.Principal, b.Principal}} {
		if c := strings.Compare(p[0], p[1]); c != 0 {
			return c
		}
	}
	return 0
}

// rowVals are a row's values over a window. Every value is a per-second
// rate, the unit Kiali's PromQL returns.
type rowVals struct {
	Requests  float64             // requests/s (HTTP, gRPC)
	DurSum    float64             // ms/s
	Hist      [numBuckets]float64 // requests/s per duration bucket, not cumulative
	ReqBytes  float64             // bytes/s
	RespBytes float64             // bytes/s
	TCPSent   float64             // bytes/s
	TCPRecv   float64             // bytes/s
}

// row is one series' key and values.
type row struct {
	key rowKey
	val rowVals
}

// zero reports a row that carried nothing.
func (v *rowVals) zero() bool {
	return v.Requests == 0 && v.TCPSent == 0 && v.TCPRecv == 0 && v.ReqBytes == 0 && v.RespBytes == 0
}

// counted reports whether a request is counted by the graph: DESIGN.md's
// count-once rule, reporter=source plus reporter=destination when the
// caller is outside the mesh.
func counted(r *record.Request) bool {
	switch r.Reporter {
	case record.ReporterSource:
		return true
	case record.ReporterDestination:
		return orUnknown(r.Source.Workload) == record.Unknown
	}
	return false
}

// keyOf is the row key of a request, with the labels filled as the
// metrics Aggregator fills them so both paths group alike.
func keyOf(r *record.Request) rowKey {
	k := rowKey{
		Src:      peerOf(&r.Source),
		Dst:      peerOf(&r.Dest),
		SvcHost:  orUnknown(r.DestinationService),
		SvcName:  orUnknown(r.DestinationServiceName),
		SvcNS:    orUnknown(r.DestinationServiceNamespace),
		Protocol: orUnknown(r.Protocol),
		Flags:    flagsOf(r.ResponseFlags),
		Security: orUnknown(r.ConnectionSecurityPolicy),
	}
	switch r.Protocol {
	case record.ProtocolTCP:
		k.TCP = true
	case record.ProtocolGRPC:
		k.Code = codeOf(r.GRPCStatus, r.ResponseCode)
	default:
		k.Code = codeOf("", r.ResponseCode)
	}
	return k
}

// codeOf is the response code Kiali reads: the gRPC status for gRPC, the
// HTTP status otherwise, "-" when there was no response.
func codeOf(grpcStatus string, httpCode int) string {
	if grpcStatus != "" && grpcStatus != record.Unknown {
		return grpcStatus
	}
	if httpCode == 0 {
		return "-"
	}
	return strconv.Itoa(httpCode)
}

// peerOf picks the identity labels of a peer.
func peerOf(p *record.Peer) peer {
	return peer{
		Cluster:   orUnknown(p.Cluster),
		Namespace: orUnknown(p.Namespace),
		Workload:  orUnknown(p.Workload),
		App:       orUnknown(p.App),
		Version:   orUnknown(p.Version),
		Principal: orUnknown(p.Principal),
	}
}

// bucketIndex is the histogram bucket of v: the first bound >= v, or +Inf.
func bucketIndex(v float64) int {
	for i, b := range bucketBounds {
		if v <= b {
			return i
		}
	}
	return numBuckets - 1
}

// orUnknown is Istio's "unknown" for an empty label.
func orUnknown(s string) string {
	if s == "" {
		return record.Unknown
	}
	return s
}

// flagsOf is Envoy's "-" for no response flags.
func flagsOf(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
