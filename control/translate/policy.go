package translate

import (
	"strings"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	localratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/glassmesh/glassmesh/control/model"
)

// A TrafficRoute's trafficPolicy becomes cluster fields (load balancing,
// circuit breakers, outlier detection), route fields (hash and mirror
// policies) and, for sidecars, a local rate limit on the service's virtual
// host. Proxyless resources get only what grpc-go reads, so nothing it does
// not know can make it NACK, and nothing it ignores looks as if it applied.

const (
	localRateLimitFilterName = "envoy.filters.http.local_ratelimit"
	localRateLimitStatPrefix = "local_rate_limit"
	// grpcChannelIDKey is the one filter-state hash key grpc-go knows: a
	// hash of the client channel, the proxyless analogue of the source IP.
	grpcChannelIDKey = "io.grpc.channel_id"
)

func trafficPolicy(sp servicePort) *model.TrafficPolicy {
	if sp.route == nil {
		return nil
	}
	return sp.route.Spec.TrafficPolicy
}

// proxylessCluster is edsCluster with what grpc-go honours of the traffic
// policy: the load balancer, max_requests, and outlier detection when it
// has an algorithm grpc-go runs.
func proxylessCluster(sp servicePort, name string) *clusterv3.Cluster {
	c := edsCluster(name)
	tp := trafficPolicy(sp)
	if tp == nil {
		return c
	}
	loadBalancing(c, tp.LoadBalancer, false)
	if cp := tp.ConnectionPool; cp != nil && cp.HTTP != nil && cp.HTTP.HTTP2MaxRequests > 0 {
		c.CircuitBreakers = &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{
			MaxRequests: wrapperspb.UInt32(cp.HTTP.HTTP2MaxRequests),
		}}}
	}
	if od := tp.OutlierDetection; od != nil && (od.SuccessRate != nil || od.FailurePercentage != nil) {
		c.OutlierDetection = outlierDetection(od, false)
	}
	return c
}

// sidecarPolicy applies the whole traffic policy to a sidecar cluster whose
// circuit breakers sidecarCluster opened wide: only limits the policy sets
// are lowered.
func sidecarPolicy(c *clusterv3.Cluster, sp servicePort) {
	tp := trafficPolicy(sp)
	if tp == nil {
		return
	}
	loadBalancing(c, tp.LoadBalancer, true)
	if cp := tp.ConnectionPool; cp != nil {
		limits := c.CircuitBreakers.Thresholds[0]
		limit := func(field **wrapperspb.UInt32Value, n uint32) {
			if n > 0 {
				*field = wrapperspb.UInt32(n)
			}
		}
		if tcp := cp.TCP; tcp != nil {
			limit(&limits.MaxConnections, tcp.MaxConnections)
			if tcp.ConnectTimeout.Duration > 0 {
				c.ConnectTimeout = durationpb.New(tcp.ConnectTimeout.Duration)
			}
		}
		if h := cp.HTTP; h != nil {
			limit(&limits.MaxPendingRequests, h.HTTP1MaxPendingRequests)
			limit(&limits.MaxRequests, h.HTTP2MaxRequests)
			limit(&limits.MaxRetries, h.MaxRetries)
			if common := commonHTTPOptions(h); common != nil && !sp.isTCP() {
				c.TypedExtensionProtocolOptions = protocolOptions(sp.isH2(), common)
			}
		}
	}
	if tp.OutlierDetection != nil {
		c.OutlierDetection = outlierDetection(tp.OutlierDetection, true)
	}
}

// loadBalancing sets the cluster's lb_policy. grpc-go accepts only
// ROUND_ROBIN, LEAST_REQUEST and RING_HASH (with XX_HASH), so proxyless
// clients round-robin where Envoy picks at random.
func loadBalancing(c *clusterv3.Cluster, lb *model.LoadBalancer, sidecar bool) {
	switch {
	case lb == nil:
	case lb.ConsistentHash != nil:
		rh := &clusterv3.Cluster_RingHashLbConfig{HashFunction: clusterv3.Cluster_RingHashLbConfig_XX_HASH}
		if n := lb.ConsistentHash.MinimumRingSize; n > 0 {
			rh.MinimumRingSize = wrapperspb.UInt64(uint64(n))
		}
		c.LbPolicy = clusterv3.Cluster_RING_HASH
		c.LbConfig = &clusterv3.Cluster_RingHashLbConfig_{RingHashLbConfig: rh}
	case lb.Simple == model.LBLeastRequest:
		c.LbPolicy = clusterv3.Cluster_LEAST_REQUEST
	case lb.Simple == model.LBRandom && sidecar:
		c.LbPolicy = clusterv3.Cluster_RANDOM
	}
}

// commonHTTPOptions are the per-connection limits of Envoy's upstream
// HttpProtocolOptions, nil when the policy sets none.
func commonHTTPOptions(h *model.HTTPSettings) *corev3.HttpProtocolOptions {
	if h.MaxRequestsPerConnection == 0 && h.IdleTimeout.Duration == 0 {
		return nil
	}
	o := &corev3.HttpProtocolOptions{}
	if h.MaxRequestsPerConnection > 0 {
		o.MaxRequestsPerConnection = wrapperspb.UInt32(h.MaxRequestsPerConnection)
	}
	if h.IdleTimeout.Duration > 0 {
		o.IdleTimeout = durationpb.New(h.IdleTimeout.Duration)
	}
	return o
}

// protocolOptions makes Envoy speak HTTP/2 (or HTTP/1.1) to a cluster's
// endpoints, with the given per-connection limits (nil for none).
func protocolOptions(h2 bool, common *corev3.HttpProtocolOptions) map[string]*anypb.Any {
	explicit := &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
		ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_HttpProtocolOptions{HttpProtocolOptions: &corev3.Http1ProtocolOptions{}},
	}
	if h2 {
		explicit.ProtocolConfig = &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{Http2ProtocolOptions: &corev3.Http2ProtocolOptions{}}
	}
	return map[string]*anypb.Any{httpOptionsExtKey: mustAny(&httpv3.HttpProtocolOptions{
		CommonHttpProtocolOptions: common,
		UpstreamProtocolOptions:   &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: explicit},
	})}
}

// outlierDetection is the cluster's outlier_detection. Success-rate
// ejection, on by default in Envoy and grpc-go, runs only when the policy
// asks for it (as in Istio). Consecutive-error ejection goes to sidecars
// only: grpc-go does not implement it.
func outlierDetection(od *model.OutlierDetection, sidecar bool) *clusterv3.OutlierDetection {
	out := &clusterv3.OutlierDetection{
		Interval:             optDuration(od.Interval.Duration),
		BaseEjectionTime:     optDuration(od.BaseEjectionTime.Duration),
		MaxEjectionPercent:   optUInt32(od.MaxEjectionPercent),
		EnforcingSuccessRate: wrapperspb.UInt32(0),
	}
	if sidecar {
		if n := od.Consecutive5xxErrors; n != nil {
			out.Consecutive_5Xx = wrapperspb.UInt32(*n)
			out.EnforcingConsecutive_5Xx = wrapperspb.UInt32(enforceIf(*n > 0))
		}
		if n := od.ConsecutiveGatewayErrors; n > 0 {
			out.ConsecutiveGatewayFailure = wrapperspb.UInt32(n)
			out.EnforcingConsecutiveGatewayFailure = wrapperspb.UInt32(100)
		}
	}
	if sr := od.SuccessRate; sr != nil {
		out.EnforcingSuccessRate = wrapperspb.UInt32(orDefault(sr.EnforcingPercent, 100))
		out.SuccessRateStdevFactor = optUInt32(sr.StdevFactor)
		out.SuccessRateMinimumHosts = optUInt32(sr.MinimumHosts)
		out.SuccessRateRequestVolume = optUInt32(sr.RequestVolume)
	}
	if fp := od.FailurePercentage; fp != nil {
		out.EnforcingFailurePercentage = wrapperspb.UInt32(orDefault(fp.EnforcingPercent, 100))
		out.FailurePercentageThreshold = optUInt32(fp.Threshold)
		out.FailurePercentageMinimumHosts = optUInt32(fp.MinimumHosts)
		out.FailurePercentageRequestVolume = optUInt32(fp.RequestVolume)
	}
	return out
}

func enforceIf(on bool) uint32 {
	if on {
		return 100
	}
	return 0
}

func orDefault(n, def uint32) uint32 {
	if n == 0 {
		return def
	}
	return n
}

// optUInt32 is n, or unset (the proxy's default) when n is 0.
func optUInt32(n uint32) *wrapperspb.UInt32Value {
	if n == 0 {
		return nil
	}
	return wrapperspb.UInt32(n)
}

func optDuration(d time.Duration) *durationpb.Duration {
	if d <= 0 {
		return nil
	}
	return durationpb.New(d)
}

// policyRoutes are a service port's routes with the route-level parts of
// its traffic policy for one flavour: the hash policy, and for sidecars the
// mirror policy. Both flavours share the routes they are given, so changed
// routes are copies.
func policyRoutes(sp servicePort, routes []*routev3.Route, sidecar bool) []*routev3.Route {
	tp := trafficPolicy(sp)
	if tp == nil || (tp.LoadBalancer == nil || tp.LoadBalancer.ConsistentHash == nil) && (tp.Mirror == nil || !sidecar) {
		return routes
	}
	out := make([]*routev3.Route, len(routes))
	for i, r := range routes {
		r = proto.Clone(r).(*routev3.Route)
		if a := r.GetRoute(); a != nil {
			a.HashPolicy = hashPolicies(tp.LoadBalancer, sidecar)
			if sidecar && tp.Mirror != nil {
				a.RequestMirrorPolicies = []*routev3.RouteAction_RequestMirrorPolicy{{
					Cluster:         ClusterName(sp.svc, sp.port.Port, tp.Mirror.Subset),
					RuntimeFraction: &corev3.RuntimeFractionalPercent{DefaultValue: fraction(tp.Mirror.MirrorPercent())},
				}}
			}
		}
		out[i] = r
	}
	return out
}

// hashPolicies are what ring hash hashes. Header names are lower-cased
// (grpc-go matches only lower-case names); the source IP, which grpc-go
// cannot see, becomes its client channel id.
func hashPolicies(lb *model.LoadBalancer, sidecar bool) []*routev3.RouteAction_HashPolicy {
	if lb == nil || lb.ConsistentHash == nil {
		return nil
	}
	ch := lb.ConsistentHash
	var p routev3.RouteAction_HashPolicy
	switch {
	case ch.HTTPHeaderName != "":
		p.PolicySpecifier = &routev3.RouteAction_HashPolicy_Header_{Header: &routev3.RouteAction_HashPolicy_Header{HeaderName: strings.ToLower(ch.HTTPHeaderName)}}
	case ch.UseSourceIP && sidecar:
		p.PolicySpecifier = &routev3.RouteAction_HashPolicy_ConnectionProperties_{ConnectionProperties: &routev3.RouteAction_HashPolicy_ConnectionProperties{SourceIp: true}}
	case ch.UseSourceIP:
		p.PolicySpecifier = &routev3.RouteAction_HashPolicy_FilterState_{FilterState: &routev3.RouteAction_HashPolicy_FilterState{Key: grpcChannelIDKey}}
	default:
		return nil
	}
	return []*routev3.RouteAction_HashPolicy{&p}
}

// usesRateLimit says whether a route rate-limits, so sidecar listeners of
// its port need the local_ratelimit filter.
func usesRateLimit(r *model.TrafficRoute) bool {
	return r != nil && r.Spec.TrafficPolicy != nil && r.Spec.TrafficPolicy.RateLimit != nil
}

// localRateLimitFilter is the sidecar HCM's local_ratelimit filter. Without
// a token bucket it limits nothing: each rate-limited service's virtual
// host turns it on with its own bucket (vhostPolicy).
func localRateLimitFilter() *hcmv3.HttpFilter {
	return &hcmv3.HttpFilter{
		Name:       localRateLimitFilterName,
		ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&localratelimitv3.LocalRateLimit{StatPrefix: localRateLimitStatPrefix})},
	}
}

// vhostPolicy is the per-filter config of a service's virtual host in
// sidecar route configurations: one token bucket per service and sidecar,
// filling requestsPerSecond tokens every second up to burst. Limited
// requests get 429, or RESOURCE_EXHAUSTED for gRPC.
func vhostPolicy(sp servicePort) map[string]*anypb.Any {
	tp := trafficPolicy(sp)
	if tp == nil || tp.RateLimit == nil {
		return nil
	}
	rl := tp.RateLimit
	all := func() *corev3.RuntimeFractionalPercent {
		return &corev3.RuntimeFractionalPercent{DefaultValue: &typev3.FractionalPercent{Numerator: 100, Denominator: typev3.FractionalPercent_HUNDRED}}
	}
	return map[string]*anypb.Any{localRateLimitFilterName: mustAny(&localratelimitv3.LocalRateLimit{
		StatPrefix: localRateLimitStatPrefix,
		TokenBucket: &typev3.TokenBucket{
			MaxTokens:     max(rl.Burst, rl.RequestsPerSecond),
			TokensPerFill: wrapperspb.UInt32(rl.RequestsPerSecond),
			FillInterval:  durationpb.New(time.Second),
		},
		FilterEnabled:                  all(),
		FilterEnforced:                 all(),
		RateLimitedAsResourceExhausted: true,
	})}
}
