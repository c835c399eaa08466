package pipeline

import (
	"net/netip"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	accesslogdatav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"

	"github.com/glassmesh/glassmesh/telemetry/record"
)

// Values of Istio's connection_security_policy label.
const (
	policyMutualTLS = "mutual_tls"
	policyNone      = "none"
)

// sides is who called and who answered, as one reporter saw a request.
type sides struct {
	reporter string
	source   record.Peer
	dest     record.Peer
	policy   string
	destWI   *workloadInfo // the answering workload, when known
}

// resolveSides fills both ends of a request. The reporter is one end; the
// other (the peer) comes from, in order: the x-glassmesh-peer header (inbound
// only: it names the caller), the peer certificate's SPIFFE id, and the
// registry (the upstream endpoint for outbound; the downstream address for
// inbound, only when one workload has it).
func resolveSides(ix *index, rep *reporter, c *accesslogdatav3.AccessLogCommon, cl cluster, peerHeader string) sides {
	tls := c.GetTlsProperties()
	if !cl.inbound && !rep.proxyless {
		// A sidecar's TLS properties are those of its downstream connection
		// (the app, or an ingress's client), never of the callee.
		tls = nil
	}
	localSAN := uriSAN(tls.GetLocalCertificateProperties())
	peerSAN := uriSAN(tls.GetPeerCertificateProperties())
	mtls := tls.GetLocalCertificateProperties() != nil && tls.GetPeerCertificateProperties() != nil

	var peer record.Peer
	var peerWI *workloadInfo
	if cl.inbound {
		peer, peerWI = resolvePeer(ix, peerHeader, peerSAN, downstreamAddress(c), 0, false)
	} else {
		addr, port := socketAddress(c.GetUpstreamRemoteAddress())
		peer, peerWI = resolvePeer(ix, "", peerSAN, addr, port, true)
	}
	self := rep.peer
	if mtls {
		self.Principal = firstOf(localSAN, principalOf(rep.wi))
		peer.Principal = firstOf(peerSAN, principalOf(peerWI))
	} else {
		self.Principal, peer.Principal = record.Unknown, record.Unknown
	}
	s := sides{policy: securityPolicy(mtls, cl.inbound, rep.proxyless)}
	if cl.inbound {
		s.reporter, s.source, s.dest, s.destWI = record.ReporterDestination, peer, self, rep.wi
	} else {
		s.reporter, s.source, s.dest, s.destWI = record.ReporterSource, self, peer, peerWI
	}
	return s
}

// securityPolicy is Istio's connection_security_policy. An Envoy access log
// describes the downstream connection only, so an outbound (source) entry
// from a sidecar says nothing about the upstream one: Istio labels those
// unknown. A proxyless app reports its own connection in both directions.
func securityPolicy(mtls, inbound, proxyless bool) string {
	switch {
	case mtls:
		return policyMutualTLS
	case inbound || proxyless:
		return policyNone
	}
	return record.Unknown
}

// resolvePeer identifies the other end of a request. byEndpoint says addr
// (and port) is an upstream endpoint; otherwise it is a downstream address,
// which only names a workload when no other workload shares it.
func resolvePeer(ix *index, header, san string, addr netip.Addr, port uint32, byEndpoint bool) (record.Peer, *workloadInfo) {
	if header != "" {
		if instance, namespace, ok := parseNodeID(header); ok {
			if wi := ix.workload(namespace, instance); wi != nil {
				return wi.peer, wi
			}
			p := unknownPeer()
			p.Namespace = namespace
			return p, nil
		}
	}
	var atAddr *workloadInfo
	if byEndpoint {
		atAddr = ix.atEndpoint(addr, port)
	} else {
		atAddr = ix.atAddress(addr)
	}
	if ns, sa, ok := parseSPIFFE(san); ok {
		// The certificate is proof of identity; the address only picks
		// among the workloads sharing that service account.
		cands := ix.withIdentity(ns, sa)
		for _, wi := range cands {
			if wi == atAddr {
				return wi.peer, wi
			}
		}
		if len(cands) == 1 {
			return cands[0].peer, cands[0]
		}
		p := unknownPeer()
		p.Namespace = ns
		return p, nil
	}
	if atAddr != nil {
		return atAddr.peer, atAddr
	}
	return unknownPeer(), nil
}

// parseNodeID reads the instance and namespace of a node id as
// naming.ParseNodeID does (sidecar~<ip>~<instance>.<namespace>~<namespace>.svc.cluster.local),
// without allocating: it runs for every inbound entry with x-glassmesh-peer.
func parseNodeID(id string) (instance, namespace string, ok bool) {
	_, rest, ok1 := strings.Cut(id, "~")
	_, rest, ok2 := strings.Cut(rest, "~")
	qualified, domain, ok3 := strings.Cut(rest, "~")
	if !ok1 || !ok2 || !ok3 || strings.Contains(domain, "~") {
		return "", "", false
	}
	namespace, ok = strings.CutSuffix(domain, clusterDomain)
	if !ok || namespace == "" {
		return "", "", false
	}
	instance, ok = strings.CutSuffix(qualified, "."+namespace)
	if !ok || instance == "" {
		return "", "", false
	}
	return instance, namespace, true
}

// parseSPIFFE reads spiffe://<trust domain>/ns/<namespace>/sa/<account>.
func parseSPIFFE(id string) (namespace, sa string, ok bool) {
	rest, ok := strings.CutPrefix(id, "spiffe://")
	if !ok {
		return "", "", false
	}
	_, path, ok := strings.Cut(rest, "/")
	if !ok {
		return "", "", false
	}
	rest, ok = strings.CutPrefix(path, "ns/")
	if !ok {
		return "", "", false
	}
	namespace, sa, ok = strings.Cut(rest, "/sa/")
	if !ok || namespace == "" || sa == "" || strings.Contains(namespace, "/") || strings.Contains(sa, "/") {
		return "", "", false
	}
	return namespace, sa, true
}

// uriSAN is the first URI subject alternative name of a certificate: the
// SPIFFE id in a mesh.
func uriSAN(cert *accesslogdatav3.TLSProperties_CertificateProperties) string {
	for _, san := range cert.GetSubjectAltName() {
		if u := san.GetUri(); u != "" {
			return u
		}
	}
	return ""
}

func principalOf(wi *workloadInfo) string {
	if wi == nil {
		return record.Unknown
	}
	return wi.peer.Principal
}

func firstOf(s, fallback string) string {
	if s != "" {
		return s
	}
	return fallback
}

// downstreamAddress is the caller's address: the physical peer when Envoy
// logged it, else the (possibly X-Forwarded-For derived) remote address.
func downstreamAddress(c *accesslogdatav3.AccessLogCommon) netip.Addr {
	if addr, _ := socketAddress(c.GetDownstreamDirectRemoteAddress()); addr.IsValid() {
		return addr
	}
	addr, _ := socketAddress(c.GetDownstreamRemoteAddress())
	return addr
}

func socketAddress(a *corev3.Address) (netip.Addr, uint32) {
	sa := a.GetSocketAddress()
	if sa == nil {
		return netip.Addr{}, 0
	}
	addr, err := netip.ParseAddr(sa.GetAddress())
	if err != nil {
		return netip.Addr{}, 0
	}
	return addr.Unmap(), sa.GetPortValue()
}

// destService finds the mesh service a request was for: the outbound
// cluster's host, or for inbound the :authority when it names a mesh
// service; else the destination workload's service. It also returns the
// mesh protocol of the port the request used, "" when unknown.
func destService(ix *index, rep *reporter, cl cluster, authority string, destWI *workloadInfo) (*serviceInfo, string) {
	if !cl.inbound {
		if name, ns, ok := splitServiceHost(cl.host); ok {
			si := ix.service(ns, name)
			if si == nil {
				return nil, ""
			}
			if sp := servicePort(si.svc, cl.port); sp != nil {
				return si, sp.Protocol
			}
			return si, ""
		}
	}
	var si *serviceInfo
	if cl.inbound {
		if name, ns, ok := authorityService(authority, rep.namespace); ok {
			si = ix.service(ns, name)
		}
		if si == nil {
			si = ix.inboundService(destWI, cl.port)
		}
	} else {
		si = ix.outboundService(destWI, cl.port)
	}
	if si == nil || destWI == nil {
		return si, ""
	}
	if sp := destWI.servesOn(si.svc, cl.port); sp != nil {
		return si, sp.Protocol
	}
	return si, ""
}

// setDestService fills destination_service, _name and _namespace from the
// mesh service, else from a cluster host outside the mesh config.
func setDestService(r *record.Request, si *serviceInfo, cl cluster) {
	if si != nil {
		r.DestinationService, r.DestinationServiceName, r.DestinationServiceNamespace = si.fqdn, si.svc.Name, si.svc.Namespace
		return
	}
	if name, ns, ok := splitServiceHost(cl.host); ok {
		r.DestinationService, r.DestinationServiceName, r.DestinationServiceNamespace = cl.host, name, ns
		return
	}
	host := orUnknown(cl.host)
	r.DestinationService, r.DestinationServiceName, r.DestinationServiceNamespace = host, host, record.Unknown
}
