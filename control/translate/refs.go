package translate

import (
	"fmt"
	"reflect"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	resource "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/types/known/anypb"
)

// CheckReferences reports the first name a node would ask for and never
// get: a listener's route configuration, a route's or TCP proxy's cluster,
// an EDS cluster's load assignment. go-control-plane's Consistent() does not
// look inside API listeners, so proxyless references need this check.
// Proxyless nodes resolve everything in ByName; a sidecar resolves clusters
// in its own set and routes and load assignments in ByName.
func (s *Snapshot) CheckReferences() error { return s.CheckReferencesWith(&RefCache{}) }

// CheckReferencesWith is CheckReferences remembering, in c, what it decoded
// for the next call: the filters of the listeners that did not change are
// not decoded again, and a sidecar view whose listeners and clusters are
// the very maps that passed last time passes again while every route and
// load assignment name of the last call still exists.
func (s *Snapshot) CheckReferencesWith(c *RefCache) error {
	memo := &refMemo{cache: c, hcms: make(map[string]hcmRefs, len(c.hcms)),
		routes: map[*routev3.RouteConfiguration][]string{}, eds: map[*clusterv3.Cluster]bool{}}
	err := checkRefs(s.ByName, s.ByName, memo)
	namesKept := c.names != nil
	for _, n := range c.names {
		if _, ok := s.ByName[n.typeURL][n.name]; !ok {
			namesKept = false
			break
		}
	}
	passed := make(map[string]viewMaps, len(s.Sidecars))
	for _, k := range sortedKeys(s.Sidecars) {
		if err != nil {
			break
		}
		v := s.Sidecars[k]
		maps := viewMaps{listeners: v[resource.ListenerType], clusters: v[resource.ClusterType]}
		if prev, ok := c.passed[k]; ok && namesKept && prev.same(maps) {
			passed[k] = maps
			continue
		}
		if err = checkRefs(v, s.ByName, memo); err != nil {
			err = fmt.Errorf("sidecar %q: %w", k, err)
			break
		}
		passed[k] = maps
	}
	c.hcms = memo.hcms // what this snapshot holds, no more
	c.passed, c.names = nil, nil
	if err == nil {
		c.passed = passed
		for _, t := range []string{resource.RouteType, resource.EndpointType} {
			for name := range s.ByName[t] {
				c.names = append(c.names, typedName{t, name})
			}
		}
	}
	return err
}

// RefCache carries what CheckReferencesWith decoded from one call to the
// next. The zero value is empty and ready; it is not safe for concurrent
// use.
type RefCache struct {
	hcms map[string]hcmRefs
	// After a call that passed: the views' maps, and the route and load
	// assignment names they could refer to.
	passed map[string]viewMaps
	names  []typedName
}

// viewMaps are a view's listener and cluster maps (which nobody modifies
// once built), held so that their addresses are not reused.
type viewMaps struct{ listeners, clusters map[string]types.Resource }

func (a viewMaps) same(b viewMaps) bool {
	return MapID(a.listeners) == MapID(b.listeners) && MapID(a.clusters) == MapID(b.clusters)
}

type typedName struct{ typeURL, name string }

// MapID is the identity of a map of resources (0 for nil). Translations
// hand what did not change over as the very same maps, which nobody
// modifies once built, so callers tell unchanged parts apart by it.
func MapID(m map[string]types.Resource) uintptr {
	if m == nil {
		return 0
	}
	return reflect.ValueOf(m).Pointer()
}

// refMemo keeps what one CheckReferences call read, so the many views that
// share listener configs, route configurations and clusters cost one
// decoding each.
type refMemo struct {
	cache  *RefCache
	hcms   map[string]hcmRefs // by the encoded HttpConnectionManager or TcpProxy
	routes map[*routev3.RouteConfiguration][]string
	eds    map[*clusterv3.Cluster]bool // clusters whose load assignment exists
}

// hcmRefs is what a network filter names: a route configuration over RDS,
// the clusters of an inline one, or a TCP proxy's cluster.
type hcmRefs struct {
	rds      string
	clusters []string
	inline   bool
}

// checkRefs checks the listeners and clusters of own against the clusters of
// own and the routes and load assignments of byName.
func checkRefs(own, byName Resources, memo *refMemo) error {
	c := refChecker{own: own, byName: byName, memo: memo}
	for _, name := range sortedKeys(own[resource.ListenerType]) {
		if err := c.listener(own[resource.ListenerType][name].(*listenerv3.Listener)); err != nil {
			return err
		}
	}
	for name, r := range own[resource.ClusterType] {
		cl := r.(*clusterv3.Cluster)
		if cl.GetType() != clusterv3.Cluster_EDS || memo.eds[cl] {
			continue
		}
		if !c.has(byName, resource.EndpointType, cl.GetEdsClusterConfig().GetServiceName()) {
			return missing("load assignment", cl.GetEdsClusterConfig().GetServiceName(), "cluster "+name)
		}
		memo.eds[cl] = true
	}
	return nil
}

type refChecker struct {
	own, byName Resources
	memo        *refMemo
}

func (refChecker) has(r Resources, typeURL, name string) bool {
	_, ok := r[typeURL][name]
	return ok
}

func missing(what, name, from string) error {
	return fmt.Errorf("%s %q, named by %s, does not exist", what, name, from)
}

func (c refChecker) listener(l *listenerv3.Listener) error {
	from := "listener " + l.Name
	if api := l.GetApiListener().GetApiListener(); api != nil {
		if err := c.filter(hcmFilterName, api, from); err != nil {
			return err
		}
	}
	for _, fc := range l.FilterChains {
		for _, f := range fc.Filters {
			if f.Name == hcmFilterName || f.Name == tcpProxyFilterName {
				if err := c.filter(f.Name, f.GetTypedConfig(), from); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// filter checks what a connection manager or TCP proxy names.
func (c refChecker) filter(name string, a *anypb.Any, from string) error {
	refs, ok := c.memo.hcms[string(a.GetValue())]
	if !ok {
		if refs, ok = c.memo.cache.hcms[string(a.GetValue())]; !ok {
			var err error
			if refs, err = readRefs(name, a); err != nil {
				return fmt.Errorf("%s: %w", from, err)
			}
		}
		c.memo.hcms[string(a.GetValue())] = refs
	}
	clusters := refs.clusters
	if !refs.inline {
		rc, ok := c.byName[resource.RouteType][refs.rds].(*routev3.RouteConfiguration)
		if !ok {
			return missing("route configuration", refs.rds, from)
		}
		if clusters, ok = c.memo.routes[rc]; !ok {
			clusters = routeClusters(rc)
			c.memo.routes[rc] = clusters
		}
		from += " via route " + rc.Name
	}
	for _, n := range clusters {
		if !c.has(c.own, resource.ClusterType, n) {
			return missing("cluster", n, from)
		}
	}
	return nil
}

// readRefs decodes a connection manager's or TCP proxy's references.
func readRefs(name string, a *anypb.Any) (hcmRefs, error) {
	if name == tcpProxyFilterName {
		tp := &tcpproxyv3.TcpProxy{}
		if err := a.UnmarshalTo(tp); err != nil {
			return hcmRefs{}, err
		}
		return hcmRefs{clusters: []string{tp.GetCluster()}, inline: true}, nil
	}
	h := &hcmv3.HttpConnectionManager{}
	if err := a.UnmarshalTo(h); err != nil {
		return hcmRefs{}, err
	}
	if rc := h.GetRouteConfig(); rc != nil {
		return hcmRefs{clusters: routeClusters(rc), inline: true}, nil
	}
	return hcmRefs{rds: h.GetRds().GetRouteConfigName()}, nil
}

// routeClusters lists the clusters a route configuration sends to.
func routeClusters(rc *routev3.RouteConfiguration) []string {
	var out []string
	for _, vh := range rc.VirtualHosts {
		for _, r := range vh.Routes {
			if n := r.GetRoute().GetCluster(); n != "" {
				out = append(out, n)
			}
			for _, wc := range r.GetRoute().GetWeightedClusters().GetClusters() {
				if wc.Name != "" {
					out = append(out, wc.Name)
				}
			}
		}
	}
	return out
}
