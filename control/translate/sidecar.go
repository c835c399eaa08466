package translate

import (
	"fmt"
	"sort"
	"strconv"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	originaldstv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/original_dst/v3"
	resource "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/glassmesh/glassmesh/control/model"
)

// outboundPort is one sidecar outbound listener: HTTP ports route by host
// over RDS, TCP ports proxy to one service's cluster.
type outboundPort struct {
	port       uint32
	tcpCluster string // "" for HTTP ports
	fault      bool
	rateLimit  bool
}

// outbound is what every sidecar has in common: its outbound listeners (less
// the tracing identity) and clusters.
type outbound struct {
	ports     []outboundPort
	clusters  []*clusterv3.Cluster
	telemetry string
}

// inboundPort is one port of a workload's app.
type inboundPort struct {
	port uint32
	http bool
	h2   bool
}

// sidecarOutbound groups service ports by number into outbound listeners,
// adds their route configurations to byName and builds the sidecar clusters.
// Several services share an HTTP port by host name; a TCP port has no host
// name, so it goes to one service and a port both kinds use stays HTTP.
func (t *translator) sidecarOutbound(byName Resources) *outbound {
	o := &outbound{telemetry: t.opts.TelemetryCluster}
	byPort := map[uint32][]servicePort{}
	for _, sp := range t.ports {
		byPort[sp.port.Port] = append(byPort[sp.port.Port], sp)
		if m := sp.memo; m != nil && m.clustersDone {
			o.clusters = append(o.clusters, m.clusters...)
			t.restoreSANs(m.sans)
			t.warnings = append(t.warnings, m.clusterWarnings...)
			continue
		}
		mark, first := len(t.warnings), len(o.clusters)
		for _, subset := range sp.subsets() {
			name := ClusterName(sp.svc, sp.port.Port, subset)
			c := sidecarCluster(sp, name)
			if sans := t.upstreamSANs(sp, subset, name); sans != nil {
				c.TransportSocket = sidecarUpstreamTLS(sans, sp.isH2())
			}
			o.clusters = append(o.clusters, c)
		}
		sp.memo.internClusters(o.clusters[first:])
		sp.memo.keepClusters(o.clusters[first:], t.sansOf(sp), t.warnings[mark:])
	}
	o.clusters = append(o.clusters, passthroughCluster())
	numbers := make([]uint32, 0, len(byPort))
	for n := range byPort {
		numbers = append(numbers, n)
	}
	sort.Slice(numbers, func(i, j int) bool { return numbers[i] < numbers[j] })
	for _, n := range numbers {
		var httpSPs, tcpSPs []servicePort
		for _, sp := range byPort[n] {
			if sp.isTCP() {
				tcpSPs = append(tcpSPs, sp)
			} else {
				httpSPs = append(httpSPs, sp)
			}
		}
		switch {
		case len(httpSPs) > 0:
			for _, sp := range tcpSPs {
				t.warnf("%s: TCP port %d is also an HTTP port of another service; sidecars route it as HTTP", sp.key(), n)
			}
			rc := sidecarRouteConfig(n, httpSPs)
			add(byName, resource.RouteType, rc.Name, rc)
			fault, rateLimit := false, false
			for _, sp := range httpSPs {
				fault = fault || usesFault(sp.route)
				rateLimit = rateLimit || usesRateLimit(sp.route)
			}
			o.ports = append(o.ports, outboundPort{port: n, fault: fault, rateLimit: rateLimit})
		default:
			for _, sp := range tcpSPs[1:] {
				t.warnf("%s: TCP port %d is also used by %s; sidecars send it to %s", sp.key(), n, tcpSPs[0].svc.Key(), tcpSPs[0].svc.Key())
			}
			o.ports = append(o.ports, outboundPort{port: n, tcpCluster: ClusterName(tcpSPs[0].svc, n, "")})
		}
	}
	return o
}

// sidecarRouteConfig is the route configuration "<port>": a virtual host per
// service, answering to its names with and without the port. The short name
// is left out when services of several namespaces share it.
func sidecarRouteConfig(port uint32, sps []servicePort) *routev3.RouteConfiguration {
	short := map[string]int{}
	for _, sp := range sps {
		short[sp.svc.Name]++
	}
	p := ":" + strconv.FormatUint(uint64(port), 10)
	rc := &routev3.RouteConfiguration{Name: SidecarRouteName(port)}
	for _, sp := range sps {
		names := []string{sp.svc.Name + "." + sp.svc.Namespace, sp.svc.FQDN()}
		if short[sp.svc.Name] == 1 {
			names = append([]string{sp.svc.Name}, names...)
		}
		var domains []string
		for _, n := range names {
			domains = append(domains, n, n+p)
		}
		rc.VirtualHosts = append(rc.VirtualHosts, &routev3.VirtualHost{
			Name: sp.svc.FQDN() + p, Domains: domains, Routes: policyRoutes(sp, sp.routes, true),
			TypedPerFilterConfig: vhostPolicy(sp),
		})
	}
	// Hosts outside the mesh pass through to where they were headed.
	rc.VirtualHosts = append(rc.VirtualHosts, &routev3.VirtualHost{
		Name: "allow_any", Domains: []string{"*"}, Routes: []*routev3.Route{defaultRoute(PassthroughCluster)},
	})
	return rc
}

// inbound lists the ports of a workload's endpoints, with the protocol of the
// service port of the same name (TCP when no service names it).
func (t *translator) inbound(w *model.Workload) []inboundPort {
	protocols := map[string]string{}
	for _, svc := range t.mesh.ServicesOf(w) {
		for _, p := range svc.Spec.Ports {
			if prev, ok := protocols[p.Name]; !ok || prev == model.ProtocolTCP {
				protocols[p.Name] = p.Protocol
			}
		}
	}
	byNumber := map[uint32]inboundPort{}
	for _, ep := range w.Spec.Endpoints {
		for name, n := range ep.Ports {
			proto := protocols[name]
			ip := inboundPort{port: n, http: proto != "" && proto != model.ProtocolTCP, h2: proto == model.ProtocolGRPC || proto == model.ProtocolHTTP2}
			if prev, ok := byNumber[n]; !ok || !prev.http && ip.http {
				byNumber[n] = ip
			}
		}
	}
	out := make([]inboundPort, 0, len(byNumber))
	for _, ip := range byNumber {
		out = append(out, ip)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].port < out[j].port })
	return out
}

// resources are one sidecar's listeners and clusters. Sidecars of unknown
// workloads get no inbound listener.
func (o *outbound) resources(serviceName string, in []inboundPort, sec inboundSecurity) Resources {
	tel := telemetry{cluster: o.telemetry, serviceName: serviceName}
	r := Resources{}
	add(r, resource.ListenerType, VirtualOutboundListener, &listenerv3.Listener{
		Name:             VirtualOutboundListener,
		Address:          socketAddress("0.0.0.0", VirtualOutboundPort),
		UseOriginalDst:   wrapperspb.Bool(true),
		TrafficDirection: corev3.TrafficDirection_OUTBOUND,
		FilterChains:     []*listenerv3.FilterChain{tcpChain(PassthroughCluster, PassthroughCluster, o.telemetry)},
	})
	for _, op := range o.ports {
		name := fmt.Sprintf("0.0.0.0_%d", op.port)
		chain := tcpChain("outbound|"+name, op.tcpCluster, o.telemetry)
		if op.tcpCluster == "" {
			chain = hcmChain(hcmConfig{statPrefix: "outbound_" + name, rds: SidecarRouteName(op.port), fault: op.fault, rateLimit: op.rateLimit, telemetry: tel})
		}
		add(r, resource.ListenerType, name, &listenerv3.Listener{
			Name:             name,
			Address:          socketAddress("0.0.0.0", op.port),
			BindToPort:       wrapperspb.Bool(false),
			TrafficDirection: corev3.TrafficDirection_OUTBOUND,
			FilterChains:     []*listenerv3.FilterChain{chain},
		})
	}
	for _, c := range o.clusters {
		add(r, resource.ClusterType, c.Name, c)
	}
	if len(in) == 0 {
		return r
	}
	l := &listenerv3.Listener{
		Name:             VirtualInboundListener,
		Address:          socketAddress("0.0.0.0", VirtualInboundPort),
		TrafficDirection: corev3.TrafficDirection_INBOUND,
		ListenerFilters: []*listenerv3.ListenerFilter{{
			Name:       "envoy.filters.listener.original_dst",
			ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: mustAny(&originaldstv3.OriginalDst{})},
		}},
	}
	if sec.mode == model.MTLSPermissive {
		l.ListenerFilters = append(l.ListenerFilters, tlsInspector())
	}
	for _, ip := range in {
		cluster := InboundClusterName(ip.port)
		mk := func() *listenerv3.FilterChain {
			if !ip.http {
				return tcpChain(cluster, cluster, o.telemetry)
			}
			return hcmChain(hcmConfig{statPrefix: fmt.Sprintf("inbound_0.0.0.0_%d", ip.port), inline: inboundRouteConfig(ip.port), authz: sec.authz, telemetry: tel})
		}
		l.FilterChains = append(l.FilterChains, inboundChains(sec.mode, ip.port, mk)...)
		add(r, resource.ClusterType, cluster, inboundCluster(ip.port, ip.h2))
	}
	add(r, resource.ListenerType, l.Name, l)
	return r
}

// inboundRouteConfig sends every request on an inbound port to the app.
func inboundRouteConfig(port uint32) *routev3.RouteConfiguration {
	cluster := InboundClusterName(port)
	return &routev3.RouteConfiguration{
		Name: cluster,
		VirtualHosts: []*routev3.VirtualHost{{
			Name:    fmt.Sprintf("inbound|http|%d", port),
			Domains: []string{"*"},
			Routes:  []*routev3.Route{defaultRoute(cluster)},
		}},
	}
}
