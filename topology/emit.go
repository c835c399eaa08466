package topology

import (
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// protoRates names Kiali's rates of one protocol.
type protoRates struct {
	total, pctErr, pctReq, in, out string
	classes                        func(code string) (edgeRate, nodeRate string, isErr bool)
}

var rateNames = [numProto]protoRates{
	pHTTP: {total: "http", pctErr: "httpPercentErr", pctReq: "httpPercentReq", in: "httpIn", out: "httpOut", classes: httpClass},
	pGRPC: {total: "grpc", pctErr: "grpcPercentErr", pctReq: "grpcPercentReq", in: "grpcIn", out: "grpcOut", classes: grpcClass},
	pTCP:  {total: "tcp", in: "tcpIn", out: "tcpOut", classes: func(string) (string, string, bool) { return "", "", false }},
}

func httpClass(code string) (string, string, bool) {
	switch {
	case code == "-":
		return "httpNoResponse", "httpInNoResponse", true
	case strings.HasPrefix(code, "3"):
		return "http3xx", "httpIn3xx", false
	case strings.HasPrefix(code, "4"):
		return "http4xx", "httpIn4xx", true
	case strings.HasPrefix(code, "5"):
		return "http5xx", "httpIn5xx", true
	}
	return "", "", false
}

func grpcClass(code string) (string, string, bool) {
	switch code {
	case "-":
		return "grpcNoResponse", "grpcInNoResponse", true
	case "0":
		return "", "", false
	}
	return "grpcErr", "grpcInErr", true
}

// emit writes the built graph as Kiali's JSON with a trailing newline,
// appenders applied. The graph goes straight from the builder's nodes and
// edges to bytes: no intermediate NodeData maps, which were most of a big
// graph's time and garbage. The bytes are what encoding/json writes for
// the Cytoscape they decode into (TestEmitIsEncodingJSONOfKialiTypes).
// Nodes and edges are sorted and written concurrently: edges read only
// the nodes' ids and traffic, which are final by then (a node's other
// fields are filled while the edges are written).
func (b *builder) emit(tols []Tolerance, at time.Time) []byte {
	// Elements encode to ~500 (nodes) and ~650 (edges) bytes: guesses that
	// rarely grow. The nodes go into the buffer of the whole graph, the
	// edges are copied after them.
	var buf []byte
	var wg sync.WaitGroup
	wg.Go(func() {
		buf = make([]byte, 0, 1024+600*(len(b.nodes)+len(b.nodes)/4)+800*len(b.edges))
		buf = append(buf, `{"timestamp":`...)
		buf = strconv.AppendInt(buf, at.Unix(), 10)
		buf = append(buf, `,"duration":`...)
		buf = strconv.AppendInt(buf, int64(b.o.Duration.Seconds()), 10)
		buf = appendField(buf, "graphType", b.o.GraphType)
		buf = b.appendNodes(append(buf, `,"elements":{"nodes":`...), newHealthRater(tols))
	})
	edges := b.appendEdges(make([]byte, 0, 64+800*len(b.edges)), newHealthRater(tols))
	wg.Wait()
	buf = append(append(buf, `,"edges":`...), edges...)
	return append(buf, "}}\n"...)
}

// appendNodes appends the JSON array of the nodes, boxes included, in
// Kiali's order.
func (b *builder) appendNodes(buf []byte, h *healthRater) []byte {
	nodes := make([]*node, 0, len(b.nodes)+len(b.nodes)/4)
	for _, n := range b.nodes {
		b.finishNode(n, h)
		nodes = append(nodes, n)
	}
	nodes = append(nodes, b.boxes(nodes)...)
	slices.SortFunc(nodes, func(x, y *node) int { return compareNodes(&x.data, &y.data) })
	buf = append(buf, '[')
	for i, n := range nodes {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = b.appendNode(buf, n)
	}
	return append(buf, ']')
}

// appendEdges appends the JSON array of the edges, by source, target and
// protocol.
func (b *builder) appendEdges(buf []byte, h *healthRater) []byte {
	edges := make([]*edge, 0, len(b.edges))
	for _, e := range b.edges {
		edges = append(edges, e)
	}
	slices.SortFunc(edges, func(x, y *edge) int {
		if c := strings.Compare(x.src.data.ID, y.src.data.ID); c != 0 {
			return c
		}
		if c := strings.Compare(x.dst.data.ID, y.dst.data.ID); c != 0 {
			return c
		}
		return strings.Compare(x.proto, y.proto)
	})
	buf = append(buf, '[')
	for i, e := range edges {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = b.appendEdge(buf, e, h)
	}
	return append(buf, ']')
}

// boxRank orders boxes outermost first, then the other nodes.
func boxRank(kind string) int {
	switch kind {
	case "cluster":
		return 0
	case "namespace":
		return 1
	case "app":
		return 2
	}
	return 3
}

// compareNodes is Kiali's node order (boxes outermost first, then cluster,
// namespace, app, version, service, workload), then id.
func compareNodes(a, c *NodeData) int {
	if r := boxRank(a.IsBox) - boxRank(c.IsBox); r != 0 {
		return r
	}
	if a.Cluster != c.Cluster {
		return strings.Compare(a.Cluster, c.Cluster)
	}
	if a.Namespace != c.Namespace {
		return strings.Compare(a.Namespace, c.Namespace)
	}
	if a.App != c.App {
		return strings.Compare(a.App, c.App)
	}
	if a.Version != c.Version {
		return strings.Compare(a.Version, c.Version)
	}
	if a.Service != c.Service {
		return strings.Compare(a.Service, c.Service)
	}
	if a.Workload != c.Workload {
		return strings.Compare(a.Workload, c.Workload)
	}
	return strings.Compare(a.ID, c.ID)
}

// appendEdge appends one edge's {"data": ...}, Kiali's EdgeData.
func (b *builder) appendEdge(buf []byte, e *edge, h *healthRater) []byte {
	p := protoIndex(e.proto)
	buf = append(buf, `{"data":{"id":"`...)
	buf = append(appendEdgeID(buf, e.src.data.ID, e.dst.data.ID, e.proto), '"')
	buf = appendRawField(buf, "source", e.src.data.ID)
	buf = appendRawField(buf, "target", e.dst.data.ID)
	requests := e.proto != "tcp" && e.reqs > 0
	if b.ap.security {
		buf = appendOmit(buf, "destPrincipal", e.dstP)
		if e.mtls > 0 && e.rate > 0 {
			buf = append(buf, `,"isMTLS":"`...)
			buf = append(strconv.AppendFloat(buf, e.mtls/e.rate*100, 'f', 0, 64), '"')
		}
	}
	if requests && b.ap.responseTime {
		buf = append(buf, `,"responseTime":"`...)
		buf = append(strconv.AppendFloat(buf, responseTime(b.o.ResponseTime, &e.hist, e.durSum, e.reqs), 'f', 0, 64), '"')
	}
	if b.ap.security {
		buf = appendOmit(buf, "sourcePrincipal", e.srcP)
	}
	if requests && b.ap.throughput {
		v := e.respBytes
		if b.o.ThroughputType == "request" {
			v = e.reqBytes
		}
		buf = append(buf, `,"throughput":"`...)
		buf = append(strconv.AppendFloat(buf, v, 'f', 0, 64), '"')
	}
	buf = appendString(append(buf, `,"traffic":{"protocol":`...), e.proto)
	if e.rate > 0 && p >= 0 {
		var arr [8]rateEntry
		buf = edgeRates(arr[:0], e, p).appendJSON(append(buf, `,"rates":`...))
		if e.reqs > 0 && len(e.resp) > 0 {
			buf = appendResponses(append(buf, `,"responses":`...), e)
		}
	}
	buf = append(buf, '}')
	if requests && b.ap.health {
		var codes []codeCount
		for _, c := range e.resp {
			codes = addCode(codes, c.code, c.reqs)
		}
		buf = appendField(buf, "healthStatus", h.status(p, inbound, codes))
	}
	buf = appendOmit(buf, "dataSource", sourceOf(e.metrics, e.spans))
	return append(buf, "}}"...)
}

// edgeRates is Kiali's rates of an edge with traffic: the total, the
// rate of each response class, the error share and the edge's share of
// its source's outbound traffic.
func edgeRates(rs rateSet, e *edge, p int) rateSet {
	names := rateNames[p]
	rs = rs.add(names.total, e.rate, rateFmt)
	var classes [4]struct {
		name string
		v    float64
	}
	errs := 0.0
	for _, c := range e.resp {
		name, _, isErr := names.classes(c.code)
		if isErr {
			errs += c.reqs
		}
		if name == "" {
			continue
		}
		for i := range classes {
			if classes[i].name == name || classes[i].name == "" {
				classes[i].name = name
				classes[i].v += c.reqs * e.rate / e.reqs
				break
			}
		}
	}
	for _, c := range classes {
		if c.name != "" && c.v > 0 {
			rs = rs.add(c.name, c.v, rateFmt)
		}
	}
	if names.pctErr != "" && errs > 0 && e.reqs > 0 {
		rs = rs.add(names.pctErr, errs/e.reqs*100, pctFmt)
	}
	if out := e.src.out[p]; names.pctReq != "" && out > 0 {
		rs = rs.add(names.pctReq, e.rate/out*100, pctFmt)
	}
	return rs
}

// appendResponses appends Kiali's responses map: per code, the percentage
// of the edge's requests by flags and by host. An edge has few (code,
// flags, host) entries, so sums are found by rescanning them.
func appendResponses(buf []byte, e *edge) []byte {
	var cbuf [8]string
	codes := cbuf[:0]
	for _, c := range e.resp {
		if !slices.Contains(codes, c.code) {
			codes = append(codes, c.code)
		}
	}
	slices.Sort(codes)
	buf = append(buf, '{')
	for i, code := range codes {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(appendString(buf, code), `:{"flags":`...)
		buf = appendShares(buf, e, code, func(c *codeRate) string { return c.flags })
		buf = appendShares(append(buf, `,"hosts":`...), e, code, func(c *codeRate) string { return c.host })
		buf = append(buf, '}')
	}
	return append(buf, '}')
}

// appendShares appends the object {by(c): percent of requests} over the
// edge's entries with code.
func appendShares(buf []byte, e *edge, code string, by func(*codeRate) string) []byte {
	var arr [8]rateEntry
	rs := rateSet(arr[:0])
	for i := range e.resp {
		c := &e.resp[i]
		if c.code != code || rs.has(by(c)) {
			continue
		}
		sum := 0.0
		for j := range e.resp {
			if o := &e.resp[j]; o.code == code && by(o) == by(c) {
				sum += o.reqs
			}
		}
		rs = rs.add(by(c), sum/e.reqs*100, pctFmt)
	}
	return rs.appendJSON(buf)
}

// responseTime is the average or a quantile (histogram_quantile's
// interpolation over Istio's buckets) in ms.
func responseTime(which string, h *[numBuckets]float64, sum, count float64) float64 {
	switch which {
	case "avg":
		return sum / count
	case "50":
		return quantile(0.5, h)
	case "99":
		return quantile(0.99, h)
	}
	return quantile(0.95, h)
}

// quantile is Prometheus's histogram_quantile over per-bucket counts.
func quantile(q float64, h *[numBuckets]float64) float64 {
	total := 0.0
	for _, c := range h {
		total += c
	}
	if total == 0 {
		return math.NaN()
	}
	rank, cum := q*total, 0.0
	for i, c := range h {
		if cum+c >= rank && c > 0 {
			if i == numBuckets-1 {
				return bucketBounds[numBuckets-2]
			}
			lo := 0.0
			if i > 0 {
				lo = bucketBounds[i-1]
			}
			return lo + (bucketBounds[i]-lo)*(rank-cum)/c
		}
		cum += c
	}
	return bucketBounds[numBuckets-2]
}

func sourceOf(m, s bool) string {
	switch {
	case m && s:
		return SourceBoth
	case s:
		return SourceSpans
	}
	return SourceMetrics
}
