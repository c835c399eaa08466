package translate

import (
	"fmt"
	"slices"
	"sort"
	"strconv"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	resource "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/glassmesh/glassmesh/control/model"
)

// DefaultTelemetryCluster is the name of the bootstrap cluster through which
// sidecars send access logs and spans to glassmesh.
const DefaultTelemetryCluster = "glassmesh-telemetry"

// Names of the fixed sidecar resources (Istio's, so existing tools read them).
const (
	VirtualOutboundListener = "virtualOutbound"
	VirtualInboundListener  = "virtualInbound"
	PassthroughCluster      = "PassthroughCluster"
	VirtualOutboundPort     = 15001
	VirtualInboundPort      = 15006
)

// Options are the settings of a translation that do not come from the mesh.
type Options struct {
	// TelemetryCluster is the sidecar cluster that receives access logs and
	// spans; "" means DefaultTelemetryCluster.
	TelemetryCluster string
	// TrustDomain is the SPIFFE trust domain of workload identities; ""
	// means DefaultTrustDomain.
	TrustDomain string
}

func (o Options) withDefaults() Options {
	if o.TelemetryCluster == "" {
		o.TelemetryCluster = DefaultTelemetryCluster
	}
	if o.TrustDomain == "" {
		o.TrustDomain = DefaultTrustDomain
	}
	return o
}

// ClusterName is the outbound cluster of a service port and subset:
// outbound|<port>|<subset>|<fqdn>; subset "" is the whole service.
func ClusterName(svc *model.Service, port uint32, subset string) string {
	return fmt.Sprintf("outbound|%d|%s|%s", port, subset, svc.FQDN())
}

// InboundClusterName is a sidecar's cluster to its own app's port:
// inbound|<port>||.
func InboundClusterName(port uint32) string { return fmt.Sprintf("inbound|%d||", port) }

// ProxylessListenerNames are the two listener names a proxyless client may
// dial a service port by: <fqdn>:<port> and <service>.<namespace>:<port>.
func ProxylessListenerNames(svc *model.Service, port uint32) []string {
	p := strconv.FormatUint(uint64(port), 10)
	return []string{svc.FQDN() + ":" + p, svc.Name + "." + svc.Namespace + ":" + p}
}

// ProxylessRouteName is the route configuration of a service port that the
// proxyless listeners of that port point to: <fqdn>:<port>.
func ProxylessRouteName(svc *model.Service, port uint32) string {
	return svc.FQDN() + ":" + strconv.FormatUint(uint64(port), 10)
}

// SidecarRouteName is the route configuration of a sidecar's outbound
// listener for a port: the port number, as in Istio.
func SidecarRouteName(port uint32) string { return strconv.FormatUint(uint64(port), 10) }

// SidecarKey is the key of a workload in Snapshot.Sidecars.
func SidecarKey(w *model.Workload) string { return w.Key() }

// servicePort is one port of one service, with the route that governs it.
type servicePort struct {
	svc    *model.Service
	port   model.ServicePort
	route  *model.TrafficRoute // nil when the service has none
	routes []*routev3.Route    // what route gives, for HTTP ports
	memo   *portMemo           // what the last translation built of it, when its inputs are the same
}

func (sp servicePort) isTCP() bool { return sp.port.Protocol == model.ProtocolTCP }

// isH2 says whether upstream connections must speak HTTP/2.
func (sp servicePort) isH2() bool {
	return sp.port.Protocol == model.ProtocolGRPC || sp.port.Protocol == model.ProtocolHTTP2
}

func (sp servicePort) key() string {
	return fmt.Sprintf("%s port %s (%d)", sp.svc.Key(), sp.port.Name, sp.port.Port)
}

// subsets are the subset names that get a cluster, "" (whole service) first.
func (sp servicePort) subsets() []string {
	out := []string{""}
	if sp.route != nil {
		for _, s := range sp.route.Spec.Subsets {
			out = append(out, s.Name)
		}
	}
	return out
}

// translator carries one translation's inputs and what it has found.
type translator struct {
	mesh     *model.Mesh
	opts     Options
	ports    []servicePort
	sans     map[string][]string // upstreamSANs by cluster name
	warnings []string
	cache    *Cache // nil: translate everything
}

func (t *translator) warnf(format string, args ...any) {
	t.warnings = append(t.warnings, fmt.Sprintf(format, args...))
}

// Translate turns a mesh into the resources of both node flavours. It is
// pure and deterministic. It returns an error only for config that would
// make Envoy or grpc-go reject a resource (an unknown subset, a bad regex or
// gRPC status); a validated mesh does not contain any.
func Translate(m *model.Mesh, opts Options) (*Snapshot, error) {
	return TranslateWith(m, opts, nil)
}

// TranslateWith is Translate reusing, through c, what the last translation
// through c built for the service ports whose inputs are the same objects
// (a mesh whose unchanged objects are the same values, as the sources and
// Contain keep them): a change costs what it touches. The result equals
// Translate's. A nil c translates everything.
func TranslateWith(m *model.Mesh, opts Options, c *Cache) (*Snapshot, error) {
	t := &translator{mesh: m, opts: opts.withDefaults(), cache: c}
	c.begin(m, t.opts)
	ok := false
	defer func() { c.end(ok) }()
	for _, svc := range m.Services {
		ports := append([]model.ServicePort(nil), svc.Spec.Ports...)
		sort.Slice(ports, func(i, j int) bool { return ports[i].Port < ports[j].Port })
		for _, p := range ports {
			sp := servicePort{svc: svc, port: p, route: m.RouteFor(svc)}
			sp.memo = c.lookup(m, sp)
			if !sp.isTCP() {
				if sp.memo != nil && sp.memo.routesDone {
					sp.routes = sp.memo.routes
					t.warnings = append(t.warnings, sp.memo.routeWarnings...)
				} else {
					var err error
					mark := len(t.warnings)
					if sp.routes, err = t.routes(sp); err != nil {
						return nil, err
					}
					sp.memo.keepRoutes(sp.routes, t.warnings[mark:])
				}
			}
			t.ports = append(t.ports, sp)
		}
	}
	s := &Snapshot{ByName: Resources{}, Sidecars: map[string]Resources{}}
	t.shared(s.ByName)
	outbound := t.sidecarOutbound(s.ByName)
	sameOutbound := c.sameOutbound(outbound)
	s.Sidecars[""] = t.view(nil, outbound, sameOutbound)
	for _, w := range m.Workloads {
		s.Sidecars[SidecarKey(w)] = t.view(w, outbound, sameOutbound)
	}
	s.Warnings = t.warnings
	ok = true
	return s, nil
}

// shared adds what every node asks for by name: clusters and load
// assignments of every service port, and the proxyless listeners and routes.
func (t *translator) shared(out Resources) {
	for _, sp := range t.ports {
		if m := sp.memo; m != nil && m.sharedDone {
			for _, r := range m.shared {
				add(out, r.typeURL, r.name, r.res)
			}
			t.restoreSANs(m.sans)
			t.warnings = append(t.warnings, m.sharedWarnings...)
			continue
		}
		mark := len(t.warnings)
		own := Resources{}
		t.sharedPort(sp, own)
		var made []memoRes
		for typeURL, byName := range own {
			for name, r := range byName {
				made = append(made, memoRes{typeURL, name, r})
			}
		}
		sp.memo.intern(made)
		for _, r := range made {
			add(out, r.typeURL, r.name, r.res)
		}
		sp.memo.keepShared(made, t.sansOf(sp), t.warnings[mark:])
	}
	t.serverListeners(out)
}

// sharedPort adds what every node asks for by name of one service port.
func (t *translator) sharedPort(sp servicePort, out Resources) {
	{
		for _, subset := range sp.subsets() {
			name := ClusterName(sp.svc, sp.port.Port, subset)
			add(out, resource.EndpointType, name, t.loadAssignment(sp, subset, name))
			if !sp.isTCP() {
				c := proxylessCluster(sp, name)
				if sans := t.upstreamSANs(sp, subset, name); sans != nil {
					c.TransportSocket = proxylessUpstreamTLS(sans)
				}
				add(out, resource.ClusterType, name, c)
			}
		}
		if sp.isTCP() {
			return
		}
		rc := proxylessRouteConfig(sp, sp.routes)
		add(out, resource.RouteType, rc.Name, rc)
		for _, name := range ProxylessListenerNames(sp.svc, sp.port.Port) {
			add(out, resource.ListenerType, name, proxylessListener(name, rc.Name, usesFault(sp.route)))
		}
	}
}

// view is the listeners and clusters of the sidecars of w (nil: of
// workloads the config does not have): the last translation's, when w and
// everything every sidecar shares (sameOutbound) are as they were.
func (t *translator) view(w *model.Workload, o *outbound, sameOutbound bool) Resources {
	in := viewInputs{name: "unknown"}
	key := ""
	if w != nil {
		key = SidecarKey(w)
		mode, _ := t.mesh.MTLSMode(w)
		in = viewInputs{name: serviceName(w), inbound: t.inbound(w), mode: mode, authz: t.mesh.AuthorizationPolicies(w)}
	}
	if r, ok := t.cache.view(key, in, sameOutbound); ok {
		return r
	}
	r := o.resources(in.name, in.inbound, inboundSecurity{mode: in.mode, authz: authzFilters(in.authz)})
	t.cache.keepView(key, in, r)
	return r
}

// viewInputs is what a sidecar view is built from, besides the outbound
// part every view shares: a workload's endpoints may come and go (a pod
// turning unready) without changing its view.
type viewInputs struct {
	name    string
	inbound []inboundPort
	mode    string
	authz   []*model.AuthorizationPolicy
}

func (a viewInputs) equal(b viewInputs) bool {
	return a.name == b.name && a.mode == b.mode && slices.Equal(a.inbound, b.inbound) && slices.Equal(a.authz, b.authz)
}

// serviceName is how a workload names itself in spans: its app label, or
// its name when it has none.
func serviceName(w *model.Workload) string {
	if app := w.Labels["app"]; app != "" {
		return app
	}
	return w.Name
}

func add(r Resources, typeURL, name string, res proto.Message) {
	if r[typeURL] == nil {
		r[typeURL] = map[string]types.Resource{}
	}
	r[typeURL][name] = res
}

// mustAny packs a message built in this package. Marshalling a well-formed
// generated message cannot fail, so a failure is a bug here.
func mustAny(m proto.Message) *anypb.Any {
	a, err := anypb.New(m)
	if err != nil {
		panic(fmt.Sprintf("translate: packing %T: %v", m, err))
	}
	return a
}
