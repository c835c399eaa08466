package topology

import (
	"cmp"
	"slices"
)

// nodeData is one node's JSON.
func (b *builder) nodeData(n *node, tols []Tolerance) *NodeData {
	d := n.data
	d.DataSource = sourceOf(n.metrics, n.spans)
	if n.data.IsIdle {
		d.DataSource = SourceMetrics
	}
	for _, proto := range []string{"http", "grpc", "tcp"} {
		names := rateNames[proto]
		rates := map[string]float64{}
		if v := n.in[proto]; v > 0 {
			rates[names.in] = v
			for code, r := range n.inCodes[proto] {
				if _, name, _ := names.classes(code); name != "" && n.inReqs(proto) > 0 {
					rates[name] += r * v / n.inReqs(proto)
				}
			}
		}
		if v := n.out[proto]; v > 0 {
			rates[names.out] = v
		}
		if len(rates) == 0 {
			continue
		}
		pt := ProtocolTraffic{Protocol: proto, Rates: map[string]string{}}
		for k, v := range rates {
			if v > 0 {
				pt.Rates[k] = rateString(2, v)
			}
		}
		d.Traffic = append(d.Traffic, pt)
	}
	for s := range n.svcs {
		d.DestServices = append(d.DestServices, s)
	}
	slices.SortFunc(d.DestServices, func(x, y ServiceName) int {
		return cmp.Or(cmp.Compare(x.Cluster, y.Cluster), cmp.Compare(x.Namespace, y.Namespace), cmp.Compare(x.Name, y.Name))
	})
	d.IsRoot = !n.hasIn && len(n.out) > 0
	if b.nsSet != nil && d.NodeType != NodeTypeUnknown && !b.nsSet[d.Namespace] {
		d.IsOutside = true
	}
	if b.o.Appenders[AppenderHealth] {
		d.HealthData = &HealthData{Requests: HealthRequests{Inbound: n.inCodes, Outbound: n.outCodes}}
		d.HealthStatus = healthOf(tols, n.inCodes)
	}
	return &d
}

// inReqs is the node's inbound requests/s of a protocol.
func (n *node) inReqs(proto string) float64 {
	t := 0.0
	for _, r := range n.inCodes[proto] {
		t += r
	}
	return t
}

// boxes adds Kiali's compound nodes for boxBy (cluster, then namespace,
// then app inside) and sets each member's parent.
func (b *builder) boxes(nodes []*NodeWrapper) []*NodeWrapper {
	var out []*NodeWrapper
	for _, kind := range []string{"app", "namespace", "cluster"} {
		if !slices.Contains(b.o.BoxBy, kind) {
			continue
		}
		groups := map[string][]*NodeData{}
		for _, nw := range append(slices.Clone(nodes), out...) {
			d := nw.Data
			if d.NodeType == NodeTypeUnknown || d.Parent != "" || (d.IsBox != "" && !outer(d.IsBox, kind)) {
				continue
			}
			if k, ok := boxKey(kind, d); ok {
				groups[k] = append(groups[k], d)
			}
		}
		for k, members := range groups {
			if kind == "app" && len(members) < 2 {
				continue
			}
			m := members[0]
			box := &NodeData{ID: nodeID(k), NodeType: NodeTypeBox, IsBox: kind, Cluster: m.Cluster, Namespace: m.Namespace}
			if kind == "app" {
				box.App = m.App
			}
			if kind == "cluster" {
				box.Namespace = ""
			}
			for _, mem := range members {
				mem.Parent = box.ID
			}
			out = append(out, &NodeWrapper{Data: box})
		}
	}
	return out
}

// outer reports whether a box of kind inner goes inside a box of kind.
func outer(inner, kind string) bool {
	rank := map[string]int{"app": 0, "namespace": 1, "cluster": 2}
	return rank[inner] < rank[kind]
}

// boxKey is the identity of the box of kind a node belongs in.
func boxKey(kind string, d *NodeData) (string, bool) {
	switch kind {
	case "app":
		if d.App == "" || d.App == "unknown" || d.IsBox != "" {
			return "", false
		}
		return "box|app|" + d.Cluster + "|" + d.Namespace + "|" + d.App, true
	case "namespace":
		return "box|ns|" + d.Cluster + "|" + d.Namespace, true
	}
	return "box|cluster|" + d.Cluster, true
}
