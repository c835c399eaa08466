package topology

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"

	"github.com/glassmesh/glassmesh/telemetry/record"
)

// Protocol indexes, for the per-protocol arrays of nodes.
const (
	pHTTP = iota
	pGRPC
	pTCP
	numProto
)

// protoNames are the protocols by index.
var protoNames = [numProto]string{"http", "grpc", "tcp"}

// protoIndex is the index of a protocol label, -1 for others.
func protoIndex(p string) int {
	switch p {
	case "http":
		return pHTTP
	case "grpc":
		return pGRPC
	case "tcp":
		return pTCP
	}
	return -1
}

// codeCount is the requests/s with one response code.
type codeCount struct {
	code string
	reqs float64
}

// addCode adds r requests/s of code to cs; codes per element are few.
func addCode(cs []codeCount, code string, r float64) []codeCount {
	for i := range cs {
		if cs[i].code == code {
			cs[i].reqs += r
			return cs
		}
	}
	return append(cs, codeCount{code, r})
}

// codeRate is the requests/s of an edge with one code, flags and host.
type codeRate struct {
	code, flags, host string
	reqs              float64
}

// node is a graph node while it is built.
type node struct {
	data     NodeData
	in, out  [numProto]float64 // rate in the chosen unit
	inCodes  [numProto][]codeCount
	outCodes [numProto][]codeCount
	svcs     []ServiceName
	metrics  bool
	spans    bool
	hasIn    bool
	health   bool // healthData is drawn (the health appender; boxes of such nodes)
	registry bool // only the mesh registry knows it
}

// edge is a graph edge while it is built.
type edge struct {
	src, dst  *node
	proto     string
	rate      float64 // the chosen unit
	reqs      float64 // requests/s
	resp      []codeRate
	mtls      float64 // part of rate with mutual TLS
	srcP      string
	dstP      string
	hist      [numBuckets]float64
	durSum    float64
	reqBytes  float64
	respBytes float64
	metrics   bool
	spans     bool
}

type edgeKey struct {
	src, dst *node
	proto    string
}

// nodeKey is a node's identity; its id is the sha256 of their join.
type nodeKey struct {
	kind, cluster, ns, name, version string
}

// builder turns rows into nodes and edges for one set of options.
type builder struct {
	o      *Options
	ap     appenders
	nodes  map[nodeKey]*node
	edges  map[edgeKey]*edge
	serves map[[2]string][]string // (ns, workload) → services it answers for (service graph)
	nsSet  map[string]bool
}

// appenders are the appenders a graph runs, read once from the options'
// map (per element, map lookups showed in profiles).
type appenders struct {
	dead, idle, responseTime, security, throughput, health, istio bool
}

func newBuilder(o *Options) *builder {
	b := &builder{o: o, nodes: map[nodeKey]*node{}, edges: map[edgeKey]*edge{}}
	b.ap = appenders{dead: o.Appenders[AppenderDeadNode], idle: o.Appenders[AppenderIdleNode],
		responseTime: o.Appenders[AppenderResponseTime], security: o.Appenders[AppenderSecurityPolicy],
		throughput: o.Appenders[AppenderThroughput], health: o.Appenders[AppenderHealth], istio: o.Appenders[AppenderIstio]}
	if len(o.Namespaces) > 0 {
		b.nsSet = map[string]bool{}
		for _, ns := range o.Namespaces {
			b.nsSet[ns] = true
		}
	}
	return b
}

// nodeID is Kiali's node id: the sha256 of the node's identity, in hex.
func nodeID(ident string) string {
	s := sha256.Sum256([]byte(ident))
	return hex.EncodeToString(s[:])
}

// appendEdgeID appends Kiali's edge id: the node id of
// "source.target.protocol" (hashed from a stack buffer: one graph has
// tens of thousands of edges).
func appendEdgeID(b []byte, src, dst, proto string) []byte {
	var buf [160]byte
	s := sha256.Sum256(joinTo(buf[:0], '.', src, dst, proto))
	return hex.AppendEncode(b, s[:])
}

// joinTo appends parts separated by sep to b: an id's input without a
// string concatenation's allocation when b has room.
func joinTo(b []byte, sep byte, parts ...string) []byte {
	for i, p := range parts {
		if i > 0 {
			b = append(b, sep)
		}
		b = append(b, p...)
	}
	return b
}

// getNode returns the node of an identity, making it with mk on first use.
func (b *builder) getNode(k nodeKey, mk func() NodeData) *node {
	if n := b.nodes[k]; n != nil {
		return n
	}
	d := mk()
	var buf [128]byte
	s := sha256.Sum256(joinTo(buf[:0], '|', k.kind, k.cluster, k.ns, k.name, k.version))
	d.ID = hex.EncodeToString(s[:])
	n := &node{data: d}
	b.nodes[k] = n
	return n
}

func (b *builder) unknownNode() *node {
	return b.getNode(nodeKey{kind: "unknown"}, func() NodeData {
		u := record.Unknown
		return NodeData{NodeType: NodeTypeUnknown, Cluster: u, Namespace: u, Workload: u, App: u}
	})
}

func (b *builder) serviceNode(cluster, ns, name string) *node {
	if name == record.Unknown {
		return b.unknownNode()
	}
	return b.getNode(nodeKey{"svc", cluster, ns, name, ""}, func() NodeData {
		return NodeData{NodeType: NodeTypeService, Cluster: cluster, Namespace: ns, Service: name}
	})
}

// peerKey is the identity of a workload peer's node for the graph type:
// its workload, app or versioned app, or the unknown node.
func peerKey(p *peer, gt string) nodeKey {
	switch {
	case p.Workload == record.Unknown:
		return nodeKey{kind: "unknown"}
	case gt == GraphTypeWorkload || p.App == record.Unknown:
		return nodeKey{"wk", p.Cluster, p.Namespace, p.Workload, ""}
	case gt == GraphTypeApp:
		return nodeKey{"app", p.Cluster, p.Namespace, p.App, ""}
	}
	return nodeKey{"vapp", p.Cluster, p.Namespace, p.App, p.Version}
}

// peerNode is the node of a workload peer for the graph type.
func (b *builder) peerNode(p *peer, gt string) *node {
	k := peerKey(p, gt)
	switch k.kind {
	case "unknown":
		return b.unknownNode()
	case "wk":
		return b.getNode(k, func() NodeData {
			d := NodeData{NodeType: NodeTypeWorkload, Cluster: p.Cluster, Namespace: p.Namespace, Workload: p.Workload}
			if p.App != record.Unknown {
				d.App, d.Version = p.App, p.Version
			}
			return d
		})
	case "app":
		return b.getNode(k, func() NodeData {
			return NodeData{NodeType: NodeTypeApp, Cluster: p.Cluster, Namespace: p.Namespace, App: p.App}
		})
	}
	return b.getNode(k, func() NodeData {
		return NodeData{NodeType: NodeTypeApp, Cluster: p.Cluster, Namespace: p.Namespace, App: p.App, Version: p.Version}
	})
}

// wanted reports whether a row touches a requested namespace.
func (b *builder) wanted(k *rowKey) bool {
	return b.nsSet == nil || b.nsSet[k.Src.Namespace] || b.nsSet[k.SvcNS] || b.nsSet[k.Dst.Namespace]
}

// rate is a row's value in the unit the options ask for; ok is false when
// its protocol is turned off.
func (b *builder) rate(k *rowKey, v *rowVals) (float64, bool) {
	var sel string
	switch k.Protocol {
	case "http":
		sel = b.o.RateHTTP
	case "grpc":
		sel = b.o.RateGRPC
	case "tcp":
		sel = b.o.RateTCP
	}
	switch sel {
	case "requests":
		return v.Requests, true
	case "sent":
		if k.TCP {
			return v.TCPSent, true
		}
		return v.ReqBytes, true
	case "received":
		if k.TCP {
			return v.TCPRecv, true
		}
		return v.RespBytes, true
	case "total":
		if k.TCP {
			return v.TCPSent + v.TCPRecv, true
		}
		return v.ReqBytes + v.RespBytes, true
	}
	return 0, false
}

// addRows adds the traffic of rows to the graph.
func (b *builder) addRows(rows []row) {
	if len(b.edges) == 0 && len(b.nodes) == 0 { // about one edge per row, a node per two
		b.edges = make(map[edgeKey]*edge, len(rows))
		b.nodes = make(map[nodeKey]*node, len(rows)/2)
	}
	gt := b.o.GraphType
	if gt == GraphTypeService {
		b.indexServes(rows)
	}
	// Rows come in map order; in key order every sum of the graph adds
	// its terms in the same order (float addition is not associative),
	// so the same data draws the same bytes and streams see no change.
	order := make([]*row, len(rows))
	for i := range rows {
		order[i] = &rows[i]
	}
	slices.SortFunc(order, func(x, y *row) int { return compareRowKeys(&x.key, &y.key) })
	for _, r := range order {
		if !b.wanted(&r.key) || (b.ap.dead && r.val.zero()) {
			continue
		}
		rate, ok := b.rate(&r.key, &r.val)
		if !ok || protoIndex(r.key.Protocol) < 0 {
			continue
		}
		src, dst := b.endpoints(&r.key)
		if src == nil {
			continue
		}
		if b.o.InjectServiceNodes && gt != GraphTypeService && dst.data.NodeType != NodeTypeService &&
			dst.data.NodeType != NodeTypeUnknown && r.key.SvcName != record.Unknown {
			svc := b.serviceNode(r.key.Dst.Cluster, r.key.SvcNS, r.key.SvcName)
			b.addEdge(src, svc, r, rate)
			src = svc
		}
		b.addEdge(src, dst, r, rate)
	}
}

// endpoints resolves the source and destination nodes of a row.
func (b *builder) endpoints(k *rowKey) (src, dst *node) {
	gt := b.o.GraphType
	if gt == GraphTypeService {
		src = b.unknownNode()
		if k.Src.Workload != record.Unknown {
			if svcs := b.serves[[2]string{k.Src.Namespace, k.Src.Workload}]; len(svcs) > 0 {
				src = b.serviceNode(k.Src.Cluster, k.Src.Namespace, svcs[0])
			} else {
				src = b.peerNode(&k.Src, GraphTypeVersionedApp)
			}
		}
		return src, b.serviceNode(k.Dst.Cluster, k.SvcNS, k.SvcName)
	}
	src = b.peerNode(&k.Src, gt)
	if k.Dst.Workload == record.Unknown {
		return src, b.serviceNode(k.Dst.Cluster, k.SvcNS, k.SvcName)
	}
	dst = b.peerNode(&k.Dst, gt)
	if k.SvcName != record.Unknown {
		if sn := (ServiceName{Cluster: k.Dst.Cluster, Namespace: k.SvcNS, Name: k.SvcName}); !slices.Contains(dst.svcs, sn) {
			dst.svcs = append(dst.svcs, sn)
		}
	}
	return src, dst
}

// indexServes records which services each workload answers for, so the
// service graph draws a workload's calls from its service.
func (b *builder) indexServes(rows []row) {
	b.serves = map[[2]string][]string{}
	for i := range rows {
		k := &rows[i].key
		if k.Dst.Workload == record.Unknown || k.SvcName == record.Unknown {
			continue
		}
		w := [2]string{k.Dst.Namespace, k.Dst.Workload}
		if !slices.Contains(b.serves[w], k.SvcName) {
			b.serves[w] = append(b.serves[w], k.SvcName)
			slices.Sort(b.serves[w])
		}
	}
}

// addEdge adds one row's traffic to the edge src→dst.
func (b *builder) addEdge(src, dst *node, r *row, rate float64) {
	k := &r.key
	p := protoIndex(k.Protocol)
	ek := edgeKey{src, dst, k.Protocol}
	e := b.edges[ek]
	if e == nil {
		e = &edge{src: src, dst: dst, proto: k.Protocol}
		b.edges[ek] = e
	}
	e.metrics, src.metrics, dst.metrics = true, true, true
	e.rate += rate
	e.reqs += r.val.Requests
	if k.Security == "mutual_tls" {
		e.mtls += rate
	}
	// Of several principals (a service node's callers) the least, so the
	// graph does not depend on the order rows come in.
	if pr := k.Src.Principal; pr != record.Unknown && (e.srcP == "" || pr < e.srcP) {
		e.srcP = pr
	}
	if pr := k.Dst.Principal; pr != record.Unknown && (e.dstP == "" || pr < e.dstP) {
		e.dstP = pr
	}
	if !k.TCP {
		e.addResp(k, r.val.Requests)
		src.outCodes[p] = addCode(src.outCodes[p], k.Code, r.val.Requests)
		dst.inCodes[p] = addCode(dst.inCodes[p], k.Code, r.val.Requests)
	}
	for i, h := range r.val.Hist {
		e.hist[i] += h
	}
	e.durSum += r.val.DurSum
	e.reqBytes += r.val.ReqBytes
	e.respBytes += r.val.RespBytes
	src.out[p] += rate
	dst.in[p] += rate
	dst.hasIn = true
}

// addResp adds requests/s to the edge's (code, flags, host) entry.
func (e *edge) addResp(k *rowKey, r float64) {
	for i := range e.resp {
		c := &e.resp[i]
		if c.code == k.Code && c.flags == k.Flags && c.host == k.SvcHost {
			c.reqs += r
			return
		}
	}
	e.resp = append(e.resp, codeRate{k.Code, k.Flags, k.SvcHost, r})
}

// addIdle adds the nodes of series seen before the window but not in it.
func (b *builder) addIdle(old []rowKey) {
	for i := range old {
		k := &old[i]
		if !b.wanted(k) {
			continue
		}
		src, dst := b.endpoints(k)
		for _, x := range []*node{src, dst} {
			if x != nil && !x.metrics && !x.spans {
				x.data.IsIdle = true
			}
		}
	}
}
