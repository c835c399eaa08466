package topology

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// protoRates names Kiali's rates of one protocol.
type protoRates struct {
	total, pctErr, pctReq, in, out string
	classes                        func(code string) (edgeRate, nodeRate string, isErr bool)
}

var rateNames = map[string]protoRates{
	"http": {total: "http", pctErr: "httpPercentErr", pctReq: "httpPercentReq", in: "httpIn", out: "httpOut", classes: httpClass},
	"grpc": {total: "grpc", pctErr: "grpcPercentErr", pctReq: "grpcPercentReq", in: "grpcIn", out: "grpcOut", classes: grpcClass},
	"tcp":  {total: "tcp", in: "tcpIn", out: "tcpOut", classes: func(string) (string, string, bool) { return "", "", false }},
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

// rateString is Kiali's rateToString: at least prec decimals, more (up to
// 5) until a significant digit shows.
func rateString(prec int, v float64) string {
	p := 0
	for x := v; x > 0 && x < 1 && p < 5; x *= 10 {
		p++
	}
	return strconv.FormatFloat(v, 'f', max(p, prec), 64)
}

func pct(v, total float64) string { return strconv.FormatFloat(v/total*100, 'f', 1, 64) }

// emit turns the built graph into Kiali's JSON, appenders applied.
func (b *builder) emit(tols []Tolerance, at time.Time) *Cytoscape {
	h := newHealthRater(tols)
	out := &Cytoscape{Timestamp: at.Unix(), Duration: int64(b.o.Duration.Seconds()), GraphType: b.o.GraphType,
		Elements: Elements{Nodes: make([]*NodeWrapper, 0, len(b.nodes)), Edges: make([]*EdgeWrapper, 0, len(b.edges))}}
	// One allocation per kind instead of one per element: GC time is
	// most of a big graph's cost.
	ews := make([]EdgeWrapper, 0, len(b.edges))
	for _, e := range b.edges {
		ews = append(ews, EdgeWrapper{Data: b.edgeData(e, h)})
		out.Elements.Edges = append(out.Elements.Edges, &ews[len(ews)-1])
	}
	nws := make([]NodeWrapper, 0, len(b.nodes))
	for _, n := range b.nodes {
		nws = append(nws, NodeWrapper{Data: b.nodeData(n, h)})
		out.Elements.Nodes = append(out.Elements.Nodes, &nws[len(nws)-1])
	}
	out.Elements.Nodes = append(out.Elements.Nodes, b.boxes(out.Elements.Nodes)...)
	slices.SortFunc(out.Elements.Nodes, func(x, y *NodeWrapper) int { return compareNodes(x.Data, y.Data) })
	slices.SortFunc(out.Elements.Edges, func(x, y *EdgeWrapper) int {
		if c := strings.Compare(x.Data.Source, y.Data.Source); c != 0 {
			return c
		}
		if c := strings.Compare(x.Data.Target, y.Data.Target); c != 0 {
			return c
		}
		return strings.Compare(x.Data.Traffic.Protocol, y.Data.Traffic.Protocol)
	})
	return out
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
	for _, p := range [...][2]string{{a.Cluster, c.Cluster}, {a.Namespace, c.Namespace}, {a.App, c.App},
		{a.Version, c.Version}, {a.Service, c.Service}, {a.Workload, c.Workload}} {
		if r := strings.Compare(p[0], p[1]); r != 0 {
			return r
		}
	}
	return strings.Compare(a.ID, c.ID)
}

// edgeData is one edge's JSON.
func (b *builder) edgeData(e *edge, h *healthRater) *EdgeData {
	d := &EdgeData{ID: edgeID(e.src.data.ID, e.dst.data.ID, e.proto), Source: e.src.data.ID, Target: e.dst.data.ID,
		Traffic: ProtocolTraffic{Protocol: e.proto}, DataSource: sourceOf(e.metrics, e.spans)}
	if e.rate <= 0 {
		b.edgeAppenders(e, d, h)
		return d
	}
	names := rateNames[e.proto]
	d.Traffic.Rates = make(map[string]string, 4)
	d.Traffic.Rates[names.total] = rateString(2, e.rate)
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
			d.Traffic.Rates[c.name] = rateString(2, c.v)
		}
	}
	if names.pctErr != "" && errs > 0 && e.reqs > 0 {
		d.Traffic.Rates[names.pctErr] = pct(errs, e.reqs)
	}
	if out := e.src.out[protoIndex(e.proto)]; names.pctReq != "" && out > 0 {
		d.Traffic.Rates[names.pctReq] = pct(e.rate, out)
	}
	if e.reqs > 0 {
		d.Traffic.Responses = responses(e)
	}
	b.edgeAppenders(e, d, h)
	return d
}

// responses is Kiali's responses map: per code, the percentage of the
// edge's requests by flags and by host. An edge has few (code, flags,
// host) entries, so sums are found by rescanning them.
func responses(e *edge) Responses {
	rs := make(Responses, 2)
	for _, c := range e.resp {
		rd := rs[c.code]
		if rd == nil {
			rd = &ResponseDetail{Flags: make(map[string]string, 1), Hosts: make(map[string]string, 1)}
			rs[c.code] = rd
		}
		if _, done := rd.Flags[c.flags]; !done {
			sum := 0.0
			for _, o := range e.resp {
				if o.code == c.code && o.flags == c.flags {
					sum += o.reqs
				}
			}
			rd.Flags[c.flags] = pct(sum, e.reqs)
		}
		if _, done := rd.Hosts[c.host]; !done {
			sum := 0.0
			for _, o := range e.resp {
				if o.code == c.code && o.host == c.host {
					sum += o.reqs
				}
			}
			rd.Hosts[c.host] = pct(sum, e.reqs)
		}
	}
	return rs
}

// edgeAppenders fills what the appenders add to an edge.
func (b *builder) edgeAppenders(e *edge, d *EdgeData, h *healthRater) {
	ap := b.o.Appenders
	if ap[AppenderSecurityPolicy] && e.mtls > 0 && e.rate > 0 {
		d.IsMTLS = fmt.Sprintf("%.0f", e.mtls/e.rate*100)
	}
	if ap[AppenderSecurityPolicy] {
		d.SourcePrincipal, d.DestPrincipal = e.srcP, e.dstP
	}
	if e.proto == "tcp" || e.reqs <= 0 {
		return
	}
	if ap[AppenderResponseTime] {
		d.ResponseTime = strconv.FormatFloat(responseTime(b.o.ResponseTime, &e.hist, e.durSum, e.reqs), 'f', 0, 64)
	}
	if ap[AppenderThroughput] {
		v := e.respBytes
		if b.o.ThroughputType == "request" {
			v = e.reqBytes
		}
		d.Throughput = strconv.FormatFloat(v, 'f', 0, 64)
	}
	if ap[AppenderHealth] {
		var codes []codeCount
		for _, c := range e.resp {
			codes = addCode(codes, c.code, c.reqs)
		}
		d.HealthStatus = h.status(protoIndex(e.proto), inbound, codes)
	}
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
