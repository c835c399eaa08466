package translate

import (
	"fmt"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	resource "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/types/known/anypb"
)

// CheckReferences reports the first name a node would ask for and never
// get: a listener's route configuration, a route's or TCP proxy's cluster,
// an EDS cluster's load assignment. go-control-plane's Consistent() does not
// look inside API listeners, so proxyless references need this check.
// Proxyless nodes resolve everything in ByName; a sidecar resolves clusters
// in its own set and routes and load assignments in ByName.
func (s *Snapshot) CheckReferences() error {
	if err := checkRefs(s.ByName, s.ByName); err != nil {
		return err
	}
	for _, k := range sortedKeys(s.Sidecars) {
		if err := checkRefs(s.Sidecars[k], s.ByName); err != nil {
			return fmt.Errorf("sidecar %q: %w", k, err)
		}
	}
	return nil
}

// checkRefs checks the listeners and clusters of own against the clusters of
// own and the routes and load assignments of byName.
func checkRefs(own, byName Resources) error {
	c := refChecker{own: own, byName: byName}
	for _, name := range sortedKeys(own[resource.ListenerType]) {
		if err := c.listener(own[resource.ListenerType][name].(*listenerv3.Listener)); err != nil {
			return err
		}
	}
	for _, name := range sortedKeys(own[resource.ClusterType]) {
		cl := own[resource.ClusterType][name].(*clusterv3.Cluster)
		if cl.GetType() == clusterv3.Cluster_EDS && !c.has(byName, resource.EndpointType, cl.GetEdsClusterConfig().GetServiceName()) {
			return missing("load assignment", cl.GetEdsClusterConfig().GetServiceName(), "cluster "+name)
		}
	}
	return nil
}

type refChecker struct{ own, byName Resources }

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
		if err := c.hcm(api, from); err != nil {
			return err
		}
	}
	for _, fc := range l.FilterChains {
		for _, f := range fc.Filters {
			switch f.Name {
			case hcmFilterName:
				if err := c.hcm(f.GetTypedConfig(), from); err != nil {
					return err
				}
			case tcpProxyFilterName:
				tp := &tcpproxyv3.TcpProxy{}
				if err := f.GetTypedConfig().UnmarshalTo(tp); err != nil {
					return fmt.Errorf("%s: %w", from, err)
				}
				if cl := tp.GetCluster(); !c.has(c.own, resource.ClusterType, cl) {
					return missing("cluster", cl, from)
				}
			}
		}
	}
	return nil
}

func (c refChecker) hcm(a *anypb.Any, from string) error {
	h := &hcmv3.HttpConnectionManager{}
	if err := a.UnmarshalTo(h); err != nil {
		return fmt.Errorf("%s: %w", from, err)
	}
	if rc := h.GetRouteConfig(); rc != nil {
		return c.routeClusters(rc, from)
	}
	name := h.GetRds().GetRouteConfigName()
	rc, ok := c.byName[resource.RouteType][name].(*routev3.RouteConfiguration)
	if !ok {
		return missing("route configuration", name, from)
	}
	return c.routeClusters(rc, from)
}

func (c refChecker) routeClusters(rc *routev3.RouteConfiguration, from string) error {
	for _, vh := range rc.VirtualHosts {
		for _, r := range vh.Routes {
			names := []string{r.GetRoute().GetCluster()}
			for _, wc := range r.GetRoute().GetWeightedClusters().GetClusters() {
				names = append(names, wc.Name)
			}
			for _, n := range names {
				if n != "" && !c.has(c.own, resource.ClusterType, n) {
					return missing("cluster", n, from+" via route "+rc.Name)
				}
			}
		}
	}
	return nil
}
