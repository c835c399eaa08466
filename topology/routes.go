package topology

import (
	"github.com/glassmesh/glassmesh/control/model"
)

// SetCanaryStates gives the graph the canaries' states: state returns the
// state of the canary namespace/name as /api/canaries names it, "" when it
// has none. Without it the istio appender still names the canaries of the
// mesh config, without their state. (The states live in the canary
// controller, which topology may not import: cmd/glassmesh passes this in.)
func (g *Graph) SetCanaryStates(state func(namespace, name string) string) {
	g.registry.mu.Lock()
	defer g.registry.mu.Unlock()
	g.registry.canaryState = state
}

// canaryStates returns the canary state function, nil without one.
func (r *registry) canaryStates() func(namespace, name string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.canaryState
}

// regRoute is what the istio appender needs of a TrafficRoute.
type regRoute struct {
	ns, service string // the routed service
	hosts       []string
	routing     bool // a rule matches on the request
	shifting    bool // a rule splits weight over destinations
	canary      *regCanary
}

// regCanary is a Canary of a route and the workloads of its canary subset.
type regCanary struct {
	ns, name  string
	workloads []peer
}

// indexRoutes is the mesh's routes, each with the first Canary (by
// namespace/name) that drives it.
func indexRoutes(m *model.Mesh, cluster string) []regRoute {
	if len(m.Routes) == 0 {
		return nil
	}
	out := make([]regRoute, 0, len(m.Routes))
	byName := make(map[[2]string]int, len(m.Routes))
	for _, r := range m.Routes {
		rr := regRoute{ns: r.Namespace, service: r.Spec.Service,
			hosts: []string{r.Spec.Service + "." + r.Namespace + ".svc.cluster.local"}}
		for _, rule := range r.Spec.Rules {
			rr.routing = rr.routing || rule.Match != nil
			weighted := 0
			for _, d := range rule.Destinations {
				if d.Weight > 0 {
					weighted++
				}
			}
			rr.shifting = rr.shifting || weighted > 1
		}
		byName[[2]string{r.Namespace, r.Name}] = len(out)
		out = append(out, rr)
	}
	for _, c := range m.Canaries {
		i, ok := byName[[2]string{c.Namespace, c.Spec.Route}]
		if !ok || out[i].canary != nil {
			continue
		}
		rc := &regCanary{ns: c.Namespace, name: c.Name}
		r := m.Route(c.Namespace, c.Spec.Route)
		if svc, sub := m.Service(c.Namespace, r.Spec.Service), r.Subset(c.Spec.Canary); svc != nil && sub != nil {
			for _, w := range m.WorkloadsOf(svc, sub.Labels) {
				rc.workloads = append(rc.workloads, workloadPeer(w, cluster))
			}
		}
		out[i].canary = rc
	}
	return out
}

// addRoutes is the istio appender: the service node of a routed service
// gets hasVS, hasRequestRouting and hasTrafficShifting as Kiali sets them
// for a VirtualService; when a Canary drives the route, that node and the
// nodes of the canary subset's workloads name it. Nodes match whatever
// their cluster, as the registry's do.
func (b *builder) addRoutes(ix *registryIndex, state func(namespace, name string) string) {
	if ix == nil || len(ix.routes) == 0 || !b.ap.istio {
		return
	}
	existing := make(map[nodeKey][]*node, len(b.nodes))
	for k, n := range b.nodes {
		k.cluster = ""
		existing[k] = append(existing[k], n)
	}
	for i := range ix.routes {
		r := &ix.routes[i]
		var ref *CanaryRef
		if c := r.canary; c != nil {
			ref = &CanaryRef{Namespace: c.ns, Name: c.name}
			if state != nil {
				ref.State = state(c.ns, c.name)
			}
		}
		for _, n := range existing[nodeKey{"svc", "", r.ns, r.service, ""}] {
			d := &n.data
			d.HasVS = &VSInfo{Hostnames: r.hosts}
			d.HasRequestRouting, d.HasTrafficShifting = r.routing, r.shifting
			d.Canary = ref
		}
		if ref == nil {
			continue
		}
		for j := range r.canary.workloads {
			k := peerKey(&r.canary.workloads[j], b.o.GraphType)
			if k.kind == "unknown" {
				continue
			}
			k.cluster = ""
			for _, n := range existing[k] {
				if n.data.Canary == nil {
					n.data.Canary = ref
				}
			}
		}
	}
}

// appendRoute appends the istio appender's Kiali fields of a node.
func appendRoute(buf []byte, d *NodeData) []byte {
	buf = appendFlag(buf, "hasRequestRouting", d.HasRequestRouting)
	buf = appendFlag(buf, "hasTrafficShifting", d.HasTrafficShifting)
	if d.HasVS == nil {
		return buf
	}
	buf = append(buf, `,"hasVS":{`...)
	for i, h := range d.HasVS.Hostnames {
		if i == 0 {
			buf = append(buf, `"hostnames":[`...)
		} else {
			buf = append(buf, ',')
		}
		buf = appendString(buf, h)
	}
	if len(d.HasVS.Hostnames) > 0 {
		buf = append(buf, ']')
	}
	return append(buf, '}')
}

// appendCanary appends glassmesh's "canary" extension of a node.
func appendCanary(buf []byte, c *CanaryRef) []byte {
	if c == nil {
		return buf
	}
	buf = appendString(append(buf, `,"canary":{"namespace":`...), c.Namespace)
	buf = appendField(buf, "name", c.Name)
	buf = appendOmit(buf, "state", c.State)
	return append(buf, '}')
}
