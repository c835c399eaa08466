// Package model is the typed mesh model: the config kinds of DESIGN.md, how
// they are parsed from YAML with file:line positions, and how they are
// validated. It imports nothing of glassmesh. Its kinds' Kubernetes
// CustomResourceDefinitions (deploy/crds) are generated from these types
// by ./crdgen.
package model

//go:generate go run ./crdgen

import (
	"strconv"
	"time"
)

// The API group and version of the glassmesh kinds (and custom
// resources); APIVersion, the only apiVersion glassmesh accepts, is
// CRDGroup + "/" + CRDVersion.
const (
	CRDGroup   = "glassmesh.io"
	CRDVersion = "v1alpha1"
	APIVersion = CRDGroup + "/" + CRDVersion
)

// Kinds understood by glassmesh.
const (
	KindService             = "Service"
	KindWorkload            = "Workload"
	KindTrafficRoute        = "TrafficRoute"
	KindSLO                 = "SLO"
	KindCanary              = "Canary"
	KindSLOPolicy           = "SLOPolicy"
	KindPeerAuthentication  = "PeerAuthentication"
	KindAuthorizationPolicy = "AuthorizationPolicy"
)

// Protocols a service port may speak.
const (
	ProtocolHTTP  = "HTTP"
	ProtocolHTTP2 = "HTTP2"
	ProtocolGRPC  = "GRPC"
	ProtocolTCP   = "TCP"
)

// Meta identifies an object, as Kubernetes' ObjectMeta does.
type Meta struct {
	Name        string            `yaml:"name" json:"name"`
	Namespace   string            `yaml:"namespace,omitempty" json:"namespace,omitempty"`
	Labels      map[string]string `yaml:"labels,omitempty" json:"labels,omitempty"`
	Annotations map[string]string `yaml:"annotations,omitempty" json:"annotations,omitempty"`
}

// Key is "namespace/name".
func (m Meta) Key() string { return m.Namespace + "/" + m.Name }

// Origin says where an object was read from, for error messages. Objects
// parsed from YAML also know the line of each of their fields (see LineOf);
// objects built in code or read from Kubernetes have only File and Line.
type Origin struct {
	File string `json:"file"`
	Line int    `json:"line"`

	fields *fieldLines
}

// String is "file:line", or the file alone when the line is unknown.
func (o Origin) String() string {
	if o.Line > 0 {
		return o.File + ":" + strconv.Itoa(o.Line)
	}
	return o.File
}

// Service is a named service and its ports.
type Service struct {
	Meta   `yaml:"metadata" json:"metadata"`
	Spec   ServiceSpec `yaml:"spec" json:"spec"`
	Origin Origin      `yaml:"-" json:"-"`
}

// ServiceSpec is the spec of a Service.
type ServiceSpec struct {
	Ports    []ServicePort     `yaml:"ports" json:"ports"`
	Selector map[string]string `yaml:"selector" json:"selector"`
}

// ServicePort is one port of a service.
type ServicePort struct {
	Name     string `yaml:"name" json:"name"`
	Port     uint32 `yaml:"port" json:"port"`
	Protocol string `yaml:"protocol" json:"protocol"`
}

// FQDN is the service's cluster-local DNS name.
func (s *Service) FQDN() string { return s.Name + "." + s.Namespace + ".svc.cluster.local" }

// Workload is a set of instances (endpoints) sharing labels and an identity.
type Workload struct {
	Meta   `yaml:"metadata" json:"metadata"`
	Spec   WorkloadSpec `yaml:"spec" json:"spec"`
	Origin Origin       `yaml:"-" json:"-"`
}

// WorkloadSpec is the spec of a Workload.
type WorkloadSpec struct {
	ServiceAccount string     `yaml:"serviceAccount" json:"serviceAccount"`
	Endpoints      []Endpoint `yaml:"endpoints" json:"endpoints"`
}

// Endpoint is one instance of a workload: an address and its named ports.
type Endpoint struct {
	Address string            `yaml:"address" json:"address"`
	Ports   map[string]uint32 `yaml:"ports" json:"ports"`
}

// TrafficRoute holds the subsets and weighted rules of one service.
type TrafficRoute struct {
	Meta   `yaml:"metadata" json:"metadata"`
	Spec   TrafficRouteSpec `yaml:"spec" json:"spec"`
	Origin Origin           `yaml:"-" json:"-"`
}

// TrafficRouteSpec is the spec of a TrafficRoute.
type TrafficRouteSpec struct {
	Service string   `yaml:"service" json:"service"`
	Subsets []Subset `yaml:"subsets,omitempty" json:"subsets,omitempty"`
	Rules   []Rule   `yaml:"rules" json:"rules"`
	// TrafficPolicy applies to every subset of the service; see TrafficPolicy.
	TrafficPolicy *TrafficPolicy `yaml:"trafficPolicy,omitempty" json:"trafficPolicy,omitempty"`
}

// Subset is a named group of a service's workloads, chosen by labels.
type Subset struct {
	Name   string            `yaml:"name" json:"name"`
	Labels map[string]string `yaml:"labels" json:"labels"`
}

// Rule is one routing rule; the first whose match fits wins.
type Rule struct {
	Match        *Match        `yaml:"match,omitempty" json:"match,omitempty"`
	Destinations []Destination `yaml:"destinations" json:"destinations"`
	Timeout      Duration      `yaml:"timeout,omitempty" json:"timeout,omitzero"`
	Retries      *Retries      `yaml:"retries,omitempty" json:"retries,omitempty"`
	Fault        *Fault        `yaml:"fault,omitempty" json:"fault,omitempty"`
}

// Match selects requests by headers and path. All given conditions must hold.
type Match struct {
	Headers map[string]StringMatch `yaml:"headers,omitempty" json:"headers,omitempty"`
	Path    *StringMatch           `yaml:"path,omitempty" json:"path,omitempty"`
}

// StringMatch is exactly one of exact, prefix or regex (RE2).
type StringMatch struct {
	Exact  string `yaml:"exact,omitempty" json:"exact,omitempty"`
	Prefix string `yaml:"prefix,omitempty" json:"prefix,omitempty"`
	Regex  string `yaml:"regex,omitempty" json:"regex,omitempty"`
}

// Destination is a subset and its share of the rule's traffic, in percent.
type Destination struct {
	Subset string `yaml:"subset" json:"subset"`
	Weight uint32 `yaml:"weight" json:"weight"`
}

// Retries is a rule's retry policy.
type Retries struct {
	Attempts      uint32   `yaml:"attempts" json:"attempts"`
	PerTryTimeout Duration `yaml:"perTryTimeout,omitempty" json:"perTryTimeout,omitzero"`
	RetryOn       string   `yaml:"retryOn,omitempty" json:"retryOn,omitempty"`
}

// Fault injects errors or delays into a share of a rule's requests.
type Fault struct {
	Abort *FaultAbort `yaml:"abort,omitempty" json:"abort,omitempty"`
	Delay *FaultDelay `yaml:"delay,omitempty" json:"delay,omitempty"`
}

// FaultAbort answers a share of requests with an error status.
type FaultAbort struct {
	Percent    float64 `yaml:"percent" json:"percent"`
	HTTPStatus uint32  `yaml:"httpStatus,omitempty" json:"httpStatus,omitempty"`
	GRPCStatus string  `yaml:"grpcStatus,omitempty" json:"grpcStatus,omitempty"`
}

// FaultDelay delays a share of requests.
type FaultDelay struct {
	Percent    float64  `yaml:"percent" json:"percent"`
	FixedDelay Duration `yaml:"fixedDelay" json:"fixedDelay"`
}

// Duration is a time.Duration written as a Go duration string ("5s", "1m30s")
// or with a day suffix ("30d").
type Duration struct{ time.Duration }

// Generic is a kind that is parsed and kept but whose behaviour arrives in a
// later release (SLO, Canary, PeerAuthentication, AuthorizationPolicy).
type Generic struct {
	Kind   string         `json:"kind"`
	Meta   Meta           `json:"metadata"`
	Spec   map[string]any `json:"spec"`
	Origin Origin         `json:"-"`
}
