package pipeline

import (
	"net/netip"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/glassmesh/glassmesh/control/naming"
	"github.com/glassmesh/glassmesh/telemetry/record"
)

// reporter is the proxy that sent a batch: who it is in Istio's labels, and
// its registry entry when the mesh config has one.
type reporter struct {
	id        string
	namespace string // "" when unknown
	instance  string // pod or instance name; the node id when it has another shape
	proxyless bool   // GENERATOR=grpc: the entries describe the app's own connections
	peer      record.Peer
	wi        *workloadInfo // nil when the mesh config does not know it
}

// reporterOf identifies a node by its metadata (NAMESPACE, WORKLOAD_NAME,
// LABELS, GENERATOR), falling back to its id and the mesh registry.
func reporterOf(ix *index, n *corev3.Node) reporter {
	fields := n.GetMetadata().GetFields()
	r := reporter{
		id:        n.GetId(),
		instance:  n.GetId(),
		namespace: stringField(fields, naming.NodeMetaNamespace),
		proxyless: stringField(fields, naming.NodeMetaGenerator) == naming.GeneratorGRPC,
	}
	parts, idOK := naming.ParseNodeID(r.id)
	if idOK {
		r.instance = parts.Instance
		if r.namespace == "" {
			r.namespace = parts.Namespace
		}
	}
	name := stringField(fields, naming.NodeMetaWorkloadName)
	switch {
	case name != "":
		r.wi = ix.byName[r.namespace][name]
	case idOK:
		r.wi = ix.workload(r.namespace, parts.Instance)
		if r.wi == nil {
			if addr, err := netip.ParseAddr(parts.IP); err == nil {
				if wi := ix.atAddress(addr.Unmap()); wi != nil && wi.w.Namespace == r.namespace {
					r.wi = wi
				}
			}
		}
	}
	labels := labelsField(fields[naming.NodeMetaLabels])
	switch {
	case r.wi != nil && name == "" && labels == nil:
		r.peer = r.wi.peer
	case r.wi != nil:
		if name == "" {
			name = r.wi.w.Name
		}
		if labels == nil {
			labels = r.wi.w.Labels
		}
		r.peer = knownPeer(name, r.namespace, labels, ix.clusterID)
		r.peer.Principal = r.wi.peer.Principal
	case name != "" || r.namespace != "":
		r.peer = knownPeer(name, r.namespace, labels, ix.clusterID)
	default:
		r.peer = unknownPeer()
	}
	return r
}

func stringField(fields map[string]*structpb.Value, key string) string {
	return fields[key].GetStringValue()
}

// labelsField reads the LABELS struct; nil when absent.
func labelsField(v *structpb.Value) map[string]string {
	s := v.GetStructValue()
	if s == nil {
		return nil
	}
	out := make(map[string]string, len(s.GetFields()))
	for k, v := range s.GetFields() {
		if sv, ok := v.GetKind().(*structpb.Value_StringValue); ok {
			out[k] = sv.StringValue
		}
	}
	return out
}
