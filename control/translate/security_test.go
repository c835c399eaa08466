package translate

import (
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	resource "github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/glassmesh/glassmesh/control/model"
)

// securityMesh: the reviews workloads strictSelector picks are STRICT; only
// productpage may call reviews, and nobody its GetSecret; ratings keeps the
// default (PERMISSIVE); namespace legacy (details) is DISABLE.
func securityMesh(strictSelector map[string]string) *model.Mesh {
	details := grpcService("legacy", "details", 9080)
	return model.NewMesh(model.Objects{
		Services: []*model.Service{grpcService("default", "reviews", 9080), grpcService("default", "ratings", 9080), details},
		Workloads: []*model.Workload{
			workload("default", "reviews", "v1", "10.0.0.1", map[string]uint32{"grpc": 9080}),
			workload("default", "reviews", "v2", "10.0.0.2", map[string]uint32{"grpc": 9080}),
			workload("default", "ratings", "v1", "10.0.0.3", map[string]uint32{"grpc": 9081}),
			workload("legacy", "details", "v1", "10.0.0.4", map[string]uint32{"grpc": 9082}),
		},
		Routes: []*model.TrafficRoute{{
			Meta: meta("default", "reviews", nil),
			Spec: model.TrafficRouteSpec{
				Service: "reviews",
				Subsets: []model.Subset{{Name: "v1", Labels: map[string]string{"version": "v1"}}, {Name: "v2", Labels: map[string]string{"version": "v2"}}},
				Rules:   []model.Rule{{Destinations: []model.Destination{{Subset: "v1", Weight: 50}, {Subset: "v2", Weight: 50}}}},
			},
		}},
		PeerAuths: []*model.PeerAuthentication{
			{Meta: meta("default", "reviews", nil), Spec: model.PeerAuthenticationSpec{Selector: strictSelector, MTLS: model.MTLSStrict}},
			{Meta: meta("legacy", "default", nil), Spec: model.PeerAuthenticationSpec{MTLS: model.MTLSDisable}},
		},
		AuthzPols: []*model.AuthorizationPolicy{
			{Meta: meta("default", "reviews-callers", nil), Spec: model.AuthorizationPolicySpec{
				Selector: map[string]string{"app": "reviews"}, Action: model.ActionAllow,
				Rules: []model.AuthzRule{{From: []model.AuthzSource{{Principals: []string{"cluster.local/ns/default/sa/productpage"}}}}},
			}},
			{Meta: meta("default", "no-secrets", nil), Spec: model.AuthorizationPolicySpec{
				Selector: map[string]string{"app": "reviews"}, Action: model.ActionDeny,
				Rules: []model.AuthzRule{{To: []model.AuthzOperation{{Paths: []string{"/reviews.Reviews/GetSecret"}}}}},
			}},
		},
	})
}

func upstreamTLS(t *testing.T, c *clusterv3.Cluster) *tlsv3.UpstreamTlsContext {
	t.Helper()
	if c.TransportSocket == nil {
		return nil
	}
	if c.TransportSocket.Name != tlsSocketName {
		t.Fatalf("cluster %s: transport socket %q", c.Name, c.TransportSocket.Name)
	}
	return unpack(t, c.TransportSocket.GetTypedConfig(), &tlsv3.UpstreamTlsContext{})
}

func hcmOf(t *testing.T, c *listenerv3.FilterChain) *hcmv3.HttpConnectionManager {
	t.Helper()
	return unpack(t, c.Filters[0].GetTypedConfig(), &hcmv3.HttpConnectionManager{})
}

func TestSecurityGolden(t *testing.T) {
	s := mustTranslate(t, securityMesh(map[string]string{"app": "reviews"}))
	if len(s.Warnings) != 0 {
		t.Errorf("warnings: %q", s.Warnings)
	}
	t.Run("resources requested by name match the golden file", func(t *testing.T) {
		golden(t, "security_byname.golden.json", render(t, s.ByName))
	})
	t.Run("the STRICT workload's sidecar resources match the golden file", func(t *testing.T) {
		golden(t, "security_sidecars.golden.json", render(t, s.Sidecars["default/reviews-v1"]))
	})
}

func TestProxylessMTLS(t *testing.T) {
	m := securityMesh(map[string]string{"app": "reviews"})
	s := mustTranslate(t, m)
	reviews, ratings := m.Service("default", "reviews"), m.Service("default", "ratings")
	wantSAN := "spiffe://cluster.local/ns/default/sa/reviews"

	t.Run("clients of a STRICT service use the certificate provider and check its SPIFFE id", func(t *testing.T) {
		for _, subset := range []string{"", "v1", "v2"} {
			name := ClusterName(reviews, 9080, subset)
			tc := upstreamTLS(t, get[*clusterv3.Cluster](t, s.ByName, resource.ClusterType, name))
			if tc == nil {
				t.Fatalf("%s: plaintext, want mTLS", name)
			}
			common := tc.GetCommonTlsContext()
			if common.GetTlsCertificateProviderInstance().GetInstanceName() != CertProviderInstance {
				t.Errorf("%s: certificate provider %v", name, common.GetTlsCertificateProviderInstance())
			}
			vc := common.GetValidationContext()
			if vc.GetCaCertificateProviderInstance().GetInstanceName() != CertProviderInstance {
				t.Errorf("%s: CA provider %v", name, vc.GetCaCertificateProviderInstance())
			}
			if sans := vc.GetMatchSubjectAltNames(); len(sans) != 1 || sans[0].GetExact() != wantSAN {
				t.Errorf("%s: SAN matchers %v, want exactly %s", name, sans, wantSAN)
			}
			// One generation of fields only, or grpc-go sends no certificate.
			if len(common.GetTlsCertificateSdsSecretConfigs()) > 0 || len(common.GetTlsCertificates()) > 0 {
				t.Errorf("%s: SDS or inline certificates next to the provider instance", name)
			}
		}
	})
	t.Run("clients of a PERMISSIVE service use plaintext", func(t *testing.T) {
		if tc := upstreamTLS(t, get[*clusterv3.Cluster](t, s.ByName, resource.ClusterType, ClusterName(ratings, 9080, ""))); tc != nil {
			t.Errorf("ratings cluster has TLS %v", tc)
		}
	})
	t.Run("a STRICT server's listener requires a client certificate and carries the RBAC filters", func(t *testing.T) {
		for _, hp := range []string{"10.0.0.1:9080", "10.0.0.2:9080"} {
			l := get[*listenerv3.Listener](t, s.ByName, resource.ListenerType, ServerListenerName(hp))
			sa := l.GetAddress().GetSocketAddress()
			if got := net.JoinHostPort(sa.GetAddress(), strconv.Itoa(int(sa.GetPortValue()))); got != hp {
				t.Errorf("%s: listener address %s; grpc-go wants them equal", hp, got)
			}
			if len(l.FilterChains) != 1 || l.FilterChains[0].FilterChainMatch != nil {
				t.Fatalf("%s: want one chain matching everything, got %v", hp, l.FilterChains)
			}
			ch := l.FilterChains[0]
			if ch.TransportSocket == nil {
				t.Fatalf("%s: plaintext server in STRICT", hp)
			}
			d := unpack(t, ch.TransportSocket.GetTypedConfig(), &tlsv3.DownstreamTlsContext{})
			if !d.GetRequireClientCertificate().GetValue() {
				t.Errorf("%s: client certificate not required", hp)
			}
			if len(d.GetCommonTlsContext().GetValidationContext().GetMatchSubjectAltNames()) != 0 {
				t.Errorf("%s: SAN matchers on a server (grpc-go refuses them)", hp)
			}
			h := hcmOf(t, ch)
			if got, want := filterNames(h), []string{authzDenyFilterName, authzAllowFilterName, routerFilterName}; !slices.Equal(got, want) {
				t.Errorf("%s: http filters %v, want %v", hp, got, want)
			}
			if h.GetRouteConfig().GetVirtualHosts()[0].GetRoutes()[0].GetNonForwardingAction() == nil {
				t.Errorf("%s: route is not non-forwarding", hp)
			}
		}
	})
	t.Run("a port one workload alone serves also answers to the wildcard addresses", func(t *testing.T) {
		for _, hp := range []string{"10.0.0.3:9081", "0.0.0.0:9081", "[::]:9081", "10.0.0.4:9082", "[::]:9082"} {
			l := get[*listenerv3.Listener](t, s.ByName, resource.ListenerType, ServerListenerName(hp))
			if l.FilterChains[0].TransportSocket != nil {
				t.Errorf("%s: TLS on a server that is not STRICT", hp)
			}
			if got := filterNames(hcmOf(t, l.FilterChains[0])); !slices.Equal(got, []string{routerFilterName}) {
				t.Errorf("%s: http filters %v, want only the router", hp, got)
			}
		}
		// Two workloads listen on 9080: a wildcard name would be ambiguous.
		if _, ok := s.ByName[resource.ListenerType][ServerListenerName("[::]:9080")]; ok {
			t.Errorf("[::]:9080 is served though two workloads use port 9080")
		}
	})
	t.Run("the trust domain comes from the options", func(t *testing.T) {
		s, err := Translate(m, Options{TrustDomain: "example.org"})
		if err != nil {
			t.Fatal(err)
		}
		tc := upstreamTLS(t, s.ByName[resource.ClusterType][ClusterName(reviews, 9080, "v1")].(*clusterv3.Cluster))
		if got := tc.GetCommonTlsContext().GetValidationContext().GetMatchSubjectAltNames()[0].GetExact(); got != "spiffe://example.org/ns/default/sa/reviews" {
			t.Errorf("SAN %s", got)
		}
	})
}

func TestSidecarMTLS(t *testing.T) {
	m := securityMesh(map[string]string{"app": "reviews"})
	s := mustTranslate(t, m)
	reviews := m.Service("default", "reviews")

	inbound := func(key string) *listenerv3.Listener {
		return get[*listenerv3.Listener](t, s.Sidecars[key], resource.ListenerType, VirtualInboundListener)
	}
	t.Run("STRICT: one TLS chain per port, with SDS and the RBAC filters, no TLS sniffing", func(t *testing.T) {
		l := inbound("default/reviews-v1")
		if len(l.FilterChains) != 1 {
			t.Fatalf("%d chains, want 1", len(l.FilterChains))
		}
		for _, lf := range l.ListenerFilters {
			if lf.Name == tlsInspectorName {
				t.Errorf("tls_inspector on a STRICT listener")
			}
		}
		ch := l.FilterChains[0]
		d := unpack(t, ch.TransportSocket.GetTypedConfig(), &tlsv3.DownstreamTlsContext{})
		common := d.GetCommonTlsContext()
		if !d.GetRequireClientCertificate().GetValue() || common.GetTlsCertificateSdsSecretConfigs()[0].GetName() != SDSCertName ||
			common.GetValidationContextSdsSecretConfig().GetName() != SDSRootName {
			t.Errorf("downstream TLS %v", d)
		}
		if got := filterNames(hcmOf(t, ch)); !slices.Equal(got, []string{authzDenyFilterName, authzAllowFilterName, routerFilterName}) {
			t.Errorf("http filters %v", got)
		}
	})
	t.Run("PERMISSIVE: tls_inspector picks a TLS chain or a plaintext one", func(t *testing.T) {
		l := inbound("default/ratings-v1")
		if !slices.ContainsFunc(l.ListenerFilters, func(f *listenerv3.ListenerFilter) bool { return f.Name == tlsInspectorName }) {
			t.Errorf("no tls_inspector")
		}
		if len(l.FilterChains) != 2 || l.FilterChains[0].FilterChainMatch.GetTransportProtocol() != "tls" ||
			l.FilterChains[0].TransportSocket == nil || l.FilterChains[1].TransportSocket != nil {
			t.Errorf("chains %v", l.FilterChains)
		}
	})
	t.Run("DISABLE: plaintext only", func(t *testing.T) {
		l := inbound("legacy/details-v1")
		if len(l.FilterChains) != 1 || l.FilterChains[0].TransportSocket != nil {
			t.Errorf("chains %v", l.FilterChains)
		}
	})
	t.Run("clusters to a STRICT service use SDS and check the SPIFFE id", func(t *testing.T) {
		c := get[*clusterv3.Cluster](t, s.Sidecars["default/ratings-v1"], resource.ClusterType, ClusterName(reviews, 9080, "v2"))
		tc := upstreamTLS(t, c)
		cv := tc.GetCommonTlsContext().GetCombinedValidationContext()
		sans := cv.GetDefaultValidationContext().GetMatchTypedSubjectAltNames()
		if len(sans) != 1 || sans[0].GetSanType() != tlsv3.SubjectAltNameMatcher_URI || sans[0].GetMatcher().GetExact() != "spiffe://cluster.local/ns/default/sa/reviews" {
			t.Errorf("SAN matchers %v", sans)
		}
		if cv.GetValidationContextSdsSecretConfig().GetName() != SDSRootName || tc.GetCommonTlsContext().GetTlsCertificateSdsSecretConfigs()[0].GetName() != SDSCertName {
			t.Errorf("SDS configs %v", tc)
		}
		if !slices.Equal(tc.GetCommonTlsContext().GetAlpnProtocols(), []string{"h2"}) {
			t.Errorf("ALPN %v, want h2 for a gRPC cluster", tc.GetCommonTlsContext().GetAlpnProtocols())
		}
	})
}

func TestMixedMTLSModes(t *testing.T) {
	// Only reviews v2 is STRICT: its subset gets mTLS, the whole service
	// (v1 too) cannot, and the translation says so.
	m := securityMesh(map[string]string{"app": "reviews", "version": "v2"})
	s := mustTranslate(t, m)
	reviews := m.Service("default", "reviews")
	cluster := func(subset string) *clusterv3.Cluster {
		return get[*clusterv3.Cluster](t, s.ByName, resource.ClusterType, ClusterName(reviews, 9080, subset))
	}
	if upstreamTLS(t, cluster("v2")) == nil {
		t.Errorf("v2 subset: plaintext, want mTLS")
	}
	if upstreamTLS(t, cluster("v1")) != nil || upstreamTLS(t, cluster("")) != nil {
		t.Errorf("v1 subset or whole service: mTLS, want plaintext")
	}
	if len(s.Warnings) != 1 || !strings.Contains(s.Warnings[0], "default/reviews-v2") || !strings.Contains(s.Warnings[0], "outbound|9080||reviews") {
		t.Errorf("warnings %q, want one naming the mixed whole-service cluster", s.Warnings)
	}
}
