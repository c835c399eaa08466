package sidecarconfig

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	metricsv3 "github.com/envoyproxy/go-control-plane/envoy/config/metrics/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/glassmesh/glassmesh/control/model"
)

// Names and ports of a sidecar's fixed parts.
const (
	// XDSCluster is the bootstrap cluster that reaches glassmesh's xDS server.
	XDSCluster = "xds-grpc"
	// TelemetryCluster is the bootstrap cluster for access logs, spans and
	// metrics. glassmesh serves them on its xDS port, so it has the same
	// address as XDSCluster; translated listeners refer to it by this name.
	TelemetryCluster = "glassmesh-telemetry"
	// AdminPort is Envoy's admin port on 127.0.0.1.
	AdminPort = 15000
)

// EnvoyBootstrap is the bootstrap of the Envoy sidecar beside the workload
// namespace/name: its node identity, ADS to glassmesh for listeners and
// clusters, static clusters to glassmesh for xDS and telemetry, metrics
// pushed to the telemetry cluster, and the admin interface on 127.0.0.1.
func EnvoyBootstrap(m *model.Mesh, namespace, name string, opts BootstrapOptions) (*bootstrapv3.Bootstrap, error) {
	node, err := NodeFor(m, namespace, name)
	if err != nil {
		return nil, err
	}
	return EnvoyBootstrapFor(node, opts)
}

// EnvoyBootstrapFor is EnvoyBootstrap for an identity given directly.
func EnvoyBootstrapFor(node NodeInfo, opts BootstrapOptions) (*bootstrapv3.Bootstrap, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	md, err := structpb.NewStruct(node.metadata(""))
	if err != nil {
		return nil, fmt.Errorf("node metadata: %w", err)
	}
	xds, err := h2Cluster(XDSCluster, opts.XDSAddr, opts.XDSCA)
	if err != nil {
		return nil, err
	}
	tel, err := h2Cluster(TelemetryCluster, opts.XDSAddr, opts.XDSCA)
	if err != nil {
		return nil, err
	}
	adsService := envoyGRPC(XDSCluster)
	if opts.XDSTokenFile != "" {
		// Envoy sends initial_metadata as it is on every (re)connect: the
		// token is read now, so give Envoy a long-lived workload token
		// (glassmesh ca token --ttl), not a projected one.
		tok, err := os.ReadFile(opts.XDSTokenFile)
		if err != nil {
			return nil, fmt.Errorf("xDS token: %w", err)
		}
		adsService.InitialMetadata = []*corev3.HeaderValue{{Key: "authorization", Value: "Bearer " + strings.TrimSpace(string(tok))}}
	}
	ads := &corev3.ConfigSource{
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
		ResourceApiVersion:    corev3.ApiVersion_V3,
	}
	return &bootstrapv3.Bootstrap{
		Node: &corev3.Node{Id: node.ID(), Cluster: node.Cluster(), Metadata: md},
		DynamicResources: &bootstrapv3.Bootstrap_DynamicResources{
			AdsConfig: &corev3.ApiConfigSource{
				ApiType:             corev3.ApiConfigSource_GRPC,
				TransportApiVersion: corev3.ApiVersion_V3,
				GrpcServices:        []*corev3.GrpcService{adsService},
			},
			LdsConfig: ads,
			CdsConfig: ads,
		},
		StaticResources: &bootstrapv3.Bootstrap_StaticResources{Clusters: []*clusterv3.Cluster{xds, tel}},
		StatsSinks: []*metricsv3.StatsSink{{
			Name: "envoy.stat_sinks.metrics_service",
			ConfigType: &metricsv3.StatsSink_TypedConfig{TypedConfig: mustAny(&metricsv3.MetricsServiceConfig{
				GrpcService:         envoyGRPC(TelemetryCluster),
				TransportApiVersion: corev3.ApiVersion_V3,
			})},
		}},
		StatsFlushInterval: durationpb.New(5 * time.Second),
		Admin:              &bootstrapv3.Admin{Address: socketAddress("127.0.0.1", AdminPort)},
	}, nil
}

// h2Cluster is a static HTTP/2 cluster to host:port: STATIC for an IP,
// STRICT_DNS for a name; with a CA file, over TLS that trusts it.
func h2Cluster(name, hostPort, caFile string) (*clusterv3.Cluster, error) {
	host, p, err := net.SplitHostPort(hostPort)
	if err != nil {
		return nil, fmt.Errorf("cluster %s: %w", name, err)
	}
	port, err := strconv.ParseUint(p, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("cluster %s: port %q: %w", name, p, err)
	}
	kind := clusterv3.Cluster_STRICT_DNS
	if net.ParseIP(host) != nil {
		kind = clusterv3.Cluster_STATIC
	}
	var socket *corev3.TransportSocket
	if caFile != "" {
		ca, err := filepath.Abs(caFile)
		if err != nil {
			return nil, fmt.Errorf("cluster %s: xDS CA: %w", name, err)
		}
		socket = &corev3.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &corev3.TransportSocket_TypedConfig{
			TypedConfig: mustAny(&tlsv3.UpstreamTlsContext{
				Sni: host,
				CommonTlsContext: &tlsv3.CommonTlsContext{
					AlpnProtocols: []string{"h2"},
					ValidationContextType: &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
						TrustedCa: &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: ca}},
					}},
				},
			}),
		}}
	}
	return &clusterv3.Cluster{
		Name:                 name,
		TransportSocket:      socket,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: kind},
		ConnectTimeout:       durationpb.New(5 * time.Second),
		LoadAssignment: &endpointv3.ClusterLoadAssignment{
			ClusterName: name,
			Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: []*endpointv3.LbEndpoint{{
				HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
					Address: socketAddress(host, uint32(port)),
				}},
			}}}},
		},
		TypedExtensionProtocolOptions: map[string]*anypb.Any{
			"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": mustAny(&httpv3.HttpProtocolOptions{
				UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{
					ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
						ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{
							Http2ProtocolOptions: &corev3.Http2ProtocolOptions{},
						},
					},
				},
			}),
		},
	}, nil
}

func envoyGRPC(cluster string) *corev3.GrpcService {
	return &corev3.GrpcService{TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: cluster}}}
}

func socketAddress(host string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address:       host,
		PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
	}}}
}

// mustAny packs a message built in this package; that cannot fail.
func mustAny(m proto.Message) *anypb.Any {
	a, err := anypb.New(m)
	if err != nil {
		panic(fmt.Sprintf("sidecarconfig: packing %T: %v", m, err))
	}
	return a
}
