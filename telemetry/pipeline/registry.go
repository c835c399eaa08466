package pipeline

import (
	"net/netip"
	"strings"

	"github.com/glassmesh/glassmesh/control/model"
	"github.com/glassmesh/glassmesh/control/naming"
	"github.com/glassmesh/glassmesh/telemetry/record"
)

// Label keys Istio reads a workload's canonical service and revision from,
// most specific first; the workload name and "latest" are the last resort.
var (
	canonicalServiceLabels  = []string{"service.istio.io/canonical-name", "app.kubernetes.io/name", "app"}
	canonicalRevisionLabels = []string{"service.istio.io/canonical-revision", "app.kubernetes.io/version", "version"}
)

// latest is Istio's canonical revision of a workload without a version.
const latest = "latest"

// workloadInfo is a mesh workload with its labels precomputed, so a request
// costs a struct copy rather than string building.
type workloadInfo struct {
	w        *model.Workload
	peer     record.Peer // Principal is the SPIFFE id; used only over mTLS
	services []*model.Service
}

// serviceInfo is a mesh service with its host name precomputed.
type serviceInfo struct {
	svc  *model.Service
	fqdn string
}

// servicePort returns the port of s numbered port, or nil.
func servicePort(s *model.Service, port uint32) *model.ServicePort {
	for i := range s.Spec.Ports {
		if s.Spec.Ports[i].Port == port {
			return &s.Spec.Ports[i]
		}
	}
	return nil
}

// endpointKey is an instance address and one of its ports.
type endpointKey struct {
	addr netip.Addr
	port uint32
}

// index answers the pipeline's registry questions for one Mesh value. Mesh
// values never change, so an index is built once per mesh version.
type index struct {
	mesh        *model.Mesh
	byName      map[string]map[string]*workloadInfo // namespace → name
	byEndpoint  map[endpointKey]*workloadInfo       // nil value: shared by several workloads
	byAddress   map[netip.Addr]*workloadInfo        // nil value: shared by several workloads
	byIdentity  map[string][]*workloadInfo          // namespace/serviceAccount
	services    map[string]map[string]*serviceInfo  // namespace → name
	clusterID   string
	trustDomain string
}

func buildIndex(m *model.Mesh, clusterID, trustDomain string) *index {
	ix := &index{
		mesh:        m,
		byName:      map[string]map[string]*workloadInfo{},
		byEndpoint:  map[endpointKey]*workloadInfo{},
		byAddress:   map[netip.Addr]*workloadInfo{},
		byIdentity:  map[string][]*workloadInfo{},
		services:    map[string]map[string]*serviceInfo{},
		clusterID:   clusterID,
		trustDomain: trustDomain,
	}
	for _, s := range m.Services {
		if ix.services[s.Namespace] == nil {
			ix.services[s.Namespace] = map[string]*serviceInfo{}
		}
		ix.services[s.Namespace][s.Name] = &serviceInfo{svc: s, fqdn: s.FQDN()}
	}
	for _, w := range m.Workloads {
		wi := &workloadInfo{w: w, services: m.ServicesOf(w)}
		sa := serviceAccount(w)
		wi.peer = knownPeer(w.Name, w.Namespace, w.Labels, clusterID)
		wi.peer.Principal = naming.SPIFFEID(trustDomain, w.Namespace, sa)
		if ix.byName[w.Namespace] == nil {
			ix.byName[w.Namespace] = map[string]*workloadInfo{}
		}
		ix.byName[w.Namespace][w.Name] = wi
		ix.byIdentity[w.Namespace+"/"+sa] = append(ix.byIdentity[w.Namespace+"/"+sa], wi)
		seen := map[netip.Addr]bool{}
		for _, ep := range w.Spec.Endpoints {
			addr, err := netip.ParseAddr(ep.Address)
			if err != nil {
				continue
			}
			addr = addr.Unmap()
			if !seen[addr] {
				seen[addr] = true
				claim(ix.byAddress, addr, wi)
			}
			for _, port := range ep.Ports {
				claim(ix.byEndpoint, endpointKey{addr, port}, wi)
			}
		}
	}
	return ix
}

// claim records wi under k, or marks k ambiguous when another workload
// already holds it.
func claim[K comparable](m map[K]*workloadInfo, k K, wi *workloadInfo) {
	if old, ok := m[k]; ok && old != wi {
		m[k] = nil
		return
	}
	m[k] = wi
}

func serviceAccount(w *model.Workload) string {
	if w.Spec.ServiceAccount == "" {
		return model.DefaultServiceAccount
	}
	return w.Spec.ServiceAccount
}

// knownPeer is the Istio view of a workload: app and version labels (or
// unknown), canonical service and revision. The principal is left unknown.
func knownPeer(workload, namespace string, labels map[string]string, clusterID string) record.Peer {
	return record.Peer{
		Workload:          orUnknown(workload),
		Namespace:         orUnknown(namespace),
		App:               orUnknown(labels["app"]),
		Version:           orUnknown(labels["version"]),
		Principal:         record.Unknown,
		CanonicalService:  firstLabel(labels, canonicalServiceLabels, orUnknown(workload)),
		CanonicalRevision: firstLabel(labels, canonicalRevisionLabels, latest),
		Cluster:           clusterID,
	}
}

// unknownPeer is a side glassmesh could not identify. Istio labels such a
// peer unknown everywhere except the canonical revision, which is "latest".
func unknownPeer() record.Peer {
	return record.Peer{
		Workload: record.Unknown, Namespace: record.Unknown, App: record.Unknown,
		Version: record.Unknown, Principal: record.Unknown, CanonicalService: record.Unknown,
		CanonicalRevision: latest, Cluster: record.Unknown,
	}
}

func firstLabel(labels map[string]string, keys []string, fallback string) string {
	for _, k := range keys {
		if v := labels[k]; v != "" {
			return v
		}
	}
	return fallback
}

func orUnknown(s string) string {
	if s == "" {
		return record.Unknown
	}
	return s
}

// workload finds namespace/instance, where instance is a workload name or a
// Kubernetes pod name (<workload>-<replicaset hash>-<pod hash>).
func (ix *index) workload(namespace, instance string) *workloadInfo {
	for range 3 {
		if wi := ix.byName[namespace][instance]; wi != nil {
			return wi
		}
		i := strings.LastIndexByte(instance, '-')
		if i <= 0 {
			return nil
		}
		instance = instance[:i]
	}
	return nil
}

// atEndpoint finds the workload listening on addr:port, falling back to the
// only workload at addr.
func (ix *index) atEndpoint(addr netip.Addr, port uint32) *workloadInfo {
	if !addr.IsValid() {
		return nil
	}
	if wi, ok := ix.byEndpoint[endpointKey{addr, port}]; ok {
		return wi
	}
	return ix.byAddress[addr]
}

// atAddress finds the only workload at addr; nil when none or several are.
func (ix *index) atAddress(addr netip.Addr) *workloadInfo {
	if !addr.IsValid() {
		return nil
	}
	return ix.byAddress[addr]
}

// withIdentity returns the workloads running as namespace/serviceAccount.
func (ix *index) withIdentity(namespace, sa string) []*workloadInfo {
	return ix.byIdentity[namespace+"/"+sa]
}

// service returns the mesh service namespace/name, or nil.
func (ix *index) service(namespace, name string) *serviceInfo {
	return ix.services[namespace][name]
}

// inboundService picks the service a request to a workload's own port was
// for: the one with a port served on that number (through the endpoint's
// named ports), else the workload's first service; nil when it has none.
func (ix *index) inboundService(wi *workloadInfo, port uint32) *serviceInfo {
	if wi == nil || len(wi.services) == 0 {
		return nil
	}
	pick := wi.services[0]
	for _, s := range wi.services {
		if wi.servesOn(s, port) != nil {
			pick = s
			break
		}
	}
	return ix.service(pick.Namespace, pick.Name)
}

// outboundService picks the service a caller reached at a workload when
// the cluster did not name one (a call to an address): the workload's
// service with that port number, else its first.
func (ix *index) outboundService(wi *workloadInfo, port uint32) *serviceInfo {
	if wi == nil || len(wi.services) == 0 {
		return nil
	}
	pick := wi.services[0]
	for _, s := range wi.services {
		if wi.servesOn(s, port) != nil || servicePort(s, port) != nil {
			pick = s
			break
		}
	}
	return ix.service(pick.Namespace, pick.Name)
}

// servesOn returns the port of s that the workload serves on its own port
// number port, or nil.
func (wi *workloadInfo) servesOn(s *model.Service, port uint32) *model.ServicePort {
	for i := range s.Spec.Ports {
		sp := &s.Spec.Ports[i]
		for _, ep := range wi.w.Spec.Endpoints {
			if p, ok := ep.Ports[sp.Name]; ok && p == port {
				return sp
			}
		}
	}
	return nil
}
