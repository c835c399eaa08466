package translate

import (
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsinspectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	resource "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/glassmesh/glassmesh/control/model"
	"github.com/glassmesh/glassmesh/control/naming"
)

// Transport security: who speaks mutual TLS to whom, and with which
// certificates.
//
// Sidecars get their workload's certificate and the trust bundle over SDS
// (secrets SDSCertName and SDSRootName, per workload view); proxyless apps
// read them from files through the grpc-go certificate provider named
// CertProviderInstance in their bootstrap. Clients use mTLS to a service
// subset when every workload behind it is STRICT, and check that the peer
// holds one of those workloads' SPIFFE ids. Servers in STRICT accept only
// mTLS; Envoy in PERMISSIVE accepts both (TLS told apart by tls_inspector);
// proxyless servers, which cannot tell them apart on one port, serve
// plaintext unless STRICT.
const (
	// DefaultTrustDomain is the SPIFFE trust domain when Options has none.
	DefaultTrustDomain = "cluster.local"
	// ServerListenerPrefix starts the name of the Listener a proxyless gRPC
	// server asks for; the rest is the address it listens on, host:port.
	ServerListenerPrefix = "grpc/server?xds.resource.listening_address="
	// CertProviderInstance is the certificate provider proxyless TLS
	// contexts use, as `glassmesh sidecar bootstrap --proxyless
	// --certs-dir` names it.
	CertProviderInstance = "default"
	// SDSCertName and SDSRootName are a sidecar's SDS secrets: its
	// certificate and key, and the trust bundle (Istio's names).
	SDSCertName = "default"
	SDSRootName = "ROOTCA"

	tlsSocketName    = "envoy.transport_sockets.tls"
	tlsInspectorName = "envoy.filters.listener.tls_inspector"
)

// ServerListenerName is the Listener a proxyless gRPC server listening on
// hostPort asks for.
func ServerListenerName(hostPort string) string { return ServerListenerPrefix + hostPort }

// upstreamSANs are the SPIFFE ids a client must find in the certificate of
// a service port subset's server, or nil when clients talk plaintext to it:
// mTLS only when every workload behind the subset is STRICT. A subset that
// mixes modes gets plaintext and a warning: its STRICT workloads will
// refuse those calls. Results are remembered per cluster, so the two
// flavours agree and the warning comes once.
func (t *translator) upstreamSANs(sp servicePort, subset, cluster string) []string {
	if sans, ok := t.sans[cluster]; ok {
		return sans
	}
	var labels map[string]string
	if subset != "" {
		labels = sp.route.Subset(subset).Labels
	}
	ws := t.mesh.WorkloadsOf(sp.svc, labels)
	ids := map[string]bool{}
	var strict, other []string
	for _, w := range ws {
		if mode, _ := t.mesh.MTLSMode(w); mode == model.MTLSStrict {
			strict = append(strict, w.Key())
			ids[naming.SPIFFEID(t.opts.TrustDomain, w.Namespace, w.Spec.ServiceAccount)] = true
		} else {
			other = append(other, w.Key())
		}
	}
	var sans []string
	switch {
	case len(strict) > 0 && len(other) > 0:
		t.warnf("%s: workloads %v require mTLS but %v do not; clients use plaintext to the cluster %s, which the former refuse",
			sp.key(), strict, other, cluster)
	case len(strict) > 0:
		for id := range ids {
			sans = append(sans, id)
		}
		sort.Strings(sans)
	}
	if t.sans == nil {
		t.sans = map[string][]string{}
	}
	t.sans[cluster] = sans
	return sans
}

func tlsSocket(ctx *tlsv3.UpstreamTlsContext, dctx *tlsv3.DownstreamTlsContext) *corev3.TransportSocket {
	ts := &corev3.TransportSocket{Name: tlsSocketName}
	if ctx != nil {
		ts.ConfigType = &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(ctx)}
	} else {
		ts.ConfigType = &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(dctx)}
	}
	return ts
}

func exactMatchers(values []string) []*matcherv3.StringMatcher {
	out := make([]*matcherv3.StringMatcher, 0, len(values))
	for _, v := range values {
		out = append(out, &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: v}})
	}
	return out
}

func providerInstance() *tlsv3.CertificateProviderPluginInstance {
	return &tlsv3.CertificateProviderPluginInstance{InstanceName: CertProviderInstance}
}

// proxylessUpstreamTLS is a proxyless client's mTLS to servers holding one
// of sans. Only the certificate-provider fields grpc-go reads are set:
// mixing them with SDS ones makes grpc-go send no certificate.
func proxylessUpstreamTLS(sans []string) *corev3.TransportSocket {
	return tlsSocket(&tlsv3.UpstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
		TlsCertificateProviderInstance: providerInstance(),
		ValidationContextType: &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
			CaCertificateProviderInstance: providerInstance(),
			MatchSubjectAltNames:          exactMatchers(sans),
		}},
	}}, nil)
}

// proxylessDownstreamTLS makes a proxyless server require a client
// certificate from the mesh CA. grpc-go refuses SAN matchers on servers:
// who may call is the RBAC filters' business.
func proxylessDownstreamTLS() *corev3.TransportSocket {
	return tlsSocket(nil, &tlsv3.DownstreamTlsContext{
		RequireClientCertificate: wrapperspb.Bool(true),
		CommonTlsContext: &tlsv3.CommonTlsContext{
			TlsCertificateProviderInstance: providerInstance(),
			ValidationContextType: &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
				CaCertificateProviderInstance: providerInstance(),
			}},
		},
	})
}

func sdsSecret(name string) *tlsv3.SdsSecretConfig {
	return &tlsv3.SdsSecretConfig{Name: name, SdsConfig: adsSource()}
}

// sidecarUpstreamTLS is Envoy's mTLS to servers holding one of sans, with
// the workload's certificate and the trust bundle over SDS.
func sidecarUpstreamTLS(sans []string, h2 bool) *corev3.TransportSocket {
	var typed []*tlsv3.SubjectAltNameMatcher
	for _, m := range exactMatchers(sans) {
		typed = append(typed, &tlsv3.SubjectAltNameMatcher{SanType: tlsv3.SubjectAltNameMatcher_URI, Matcher: m})
	}
	common := &tlsv3.CommonTlsContext{
		TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sdsSecret(SDSCertName)},
		ValidationContextType: &tlsv3.CommonTlsContext_CombinedValidationContext{
			CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
				DefaultValidationContext:         &tlsv3.CertificateValidationContext{MatchTypedSubjectAltNames: typed},
				ValidationContextSdsSecretConfig: sdsSecret(SDSRootName),
			},
		},
	}
	if h2 {
		common.AlpnProtocols = []string{"h2"}
	}
	return tlsSocket(&tlsv3.UpstreamTlsContext{CommonTlsContext: common}, nil)
}

// sidecarDownstreamTLS makes Envoy's inbound side require a client
// certificate from the mesh CA.
func sidecarDownstreamTLS() *corev3.TransportSocket {
	return tlsSocket(nil, &tlsv3.DownstreamTlsContext{
		RequireClientCertificate: wrapperspb.Bool(true),
		CommonTlsContext: &tlsv3.CommonTlsContext{
			TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sdsSecret(SDSCertName)},
			ValidationContextType: &tlsv3.CommonTlsContext_ValidationContextSdsSecretConfig{
				ValidationContextSdsSecretConfig: sdsSecret(SDSRootName),
			},
			AlpnProtocols: []string{"h2", "http/1.1"},
		},
	})
}

func tlsInspector() *listenerv3.ListenerFilter {
	return &listenerv3.ListenerFilter{
		Name:       tlsInspectorName,
		ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: mustAny(&tlsinspectorv3.TlsInspector{})},
	}
}

// serverListeners adds the Listener of every proxyless gRPC server a
// workload may run: one per endpoint address and gRPC (or HTTP/2) port,
// named after that address. A server bound to every interface asks for
// 0.0.0.0:<port> or [::]:<port>; those names are shared by every node, so
// they are served only for a port number one workload alone uses (the rest
// should listen on their endpoint address).
func (t *translator) serverListeners(out Resources) {
	byWorkload := make([][]server, len(t.mesh.Workloads))
	workloadsOnPort := map[uint32]map[string]bool{}
	for i, w := range t.mesh.Workloads {
		servers, ok := t.cache.serverPorts(w)
		if !ok {
			servers = t.servers(w)
			t.cache.keepServerPorts(w, servers)
		}
		byWorkload[i] = servers
		for _, s := range servers {
			if workloadsOnPort[s.port] == nil {
				workloadsOnPort[s.port] = map[string]bool{}
			}
			workloadsOnPort[s.port][w.Key()] = true
		}
	}
	var key strings.Builder
	for i, w := range t.mesh.Workloads {
		servers := byWorkload[i]
		if len(servers) == 0 {
			continue
		}
		// Which of its ports it alone uses decides its listeners.
		key.Reset()
		for _, s := range servers {
			fmt.Fprintf(&key, "%d=%t,", s.port, len(workloadsOnPort[s.port]) == 1)
		}
		ls, ok := t.cache.serverListeners(w, key.String())
		if !ok {
			ls = t.serverListenersOf(w, servers, workloadsOnPort)
			t.cache.keepServerListeners(w, key.String(), ls)
		}
		for _, l := range ls {
			add(out, l.typeURL, l.name, l.res)
		}
	}
}

// server is one proxyless gRPC server a workload may run.
type server struct {
	host string
	port uint32
}

// servers lists w's endpoint addresses and gRPC (or HTTP/2) ports.
func (t *translator) servers(w *model.Workload) []server {
	protocols := map[string]string{}
	for _, svc := range t.mesh.ServicesOf(w) {
		for _, p := range svc.Spec.Ports {
			protocols[p.Name] = p.Protocol
		}
	}
	var out []server
	for _, ep := range w.Spec.Endpoints {
		for _, name := range sortedKeys(ep.Ports) {
			port := ep.Ports[name]
			if p := protocols[name]; p != model.ProtocolGRPC && p != model.ProtocolHTTP2 {
				continue
			}
			out = append(out, server{ep.Address, port})
		}
	}
	return out
}

// serverListenersOf builds w's server listeners.
func (t *translator) serverListenersOf(w *model.Workload, servers []server, workloadsOnPort map[uint32]map[string]bool) []memoRes {
	mode, _ := t.mesh.MTLSMode(w)
	authz := authzFilters(t.mesh.AuthorizationPolicies(w))
	var out []memoRes
	for _, s := range servers {
		hosts := []string{s.host}
		if len(workloadsOnPort[s.port]) == 1 {
			hosts = append(hosts, "0.0.0.0", "::")
		}
		for _, host := range hosts {
			hostPort := net.JoinHostPort(host, strconv.FormatUint(uint64(s.port), 10))
			name := ServerListenerName(hostPort)
			chain := hcmChain(hcmConfig{statPrefix: "inbound_" + hostPort, inline: serverRouteConfig(), authz: authz})
			chain.Name = "inbound|" + hostPort
			if mode == model.MTLSStrict {
				chain.TransportSocket = proxylessDownstreamTLS()
			}
			out = append(out, memoRes{typeURL: resource.ListenerType, name: name, res: &listenerv3.Listener{
				Name:             name,
				Address:          socketAddress(host, s.port),
				TrafficDirection: corev3.TrafficDirection_INBOUND,
				FilterChains:     []*listenerv3.FilterChain{chain},
			}})
		}
	}
	return out
}

// serverRouteConfig is what a proxyless server routes by: every call to
// the server itself (grpc-go requires the non-forwarding action).
func serverRouteConfig() *routev3.RouteConfiguration {
	return &routev3.RouteConfiguration{
		Name: "inbound",
		VirtualHosts: []*routev3.VirtualHost{{
			Name:    "inbound",
			Domains: []string{"*"},
			Routes: []*routev3.Route{{
				Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
				Action: &routev3.Route_NonForwardingAction{NonForwardingAction: &routev3.NonForwardingAction{}},
			}},
		}},
	}
}

// inboundSecurity is what a sidecar's inbound side enforces.
type inboundSecurity struct {
	mode  string
	authz []*hcmv3.HttpFilter
}

func (t *translator) inboundSecurity(w *model.Workload) inboundSecurity {
	mode, _ := t.mesh.MTLSMode(w)
	return inboundSecurity{mode: mode, authz: authzFilters(t.mesh.AuthorizationPolicies(w))}
}

// inboundChains are the filter chains of one inbound port as the mode asks:
// STRICT one TLS chain; PERMISSIVE a TLS chain and a plaintext one, told
// apart by tls_inspector; DISABLE a plaintext one. mk builds a fresh chain.
func inboundChains(mode string, port uint32, mk func() *listenerv3.FilterChain) []*listenerv3.FilterChain {
	chain := func(tls bool, transport string) *listenerv3.FilterChain {
		c := mk()
		c.Name = fmt.Sprintf("inbound|%d", port)
		c.FilterChainMatch = &listenerv3.FilterChainMatch{DestinationPort: wrapperspb.UInt32(port), TransportProtocol: transport}
		if tls {
			c.Name += "|mtls"
			c.TransportSocket = sidecarDownstreamTLS()
		}
		return c
	}
	switch mode {
	case model.MTLSStrict:
		return []*listenerv3.FilterChain{chain(true, "")}
	case model.MTLSPermissive:
		return []*listenerv3.FilterChain{chain(true, "tls"), chain(false, "")}
	default:
		return []*listenerv3.FilterChain{chain(false, "")}
	}
}
