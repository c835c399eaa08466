package model

// TrafficPolicy is how clients treat a service's endpoints: load balancing,
// connection limits, outlier ejection, rate limiting and mirroring. Field
// names are Istio DestinationRule's where Istio has one. Not every client
// honours every field: Envoy sidecars honour all of them; proxyless gRPC
// (grpc-go's xDS client) honours loadBalancer (RANDOM as ROUND_ROBIN),
// connectionPool.http.http2MaxRequests, and outlierDetection's successRate
// and failurePercentage with their interval, baseEjectionTime and
// maxEjectionPercent; glassmesh leaves the rest out of proxyless resources.
type TrafficPolicy struct {
	LoadBalancer     *LoadBalancer     `yaml:"loadBalancer,omitempty" json:"loadBalancer,omitempty"`
	ConnectionPool   *ConnectionPool   `yaml:"connectionPool,omitempty" json:"connectionPool,omitempty"`
	OutlierDetection *OutlierDetection `yaml:"outlierDetection,omitempty" json:"outlierDetection,omitempty"`
	RateLimit        *RateLimit        `yaml:"rateLimit,omitempty" json:"rateLimit,omitempty"`
	Mirror           *Mirror           `yaml:"mirror,omitempty" json:"mirror,omitempty"`
}

// Load balancing algorithms of LoadBalancer.Simple.
const (
	LBRoundRobin   = "ROUND_ROBIN"
	LBLeastRequest = "LEAST_REQUEST"
	LBRandom       = "RANDOM" // grpc-go has none: proxyless clients round-robin
)

// LoadBalancer is one of simple or consistentHash [simple: ROUND_ROBIN].
type LoadBalancer struct {
	Simple         string          `yaml:"simple,omitempty" json:"simple,omitempty"`
	ConsistentHash *ConsistentHash `yaml:"consistentHash,omitempty" json:"consistentHash,omitempty"`
}

// MaxRingSize is the largest ring Envoy and grpc-go build (grpc-go caps
// its own ring at 4096 entries whatever is asked).
const MaxRingSize = 8 * 1024 * 1024

// ConsistentHash is ring-hash load balancing (Envoy ring_hash, grpc-go
// ring_hash_experimental) on one of httpHeaderName or useSourceIp, so the
// same key goes to the same endpoint while the endpoints stay the same.
type ConsistentHash struct {
	// HTTPHeaderName hashes a request header's value; both flavours.
	HTTPHeaderName string `yaml:"httpHeaderName,omitempty" json:"httpHeaderName,omitempty"`
	// UseSourceIP hashes the caller: its address in Envoy, its channel in
	// grpc-go (every call of one client channel goes to one endpoint).
	UseSourceIP bool `yaml:"useSourceIp,omitempty" json:"useSourceIp,omitempty"`
	// MinimumRingSize is the ring's minimum number of entries [1024].
	MinimumRingSize uint32 `yaml:"minimumRingSize,omitempty" json:"minimumRingSize,omitempty"`
}

// ConnectionPool limits the connections and requests to a service, per
// client: per sidecar, or per proxyless process (grpc-go counts max
// requests per cluster across all its channels). Zero means unlimited.
type ConnectionPool struct {
	TCP  *TCPSettings  `yaml:"tcp,omitempty" json:"tcp,omitempty"`
	HTTP *HTTPSettings `yaml:"http,omitempty" json:"http,omitempty"`
}

// TCPSettings are connection limits; Envoy only.
type TCPSettings struct {
	MaxConnections uint32   `yaml:"maxConnections,omitempty" json:"maxConnections,omitempty"`
	ConnectTimeout Duration `yaml:"connectTimeout,omitempty" json:"connectTimeout,omitzero"` // [5s]
}

// HTTPSettings are request limits. grpc-go honours only http2MaxRequests
// (its circuit breaker's max_requests); Envoy honours them all.
type HTTPSettings struct {
	HTTP1MaxPendingRequests  uint32   `yaml:"http1MaxPendingRequests,omitempty" json:"http1MaxPendingRequests,omitempty"`
	HTTP2MaxRequests         uint32   `yaml:"http2MaxRequests,omitempty" json:"http2MaxRequests,omitempty"`
	MaxRequestsPerConnection uint32   `yaml:"maxRequestsPerConnection,omitempty" json:"maxRequestsPerConnection,omitempty"`
	MaxRetries               uint32   `yaml:"maxRetries,omitempty" json:"maxRetries,omitempty"`
	IdleTimeout              Duration `yaml:"idleTimeout,omitempty" json:"idleTimeout,omitzero"`
}

// OutlierDetection ejects failing endpoints for a while. Envoy runs every
// algorithm set here; grpc-go (gRFC A50) runs only successRate and
// failurePercentage, so proxyless clients need one of those.
type OutlierDetection struct {
	// Consecutive5xxErrors ejects after that many 5xx (gRPC: UNAVAILABLE,
	// INTERNAL, ...) in a row; Envoy only. Unset means Envoy's default of 5,
	// as in Istio; 0 turns it off.
	Consecutive5xxErrors *uint32 `yaml:"consecutive5xxErrors,omitempty" json:"consecutive5xxErrors,omitempty"`
	// ConsecutiveGatewayErrors ejects after that many 502/503/504 in a row;
	// Envoy only; 0 (unset) turns it off.
	ConsecutiveGatewayErrors uint32 `yaml:"consecutiveGatewayErrors,omitempty" json:"consecutiveGatewayErrors,omitempty"`
	// Interval is the time between ejection sweeps [10s].
	Interval Duration `yaml:"interval,omitempty" json:"interval,omitzero"`
	// BaseEjectionTime is the first ejection's length, multiplied by the
	// number of times an endpoint was ejected [30s].
	BaseEjectionTime Duration `yaml:"baseEjectionTime,omitempty" json:"baseEjectionTime,omitzero"`
	// MaxEjectionPercent caps the share of endpoints ejected at once [10].
	MaxEjectionPercent uint32 `yaml:"maxEjectionPercent,omitempty" json:"maxEjectionPercent,omitempty"`
	// SuccessRate ejects endpoints whose success rate is far below the
	// others' (glassmesh field; off unless set, as in Istio).
	SuccessRate *SuccessRateEjection `yaml:"successRate,omitempty" json:"successRate,omitempty"`
	// FailurePercentage ejects endpoints whose failure share is above a
	// threshold (glassmesh field; off unless set).
	FailurePercentage *FailurePercentageEjection `yaml:"failurePercentage,omitempty" json:"failurePercentage,omitempty"`
}

// SuccessRateEjection is Envoy's and grpc-go's success-rate algorithm: an
// endpoint whose success rate is below mean − stdevFactor/1000 × stdev is
// ejected. Zero fields take the defaults in brackets.
type SuccessRateEjection struct {
	StdevFactor      uint32 `yaml:"stdevFactor,omitempty" json:"stdevFactor,omitempty"`           // [1900]
	MinimumHosts     uint32 `yaml:"minimumHosts,omitempty" json:"minimumHosts,omitempty"`         // [5]
	RequestVolume    uint32 `yaml:"requestVolume,omitempty" json:"requestVolume,omitempty"`       // [100] per interval
	EnforcingPercent uint32 `yaml:"enforcingPercent,omitempty" json:"enforcingPercent,omitempty"` // [100]
}

// FailurePercentageEjection is Envoy's and grpc-go's failure-percentage
// algorithm: an endpoint with more than threshold percent failed requests
// in an interval is ejected. Zero fields take the defaults in brackets.
type FailurePercentageEjection struct {
	Threshold        uint32 `yaml:"threshold,omitempty" json:"threshold,omitempty"`               // [85] percent
	MinimumHosts     uint32 `yaml:"minimumHosts,omitempty" json:"minimumHosts,omitempty"`         // [5]
	RequestVolume    uint32 `yaml:"requestVolume,omitempty" json:"requestVolume,omitempty"`       // [50] per interval
	EnforcingPercent uint32 `yaml:"enforcingPercent,omitempty" json:"enforcingPercent,omitempty"` // [100]
}

// RateLimit is a token bucket on the requests each calling sidecar sends to
// the service (Envoy's local_ratelimit filter). Over the limit, Envoy
// answers 429 (gRPC RESOURCE_EXHAUSTED) itself. grpc-go has no rate limit
// filter: proxyless clients are not limited.
type RateLimit struct {
	RequestsPerSecond uint32 `yaml:"requestsPerSecond" json:"requestsPerSecond"`
	Burst             uint32 `yaml:"burst,omitempty" json:"burst,omitempty"` // [requestsPerSecond]
}

// Mirror copies a share of the service's requests to a subset, answers
// ignored (Envoy request_mirror_policies; grpc-go does not mirror).
type Mirror struct {
	Subset  string   `yaml:"subset" json:"subset"`
	Percent *float64 `yaml:"percent,omitempty" json:"percent,omitempty"` // [100]
}

// MirrorPercent is the share of requests mirrored, 100 when unset.
func (m *Mirror) MirrorPercent() float64 {
	if m.Percent == nil {
		return 100
	}
	return *m.Percent
}
