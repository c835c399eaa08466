package translate

import (
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	resource "github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/glassmesh/glassmesh/control/model"
)

// policyMesh has one service per flavour of trafficPolicy: reviews (gRPC)
// with every field, details (HTTP) hashing on the source with
// per-connection limits, ratings (gRPC) with RANDOM.
func policyMesh() *model.Mesh {
	five, twelve := uint32(5), 12.5
	reviews := reviewsRoute()
	reviews.Spec.TrafficPolicy = &model.TrafficPolicy{
		LoadBalancer: &model.LoadBalancer{ConsistentHash: &model.ConsistentHash{HTTPHeaderName: "X-User", MinimumRingSize: 2048}},
		ConnectionPool: &model.ConnectionPool{
			TCP:  &model.TCPSettings{MaxConnections: 100, ConnectTimeout: dur(2 * time.Second)},
			HTTP: &model.HTTPSettings{HTTP1MaxPendingRequests: 10, HTTP2MaxRequests: 200, MaxRetries: 3},
		},
		OutlierDetection: &model.OutlierDetection{
			Consecutive5xxErrors: &five, ConsecutiveGatewayErrors: 3,
			Interval: dur(5 * time.Second), BaseEjectionTime: dur(time.Minute), MaxEjectionPercent: 50,
			FailurePercentage: &model.FailurePercentageEjection{Threshold: 60, MinimumHosts: 2, RequestVolume: 10},
		},
		RateLimit: &model.RateLimit{RequestsPerSecond: 100, Burst: 200},
		Mirror:    &model.Mirror{Subset: "v3", Percent: &twelve},
	}
	details := &model.Service{
		Meta: meta("default", "details", nil),
		Spec: model.ServiceSpec{
			Ports:    []model.ServicePort{{Name: "http", Port: 8080, Protocol: model.ProtocolHTTP}},
			Selector: map[string]string{"app": "details"},
		},
	}
	route := func(svc string, tp *model.TrafficPolicy) *model.TrafficRoute {
		return &model.TrafficRoute{
			Meta: meta("default", svc, nil),
			Spec: model.TrafficRouteSpec{
				Service:       svc,
				Subsets:       []model.Subset{{Name: "v1", Labels: map[string]string{"version": "v1"}}},
				Rules:         []model.Rule{{Destinations: []model.Destination{{Subset: "v1", Weight: 100}}}},
				TrafficPolicy: tp,
			},
		}
	}
	return model.NewMesh(model.Objects{
		Services: []*model.Service{grpcService("default", "reviews", 9080), grpcService("default", "ratings", 9080), details},
		Workloads: []*model.Workload{
			workload("default", "reviews", "v1", "127.0.0.1", map[string]uint32{"grpc": 19082}),
			workload("default", "reviews", "v2", "127.0.0.1", map[string]uint32{"grpc": 19083}),
			workload("default", "reviews", "v3", "127.0.0.1", map[string]uint32{"grpc": 19084}),
			workload("default", "ratings", "v1", "127.0.0.1", map[string]uint32{"grpc": 19085}),
			workload("default", "details", "v1", "127.0.0.1", map[string]uint32{"http": 19086}),
		},
		Routes: []*model.TrafficRoute{
			reviews,
			route("details", &model.TrafficPolicy{
				LoadBalancer:   &model.LoadBalancer{ConsistentHash: &model.ConsistentHash{UseSourceIP: true}},
				ConnectionPool: &model.ConnectionPool{HTTP: &model.HTTPSettings{MaxRequestsPerConnection: 1, IdleTimeout: dur(time.Minute)}},
			}),
			route("ratings", &model.TrafficPolicy{LoadBalancer: &model.LoadBalancer{Simple: model.LBRandom}}),
		},
	})
}

func TestTrafficPolicyGolden(t *testing.T) {
	s := mustTranslate(t, policyMesh())
	if len(s.Warnings) != 0 {
		t.Errorf("warnings: %q", s.Warnings)
	}
	t.Run("resources requested by name match the golden file", func(t *testing.T) {
		golden(t, "policy_byname.golden.json", render(t, s.ByName))
	})
	t.Run("sidecar resources match the golden file", func(t *testing.T) {
		golden(t, "policy_sidecars.golden.json", render(t, s.Sidecars[""]))
	})
}

// TestTrafficPolicyFlavours pins what the golden files show in bulk:
// proxyless resources hold only what grpc-go honours.
func TestTrafficPolicyFlavours(t *testing.T) {
	m := policyMesh()
	s := mustTranslate(t, m)
	reviews, ratings := m.Service("default", "reviews"), m.Service("default", "ratings")
	cluster := func(r Resources, svc *model.Service, subset string) *clusterv3.Cluster {
		t.Helper()
		c, ok := r[resource.ClusterType][ClusterName(svc, 9080, subset)].(*clusterv3.Cluster)
		if !ok {
			t.Fatalf("no cluster %s", ClusterName(svc, 9080, subset))
		}
		return c
	}
	sidecar := s.Sidecars[""]

	t.Run("proxyless clusters get ring hash, max_requests and only the ejection grpc-go runs", func(t *testing.T) {
		c := cluster(s.ByName, reviews, "v1")
		if c.LbPolicy != clusterv3.Cluster_RING_HASH || c.GetRingHashLbConfig().GetHashFunction() != clusterv3.Cluster_RingHashLbConfig_XX_HASH {
			t.Errorf("lb = %v %v, want RING_HASH with XX_HASH", c.LbPolicy, c.GetRingHashLbConfig())
		}
		th := c.GetCircuitBreakers().GetThresholds()
		if len(th) != 1 || th[0].GetMaxRequests().GetValue() != 200 || th[0].MaxConnections != nil || th[0].MaxPendingRequests != nil {
			t.Errorf("circuit breakers = %v, want max_requests 200 only", th)
		}
		od := c.GetOutlierDetection()
		if od.GetConsecutive_5Xx() != nil || od.GetConsecutiveGatewayFailure() != nil || od.GetFailurePercentageThreshold().GetValue() != 60 || od.GetEnforcingSuccessRate().GetValue() != 0 {
			t.Errorf("outlier detection = %v, want failure percentage only", od)
		}
		if got := cluster(s.ByName, ratings, "").LbPolicy; got != clusterv3.Cluster_ROUND_ROBIN {
			t.Errorf("proxyless RANDOM cluster lb = %v, want ROUND_ROBIN (grpc-go NACKs RANDOM)", got)
		}
	})
	t.Run("sidecar clusters get every limit and ejection", func(t *testing.T) {
		c := cluster(sidecar, reviews, "v1")
		th := c.GetCircuitBreakers().GetThresholds()[0]
		if th.GetMaxConnections().GetValue() != 100 || th.GetMaxPendingRequests().GetValue() != 10 || th.GetMaxRequests().GetValue() != 200 || th.GetMaxRetries().GetValue() != 3 {
			t.Errorf("circuit breakers = %v", th)
		}
		if c.GetConnectTimeout().AsDuration() != 2*time.Second {
			t.Errorf("connect timeout = %v, want 2s", c.GetConnectTimeout().AsDuration())
		}
		od := c.GetOutlierDetection()
		if od.GetConsecutive_5Xx().GetValue() != 5 || od.GetEnforcingConsecutive_5Xx().GetValue() != 100 || od.GetConsecutiveGatewayFailure().GetValue() != 3 {
			t.Errorf("outlier detection = %v, want consecutive 5xx and gateway errors", od)
		}
		if got := cluster(sidecar, ratings, "").LbPolicy; got != clusterv3.Cluster_RANDOM {
			t.Errorf("sidecar RANDOM cluster lb = %v", got)
		}
	})
	t.Run("routes hash on the lower-cased header; only sidecars mirror", func(t *testing.T) {
		proxyless := s.ByName[resource.RouteType][ProxylessRouteName(reviews, 9080)].(*routev3.RouteConfiguration)
		for _, r := range proxyless.VirtualHosts[0].Routes {
			a := r.GetRoute()
			if len(a.HashPolicy) != 1 || a.HashPolicy[0].GetHeader().GetHeaderName() != "x-user" {
				t.Errorf("proxyless route %s hash = %v", r.Name, a.HashPolicy)
			}
			if len(a.RequestMirrorPolicies) != 0 {
				t.Errorf("proxyless route %s mirrors", r.Name)
			}
		}
		vh := sidecarVirtualHost(t, s.ByName, "9080", reviews.FQDN()+":9080")
		for _, r := range vh.Routes {
			m := r.GetRoute().GetRequestMirrorPolicies()
			if len(m) != 1 || m[0].Cluster != ClusterName(reviews, 9080, "v3") || m[0].GetRuntimeFraction().GetDefaultValue().GetNumerator() != 125000 {
				t.Errorf("sidecar route %s mirror = %v, want 12.5%% to v3", r.Name, m)
			}
		}
		if vh.TypedPerFilterConfig[localRateLimitFilterName] == nil {
			t.Error("sidecar virtual host has no rate limit")
		}
	})
	t.Run("only sidecar listeners get the rate limit filter, before the router", func(t *testing.T) {
		names := func(l *listenerv3.Listener) []string {
			hcm := &hcmv3.HttpConnectionManager{}
			if l.ApiListener != nil {
				if err := l.ApiListener.ApiListener.UnmarshalTo(hcm); err != nil {
					t.Fatal(err)
				}
			} else if err := l.FilterChains[0].Filters[0].GetTypedConfig().UnmarshalTo(hcm); err != nil {
				t.Fatal(err)
			}
			var out []string
			for _, f := range hcm.HttpFilters {
				out = append(out, f.Name)
			}
			return out
		}
		for _, name := range ProxylessListenerNames(reviews, 9080) {
			got := names(s.ByName[resource.ListenerType][name].(*listenerv3.Listener))
			for _, n := range got {
				if n == localRateLimitFilterName {
					t.Errorf("proxyless listener %s has %s: grpc-go would NACK it", name, n)
				}
			}
		}
		got := names(sidecar[resource.ListenerType]["0.0.0.0_9080"].(*listenerv3.Listener))
		want := []string{faultFilterName, localRateLimitFilterName, routerFilterName}
		if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
			t.Errorf("sidecar HTTP filters = %v, want %v", got, want)
		}
	})
}

func sidecarVirtualHost(t *testing.T, r Resources, routeConfig, name string) *routev3.VirtualHost {
	t.Helper()
	rc, ok := r[resource.RouteType][routeConfig].(*routev3.RouteConfiguration)
	if !ok {
		t.Fatalf("no route configuration %s", routeConfig)
	}
	for _, vh := range rc.VirtualHosts {
		if vh.Name == name {
			return vh
		}
	}
	t.Fatalf("no virtual host %s in %s", name, routeConfig)
	return nil
}
