package metrics

import (
	"hash/maphash"
	"strconv"
	"sync"

	"github.com/prometheus/prometheus/model/labels"
)

// Istio's standard metric names, the series the Aggregator writes.
const (
	MetricRequestsTotal        = "istio_requests_total"
	MetricRequestDuration      = "istio_request_duration_milliseconds"
	MetricRequestBytes         = "istio_request_bytes"
	MetricResponseBytes        = "istio_response_bytes"
	MetricTCPSentBytes         = "istio_tcp_sent_bytes_total"
	MetricTCPReceivedBytes     = "istio_tcp_received_bytes_total"
	MetricTCPConnectionsOpened = "istio_tcp_connections_opened_total"
	MetricTCPConnectionsClosed = "istio_tcp_connections_closed_total"
)

const (
	labelResponseCode = "response_code"
	labelTraceID      = "trace_id"
	bucketSuffix      = "_bucket"
	sumSuffix         = "_sum"
	countSuffix       = "_count"
	tcpMetricPrefix   = "istio_tcp_"
)

// Positions of the string-valued Istio labels in a seriesKey. response_code
// is kept apart as an integer so the hot path never formats it.
const (
	lReporter = iota
	lSourceWorkload
	lSourceWorkloadNamespace
	lSourceApp
	lSourceVersion
	lSourcePrincipal
	lSourceCanonicalService
	lSourceCanonicalRevision
	lSourceCluster
	lDestinationService
	lDestinationServiceName
	lDestinationServiceNamespace
	lDestinationWorkload
	lDestinationWorkloadNamespace
	lDestinationApp
	lDestinationVersion
	lDestinationPrincipal
	lDestinationCanonicalService
	lDestinationCanonicalRevision
	lDestinationCluster
	lRequestProtocol
	lGRPCResponseStatus
	lResponseFlags
	lConnectionSecurityPolicy
	numStringLabels
)

// labelNames are Istio's label names, indexed like seriesKey.v. Read-only.
var labelNames = [numStringLabels]string{
	"reporter", "source_workload", "source_workload_namespace", "source_app",
	"source_version", "source_principal", "source_canonical_service",
	"source_canonical_revision", "source_cluster", "destination_service",
	"destination_service_name", "destination_service_namespace",
	"destination_workload", "destination_workload_namespace", "destination_app",
	"destination_version", "destination_principal",
	"destination_canonical_service", "destination_canonical_revision",
	"destination_cluster", "request_protocol", "grpc_response_status",
	"response_flags", "connection_security_policy",
}

// bucketBounds are the finite upper bounds of every Istio histogram:
// Envoy's default histogram buckets, which Istio (since 1.5, Telemetry v2)
// uses for the duration and, unless overridden, for the byte-size
// histograms too. Read-only.
var bucketBounds = [...]float64{
	0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000,
	60000, 300000, 600000, 1800000, 3600000,
}

// Where each value of a label set lives in its vals slice. A histogram is
// numBuckets non-cumulative bucket counts (the last is +Inf), then _sum,
// then _count; flush makes the buckets cumulative.
const (
	numBuckets     = len(bucketBounds) + 1
	histWidth      = numBuckets + 2
	hRequests      = 0
	hDuration      = 1
	hRequestBytes  = hDuration + histWidth
	hResponseBytes = hRequestBytes + histWidth
	httpSeries     = hResponseBytes + histWidth
	tSent          = 0
	tReceived      = 1
	tOpened        = 2
	tClosed        = 3
	tcpSeries      = 4
)

// seriesKey is one Istio label set: everything but the metric name and le.
// TCP keys have request_protocol="tcp", no response_code and no
// grpc_response_status, as Istio's TCP metrics.
type seriesKey struct {
	v    [numStringLabels]string
	code int32
}

// isTCP reports whether the key belongs to the istio_tcp_* metrics.
func (k *seriesKey) isTCP() bool { return k.v[lRequestProtocol] == ProtocolTCP }

// fill sets k from r, normalising missing values: Unknown for an empty
// label, "-" for empty response_flags. An empty grpc_response_status stays
// empty, which Prometheus stores as an absent label (Istio's HTTP metrics).
func (k *seriesKey) fill(r *Request) {
	k.v[lReporter] = orUnknown(r.Reporter)
	fillPeer(k.v[lSourceWorkload:lDestinationService], &r.Source)
	k.v[lDestinationService] = orUnknown(r.DestinationService)
	k.v[lDestinationServiceName] = orUnknown(r.DestinationServiceName)
	k.v[lDestinationServiceNamespace] = orUnknown(r.DestinationServiceNamespace)
	d := k.v[lDestinationWorkload:lRequestProtocol]
	d[0], d[1], d[2], d[3] = orUnknown(r.Dest.Workload), orUnknown(r.Dest.Namespace), orUnknown(r.Dest.App), orUnknown(r.Dest.Version)
	d[4], d[5], d[6], d[7] = orUnknown(r.Dest.Principal), orUnknown(r.Dest.CanonicalService), orUnknown(r.Dest.CanonicalRevision), orUnknown(r.Dest.Cluster)
	if r.Protocol == ProtocolTCP {
		k.v[lRequestProtocol], k.v[lGRPCResponseStatus], k.code = ProtocolTCP, "", 0
	} else {
		k.v[lRequestProtocol], k.v[lGRPCResponseStatus], k.code = orUnknown(r.Protocol), r.GRPCStatus, int32(r.ResponseCode)
	}
	k.v[lResponseFlags] = r.ResponseFlags
	if r.ResponseFlags == "" {
		k.v[lResponseFlags] = "-"
	}
	k.v[lConnectionSecurityPolicy] = orUnknown(r.ConnectionSecurityPolicy)
}

// fillPeer writes the eight source_* values in label order.
func fillPeer(v []string, p *Peer) {
	v[0], v[1], v[2], v[3] = orUnknown(p.Workload), orUnknown(p.Namespace), orUnknown(p.App), orUnknown(p.Version)
	v[4], v[5], v[6], v[7] = orUnknown(p.Principal), orUnknown(p.CanonicalService), orUnknown(p.CanonicalRevision), orUnknown(p.Cluster)
}

func orUnknown(s string) string {
	if s == "" {
		return Unknown
	}
	return s
}

// hash returns the key's hash under seed.
func (k *seriesKey) hash(seed maphash.Seed) uint64 { return maphash.Comparable(seed, *k) }

// seriesDesc names one series of a label set: its metric name and, for a
// histogram bucket, its le value.
type seriesDesc struct {
	name, le string
}

// layouts holds, for HTTP and TCP label sets, the series they emit in vals
// order, and the way back from (name, le) to that order for restores.
type layouts struct {
	http, tcp []seriesDesc
	index     map[seriesDesc]int
}

// newLayouts builds the series tables.
func newLayouts() *layouts {
	l := &layouts{http: make([]seriesDesc, httpSeries), index: map[seriesDesc]int{}}
	l.http[hRequests] = seriesDesc{name: MetricRequestsTotal}
	for _, h := range []struct {
		base int
		name string
	}{{hDuration, MetricRequestDuration}, {hRequestBytes, MetricRequestBytes}, {hResponseBytes, MetricResponseBytes}} {
		for i, b := range bucketBounds {
			l.http[h.base+i] = seriesDesc{name: h.name + bucketSuffix, le: labels.FormatOpenMetricsFloat(b)}
		}
		l.http[h.base+numBuckets-1] = seriesDesc{name: h.name + bucketSuffix, le: "+Inf"}
		l.http[h.base+numBuckets] = seriesDesc{name: h.name + sumSuffix}
		l.http[h.base+numBuckets+1] = seriesDesc{name: h.name + countSuffix}
	}
	l.tcp = []seriesDesc{
		tSent: {name: MetricTCPSentBytes}, tReceived: {name: MetricTCPReceivedBytes},
		tOpened: {name: MetricTCPConnectionsOpened}, tClosed: {name: MetricTCPConnectionsClosed},
	}
	for _, t := range [][]seriesDesc{l.http, l.tcp} {
		for i, d := range t {
			l.index[d] = i
		}
	}
	return l
}

// descs returns the series table for a key.
func (l *layouts) descs(k *seriesKey) []seriesDesc {
	if k.isTCP() {
		return l.tcp
	}
	return l.http
}

// labels returns the full label set of series d of key k.
func (k *seriesKey) labels(b *labels.ScratchBuilder, d seriesDesc) labels.Labels {
	b.Reset()
	b.Add(labels.MetricName, d.name)
	for i, v := range k.v {
		if v != "" {
			b.Add(labelNames[i], v)
		}
	}
	if !k.isTCP() {
		b.Add(labelResponseCode, strconv.Itoa(int(k.code)))
	}
	if d.le != "" {
		b.Add(labels.BucketLabel, d.le)
	}
	b.Sort()
	return b.Labels()
}

// keyFromLabels is the inverse of labels: the key of a stored series and
// its position in the key's vals. ok is false for series the Aggregator
// does not write (another writer's, or a bucket layout that changed).
func (l *layouts) keyFromLabels(ls labels.Labels) (k seriesKey, pos int, ok bool) {
	d := seriesDesc{name: ls.Get(labels.MetricName), le: ls.Get(labels.BucketLabel)}
	if d.le != "" {
		f, err := strconv.ParseFloat(d.le, 64)
		if err != nil {
			return k, 0, false
		}
		d.le = labels.FormatOpenMetricsFloat(f)
	}
	pos, ok = l.index[d]
	if !ok {
		return k, 0, false
	}
	for i, name := range labelNames {
		k.v[i] = ls.Get(name)
	}
	tcp := len(d.name) > len(tcpMetricPrefix) && d.name[:len(tcpMetricPrefix)] == tcpMetricPrefix
	if tcp != k.isTCP() {
		return k, 0, false
	}
	if !tcp {
		code, err := strconv.ParseInt(ls.Get(labelResponseCode), 10, 32)
		if err != nil {
			return k, 0, false
		}
		k.code = int32(code)
	}
	return k, pos, true
}

// bucketIndex returns the histogram bucket v falls in: the first bound
// >= v, or the +Inf bucket.
func bucketIndex(v float64) int {
	for i, b := range bucketBounds {
		if v <= b {
			return i
		}
	}
	return numBuckets - 1
}

// interner deduplicates label values across label sets, so a thousand
// label sets of one namespace hold its name once.
type interner struct {
	mu sync.Mutex
	m  map[string]string
}

// key replaces every value of k by its interned copy.
func (in *interner) key(k *seriesKey) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.m == nil {
		in.m = make(map[string]string)
	}
	for i, v := range k.v {
		if s, ok := in.m[v]; ok {
			k.v[i] = s
			continue
		}
		s := string([]byte(v)) // own the bytes: v may point into a request buffer
		in.m[s] = s
		k.v[i] = s
	}
}
