package topology

// The types below mirror Kiali's graph JSON (graph/config/cytoscape) field
// for field, so Kiali's UI and tools read ours. glassmesh adds three
// fields, all optional for a Kiali reader: "dataSource" on nodes and edges
// (metrics, spans or both: where the element was seen, or registry for an
// idle node only the mesh config knows; not "source", which Kiali's edges
// already use for the source node id), "healthStatus" (the health Kiali's
// UI would compute from healthData with the configured thresholds, so API
// users need not recompute it) and "canary" on nodes (CanaryRef).

// Element sources, the value of the "dataSource" extension.
const (
	SourceMetrics = "metrics"
	SourceSpans   = "spans"
	SourceBoth    = "both"
	// SourceRegistry marks an idle node of a service or workload in the
	// mesh config that no traffic was seen of.
	SourceRegistry = "registry"
)

// Node types, as Kiali's nodeType.
const (
	NodeTypeApp      = "app"
	NodeTypeWorkload = "workload"
	NodeTypeService  = "service"
	NodeTypeUnknown  = "unknown"
	NodeTypeBox      = "box"
)

// Health statuses, as Kiali's UI names them.
const (
	HealthHealthy  = "Healthy"
	HealthDegraded = "Degraded"
	HealthFailure  = "Failure"
	HealthNA       = "NA"
)

// Cytoscape is one graph: Kiali's top-level cytoscape JSON object (its
// cytoscape.Config).
type Cytoscape struct {
	Timestamp int64    `json:"timestamp"` // query time, unix seconds
	Duration  int64    `json:"duration"`  // window, seconds
	GraphType string   `json:"graphType"` // app | versionedApp | workload | service
	Elements  Elements `json:"elements"`
}

// Elements holds the nodes and edges; both are always arrays, never null.
type Elements struct {
	Nodes []*NodeWrapper `json:"nodes"`
	Edges []*EdgeWrapper `json:"edges"`
}

// NodeWrapper is cytoscape's {"data": node} envelope.
type NodeWrapper struct {
	Data *NodeData `json:"data"`
}

// EdgeWrapper is cytoscape's {"data": edge} envelope.
type EdgeWrapper struct {
	Data *EdgeData `json:"data"`
}

// ServiceName names a service a node was reached through (destServices).
type ServiceName struct {
	Cluster   string `json:"cluster"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
}

// NodeData is one node's data, Kiali's NodeData.
type NodeData struct {
	ID              string            `json:"id"`               // sha256 of the node identity, stable across calls
	Parent          string            `json:"parent,omitempty"` // id of the box holding it
	NodeType        string            `json:"nodeType"`
	Cluster         string            `json:"cluster"`
	Namespace       string            `json:"namespace"`
	Workload        string            `json:"workload,omitempty"`
	App             string            `json:"app,omitempty"`
	Version         string            `json:"version,omitempty"`
	Service         string            `json:"service,omitempty"`
	DestServices    []ServiceName     `json:"destServices,omitempty"`
	Labels          map[string]string `json:"labels,omitempty"`
	Traffic         []ProtocolTraffic `json:"traffic,omitempty"`
	HealthData      *HealthData       `json:"healthData"`
	HasHealthConfig map[string]string `json:"hasHealthConfig,omitempty"`
	// HasRequestRouting, HasTrafficShifting and HasVS are the istio
	// appender's: a TrafficRoute (glassmesh's VirtualService) applies to
	// the service node.
	HasRequestRouting  bool       `json:"hasRequestRouting,omitempty"`  // a rule matches on request content
	HasTrafficShifting bool       `json:"hasTrafficShifting,omitempty"` // a rule splits weight over destinations
	HasVS              *VSInfo    `json:"hasVS,omitempty"`
	IsBox              string     `json:"isBox,omitempty"` // app | namespace | cluster
	IsDead             bool       `json:"isDead,omitempty"`
	IsIdle             bool       `json:"isIdle,omitempty"`
	IsInaccessible     bool       `json:"isInaccessible,omitempty"`
	IsOutOfMesh        bool       `json:"isOutOfMesh,omitempty"`
	IsOutside          bool       `json:"isOutside,omitempty"`
	IsRoot             bool       `json:"isRoot,omitempty"`
	IsServiceEntry     *SEInfo    `json:"isServiceEntry,omitempty"`
	HealthStatus       string     `json:"healthStatus,omitempty"` // glassmesh extension
	DataSource         string     `json:"dataSource,omitempty"`   // glassmesh extension
	Canary             *CanaryRef `json:"canary,omitempty"`       // glassmesh extension
}

// VSInfo is Kiali's hasVS: the hosts the node's routes apply to (for a
// TrafficRoute, its service's <name>.<namespace>.svc.cluster.local).
type VSInfo struct {
	Hostnames []string `json:"hostnames,omitempty"`
}

// CanaryRef names the Canary that drives a node's traffic (glassmesh's
// "canary" extension, set by the istio appender): on the service node of
// the canary's route, and on the nodes of the workloads of its canary
// subset. State is the canary's state as /api/canaries/{namespace}/{name}
// gives it, empty when the graph has no canary states (SetCanaryStates).
type CanaryRef struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	State     string `json:"state,omitempty"`
}

// SEInfo describes a service entry node (Kiali's isServiceEntry); glassmesh
// has no service entries yet, so it is never set, but readers accept it.
type SEInfo struct {
	Hosts    []string `json:"hosts"`
	Location string   `json:"location"`
}

// HealthData is the request traffic Kiali's UI derives health from:
// rates per protocol per response code, inbound and outbound.
type HealthData struct {
	Requests HealthRequests `json:"requests"`
}

// HealthRequests are the inbound and outbound request rates of a node or
// edge, by protocol then response code (gRPC status for gRPC; "-" for no
// response).
type HealthRequests struct {
	Inbound  map[string]map[string]float64 `json:"inbound"`
	Outbound map[string]map[string]float64 `json:"outbound"`
}

// EdgeData is one edge's data, Kiali's EdgeData.
type EdgeData struct {
	ID              string          `json:"id"`
	Source          string          `json:"source"` // node id
	Target          string          `json:"target"` // node id
	DestPrincipal   string          `json:"destPrincipal,omitempty"`
	IsMTLS          string          `json:"isMTLS,omitempty"`       // percent of traffic with mutual TLS
	ResponseTime    string          `json:"responseTime,omitempty"` // ms
	SourcePrincipal string          `json:"sourcePrincipal,omitempty"`
	Throughput      string          `json:"throughput,omitempty"` // bytes/s
	Traffic         ProtocolTraffic `json:"traffic"`
	HealthStatus    string          `json:"healthStatus,omitempty"` // glassmesh extension
	DataSource      string          `json:"dataSource,omitempty"`   // glassmesh extension
}

// ProtocolTraffic is the traffic of one protocol: rates by name (strings
// with Kiali's precision) and, on edges, the share of traffic by response
// code then flags (and host).
type ProtocolTraffic struct {
	Protocol  string            `json:"protocol,omitempty"`
	Rates     map[string]string `json:"rates,omitempty"`
	Responses Responses         `json:"responses,omitempty"`
}

// Responses maps a response code to its detail.
type Responses map[string]*ResponseDetail

// ResponseDetail is the percentage of an edge's traffic with one response
// code, split by response flags and by destination host.
type ResponseDetail struct {
	Flags map[string]string `json:"flags,omitempty"`
	Hosts map[string]string `json:"hosts,omitempty"`
}
