package sidecarconfig_test

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/xds"

	"github.com/glassmesh/glassmesh/control/naming"
	"github.com/glassmesh/glassmesh/control/translate"
	sidecarconfig "github.com/glassmesh/glassmesh/sidecar-config"
)

func TestProxylessBootstrapGolden(t *testing.T) {
	b, err := sidecarconfig.ProxylessBootstrap(testMesh(), "default", "reviews-v2", sidecarconfig.BootstrapOptions{CertsDir: "/var/run/glassmesh/certs"})
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "proxyless_bootstrap.golden.json", b)
}

// nodeCatcher is an ADS server that records the node of each stream's first
// request and then says nothing.
type nodeCatcher struct {
	discoveryv3.UnimplementedAggregatedDiscoveryServiceServer
	nodes chan *corev3.Node
}

func (c *nodeCatcher) StreamAggregatedResources(s discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesServer) error {
	req, err := s.Recv()
	if err != nil {
		return err
	}
	select {
	case c.nodes <- req.GetNode():
	default:
	}
	<-s.Context().Done()
	return nil
}

// startADS serves a nodeCatcher on a free loopback port.
func startADS(t *testing.T) (*nodeCatcher, string) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &nodeCatcher{nodes: make(chan *corev3.Node, 1)}
	srv := grpc.NewServer()
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(srv, c)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return c, lis.Addr().String()
}

// TestGRPCAcceptsProxylessBootstrap hands the bootstrap to grpc-go's own xDS
// client and checks, at a real ADS server, that it connected there and
// introduced itself with the node the bootstrap names.
func TestGRPCAcceptsProxylessBootstrap(t *testing.T) {
	for _, tc := range []struct {
		name     string
		certsDir string
	}{
		{"plain", ""},
		{"with a certificate provider", t.TempDir()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ads, addr := startADS(t)
			node := sidecarconfig.NodeInfo{
				IP: "127.0.0.1", Instance: "demo-1", Namespace: "shop", Workload: "demo",
				Labels: map[string]string{"app": "demo", "version": "v1"},
			}
			b, err := sidecarconfig.ProxylessBootstrapFor(node, sidecarconfig.BootstrapOptions{XDSAddr: addr, CertsDir: tc.certsDir})
			if err != nil {
				t.Fatal(err)
			}
			resolver, err := xds.NewXDSResolverWithConfigForTesting(b)
			if err != nil {
				t.Fatal(err)
			}
			cc, err := grpc.NewClient("xds:///demo.shop:9080", grpc.WithResolvers(resolver), grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = cc.Close() })
			cc.Connect()

			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			var got *corev3.Node
			select {
			case got = <-ads.nodes:
			case <-ctx.Done():
				t.Fatalf("grpc-go never reached the ADS server named in the bootstrap:\n%s", b)
			}
			if want := "sidecar~127.0.0.1~demo-1.shop~shop.svc.cluster.local"; got.GetId() != want {
				t.Errorf("node id = %q, want %q", got.GetId(), want)
			}
			md := got.GetMetadata().AsMap()
			if md[naming.NodeMetaGenerator] != naming.GeneratorGRPC || md[naming.NodeMetaNamespace] != "shop" || md[naming.NodeMetaWorkloadName] != "demo" {
				t.Errorf("metadata = %v", md)
			}
			if labels, _ := md[naming.NodeMetaLabels].(map[string]any); labels["app"] != "demo" || labels["version"] != "v1" {
				t.Errorf("LABELS = %v", md[naming.NodeMetaLabels])
			}
		})
	}
}

// The names a proxyless bootstrap gives must be the ones translated
// resources refer to, or grpc-go rejects the TLS contexts and never finds
// its server listener.
func TestProxylessNamesMatchTheTranslation(t *testing.T) {
	if sidecarconfig.CertificateProvider != translate.CertProviderInstance {
		t.Errorf("bootstrap certificate provider %q, translation uses %q", sidecarconfig.CertificateProvider, translate.CertProviderInstance)
	}
	if got := fmt.Sprintf(sidecarconfig.ServerListenerTemplate, "10.0.0.1:9080"); got != translate.ServerListenerName("10.0.0.1:9080") {
		t.Errorf("bootstrap template gives %q, translation %q", got, translate.ServerListenerName("10.0.0.1:9080"))
	}
}
