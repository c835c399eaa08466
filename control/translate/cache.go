package translate

import (
	"maps"
	"slices"
	"strconv"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"google.golang.org/protobuf/proto"

	"github.com/glassmesh/glassmesh/control/model"
)

// Cache carries what one translation built for each service port to the
// next (TranslateWith). A service port's resources (its proxyless listeners,
// route configuration, clusters and load assignments, and its sidecar
// clusters) depend on its service, its route, the workloads the service
// selects, the security policies and the options: when all of these are
// the same objects as last time, the resources are the same objects too,
// so nothing downstream encodes, validates or sends them again. It keeps
// the last translation's ports only. Not safe for concurrent use.
type Cache struct {
	opts     Options
	policies []any // the security policies the memos were built under
	ports    map[string]*portMemo
	next     map[string]*portMemo

	// Sidecar views and proxyless server listeners, by workload (nil:
	// the view of unknown workloads), built from outbound and services.
	outbound             *outbound
	services             []*model.Service
	views, nextViews     map[string]viewMemo // by SidecarKey ("" for unknown workloads)
	servers, nextServers map[*model.Workload]*serverMemo
	sameServices         bool
}

// portMemo is what one service port gave, and from what. The done flags
// say which parts a translation filled.
type portMemo struct {
	in   []any     // the service, the route, the workloads the service selects
	prev *portMemo // the port's memo of the last translation, when its inputs changed

	routesDone    bool
	routes        []*routev3.Route
	routeWarnings []string

	sharedDone     bool
	shared         []memoRes
	sans           map[string][]string
	sharedWarnings []string

	clustersDone    bool
	clusters        []*clusterv3.Cluster
	clusterWarnings []string
}

type memoRes struct {
	typeURL, name string
	res           types.Resource
}

// begin starts a translation of m: memos built under other options or
// other security policies are dropped.
func (c *Cache) begin(m *model.Mesh, opts Options) {
	if c == nil {
		return
	}
	policies := make([]any, 0, len(m.PeerAuthentications)+len(m.AuthzPolicies))
	for _, p := range m.PeerAuthentications {
		policies = append(policies, p)
	}
	for _, p := range m.AuthzPolicies {
		policies = append(policies, p)
	}
	if opts != c.opts || !slices.Equal(policies, c.policies) {
		c.ports, c.views, c.servers, c.outbound, c.services = nil, nil, nil, nil, nil
	}
	c.opts, c.policies = opts, policies
	c.sameServices = c.services != nil && slices.Equal(c.services, m.Services)
	c.services = m.Services
	c.next = make(map[string]*portMemo, len(c.ports))
	c.nextViews = make(map[string]viewMemo, len(c.views))
	c.nextServers = make(map[*model.Workload]*serverMemo, len(c.servers))
}

// end keeps this translation's memos, when it succeeded.
func (c *Cache) end(ok bool) {
	if c == nil {
		return
	}
	if ok {
		c.ports, c.views, c.servers = c.next, c.nextViews, c.nextServers
	} else {
		c.ports, c.views, c.servers, c.outbound, c.services = nil, nil, nil, nil, nil
	}
	c.next, c.nextViews, c.nextServers = nil, nil, nil
}

// sameOutbound reports whether o is what every sidecar shared last time
// (the same clusters, ports and telemetry), and remembers it.
func (c *Cache) sameOutbound(o *outbound) bool {
	if c == nil {
		return false
	}
	prev := c.outbound
	c.outbound = o
	if prev == nil || prev.telemetry != o.telemetry || !slices.Equal(prev.ports, o.ports) || len(prev.clusters) != len(o.clusters) {
		return false
	}
	same := true
	for i, cl := range o.clusters {
		switch old := prev.clusters[i]; {
		case old == cl:
		case old.Name == cl.Name && proto.Equal(old, cl):
			o.clusters[i] = old // the same cluster made again (PassthroughCluster)
		default:
			same = false
		}
	}
	return same
}

// viewMemo is a sidecar view and what it was built from.
type viewMemo struct {
	in  viewInputs
	res Resources
}

// view returns the last translation's view for key, when it was built from
// the same inputs and outbound part: a fresh map of the same per-type maps
// (which nobody modifies; the caller may add types).
func (c *Cache) view(key string, in viewInputs, sameOutbound bool) (Resources, bool) {
	if c == nil || !sameOutbound {
		return nil, false
	}
	m, ok := c.views[key]
	if !ok || !m.in.equal(in) {
		return nil, false
	}
	c.nextViews[key] = m
	return maps.Clone(m.res), true
}

func (c *Cache) keepView(key string, in viewInputs, r Resources) {
	if c == nil {
		return
	}
	c.nextViews[key] = viewMemo{in: in, res: maps.Clone(r)}
}

// serverMemo is what serverListeners built of one workload: the gRPC ports
// it serves (which depend on it and the services), and, for the way those
// ports are shared with other workloads (key), its listeners.
type serverMemo struct {
	servers []server
	key     string
	ls      []memoRes
}

// serverPorts returns the last translation's servers of w, when the
// services are the same.
func (c *Cache) serverPorts(w *model.Workload) ([]server, bool) {
	if c == nil || !c.sameServices {
		return nil, false
	}
	m, ok := c.servers[w]
	if !ok {
		return nil, false
	}
	c.nextServers[w] = &serverMemo{servers: m.servers, key: m.key, ls: m.ls}
	return m.servers, true
}

func (c *Cache) keepServerPorts(w *model.Workload, servers []server) {
	if c == nil {
		return
	}
	c.nextServers[w] = &serverMemo{servers: servers}
}

// serverListeners returns w's listeners as the last translation built
// them, when its servers came from the memo and key is the same.
func (c *Cache) serverListeners(w *model.Workload, key string) ([]memoRes, bool) {
	if c == nil {
		return nil, false
	}
	m, ok := c.nextServers[w]
	if !ok || m.ls == nil || m.key != key {
		return nil, false
	}
	return m.ls, true
}

func (c *Cache) keepServerListeners(w *model.Workload, key string, ls []memoRes) {
	if c == nil {
		return
	}
	if m, ok := c.nextServers[w]; ok {
		m.key, m.ls = key, ls
	}
}

// lookup returns the memo of sp: the last translation's when its inputs are
// the same objects, else an empty one to fill. Nil without a cache.
func (c *Cache) lookup(m *model.Mesh, sp servicePort) *portMemo {
	if c == nil {
		return nil
	}
	in := []any{sp.svc, sp.route}
	for _, w := range m.WorkloadsOf(sp.svc, nil) {
		in = append(in, w)
	}
	key := sp.svc.Key() + ":" + strconv.FormatUint(uint64(sp.port.Port), 10)
	if old, ok := c.ports[key]; ok && slices.Equal(old.in, in) && old.sharedDone && old.clustersDone {
		c.next[key] = old
		return old
	}
	memo := &portMemo{in: in, prev: c.ports[key]}
	c.next[key] = memo
	return memo
}

// intern gives each resource of made that equals what the port's last
// translation made of the same name that earlier value, so it stays the
// same object (a route whose weights changed leaves its clusters as they
// were, and nothing downstream sees them change).
func (p *portMemo) intern(made []memoRes) {
	if p == nil || p.prev == nil {
		return
	}
	for i, r := range made {
		for _, old := range p.prev.shared {
			if old.typeURL == r.typeURL && old.name == r.name && proto.Equal(old.res, r.res) {
				made[i].res = old.res
				break
			}
		}
	}
}

// internClusters is intern for the port's sidecar clusters.
func (p *portMemo) internClusters(made []*clusterv3.Cluster) {
	if p == nil || p.prev == nil {
		return
	}
	for i, c := range made {
		for _, old := range p.prev.clusters {
			if old.Name == c.Name && proto.Equal(old, c) {
				made[i] = old
				break
			}
		}
	}
}

func (p *portMemo) keepRoutes(routes []*routev3.Route, warnings []string) {
	if p == nil {
		return
	}
	p.routes, p.routeWarnings, p.routesDone = routes, slices.Clone(warnings), true
}

func (p *portMemo) keepShared(made []memoRes, sans map[string][]string, warnings []string) {
	if p == nil {
		return
	}
	p.shared, p.sans, p.sharedWarnings, p.sharedDone = made, sans, slices.Clone(warnings), true
}

func (p *portMemo) keepClusters(clusters []*clusterv3.Cluster, sans map[string][]string, warnings []string) {
	if p == nil {
		return
	}
	for k, v := range sans {
		if p.sans == nil {
			p.sans = map[string][]string{}
		}
		p.sans[k] = v
	}
	p.clusters, p.clusterWarnings, p.clustersDone = slices.Clone(clusters), slices.Clone(warnings), true
	p.prev = nil // both parts are made: the last translation's are no longer needed
}

// sansOf is what upstreamSANs found for sp's clusters so far.
func (t *translator) sansOf(sp servicePort) map[string][]string {
	if t.cache == nil {
		return nil
	}
	out := map[string][]string{}
	for _, subset := range sp.subsets() {
		name := ClusterName(sp.svc, sp.port.Port, subset)
		if sans, ok := t.sans[name]; ok {
			out[name] = sans
		}
	}
	return out
}

// restoreSANs puts a memo's upstreamSANs results back, so the other flavour
// of the same clusters agrees without a second warning.
func (t *translator) restoreSANs(sans map[string][]string) {
	if len(sans) == 0 {
		return
	}
	if t.sans == nil {
		t.sans = map[string][]string{}
	}
	for k, v := range sans {
		t.sans[k] = v
	}
}
