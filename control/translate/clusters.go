package translate

import (
	"fmt"
	"math"
	"sort"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// LocalityRegion is the region of the one locality every endpoint is in:
// grpc-go drops LocalityLbEndpoints without a locality, so there always is
// one.
const LocalityRegion = "glassmesh"

const (
	connectTimeout    = 5 * time.Second
	httpOptionsExtKey = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
)

// adsSource is "over the same ADS stream, v3".
func adsSource() *corev3.ConfigSource {
	return &corev3.ConfigSource{
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
		ResourceApiVersion:    corev3.ApiVersion_V3,
	}
}

// edsCluster is an outbound cluster as proxyless clients get it: endpoints
// over ADS, round robin.
func edsCluster(name string) *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig:     &clusterv3.Cluster_EdsClusterConfig{EdsConfig: adsSource(), ServiceName: name},
		ConnectTimeout:       durationpb.New(connectTimeout),
		LbPolicy:             clusterv3.Cluster_ROUND_ROBIN,
	}
}

// sidecarCluster is edsCluster plus what only Envoy reads: the upstream
// protocol and circuit breakers opened wide (Envoy's defaults of 1024
// requests and 3 retries fail requests no one asked to limit).
func sidecarCluster(sp servicePort, name string) *clusterv3.Cluster {
	c := edsCluster(name)
	if sp.isH2() {
		c.TypedExtensionProtocolOptions = http2Options()
	}
	max := wrapperspb.UInt32(math.MaxUint32)
	c.CircuitBreakers = &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{
		MaxConnections: max, MaxPendingRequests: max, MaxRequests: max, MaxRetries: max,
		TrackRemaining: true,
	}}}
	sidecarPolicy(c, sp)
	return c
}

// http2Options makes Envoy speak HTTP/2 to a cluster's endpoints.
func http2Options() map[string]*anypb.Any { return protocolOptions(true, nil) }

// inboundCluster is a sidecar's static cluster to its app on 127.0.0.1.
func inboundCluster(port uint32, h2 bool) *clusterv3.Cluster {
	name := InboundClusterName(port)
	c := &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		ConnectTimeout:       durationpb.New(connectTimeout),
		LbPolicy:             clusterv3.Cluster_ROUND_ROBIN,
		LoadAssignment: &endpointv3.ClusterLoadAssignment{
			ClusterName: name,
			Endpoints: []*endpointv3.LocalityLbEndpoints{{
				LbEndpoints: []*endpointv3.LbEndpoint{lbEndpoint("127.0.0.1", port)},
			}},
		},
	}
	if h2 {
		c.TypedExtensionProtocolOptions = http2Options()
	}
	return c
}

// passthroughCluster forwards to wherever the connection was headed, for
// traffic to destinations outside the mesh.
func passthroughCluster() *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:                 PassthroughCluster,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_ORIGINAL_DST},
		ConnectTimeout:       durationpb.New(connectTimeout),
		LbPolicy:             clusterv3.Cluster_CLUSTER_PROVIDED,
	}
}

// loadAssignment lists the endpoints of a service port's subset: every
// selected workload's endpoint address with the port named like the service
// port. Endpoints without that port are left out. It always holds one
// locality, even with no endpoints, so clients see "no endpoints" rather than
// a malformed resource.
func (t *translator) loadAssignment(sp servicePort, subset, name string) *endpointv3.ClusterLoadAssignment {
	var labels map[string]string
	if subset != "" {
		labels = sp.route.Subset(subset).Labels
	}
	type hostPort struct {
		host string
		port uint32
	}
	seen := map[hostPort]bool{}
	var eps []hostPort
	for _, w := range t.mesh.WorkloadsOf(sp.svc, labels) {
		for _, ep := range w.Spec.Endpoints {
			port, ok := ep.Ports[sp.port.Name]
			if !ok {
				continue
			}
			hp := hostPort{ep.Address, port}
			if seen[hp] {
				// grpc-go rejects an assignment that names an address twice.
				t.warnf("%s: endpoint %s:%d of workload %s appears twice; kept once", sp.key(), ep.Address, port, w.Key())
				continue
			}
			seen[hp] = true
			eps = append(eps, hp)
		}
	}
	sort.Slice(eps, func(i, j int) bool {
		if eps[i].host != eps[j].host {
			return eps[i].host < eps[j].host
		}
		return eps[i].port < eps[j].port
	})
	lbs := make([]*endpointv3.LbEndpoint, 0, len(eps))
	for _, hp := range eps {
		lbs = append(lbs, lbEndpoint(hp.host, hp.port))
	}
	return &endpointv3.ClusterLoadAssignment{
		ClusterName: name,
		Endpoints: []*endpointv3.LocalityLbEndpoints{{
			Locality:            &corev3.Locality{Region: LocalityRegion},
			LoadBalancingWeight: wrapperspb.UInt32(1),
			LbEndpoints:         lbs,
		}},
	}
}

func lbEndpoint(host string, port uint32) *endpointv3.LbEndpoint {
	return &endpointv3.LbEndpoint{
		HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{Address: socketAddress(host, port)}},
		HealthStatus:   corev3.HealthStatus_HEALTHY,
	}
}

func socketAddress(host string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address:       host,
		PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
	}}}
}

// checkSubsets reports destinations that name a subset the route lacks.
func checkSubsets(sp servicePort) error {
	if sp.route == nil {
		return nil
	}
	for i, r := range sp.route.Spec.Rules {
		for _, d := range r.Destinations {
			if d.Subset != "" && sp.route.Subset(d.Subset) == nil {
				return fmt.Errorf("%s: rule %d: unknown subset %q", sp.route.Key(), i, d.Subset)
			}
		}
	}
	return nil
}
