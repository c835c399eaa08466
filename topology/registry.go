package topology

import (
	"sync"

	"github.com/glassmesh/glassmesh/control/model"
)

// DefaultRegistryCluster is the cluster of the registry's workloads when
// Config.RegistryCluster is empty: Istio's default cluster id, which the
// pipeline writes as source_cluster/destination_cluster of every known
// workload.
const DefaultRegistryCluster = "Kubernetes"

// SetMesh gives the graph the mesh registry: mesh returns the current
// config (nil or an empty mesh: no registry). With it the deadNode
// appender marks isDead on nodes whose workloads have no endpoints (for a
// service: that select no workload with endpoints), and the idleNode
// appender adds a node, isIdle, for every service and workload of the
// requested namespaces that the window has no traffic of. Graphs cached
// before the call are not redrawn.
func (g *Graph) SetMesh(mesh func() *model.Mesh) {
	g.registry.mu.Lock()
	defer g.registry.mu.Unlock()
	g.registry.mesh = mesh
}

// registry holds the mesh source and the index of the last mesh it
// returned (a Mesh never changes, so its index is built once).
type registry struct {
	mu          sync.Mutex
	mesh        func() *model.Mesh
	canaryState func(namespace, name string) string
	last        *model.Mesh
	ix          *registryIndex
}

// registryIndex is what the graph needs of one mesh version.
type registryIndex struct {
	workloads []regWorkload
	services  []regService
	routes    []regRoute
}

// regWorkload is a registry workload as the pipeline labels it.
type regWorkload struct {
	peer  peer
	alive bool // has endpoints
}

// regService is a registry service and whether any workload with
// endpoints backs it.
type regService struct {
	ns, name string
	alive    bool
}

// index returns the current mesh's index, nil without a registry.
func (r *registry) index(cluster string) *registryIndex {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.mesh == nil {
		return nil
	}
	m := r.mesh()
	if m == nil || (len(m.Workloads) == 0 && len(m.Services) == 0) {
		return nil
	}
	if m != r.last {
		r.last, r.ix = m, newRegistryIndex(m, cluster)
	}
	return r.ix
}

// newRegistryIndex indexes a mesh. Services find their workloads through
// the workloads' labels, so the cost is linear in the mesh, not services
// × workloads.
func newRegistryIndex(m *model.Mesh, cluster string) *registryIndex {
	ix := &registryIndex{workloads: make([]regWorkload, 0, len(m.Workloads)), services: make([]regService, 0, len(m.Services))}
	type label struct{ ns, k, v string }
	byLabel := map[label][]*model.Workload{}
	for _, w := range m.Workloads {
		ix.workloads = append(ix.workloads, regWorkload{peer: workloadPeer(w, cluster), alive: len(w.Spec.Endpoints) > 0})
		for k, v := range w.Labels {
			byLabel[label{w.Namespace, k, v}] = append(byLabel[label{w.Namespace, k, v}], w)
		}
	}
	for _, s := range m.Services {
		rs := regService{ns: s.Namespace, name: s.Name}
		for k, v := range s.Spec.Selector { // any one label narrows the candidates
			for _, w := range byLabel[label{s.Namespace, k, v}] {
				if len(w.Spec.Endpoints) > 0 && selects(s.Spec.Selector, w.Labels) {
					rs.alive = true
					break
				}
			}
			break
		}
		ix.services = append(ix.services, rs)
	}
	ix.routes = indexRoutes(m, cluster)
	return ix
}

// workloadPeer is a registry workload as the pipeline labels it.
func workloadPeer(w *model.Workload, cluster string) peer {
	return peer{Cluster: cluster, Namespace: orUnknown(w.Namespace), Workload: orUnknown(w.Name),
		App: orUnknown(w.Labels["app"]), Version: orUnknown(w.Labels["version"])}
}

// selects reports whether a selector's labels are all among labels.
func selects(selector, labels map[string]string) bool {
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// addRegistry applies the registry to the built graph: with dead, nodes
// whose registry entries have no endpoints are marked isDead; with idle,
// registry entries of the requested namespaces without a node get an idle
// one (in cluster). A registry entry and a node match whatever the node's
// cluster.
func (b *builder) addRegistry(ix *registryIndex, cluster string, dead, idle bool) {
	if ix == nil || (!dead && !idle) {
		return
	}
	existing := make(map[nodeKey][]*node, len(b.nodes)) // one per cluster the traffic named
	for k, n := range b.nodes {
		k.cluster = ""
		existing[k] = append(existing[k], n)
	}
	mark := func(k nodeKey, alive, draw bool, mk func() *node) {
		ns := existing[k]
		if len(ns) == 0 && idle && draw {
			ns = []*node{b.idleNode(mk())}
		}
		for _, n := range ns {
			n.data.IsDead = n.data.IsDead || (dead && !alive)
		}
	}
	gt := b.o.GraphType
	if gt != GraphTypeService {
		// An app node is alive when any of its workloads is.
		type entry struct {
			p     *peer
			alive bool
		}
		nodes := map[nodeKey]*entry{}
		for i := range ix.workloads {
			w := &ix.workloads[i]
			if b.nsSet != nil && !b.nsSet[w.peer.Namespace] {
				continue
			}
			k := peerKey(&w.peer, gt)
			k.cluster = ""
			if e := nodes[k]; e != nil {
				e.alive = e.alive || w.alive
			} else {
				nodes[k] = &entry{&w.peer, w.alive}
			}
		}
		for k, e := range nodes {
			mark(k, e.alive, true, func() *node { return b.peerNode(e.p, gt) })
		}
	}
	drawServices := gt == GraphTypeService || b.o.InjectServiceNodes
	for i := range ix.services {
		s := &ix.services[i]
		if b.nsSet != nil && !b.nsSet[s.ns] {
			continue
		}
		mark(nodeKey{"svc", "", s.ns, s.name, ""}, s.alive, drawServices, func() *node { return b.serviceNode(cluster, s.ns, s.name) })
	}
}

// idleNode marks a node only the registry knows (just made) as idle.
func (b *builder) idleNode(n *node) *node {
	if !n.metrics && !n.spans && n.data.NodeType != NodeTypeUnknown {
		n.data.IsIdle = true
		n.registry = true
	}
	return n
}
