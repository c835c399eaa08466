package topology

import (
	"crypto/md5"
	"encoding/hex"
	"slices"

	"github.com/glassmesh/glassmesh/telemetry/metrics"
)

// node is a graph node while it is built.
type node struct {
	data     NodeData
	in, out  map[string]float64            // protocol → rate (the chosen unit)
	inCodes  map[string]map[string]float64 // protocol → code → requests/s
	outCodes map[string]map[string]float64
	svcs     map[ServiceName]struct{}
	metrics  bool
	spans    bool
	hasIn    bool
}

// edge is a graph edge while it is built.
type edge struct {
	src, dst  *node
	proto     string
	rate      float64                       // the chosen unit
	reqs      float64                       // requests/s
	codes     map[string]map[string]float64 // code → flags → requests/s
	hosts     map[string]map[string]float64 // code → host → requests/s
	mtls      float64                       // share of rate with mutual TLS
	srcP      string
	dstP      string
	hist      [numBuckets]float64
	durSum    float64
	reqBytes  float64
	respBytes float64
	metrics   bool
	spans     bool
}

type edgeKey struct{ src, dst, proto string }

// builder turns rows into nodes and edges for one set of options.
type builder struct {
	o      *Options
	nodes  map[string]*node
	edges  map[edgeKey]*edge
	serves map[[2]string][]string // (ns, workload) → services it answers for (service graph)
	nsSet  map[string]bool
}

func newBuilder(o *Options) *builder {
	b := &builder{o: o, nodes: map[string]*node{}, edges: map[edgeKey]*edge{}}
	if len(o.Namespaces) > 0 {
		b.nsSet = map[string]bool{}
		for _, ns := range o.Namespaces {
			b.nsSet[ns] = true
		}
	}
	return b
}

// nodeID is Kiali's node id: the md5 of the node's identity.
func nodeID(ident string) string {
	s := md5.Sum([]byte(ident))
	return hex.EncodeToString(s[:])
}

// edgeID is Kiali's edge id: md5 of "source.target.protocol".
func edgeID(src, dst, proto string) string {
	return nodeID(src + "." + dst + "." + proto)
}

// getNode returns the node of an identity, making it with d on first use.
func (b *builder) getNode(ident string, d NodeData) *node {
	if n := b.nodes[ident]; n != nil {
		return n
	}
	d.ID = nodeID(ident)
	n := &node{data: d, in: map[string]float64{}, out: map[string]float64{},
		inCodes: map[string]map[string]float64{}, outCodes: map[string]map[string]float64{}}
	b.nodes[ident] = n
	return n
}

func (b *builder) unknownNode() *node {
	u := metrics.Unknown
	return b.getNode("unknown", NodeData{NodeType: NodeTypeUnknown, Cluster: u, Namespace: u, Workload: u, App: u})
}

func (b *builder) serviceNode(cluster, ns, name string) *node {
	if name == metrics.Unknown {
		return b.unknownNode()
	}
	return b.getNode("svc|"+cluster+"|"+ns+"|"+name, NodeData{NodeType: NodeTypeService, Cluster: cluster, Namespace: ns, Service: name})
}

// peerNode is the node of a workload peer for the graph type.
func (b *builder) peerNode(p *peer, gt string) *node {
	if p.Workload == metrics.Unknown {
		return b.unknownNode()
	}
	if gt == GraphTypeWorkload || p.App == metrics.Unknown {
		d := NodeData{NodeType: NodeTypeWorkload, Cluster: p.Cluster, Namespace: p.Namespace, Workload: p.Workload}
		if p.App != metrics.Unknown {
			d.App, d.Version = p.App, p.Version
		}
		return b.getNode("wk|"+p.Cluster+"|"+p.Namespace+"|"+p.Workload, d)
	}
	if gt == GraphTypeApp {
		return b.getNode("app|"+p.Cluster+"|"+p.Namespace+"|"+p.App, NodeData{NodeType: NodeTypeApp, Cluster: p.Cluster, Namespace: p.Namespace, App: p.App})
	}
	return b.getNode("vapp|"+p.Cluster+"|"+p.Namespace+"|"+p.App+"|"+p.Version,
		NodeData{NodeType: NodeTypeApp, Cluster: p.Cluster, Namespace: p.Namespace, App: p.App, Version: p.Version})
}

// wanted reports whether a row touches a requested namespace.
func (b *builder) wanted(k *rowKey) bool {
	return b.nsSet == nil || b.nsSet[k.Src.Namespace] || b.nsSet[k.SvcNS] || b.nsSet[k.Dst.Namespace]
}

// rate is a row's value in the unit the options ask for; ok is false when
// its protocol is turned off.
func (b *builder) rate(k *rowKey, v *rowVals) (float64, bool) {
	sel := map[string]string{"http": b.o.RateHTTP, "grpc": b.o.RateGRPC, "tcp": b.o.RateTCP}[k.Protocol]
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
	gt := b.o.GraphType
	if gt == GraphTypeService {
		b.indexServes(rows)
	}
	for i := range rows {
		r := &rows[i]
		if !b.wanted(&r.key) || (b.o.Appenders[AppenderDeadNode] && r.val.zero()) {
			continue
		}
		rate, ok := b.rate(&r.key, &r.val)
		if !ok {
			continue
		}
		src, dst := b.endpoints(&r.key)
		if src == nil {
			continue
		}
		if b.o.InjectServiceNodes && gt != GraphTypeService && dst.data.NodeType != NodeTypeService &&
			dst.data.NodeType != NodeTypeUnknown && r.key.SvcName != metrics.Unknown {
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
		if k.Src.Workload != metrics.Unknown {
			if svcs := b.serves[[2]string{k.Src.Namespace, k.Src.Workload}]; len(svcs) > 0 {
				src = b.serviceNode(k.Src.Cluster, k.Src.Namespace, svcs[0])
			} else {
				src = b.peerNode(&k.Src, GraphTypeVersionedApp)
			}
		}
		return src, b.serviceNode(k.Dst.Cluster, k.SvcNS, k.SvcName)
	}
	src = b.peerNode(&k.Src, gt)
	if k.Dst.Workload == metrics.Unknown {
		return src, b.serviceNode(k.Dst.Cluster, k.SvcNS, k.SvcName)
	}
	dst = b.peerNode(&k.Dst, gt)
	if k.SvcName != metrics.Unknown {
		if dst.svcs == nil {
			dst.svcs = map[ServiceName]struct{}{}
		}
		dst.svcs[ServiceName{Cluster: k.Dst.Cluster, Namespace: k.SvcNS, Name: k.SvcName}] = struct{}{}
	}
	return src, dst
}

// indexServes records which services each workload answers for, so the
// service graph draws a workload's calls from its service.
func (b *builder) indexServes(rows []row) {
	b.serves = map[[2]string][]string{}
	for i := range rows {
		k := &rows[i].key
		if k.Dst.Workload == metrics.Unknown || k.SvcName == metrics.Unknown {
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
	ek := edgeKey{src.data.ID, dst.data.ID, k.Protocol}
	e := b.edges[ek]
	if e == nil {
		e = &edge{src: src, dst: dst, proto: k.Protocol, codes: map[string]map[string]float64{}, hosts: map[string]map[string]float64{}}
		b.edges[ek] = e
	}
	e.metrics, src.metrics, dst.metrics = true, true, true
	e.rate += rate
	e.reqs += r.val.Requests
	if k.Security == "mutual_tls" {
		e.mtls += rate
	}
	if e.srcP == "" && k.Src.Principal != metrics.Unknown {
		e.srcP = k.Src.Principal
	}
	if e.dstP == "" && k.Dst.Principal != metrics.Unknown {
		e.dstP = k.Dst.Principal
	}
	if !k.TCP {
		addTo(e.codes, k.Code, k.Flags, r.val.Requests)
		addTo(e.hosts, k.Code, k.SvcHost, r.val.Requests)
		addTo(src.outCodes, k.Protocol, k.Code, r.val.Requests)
		addTo(dst.inCodes, k.Protocol, k.Code, r.val.Requests)
	}
	for i, h := range r.val.Hist {
		e.hist[i] += h
	}
	e.durSum += r.val.DurSum
	e.reqBytes += r.val.ReqBytes
	e.respBytes += r.val.RespBytes
	src.out[k.Protocol] += rate
	dst.in[k.Protocol] += rate
	dst.hasIn = true
}

func addTo(m map[string]map[string]float64, a, b string, v float64) {
	in := m[a]
	if in == nil {
		in = map[string]float64{}
		m[a] = in
	}
	in[b] += v
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
