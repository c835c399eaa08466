package xds

import (
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/glassmesh/glassmesh/control/naming"
)

// Flavours of xDS clients, as /api/xds/proxies reports them.
const (
	// FlavourEnvoy is an Envoy sidecar: it fetches listeners and clusters
	// by wildcard and gets its workload's view.
	FlavourEnvoy = "envoy"
	// FlavourProxyless is a gRPC application using grpc-go's xDS client
	// (node metadata GENERATOR=grpc): it asks for every resource by name.
	FlavourProxyless = "proxyless"
)

// identity is who a node says it is.
type identity struct {
	id        string
	namespace string
	workload  string
	flavour   string
}

// identify reads a node's identity from its metadata (Istio's keys), falling
// back to the fields of a node id built by naming.NodeID.
func identify(node *core.Node) identity {
	fields := node.GetMetadata().GetFields()
	id := identity{
		id:        node.GetId(),
		namespace: fields[naming.NodeMetaNamespace].GetStringValue(),
		workload:  fields[naming.NodeMetaWorkloadName].GetStringValue(),
		flavour:   FlavourEnvoy,
	}
	if fields[naming.NodeMetaGenerator].GetStringValue() == naming.GeneratorGRPC {
		id.flavour = FlavourProxyless
	}
	if id.namespace == "" || id.workload == "" {
		if p, ok := naming.ParseNodeID(id.id); ok {
			if id.namespace == "" {
				id.namespace = p.Namespace
			}
			if id.workload == "" {
				id.workload = p.Instance
			}
		}
	}
	return id
}

// viewKey is the Snapshot.Sidecars key of the node's workload, "" when the
// node does not say which workload it runs beside.
func (id identity) viewKey() string {
	if id.namespace == "" || id.workload == "" {
		return ""
	}
	return id.namespace + "/" + id.workload
}
