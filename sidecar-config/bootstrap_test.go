package sidecarconfig_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/glassmesh/glassmesh/control/model"
	"github.com/glassmesh/glassmesh/control/naming"
	sidecarconfig "github.com/glassmesh/glassmesh/sidecar-config"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

func testMesh() *model.Mesh {
	return model.NewMesh(model.Objects{
		Services: []*model.Service{{
			Meta: model.Meta{Namespace: "default", Name: "reviews"},
			Spec: model.ServiceSpec{
				Ports:    []model.ServicePort{{Name: "grpc", Port: 9080, Protocol: model.ProtocolGRPC}},
				Selector: map[string]string{"app": "reviews"},
			},
		}},
		Workloads: []*model.Workload{
			{
				Meta: model.Meta{Namespace: "default", Name: "reviews-v2", Labels: map[string]string{"app": "reviews", "version": "v2"}},
				Spec: model.WorkloadSpec{ServiceAccount: "reviews", Endpoints: []model.Endpoint{
					{Address: "127.0.0.1", Ports: map[string]uint32{"grpc": 19083}},
					{Address: "127.0.0.2", Ports: map[string]uint32{"grpc": 19083}},
				}},
			},
			{Meta: model.Meta{Namespace: "default", Name: "idle"}},
		},
	})
}

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs; run go test -update and review the diff. got:\n%s", path, got)
	}
}

type validator interface{ ValidateAll() error }

func validate(t *testing.T, what string, m proto.Message) {
	t.Helper()
	if err := m.(validator).ValidateAll(); err != nil {
		t.Errorf("%s: %v", what, err)
	}
}

func TestEnvoyBootstrap(t *testing.T) {
	b, err := sidecarconfig.EnvoyBootstrap(testMesh(), "default", "reviews-v2", sidecarconfig.BootstrapOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Run("it and every config packed inside it validate", func(t *testing.T) {
		validate(t, "bootstrap", b)
		for _, c := range b.StaticResources.Clusters {
			for name, a := range c.TypedExtensionProtocolOptions {
				inner, err := a.UnmarshalNew()
				if err != nil {
					t.Fatal(err)
				}
				validate(t, c.Name+" "+name, inner)
			}
		}
		for _, s := range b.StatsSinks {
			inner, err := s.GetTypedConfig().UnmarshalNew()
			if err != nil {
				t.Fatal(err)
			}
			validate(t, s.Name, inner)
		}
	})
	t.Run("it names the node as DESIGN.md says", func(t *testing.T) {
		if want := "sidecar~127.0.0.1~reviews-v2.default~default.svc.cluster.local"; b.Node.Id != want {
			t.Errorf("node id = %q, want %q", b.Node.Id, want)
		}
		md := b.Node.Metadata.AsMap()
		if md[naming.NodeMetaNamespace] != "default" || md[naming.NodeMetaWorkloadName] != "reviews-v2" {
			t.Errorf("metadata = %v", md)
		}
		if labels, _ := md[naming.NodeMetaLabels].(map[string]any); labels["version"] != "v2" || labels["app"] != "reviews" {
			t.Errorf("LABELS = %v", md[naming.NodeMetaLabels])
		}
		if _, ok := md[naming.NodeMetaGenerator]; ok {
			t.Error("an Envoy node claims a GENERATOR")
		}
	})
	t.Run("it matches the golden file", func(t *testing.T) {
		raw, err := protojson.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer // protojson's spacing varies by build on purpose
		if err := json.Indent(&out, compact(t, raw), "", "  "); err != nil {
			t.Fatal(err)
		}
		out.WriteByte('\n')
		golden(t, "envoy_bootstrap.golden.json", out.Bytes())
	})
}

func compact(t *testing.T, b []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	if err := json.Compact(&out, b); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func TestEnvoyBootstrapXDSAddress(t *testing.T) {
	for _, tc := range []struct {
		addr string
		kind clusterv3.Cluster_DiscoveryType
		host string
	}{
		{"10.1.2.3:15010", clusterv3.Cluster_STATIC, "10.1.2.3"},
		{"glassmesh.glassmesh-system:15010", clusterv3.Cluster_STRICT_DNS, "glassmesh.glassmesh-system"},
		{":15012", clusterv3.Cluster_STATIC, "127.0.0.1"},
	} {
		t.Run(tc.addr, func(t *testing.T) {
			b, err := sidecarconfig.EnvoyBootstrap(testMesh(), "default", "reviews-v2", sidecarconfig.BootstrapOptions{XDSAddr: tc.addr})
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range b.StaticResources.Clusters {
				sa := c.LoadAssignment.Endpoints[0].LbEndpoints[0].GetEndpoint().Address.GetSocketAddress()
				if c.GetType() != tc.kind || sa.Address != tc.host {
					t.Errorf("cluster %s: %v to %s, want %v to %s", c.Name, c.GetType(), sa.Address, tc.kind, tc.host)
				}
			}
			validate(t, "bootstrap", b)
		})
	}
}

func TestBootstrapErrors(t *testing.T) {
	for _, tc := range []struct {
		name, ns, workload, addr, want string
	}{
		{"an unknown workload", "default", "nope", "", "not in the mesh config"},
		{"a workload without endpoints", "default", "idle", "", "no endpoint address"},
		{"an xDS address without a port", "default", "reviews-v2", "127.0.0.1", "want host:port"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := sidecarconfig.BootstrapOptions{XDSAddr: tc.addr}
			_, err := sidecarconfig.EnvoyBootstrap(testMesh(), tc.ns, tc.workload, opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Envoy: err = %v, want %q", err, tc.want)
			}
			_, err = sidecarconfig.ProxylessBootstrap(testMesh(), tc.ns, tc.workload, opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("proxyless: err = %v, want %q", err, tc.want)
			}
		})
	}
}

// With --xds-ca and --xds-token-file an Envoy bootstrap speaks TLS to
// glassmesh (trusting the CA, SNI the xDS host) and presents the token on
// its ADS stream; the TLS context validates.
func TestEnvoyBootstrapAttested(t *testing.T) {
	dir := t.TempDir()
	token := filepath.Join(dir, "token")
	if err := os.WriteFile(token, []byte("eyJ.workload.token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(dir, "ca.pem")
	b, err := sidecarconfig.EnvoyBootstrap(testMesh(), "default", "reviews-v2", sidecarconfig.BootstrapOptions{
		XDSAddr: "glassmesh.glassmesh-system:15010", XDSCA: ca, XDSTokenFile: token})
	if err != nil {
		t.Fatal(err)
	}
	validate(t, "bootstrap", b)
	md := b.DynamicResources.AdsConfig.GrpcServices[0].InitialMetadata
	if len(md) != 1 || md[0].Key != "authorization" || md[0].Value != "Bearer eyJ.workload.token" {
		t.Errorf("ADS initial metadata %v", md)
	}
	for _, c := range b.StaticResources.Clusters {
		tc := &tlsv3.UpstreamTlsContext{}
		if err := c.GetTransportSocket().GetTypedConfig().UnmarshalTo(tc); err != nil {
			t.Fatalf("cluster %s: %v", c.Name, err)
		}
		validate(t, c.Name+" TLS", tc)
		if tc.Sni != "glassmesh.glassmesh-system" || tc.GetCommonTlsContext().GetValidationContext().GetTrustedCa().GetFilename() != ca {
			t.Errorf("cluster %s TLS: %v", c.Name, tc)
		}
	}
	if _, err := sidecarconfig.EnvoyBootstrap(testMesh(), "default", "reviews-v2", sidecarconfig.BootstrapOptions{XDSTokenFile: token}); err == nil {
		t.Error("a token over plaintext xDS was accepted")
	}
}
