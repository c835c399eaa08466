package topology

import (
	"cmp"
	"slices"
)

// nodeData is one node's JSON.
func (b *builder) nodeData(n *node, h *healthRater) *NodeData {
	d := n.data
	d.DataSource = sourceOf(n.metrics, n.spans)
	if n.data.IsIdle {
		d.DataSource = SourceMetrics
	}
	for p := range numProto {
		if n.in[p] <= 0 && n.out[p] <= 0 {
			continue
		}
		names := rateNames[protoNames[p]]
		pt := ProtocolTraffic{Protocol: protoNames[p], Rates: make(map[string]string, 3)}
		if v := n.in[p]; v > 0 {
			pt.Rates[names.in] = rateString(2, v)
			inReqs := 0.0
			for _, c := range n.inCodes[p] {
				inReqs += c.reqs
			}
			var cls []codeCount
			for _, c := range n.inCodes[p] {
				if _, name, _ := names.classes(c.code); name != "" {
					cls = addCode(cls, name, c.reqs*v/inReqs)
				}
			}
			for _, c := range cls {
				pt.Rates[c.code] = rateString(2, c.reqs)
			}
		}
		if v := n.out[p]; v > 0 {
			pt.Rates[names.out] = rateString(2, v)
		}
		d.Traffic = append(d.Traffic, pt)
	}
	d.DestServices = slices.Clone(n.svcs)
	slices.SortFunc(d.DestServices, func(x, y ServiceName) int {
		return cmp.Or(cmp.Compare(x.Cluster, y.Cluster), cmp.Compare(x.Namespace, y.Namespace), cmp.Compare(x.Name, y.Name))
	})
	d.IsRoot = !n.hasIn && n.out != [numProto]float64{}
	if b.nsSet != nil && d.NodeType != NodeTypeUnknown && !b.nsSet[d.Namespace] {
		d.IsOutside = true
	}
	if b.o.Appenders[AppenderHealth] {
		d.HealthData = &HealthData{Requests: HealthRequests{Inbound: codeMap(&n.inCodes), Outbound: codeMap(&n.outCodes)}}
		d.HealthStatus = HealthNA
		for p := range numProto {
			d.HealthStatus = worst(d.HealthStatus, h.status(p, n.inCodes[p]))
		}
	}
	return &d
}

// codeMap is Kiali's healthData shape: protocol → code → requests/s.
func codeMap(cs *[numProto][]codeCount) map[string]map[string]float64 {
	m := map[string]map[string]float64{}
	for p, codes := range cs {
		if len(codes) == 0 {
			continue
		}
		in := make(map[string]float64, len(codes))
		for _, c := range codes {
			in[c.code] = c.reqs
		}
		m[protoNames[p]] = in
	}
	return m
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
