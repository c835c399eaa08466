package model

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"
)

// policyHead is routeHead with one rule; the cases' trafficPolicy fields start on
// line 10.
const policyHead = routeHead + "    - destinations: [{subset: v1}]\n  trafficPolicy:\n"

func TestTrafficPolicyParsesEveryField(t *testing.T) {
	r := loadFiles(t, map[string]string{"base.yaml": base, "route.yaml": policyHead + `    loadBalancer: {consistentHash: {httpHeaderName: x-user, minimumRingSize: 2048}}
    connectionPool:
      tcp: {maxConnections: 100, connectTimeout: 2s}
      http: {http1MaxPendingRequests: 10, http2MaxRequests: 100, maxRequestsPerConnection: 5, maxRetries: 3, idleTimeout: 1m}
    outlierDetection:
      consecutive5xxErrors: 0
      consecutiveGatewayErrors: 3
      interval: 5s
      baseEjectionTime: 1m
      maxEjectionPercent: 50
      successRate: {stdevFactor: 1000, minimumHosts: 3, requestVolume: 20, enforcingPercent: 90}
      failurePercentage: {threshold: 60, minimumHosts: 2, requestVolume: 10, enforcingPercent: 100}
    rateLimit: {requestsPerSecond: 100, burst: 200}
    mirror: {subset: v2, percent: 12.5}
`})
	if len(r.Errors) > 0 {
		t.Fatalf("errors: %v", r.Errors)
	}
	if len(r.Warnings) > 0 {
		t.Errorf("warnings: %v", r.Warnings)
	}
	tp := r.Mesh.Routes[0].Spec.TrafficPolicy
	zero, pct := uint32(0), 12.5
	want := TrafficPolicy{
		LoadBalancer: &LoadBalancer{ConsistentHash: &ConsistentHash{HTTPHeaderName: "x-user", MinimumRingSize: 2048}},
		ConnectionPool: &ConnectionPool{
			TCP:  &TCPSettings{MaxConnections: 100, ConnectTimeout: Duration{2 * time.Second}},
			HTTP: &HTTPSettings{HTTP1MaxPendingRequests: 10, HTTP2MaxRequests: 100, MaxRequestsPerConnection: 5, MaxRetries: 3, IdleTimeout: Duration{time.Minute}},
		},
		OutlierDetection: &OutlierDetection{
			Consecutive5xxErrors: &zero, ConsecutiveGatewayErrors: 3,
			Interval: Duration{5 * time.Second}, BaseEjectionTime: Duration{time.Minute}, MaxEjectionPercent: 50,
			SuccessRate:       &SuccessRateEjection{StdevFactor: 1000, MinimumHosts: 3, RequestVolume: 20, EnforcingPercent: 90},
			FailurePercentage: &FailurePercentageEjection{Threshold: 60, MinimumHosts: 2, RequestVolume: 10, EnforcingPercent: 100},
		},
		RateLimit: &RateLimit{RequestsPerSecond: 100, Burst: 200},
		Mirror:    &Mirror{Subset: "v2", Percent: &pct},
	}
	if got, want := policyJSON(t, tp), policyJSON(t, &want); got != want {
		t.Errorf("parsed\n%s\nwant\n%s", got, want)
	}
}

func TestTrafficPolicyErrorsNameFileLineAndPath(t *testing.T) {
	tests := []struct {
		name, policy string
		want         []string
	}{{
		name:   "simple and consistentHash exclude each other, and simple is a known algorithm",
		policy: "    loadBalancer: {simple: LEAST_CONN, consistentHash: {httpHeaderName: x-user}}\n",
		want: []string{
			`x.yaml:10: spec.trafficPolicy.loadBalancer.simple: simple "LEAST_CONN" is not one of ROUND_ROBIN, LEAST_REQUEST, RANDOM`,
			"x.yaml:10: spec.trafficPolicy.loadBalancer: set only one of simple and consistentHash",
		},
	}, {
		name: "consistentHash takes one key, a header name or the source",
		policy: `    loadBalancer:
      consistentHash:
        httpHeaderName: x-user
        useSourceIp: true
        minimumRingSize: 9000000
`,
		want: []string{
			"x.yaml:11: spec.trafficPolicy.loadBalancer.consistentHash: set only one of httpHeaderName and useSourceIp",
			"x.yaml:14: spec.trafficPolicy.loadBalancer.consistentHash.minimumRingSize: 9000000 is more than 8388608",
		},
	}, {
		name:   "consistentHash needs a key and the header a valid name",
		policy: "    loadBalancer: {consistentHash: {minimumRingSize: 64}}\n---\n" + policyHead2("ratings") + "    loadBalancer: {consistentHash: {httpHeaderName: \"x user\"}}\n",
		want: []string{
			"x.yaml:10: spec.trafficPolicy.loadBalancer.consistentHash: set httpHeaderName or useSourceIp",
			`x.yaml:21: spec.trafficPolicy.loadBalancer.consistentHash.httpHeaderName: "x user" is not an HTTP header name`,
		},
	}, {
		name:   "useSourceIp is a boolean",
		policy: "    loadBalancer: {consistentHash: {useSourceIp: yes}}\n",
		want:   []string{`x.yaml:10: spec.trafficPolicy.loadBalancer.consistentHash.useSourceIp: expected true or false, got string "yes"`},
	}, {
		name: "durations are above zero",
		policy: `    connectionPool:
      tcp: {connectTimeout: 0s}
      http: {idleTimeout: -1s}
    outlierDetection: {interval: -5s, baseEjectionTime: 0s, failurePercentage: {}}
`,
		want: []string{
			"x.yaml:11: spec.trafficPolicy.connectionPool.tcp.connectTimeout: must be above 0 (leave it out for the default)",
			"x.yaml:12: spec.trafficPolicy.connectionPool.http.idleTimeout: must be above 0 (leave it out for the default)",
			"x.yaml:13: spec.trafficPolicy.outlierDetection.interval: must be above 0 (leave it out for the default)",
			"x.yaml:13: spec.trafficPolicy.outlierDetection.baseEjectionTime: must be above 0 (leave it out for the default)",
		},
	}, {
		name: "outlier percentages are 0..100",
		policy: `    outlierDetection:
      maxEjectionPercent: 101
      successRate: {enforcingPercent: 200}
      failurePercentage: {threshold: 150, enforcingPercent: 101}
`,
		want: []string{
			"x.yaml:11: spec.trafficPolicy.outlierDetection.maxEjectionPercent: 101 is out of range 0..100",
			"x.yaml:12: spec.trafficPolicy.outlierDetection.successRate.enforcingPercent: 200 is out of range 0..100",
			"x.yaml:13: spec.trafficPolicy.outlierDetection.failurePercentage.threshold: 150 is out of range 0..100",
			"x.yaml:13: spec.trafficPolicy.outlierDetection.failurePercentage.enforcingPercent: 101 is out of range 0..100",
		},
	}, {
		name:   "a rate limit needs a rate, and a burst of at least that",
		policy: "    rateLimit: {burst: 10}\n---\n" + policyHead2("ratings") + "    rateLimit: {requestsPerSecond: 100, burst: 50}\n",
		want: []string{
			"x.yaml:10: spec.trafficPolicy.rateLimit.requestsPerSecond: required: a number of requests per second above 0",
			"x.yaml:21: spec.trafficPolicy.rateLimit.burst: 50 is less than requestsPerSecond (100): the bucket could never hold a second's requests",
		},
	}, {
		name:   "the mirror names a subset of the route and a percent in range",
		policy: "    mirror: {subset: v3, percent: 120}\n---\n" + policyHead2("ratings") + "    mirror: {percent: 5}\n",
		want: []string{
			"x.yaml:10: spec.trafficPolicy.mirror.subset: subset v3 is not defined in spec.subsets (one of v1, v2)",
			"x.yaml:10: spec.trafficPolicy.mirror.percent: 120 is out of range 0..100",
			"x.yaml:21: spec.trafficPolicy.mirror.subset: required: one of v1, v2",
		},
	}, {
		name:   "unknown fields are named with a suggestion",
		policy: "    outlierDetection: {consecutive5xxErrrors: 5, failurePercentage: {threshold: 50}}\n",
		want:   []string{"x.yaml:10: spec.trafficPolicy.outlierDetection.consecutive5xxErrrors: unknown field; did you mean consecutive5xxErrors?"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := loadFiles(t, map[string]string{"base.yaml": base + ratingsService, "x.yaml": policyHead + tt.policy})
			if got := diagStrings(r.Errors); !slices.Equal(got, tt.want) {
				t.Errorf("errors:\n got %s\nwant %s", strings.Join(got, "\n     "), strings.Join(tt.want, "\n     "))
			}
		})
	}
}

func TestTrafficPolicyWarnsWhenProxylessClientsWouldNotEject(t *testing.T) {
	r := loadFiles(t, map[string]string{"base.yaml": base, "x.yaml": policyHead + "    outlierDetection: {consecutive5xxErrors: 3}\n"})
	want := []string{"x.yaml:10: spec.trafficPolicy.outlierDetection: proxyless gRPC clients eject only by successRate or failurePercentage (grpc-go has no consecutive-error ejection); set one of them for reviews's proxyless callers"}
	if len(r.Errors) > 0 {
		t.Fatalf("errors: %v", r.Errors)
	}
	if got := diagStrings(r.Warnings); !slices.Equal(got, want) {
		t.Errorf("warnings:\n got %s\nwant %s", strings.Join(got, "\n     "), strings.Join(want, "\n     "))
	}
}

// ratingsService is a second service with workloads, so one file can hold
// two routes.
const ratingsService = `---
apiVersion: glassmesh.io/v1alpha1
kind: Service
metadata: {name: ratings}
spec:
  ports: [{name: http, port: 9080, protocol: HTTP}]
  selector: {app: ratings}
---
apiVersion: glassmesh.io/v1alpha1
kind: Workload
metadata: {name: ratings-v1, labels: {app: ratings, version: v1}}
spec:
  endpoints: [{address: 127.0.0.1, ports: {http: 19090}}]
`

// policyHead2 is policyHead for another service (10 lines before its
// policy, like policyHead).
func policyHead2(service string) string {
	return strings.ReplaceAll(policyHead, "reviews", service)
}

func policyJSON(t *testing.T, tp *TrafficPolicy) string {
	t.Helper()
	b, err := json.Marshal(tp)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
