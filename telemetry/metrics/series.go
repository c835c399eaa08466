package metrics

import (
	"encoding/binary"
	"hash/maphash"
	"strconv"
	"strings"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/glassmesh/glassmesh/control/model"

	"github.com/glassmesh/glassmesh/telemetry/record"
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

// Positions of Istio's labels in a seriesKey (see keyLabelNames; the last,
// response_code, follows these).
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

// labelNames are Istio's label names but response_code, in seriesKey
// order. Read-only.
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

// bucketBounds are the finite upper bounds of every Istio histogram (the
// duration's and, unless overridden, the byte sizes'), as the model defines
// them. Read-only.
var bucketBounds = model.LatencyBucketsMs()

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

// seriesKey is one Istio label set (everything but the metric name and
// le), encoded as the values of keyLabelNames in order, each prefixed by
// its length as a uvarint: one flat byte string that hashes and compares
// in one call, and is unambiguous whatever bytes the values hold. TCP keys
// have request_protocol="tcp" and empty response_code and
// grpc_response_status (Istio's TCP metrics carry neither).
type seriesKey struct {
	b   []byte
	tcp bool
}

// keyLabelNames are the label names a seriesKey encodes, in order.
var keyLabelNames = func() (n [numStringLabels + 1]string) {
	copy(n[:], labelNames[:])
	n[numStringLabels] = labelResponseCode
	return n
}()

// fill encodes r's label set into k, reusing k's buffer. Missing values
// are normalised: Unknown for an empty label, "-" for empty
// response_flags. An empty grpc_response_status stays empty, which
// Prometheus stores as an absent label (Istio's HTTP metrics).
func (k *seriesKey) fill(r *record.Request) {
	k.tcp = r.Protocol == record.ProtocolTCP
	b := appendValue(k.b[:0], orUnknown(r.Reporter))
	b = appendPeer(b, &r.Source)
	b = appendValue(b, orUnknown(r.DestinationService))
	b = appendValue(b, orUnknown(r.DestinationServiceName))
	b = appendValue(b, orUnknown(r.DestinationServiceNamespace))
	b = appendPeer(b, &r.Dest)
	if k.tcp {
		b = appendValue(appendValue(b, record.ProtocolTCP), "")
	} else {
		b = appendValue(appendValue(b, orUnknown(r.Protocol)), r.GRPCStatus)
	}
	flags := r.ResponseFlags
	if flags == "" {
		flags = "-"
	}
	b = appendValue(appendValue(b, flags), orUnknown(r.ConnectionSecurityPolicy))
	var code []byte
	if !k.tcp {
		var digits [20]byte
		code = strconv.AppendInt(digits[:0], int64(r.ResponseCode), 10)
	}
	k.b = append(binary.AppendUvarint(b, uint64(len(code))), code...)
}

// appendPeer appends the eight values of one side, in label order.
func appendPeer(b []byte, p *record.Peer) []byte {
	for _, v := range [...]string{p.Workload, p.Namespace, p.App, p.Version, p.Principal, p.CanonicalService, p.CanonicalRevision, p.Cluster} {
		b = appendValue(b, orUnknown(v))
	}
	return b
}

func appendValue(b []byte, v string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(v))), v...)
}

func orUnknown(s string) string {
	if s == "" {
		return record.Unknown
	}
	return s
}

// hash returns the key's hash under seed.
func (k *seriesKey) hash(seed maphash.Seed) uint64 { return maphash.Bytes(seed, k.b) }

// keyValues calls f with each label value of an encoded key, in
// keyLabelNames order.
func keyValues(key string, f func(i int, v string)) {
	for i := 0; key != ""; i++ {
		n, w := stringUvarint(key)
		if w == 0 || n > uint64(len(key)-w) {
			return // not an encoding of ours; cannot happen
		}
		f(i, key[w:w+int(n)])
		key = key[w+int(n):]
	}
}

// stringUvarint decodes a uvarint at the start of s, like binary.Uvarint.
func stringUvarint(s string) (x uint64, n int) {
	var shift uint
	for i := 0; i < len(s) && i < binary.MaxVarintLen64; i++ {
		c := s[i]
		if c < 0x80 {
			return x | uint64(c)<<shift, i + 1
		}
		x |= uint64(c&0x7f) << shift
		shift += 7
	}
	return 0, 0
}

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
	labelPos  map[string]int // keyLabelNames position of a label name
}

// newLayouts builds the series tables.
func newLayouts() *layouts {
	l := &layouts{http: make([]seriesDesc, httpSeries), index: map[seriesDesc]int{}, labelPos: map[string]int{}}
	for i, n := range keyLabelNames {
		l.labelPos[n] = i
	}
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

// descs returns the series table of a TCP or an HTTP label set.
func (l *layouts) descs(tcp bool) []seriesDesc {
	if tcp {
		return l.tcp
	}
	return l.http
}

// keyLabels returns the full label set of series d of an encoded key.
// Empty values are left out, as Prometheus does.
func keyLabels(b *labels.ScratchBuilder, key string, d seriesDesc) labels.Labels {
	b.Reset()
	b.Add(labels.MetricName, d.name)
	keyValues(key, func(i int, v string) {
		if v != "" {
			b.Add(keyLabelNames[i], v)
		}
	})
	if d.le != "" {
		b.Add(labels.BucketLabel, d.le)
	}
	b.Sort()
	return b.Labels()
}

// keyFromLabels is the inverse of keyLabels: it encodes the key of a
// stored series into k and returns the series' position in the key's vals.
// ok is false for series the Aggregator does not write (another writer's,
// or a bucket layout that changed).
func (l *layouts) keyFromLabels(ls labels.Labels, k *seriesKey) (pos int, ok bool) {
	d := seriesDesc{name: ls.Get(labels.MetricName), le: ls.Get(labels.BucketLabel)}
	if d.le != "" {
		f, err := strconv.ParseFloat(d.le, 64)
		if err != nil {
			return 0, false
		}
		d.le = labels.FormatOpenMetricsFloat(f)
	}
	if pos, ok = l.index[d]; !ok {
		return 0, false
	}
	var vals [len(keyLabelNames)]string
	ls.Range(func(lb labels.Label) {
		if i, ok := l.labelPos[lb.Name]; ok {
			vals[i] = lb.Value
		}
	})
	k.tcp = strings.HasPrefix(d.name, tcpMetricPrefix)
	if k.tcp != (vals[lRequestProtocol] == record.ProtocolTCP) {
		return 0, false
	}
	k.b = k.b[:0]
	for _, v := range vals {
		k.b = appendValue(k.b, v)
	}
	return pos, true
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
