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
		d.HealthStatus = nodeHealth(h, n)
	}
	return &d
}

// nodeHealth is Kiali's: the worst of the inbound and (for apps and
// workloads) outbound request health; the unknown node has none.
func nodeHealth(h *healthRater, n *node) string {
	status := HealthNA
	if n.data.NodeType == NodeTypeUnknown {
		return status
	}
	for p := range numProto {
		status = worst(status, h.status(p, inbound, n.inCodes[p]))
		if n.data.NodeType != NodeTypeService {
			status = worst(status, h.status(p, outbound, n.outCodes[p]))
		}
	}
	return status
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

// boxes adds Kiali's compound nodes, inner boxes first: app boxes (asked
// for, or always in app graphs) hold two or more nodes of one app;
// namespace and cluster boxes hold the unboxed nodes (and inner boxes) of
// one namespace or cluster, and are drawn only when there are several
// such groups. Unknown namespaces and clusters are never boxed.
func (b *builder) boxes(nodes []*NodeWrapper) []*NodeWrapper {
	var out []*NodeWrapper
	gt := b.o.GraphType
	for _, kind := range []string{"app", "namespace", "cluster"} {
		asked := slices.Contains(b.o.BoxBy, kind)
		if !asked && !(kind == "app" && (gt == GraphTypeApp || gt == GraphTypeVersionedApp)) {
			continue
		}
		groups := map[string][]*NodeData{}
		var order []string
		for _, nw := range append(slices.Clone(nodes), out...) {
			if k, ok := boxKey(kind, nw.Data); ok {
				if groups[k] == nil {
					order = append(order, k)
				}
				groups[k] = append(groups[k], nw.Data)
			}
		}
		if kind != "app" && len(groups) < 2 {
			continue
		}
		for _, k := range order {
			if members := groups[k]; len(members) > 1 {
				slices.SortFunc(members, compareNodes)
				out = append(out, &NodeWrapper{Data: newBox(kind, k, members)})
			}
		}
	}
	return out
}

// newBox is the box node of kind holding members, which it parents.
func newBox(kind, key string, members []*NodeData) *NodeData {
	m := members[0]
	box := &NodeData{ID: nodeID(key), NodeType: NodeTypeBox, IsBox: kind, Cluster: m.Cluster}
	if kind != "cluster" {
		box.Namespace = m.Namespace
	}
	for _, mem := range members {
		mem.Parent = box.ID
		if kind != "app" {
			continue
		}
		box.App = mem.App
		if mem.HealthData != nil { // the app's health: its members' together
			if box.HealthData == nil {
				box.HealthData = &HealthData{Requests: HealthRequests{Inbound: map[string]map[string]float64{}, Outbound: map[string]map[string]float64{}}}
				box.HealthStatus = HealthNA
			}
			mergeRates(box.HealthData.Requests.Inbound, mem.HealthData.Requests.Inbound)
			mergeRates(box.HealthData.Requests.Outbound, mem.HealthData.Requests.Outbound)
			box.HealthStatus = worst(box.HealthStatus, mem.HealthStatus)
		}
		box.IsOutOfMesh = box.IsOutOfMesh || mem.IsOutOfMesh
		box.IsInaccessible = box.IsInaccessible || mem.IsInaccessible
		box.IsOutside = box.IsOutside || mem.IsOutside
	}
	return box
}

// mergeRates adds src's rates into dst.
func mergeRates(dst, src map[string]map[string]float64) {
	for p, codes := range src {
		if dst[p] == nil {
			dst[p] = map[string]float64{}
		}
		for c, r := range codes {
			dst[p][c] += r
		}
	}
}

// boxKey is the identity of the box of kind a node belongs in.
func boxKey(kind string, d *NodeData) (string, bool) {
	switch kind {
	case "app":
		if d.App == "" || d.App == "unknown" || d.IsBox != "" {
			return "", false
		}
		return "box_" + d.Cluster + "_" + d.Namespace + "_" + d.App, true
	case "namespace":
		if d.Parent != "" || d.Namespace == "unknown" || d.IsBox == "cluster" {
			return "", false
		}
		return "box_" + d.Cluster + "_" + d.Namespace, true
	}
	if d.Parent != "" || d.Cluster == "unknown" {
		return "", false
	}
	return "box_" + d.Cluster, true
}
