package xds

import (
	"fmt"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/glassmesh/glassmesh/control/naming"
	"github.com/glassmesh/glassmesh/control/translate"
)

// mesh describes a generated proxyless mesh: services named svc-<i> in
// namespace "default", each with one port, one route, one cluster and its
// endpoints. Route i splits traffic between cluster i (Weight) and cluster
// i+1 (100-Weight), so a weight change alters exactly one route.
type mesh struct {
	Services  int
	Endpoints int
	Port      uint32
	// Weight gives route i's weight for its own cluster (0..100).
	Weight func(i int) uint32
	// Address gives endpoint j of service i.
	Address func(i, j int) (string, uint32)
}

func (m mesh) listenerName(i int) string {
	return fmt.Sprintf("svc-%d.default.svc.cluster.local:%d", i, m.Port)
}
func (m mesh) routeName(i int) string { return fmt.Sprintf("route-svc-%d", i) }
func (m mesh) clusterName(i int) string {
	return fmt.Sprintf("outbound|%d||svc-%d.default.svc.cluster.local", m.Port, i)
}

// names lists every resource name of one type, for subscriptions.
func (m mesh) names(typeURL string) []string {
	out := make([]string, m.Services)
	for i := range out {
		switch typeURL {
		case resource.ListenerType:
			out[i] = m.listenerName(i)
		case resource.RouteType:
			out[i] = m.routeName(i)
		default:
			out[i] = m.clusterName(i)
		}
	}
	return out
}

func (m mesh) withDefaults() mesh {
	if m.Weight == nil {
		m.Weight = func(int) uint32 { return 100 }
	}
	if m.Address == nil {
		m.Address = func(i, j int) (string, uint32) { return fmt.Sprintf("10.%d.%d.%d", i/250, i%250, j+1), 9080 }
	}
	return m
}

// resources builds the mesh's by-name resources, valid for grpc-go.
func (m mesh) resources() translate.Resources {
	r := translate.Resources{}
	for i := range m.Services {
		add(r, resource.ListenerType, m.listenerName(i), apiListener(m.listenerName(i), m.routeName(i)))
		add(r, resource.RouteType, m.routeName(i), m.route(i))
		add(r, resource.ClusterType, m.clusterName(i), edsCluster(m.clusterName(i)))
		add(r, resource.EndpointType, m.clusterName(i), m.cla(i))
	}
	return r
}

func (m mesh) snapshot() *translate.Snapshot {
	return &translate.Snapshot{ByName: m.resources()}
}

func add(r translate.Resources, typeURL, name string, res types.Resource) {
	if r[typeURL] == nil {
		r[typeURL] = map[string]types.Resource{}
	}
	r[typeURL][name] = res
}

func mustAny(m types.Resource) *anypb.Any {
	a, err := anypb.New(m)
	if err != nil {
		panic(err)
	}
	return a
}

func apiListener(name, routeName string) *listenerv3.Listener {
	hcm := &hcmv3.HttpConnectionManager{
		StatPrefix: name,
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			RouteConfigName: routeName,
			ConfigSource: &corev3.ConfigSource{
				ResourceApiVersion:    corev3.ApiVersion_V3,
				ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
			},
		}},
		HttpFilters: []*hcmv3.HttpFilter{{
			Name:       "envoy.filters.http.router",
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&routerv3.Router{})},
		}},
	}
	return &listenerv3.Listener{Name: name, ApiListener: &listenerv3.ApiListener{ApiListener: mustAny(hcm)}}
}

func (m mesh) route(i int) *routev3.RouteConfiguration {
	w := m.withDefaults().Weight(i)
	var clusters []*routev3.WeightedCluster_ClusterWeight
	if w > 0 {
		clusters = append(clusters, &routev3.WeightedCluster_ClusterWeight{Name: m.clusterName(i), Weight: wrapperspb.UInt32(w)})
	}
	if w < 100 {
		clusters = append(clusters, &routev3.WeightedCluster_ClusterWeight{Name: m.clusterName((i + 1) % m.Services), Weight: wrapperspb.UInt32(100 - w)})
	}
	return &routev3.RouteConfiguration{
		Name: m.routeName(i),
		VirtualHosts: []*routev3.VirtualHost{{
			Name:    m.listenerName(i),
			Domains: []string{"*"},
			Routes: []*routev3.Route{{
				Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
				Action: &routev3.Route_Route{Route: &routev3.RouteAction{
					ClusterSpecifier: &routev3.RouteAction_WeightedClusters{WeightedClusters: &routev3.WeightedCluster{Clusters: clusters}},
					Timeout:          durationpb.New(0),
				}},
			}},
		}},
	}
}

func edsCluster(name string) *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig: &clusterv3.Cluster_EdsClusterConfig{EdsConfig: &corev3.ConfigSource{
			ResourceApiVersion:    corev3.ApiVersion_V3,
			ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
		}},
		LbPolicy: clusterv3.Cluster_ROUND_ROBIN,
	}
}

func (m mesh) cla(i int) *endpointv3.ClusterLoadAssignment {
	lbs := make([]*endpointv3.LbEndpoint, m.Endpoints)
	for j := range lbs {
		addr, port := m.withDefaults().Address(i, j)
		lbs[j] = &endpointv3.LbEndpoint{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
			Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
				Address: addr, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
			}}},
		}}}
	}
	return &endpointv3.ClusterLoadAssignment{
		ClusterName: m.clusterName(i),
		Endpoints: []*endpointv3.LocalityLbEndpoints{{
			Locality:            &corev3.Locality{Region: "local"},
			LoadBalancingWeight: wrapperspb.UInt32(1),
			LbEndpoints:         lbs,
		}},
	}
}

// sidecarListener is a plain (non-API) listener for sidecar views.
func sidecarListener(name string, port uint32) *listenerv3.Listener {
	return &listenerv3.Listener{Name: name, Address: &corev3.Address{Address: &corev3.Address_SocketAddress{
		SocketAddress: &corev3.SocketAddress{Address: "0.0.0.0", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port}},
	}}}
}

// proxylessNode is a grpc-go client's node.
func proxylessNode(id string) *corev3.Node {
	return &corev3.Node{Id: id, Metadata: &structpb.Struct{Fields: map[string]*structpb.Value{
		naming.NodeMetaGenerator: structpb.NewStringValue(naming.GeneratorGRPC),
	}}}
}

// envoyNode is a sidecar's node with Istio-style metadata.
func envoyNode(ns, workload string) *corev3.Node {
	return &corev3.Node{Id: naming.NodeID("10.0.0.1", workload, ns), Metadata: &structpb.Struct{Fields: map[string]*structpb.Value{
		naming.NodeMetaNamespace:    structpb.NewStringValue(ns),
		naming.NodeMetaWorkloadName: structpb.NewStringValue(workload),
	}}}
}
