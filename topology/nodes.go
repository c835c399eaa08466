package topology

import (
	"cmp"
	"slices"
)

// finishNode fills the node's flags and statuses once its traffic is
// complete.
func (b *builder) finishNode(n *node, h *healthRater) {
	d := &n.data
	switch {
	case n.registry:
		d.DataSource = SourceRegistry
	case d.IsIdle: // traffic before the window
		d.DataSource = SourceMetrics
	default:
		d.DataSource = sourceOf(n.metrics, n.spans)
	}
	slices.SortFunc(n.svcs, func(x, y ServiceName) int {
		return cmp.Or(cmp.Compare(x.Cluster, y.Cluster), cmp.Compare(x.Namespace, y.Namespace), cmp.Compare(x.Name, y.Name))
	})
	d.IsRoot = !n.hasIn && n.out != [numProto]float64{}
	if b.nsSet != nil && d.NodeType != NodeTypeUnknown && !b.nsSet[d.Namespace] {
		d.IsOutside = true
	}
	if b.ap.health {
		n.health = true
		d.HealthStatus = nodeHealth(h, n)
	}
}

// appendNode appends one node's {"data": ...}, Kiali's NodeData.
func (b *builder) appendNode(buf []byte, n *node) []byte {
	d := &n.data
	buf = append(append(append(buf, `{"data":{"id":"`...), d.ID...), '"')
	if d.Parent != "" {
		buf = appendRawField(buf, "parent", d.Parent)
	}
	buf = appendField(buf, "nodeType", d.NodeType)
	buf = appendField(buf, "cluster", d.Cluster)
	buf = appendField(buf, "namespace", d.Namespace)
	buf = appendOmit(buf, "workload", d.Workload)
	buf = appendOmit(buf, "app", d.App)
	buf = appendOmit(buf, "version", d.Version)
	buf = appendOmit(buf, "service", d.Service)
	for i, s := range n.svcs {
		if i == 0 {
			buf = append(buf, `,"destServices":[`...)
		} else {
			buf = append(buf, ',')
		}
		buf = appendString(append(buf, `{"cluster":`...), s.Cluster)
		buf = appendField(buf, "namespace", s.Namespace)
		buf = append(appendField(buf, "name", s.Name), '}')
	}
	if len(n.svcs) > 0 {
		buf = append(buf, ']')
	}
	buf = appendNodeTraffic(buf, n)
	buf = append(buf, `,"healthData":`...)
	if n.health {
		buf = appendCodes(append(buf, `{"requests":{"inbound":`...), &n.inCodes)
		buf = append(appendCodes(append(buf, `,"outbound":`...), &n.outCodes), "}}"...)
	} else {
		buf = append(buf, "null"...)
	}
	buf = appendRoute(buf, d)
	buf = appendOmit(buf, "isBox", d.IsBox)
	buf = appendFlag(buf, "isDead", d.IsDead)
	buf = appendFlag(buf, "isIdle", d.IsIdle)
	buf = appendFlag(buf, "isInaccessible", d.IsInaccessible)
	buf = appendFlag(buf, "isOutOfMesh", d.IsOutOfMesh)
	buf = appendFlag(buf, "isOutside", d.IsOutside)
	buf = appendFlag(buf, "isRoot", d.IsRoot)
	buf = appendOmit(buf, "healthStatus", d.HealthStatus)
	buf = appendOmit(buf, "dataSource", d.DataSource)
	buf = appendCanary(buf, d.Canary)
	return append(buf, "}}"...)
}

// appendNodeTraffic appends the node's "traffic": per protocol with
// traffic, the inbound rate and its response classes, and the outbound
// rate.
func appendNodeTraffic(buf []byte, n *node) []byte {
	first := true
	for p := range numProto {
		if n.in[p] <= 0 && n.out[p] <= 0 {
			continue
		}
		if first {
			buf = append(buf, `,"traffic":[`...)
			first = false
		} else {
			buf = append(buf, ',')
		}
		names := rateNames[p]
		var arr [8]rateEntry
		rs := rateSet(arr[:0])
		if v := n.in[p]; v > 0 {
			rs = rs.add(names.in, v, rateFmt)
			inReqs := 0.0
			for _, c := range n.inCodes[p] {
				inReqs += c.reqs
			}
			var carr [4]codeCount
			cls := carr[:0]
			for _, c := range n.inCodes[p] {
				if _, name, _ := names.classes(c.code); name != "" {
					cls = addCode(cls, name, c.reqs*v/inReqs)
				}
			}
			for _, c := range cls {
				rs = rs.add(c.code, c.reqs, rateFmt)
			}
		}
		if v := n.out[p]; v > 0 {
			rs = rs.add(names.out, v, rateFmt)
		}
		buf = appendString(append(buf, `{"protocol":`...), protoNames[p])
		buf = append(rs.appendJSON(append(buf, `,"rates":`...)), '}')
	}
	if !first {
		buf = append(buf, ']')
	}
	return buf
}

// healthOrder is the protocols in the order of their names, as
// encoding/json writes a map's keys.
var healthOrder = [numProto]int{pGRPC, pHTTP, pTCP}

// appendCodes appends Kiali's healthData shape, protocol → code →
// requests/s, for the protocols with request codes.
func appendCodes(buf []byte, cs *[numProto][]codeCount) []byte {
	buf = append(buf, '{')
	first := true
	for _, p := range healthOrder {
		codes := cs[p]
		if len(codes) == 0 {
			continue
		}
		if !first {
			buf = append(buf, ',')
		}
		first = false
		buf = append(appendString(buf, protoNames[p]), ':', '{')
		var arr [8]codeCount
		sorted := append(arr[:0], codes...)
		slices.SortFunc(sorted, func(x, y codeCount) int { return cmp.Compare(x.code, y.code) })
		for i, c := range sorted {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = appendFloat(append(appendString(buf, c.code), ':'), c.reqs)
		}
		buf = append(buf, '}')
	}
	return append(buf, '}')
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

// boxes adds Kiali's compound nodes, inner boxes first: app boxes (asked
// for, or always in app graphs) hold two or more nodes of one app;
// namespace and cluster boxes hold the unboxed nodes (and inner boxes) of
// one namespace or cluster, and are drawn only when there are several
// such groups. Unknown namespaces and clusters are never boxed.
func (b *builder) boxes(nodes []*node) []*node {
	var out []*node
	gt := b.o.GraphType
	for _, kind := range []string{"app", "namespace", "cluster"} {
		asked := slices.Contains(b.o.BoxBy, kind)
		if !asked && !(kind == "app" && (gt == GraphTypeApp || gt == GraphTypeVersionedApp)) {
			continue
		}
		groups := map[string][]*node{}
		var order []string
		for _, n := range append(slices.Clone(nodes), out...) {
			if k, ok := boxKey(kind, &n.data); ok {
				if groups[k] == nil {
					order = append(order, k)
				}
				groups[k] = append(groups[k], n)
			}
		}
		if kind != "app" && len(groups) < 2 {
			continue
		}
		for _, k := range order {
			if members := groups[k]; len(members) > 1 {
				slices.SortFunc(members, func(x, y *node) int { return compareNodes(&x.data, &y.data) })
				out = append(out, newBox(kind, k, members))
			}
		}
	}
	return out
}

// newBox is the box node of kind holding members, which it parents. An
// app box's health is its members' request codes together and the worst
// of their statuses.
func newBox(kind, key string, members []*node) *node {
	m := &members[0].data
	box := &node{data: NodeData{ID: nodeID(key), NodeType: NodeTypeBox, IsBox: kind, Cluster: m.Cluster}}
	bd := &box.data
	if kind != "cluster" {
		bd.Namespace = m.Namespace
	}
	for _, mem := range members {
		md := &mem.data
		md.Parent = bd.ID
		if kind != "app" {
			continue
		}
		bd.App = md.App
		if mem.health {
			if !box.health {
				box.health = true
				bd.HealthStatus = HealthNA
			}
			for p := range numProto {
				for _, c := range mem.inCodes[p] {
					box.inCodes[p] = addCode(box.inCodes[p], c.code, c.reqs)
				}
				for _, c := range mem.outCodes[p] {
					box.outCodes[p] = addCode(box.outCodes[p], c.code, c.reqs)
				}
			}
			bd.HealthStatus = worst(bd.HealthStatus, md.HealthStatus)
		}
		bd.IsOutOfMesh = bd.IsOutOfMesh || md.IsOutOfMesh
		bd.IsInaccessible = bd.IsInaccessible || md.IsInaccessible
		bd.IsOutside = bd.IsOutside || md.IsOutside
	}
	return box
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
