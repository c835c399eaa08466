package model

import (
	"slices"
	"strings"
	"time"
)

// SLO is a service level objective of one service: a target share of good
// requests over a window, and how "good" is measured.
type SLO struct {
	Meta   `yaml:"metadata" json:"metadata"`
	Spec   SLOSpec `yaml:"spec" json:"spec"`
	Origin Origin  `yaml:"-" json:"-"`
}

// SLOSpec is the spec of an SLO.
type SLOSpec struct {
	Service   string    `yaml:"service" json:"service"`
	Objective float64   `yaml:"objective" json:"objective"` // percent of good requests, e.g. 99.9
	Window    Duration  `yaml:"window,omitempty" json:"window"`
	Indicator Indicator `yaml:"indicator" json:"indicator"`
}

// Indicator says which requests are errors. Exactly one field is set.
type Indicator struct {
	Availability *AvailabilityIndicator `yaml:"availability,omitempty" json:"availability,omitempty"`
	Latency      *LatencyIndicator      `yaml:"latency,omitempty" json:"latency,omitempty"`
	Ratio        *RatioIndicator        `yaml:"ratio,omitempty" json:"ratio,omitempty"`
}

// AvailabilityIndicator counts as errors the requests answered 5xx, or with
// a gRPC status that means the server failed (ErrorGRPCStatuses).
type AvailabilityIndicator struct{}

// LatencyIndicator counts as errors the requests slower than ThresholdMs,
// which must be a bucket bound of istio_request_duration_milliseconds.
type LatencyIndicator struct {
	ThresholdMs float64 `yaml:"thresholdMs" json:"thresholdMs"`
}

// RatioIndicator is a user's own SLI: two PromQL expressions, the rate of
// errors and the rate of all events, in which $window stands for the range.
type RatioIndicator struct {
	ErrorQuery string `yaml:"errorQuery" json:"errorQuery"`
	TotalQuery string `yaml:"totalQuery" json:"totalQuery"`
}

// DefaultSLOWindow is the window of an SLO that names none, as in Sloth.
const DefaultSLOWindow = 30 * 24 * time.Hour

// ErrorGRPCStatuses returns the gRPC status codes (as numbers, the way
// grpc_response_status carries them) an availability SLI counts as errors:
// UNKNOWN, DEADLINE_EXCEEDED, INTERNAL, UNAVAILABLE.
func ErrorGRPCStatuses() []string { return []string{"2", "4", "13", "14"} }

// latencyBucketsMs are the finite bucket bounds of every Istio histogram:
// Envoy's default histogram buckets, which Istio (since 1.5, Telemetry v2)
// uses for the request duration and, unless overridden, the byte sizes.
var latencyBucketsMs = [...]float64{
	0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000,
	60000, 300000, 600000, 1800000, 3600000,
}

// LatencyBucketsMs returns the finite bucket bounds of the Istio request
// duration histogram, the only thresholds a latency SLI can be computed for
// exactly. telemetry/metrics writes them and topology interpolates with
// them: this is their one definition.
func LatencyBucketsMs() [len(latencyBucketsMs)]float64 { return latencyBucketsMs }

// Canary shifts a route's traffic from a stable subset to a canary subset
// step by step, as long as every gate passes on the canary's own traffic.
type Canary struct {
	Meta   `yaml:"metadata" json:"metadata"`
	Spec   CanarySpec `yaml:"spec" json:"spec"`
	Origin Origin     `yaml:"-" json:"-"`
}

// CanarySpec is the spec of a Canary.
type CanarySpec struct {
	Route           string   `yaml:"route" json:"route"` // a TrafficRoute in the same namespace
	Stable          string   `yaml:"stable" json:"stable"`
	Canary          string   `yaml:"canary" json:"canary"`
	Steps           []uint32 `yaml:"steps" json:"steps"` // canary weight per step, increasing, 1..100
	Interval        Duration `yaml:"interval,omitempty" json:"interval"`
	MinRequests     uint32   `yaml:"minRequests,omitempty" json:"minRequests"`
	MaxInconclusive uint32   `yaml:"maxInconclusive,omitempty" json:"maxInconclusive"`
	Gates           []Gate   `yaml:"gates,omitempty" json:"gates,omitempty"`
}

// Gate is one check a canary step must pass: exactly one of SLO (the name
// of an SLO of the route's service) or Query (PromQL whose value must not
// exceed Max).
type Gate struct {
	SLO   string   `yaml:"slo,omitempty" json:"slo,omitempty"`
	Query string   `yaml:"query,omitempty" json:"query,omitempty"`
	Max   *float64 `yaml:"max,omitempty" json:"max,omitempty"`
}

// Canary defaults, as in the DESIGN.md example.
const (
	DefaultCanaryInterval        = time.Minute
	DefaultCanaryMinRequests     = 50
	DefaultCanaryMaxInconclusive = 6
)

// ExpandQuery replaces the $variables of an SLO or gate query ($window,
// $canary, $stable, $interval, $service, $namespace) by their values. Longer
// names are tried first, so one name that prefixes another cannot steal it.
func ExpandQuery(query string, vars map[string]string) string {
	names := make([]string, 0, len(vars))
	for k := range vars {
		names = append(names, k)
	}
	slices.SortFunc(names, func(a, b string) int { return len(b) - len(a) })
	pairs := make([]string, 0, 2*len(names))
	for _, k := range names {
		pairs = append(pairs, "$"+k, vars[k])
	}
	return strings.NewReplacer(pairs...).Replace(query)
}
