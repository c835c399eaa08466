// Package translate turns a mesh model into Envoy v3 xDS resources. Every
// function here is pure: the same model gives the same resources, so the
// output is pinned by golden files.
//
// Resource names (Istio's where Istio has one):
//
//   - proxyless listeners: <svc>.<ns>.svc.cluster.local:<port> and
//     <svc>.<ns>:<port>, both pointing over RDS to the route configuration
//     <svc>.<ns>.svc.cluster.local:<port> (not for TCP ports);
//   - clusters and load assignments: outbound|<port>|<subset>|<fqdn>, the
//     whole service with an empty subset;
//   - sidecar listeners: virtualOutbound (15001), 0.0.0.0_<port> per service
//     port number (RDS route configuration "<port>", or a TCP proxy), and
//     virtualInbound (15006) with one filter chain per app port, routing to
//     the static cluster inbound|<port>||; PassthroughCluster for the rest.
package translate

import (
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
)

// Resources holds xDS resources by type URL, then by resource name.
type Resources map[string]map[string]types.Resource

// Snapshot is everything one version of the mesh config translates to.
//
// Nodes of both flavours ask for route configurations, cluster load
// assignments (and proxyless nodes for listeners and clusters too) by name, so
// those live in ByName, shared by every node. Envoy sidecars ask for all
// listeners and all clusters (wildcard); what they get depends on the workload
// they run beside, so Sidecars holds their listeners and clusters per workload.
type Snapshot struct {
	// ByName holds every resource a node requests by name: proxyless
	// listeners and clusters, and the route configurations and cluster load
	// assignments of both flavours.
	ByName Resources
	// Sidecars holds the listeners and clusters of Envoy sidecars, keyed by
	// "namespace/workload". The key "" is for sidecars whose workload is not
	// in the config: outbound listeners and clusters only.
	Sidecars map[string]Resources
	// Warnings name config that was translated in a reduced form (for
	// example a port shared by services that a sidecar cannot tell apart).
	Warnings []string
}
