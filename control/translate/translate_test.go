package translate

import (
	"encoding/json"
	"maps"
	"reflect"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	resource "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"

	"github.com/glassmesh/glassmesh/control/model"
)

func mustTranslate(t *testing.T, m *model.Mesh) *Snapshot {
	t.Helper()
	s, err := Translate(m, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Validate(); err != nil {
		t.Fatalf("generated resources do not validate: %v", err)
	}
	return s
}

func get[T proto.Message](t *testing.T, r Resources, typeURL, name string) T {
	t.Helper()
	res, ok := r[typeURL][name].(T)
	if !ok {
		t.Fatalf("no %s named %q; have %v", typeURL, name, sortedKeys(r[typeURL]))
	}
	return res
}

func unpack[T proto.Message](t *testing.T, a interface{ UnmarshalTo(proto.Message) error }, into T) T {
	t.Helper()
	if err := a.UnmarshalTo(into); err != nil {
		t.Fatal(err)
	}
	return into
}

// reviewsOnly is a mesh of the reviews service and its workloads, with the
// given route (nil for none).
func reviewsOnly(route *model.TrafficRoute) *model.Mesh {
	var routes []*model.TrafficRoute
	if route != nil {
		routes = append(routes, route)
	}
	return model.NewMesh(model.Objects{
		Services: []*model.Service{grpcService("default", "reviews", 9080)},
		Workloads: []*model.Workload{
			workload("default", "reviews", "v1", "10.0.0.1", map[string]uint32{"grpc": 9080}),
			workload("default", "reviews", "v2", "10.0.0.2", map[string]uint32{"grpc": 9080}),
		},
		Routes: routes,
	})
}

const reviewsRC = "reviews.default.svc.cluster.local:9080"

func TestNoRouteGoesToWholeService(t *testing.T) {
	s := mustTranslate(t, reviewsOnly(nil))
	rc := get[*routev3.RouteConfiguration](t, s.ByName, resource.RouteType, reviewsRC)
	routes := rc.VirtualHosts[0].Routes
	if len(routes) != 1 || routes[0].GetMatch().GetPrefix() != "/" ||
		routes[0].GetRoute().GetCluster() != "outbound|9080||reviews.default.svc.cluster.local" {
		t.Fatalf("routes = %v, want one catch-all to the whole service", routes)
	}
	cla := get[*endpointv3.ClusterLoadAssignment](t, s.ByName, resource.EndpointType, "outbound|9080||reviews.default.svc.cluster.local")
	if n := len(cla.Endpoints[0].LbEndpoints); n != 2 {
		t.Errorf("whole service has %d endpoints, want 2", n)
	}
	for _, name := range ProxylessListenerNames(grpcService("default", "reviews", 9080), 9080) {
		l := get[*listenerv3.Listener](t, s.ByName, resource.ListenerType, name)
		hcm := unpack(t, l.ApiListener.ApiListener, &hcmv3.HttpConnectionManager{})
		if got := filterNames(hcm); !reflect.DeepEqual(got, []string{routerFilterName}) {
			t.Errorf("listener %s filters = %v, want only the router (no faults configured)", name, got)
		}
		if hcm.GetRds().GetRouteConfigName() != reviewsRC || hcm.GetRds().GetConfigSource().GetAds() == nil {
			t.Errorf("listener %s does not read %s over ADS: %v", name, reviewsRC, hcm.GetRds())
		}
	}
}

func filterNames(h *hcmv3.HttpConnectionManager) []string {
	var out []string
	for _, f := range h.HttpFilters {
		out = append(out, f.Name)
	}
	return out
}

func TestSubsetWithoutWorkloadsKeepsALocality(t *testing.T) {
	route := &model.TrafficRoute{
		Meta: meta("default", "reviews", nil),
		Spec: model.TrafficRouteSpec{
			Service: "reviews",
			Subsets: []model.Subset{{Name: "v9", Labels: map[string]string{"version": "v9"}}},
			Rules:   []model.Rule{{Destinations: []model.Destination{{Subset: "v9", Weight: 100}}}},
		},
	}
	s := mustTranslate(t, reviewsOnly(route))
	cla := get[*endpointv3.ClusterLoadAssignment](t, s.ByName, resource.EndpointType, "outbound|9080|v9|reviews.default.svc.cluster.local")
	if len(cla.Endpoints) != 1 {
		t.Fatalf("got %d localities, want 1", len(cla.Endpoints))
	}
	loc := cla.Endpoints[0]
	if loc.Locality == nil || loc.GetLoadBalancingWeight().GetValue() < 1 || len(loc.LbEndpoints) != 0 {
		t.Errorf("locality = %v, want a locality with weight >= 1 and no endpoints", loc)
	}
	get[*clusterv3.Cluster](t, s.ByName, resource.ClusterType, "outbound|9080|v9|reviews.default.svc.cluster.local")
}

func TestTCPPort(t *testing.T) {
	s := mustTranslate(t, bookinfoMesh())
	const cluster = "outbound|27017||mongodb.default.svc.cluster.local"
	t.Run("proxyless clients get nothing for it but the endpoints", func(t *testing.T) {
		for _, name := range []string{"mongodb.default.svc.cluster.local:27017", "mongodb.default:27017"} {
			if _, ok := s.ByName[resource.ListenerType][name]; ok {
				t.Errorf("proxyless listener %s exists for a TCP port", name)
			}
		}
		if _, ok := s.ByName[resource.ClusterType][cluster]; ok {
			t.Errorf("proxyless cluster %s exists for a TCP port", cluster)
		}
		get[*endpointv3.ClusterLoadAssignment](t, s.ByName, resource.EndpointType, cluster)
	})
	t.Run("sidecars proxy it to the service cluster", func(t *testing.T) {
		l := get[*listenerv3.Listener](t, s.Sidecars[""], resource.ListenerType, "0.0.0.0_27017")
		f := l.FilterChains[0].Filters[0]
		tp := unpack(t, f.GetTypedConfig(), &tcpproxyv3.TcpProxy{})
		if tp.GetCluster() != cluster {
			t.Errorf("tcp_proxy cluster = %q, want %q", tp.GetCluster(), cluster)
		}
		if len(tp.AccessLog) != 1 || tp.AccessLog[0].Name != tcpGRPCLoggerName {
			t.Errorf("tcp_proxy access log = %v, want the tcp_grpc logger", tp.AccessLog)
		}
		get[*clusterv3.Cluster](t, s.Sidecars[""], resource.ClusterType, cluster)
	})
	t.Run("the workload's inbound side proxies TCP to the app, over mTLS or plaintext", func(t *testing.T) {
		l := get[*listenerv3.Listener](t, s.Sidecars["default/mongodb-v1"], resource.ListenerType, VirtualInboundListener)
		// PERMISSIVE by default: one chain for TLS, one for the rest.
		if n := len(l.FilterChains); n != 2 {
			t.Fatalf("%d inbound chains, want 2", n)
		}
		for _, c := range l.FilterChains {
			tp := unpack(t, c.Filters[0].GetTypedConfig(), &tcpproxyv3.TcpProxy{})
			if tp.GetCluster() != "inbound|27017||" {
				t.Errorf("inbound tcp_proxy cluster = %q", tp.GetCluster())
			}
		}
		if l.FilterChains[0].TransportSocket == nil || l.FilterChains[1].TransportSocket != nil {
			t.Errorf("want the first chain TLS and the second plaintext")
		}
	})
}

func TestHeaderRegexMatch(t *testing.T) {
	route := &model.TrafficRoute{
		Meta: meta("default", "reviews", nil),
		Spec: model.TrafficRouteSpec{
			Service: "reviews",
			Subsets: []model.Subset{{Name: "v1", Labels: map[string]string{"version": "v1"}}, {Name: "v2", Labels: map[string]string{"version": "v2"}}},
			Rules: []model.Rule{
				{
					Match:        &model.Match{Headers: map[string]model.StringMatch{"X-User": {Regex: "^test(er)?-[0-9]+$"}}, Path: &model.StringMatch{Regex: "^/reviews\\.Reviews/.*"}},
					Destinations: []model.Destination{{Subset: "v2", Weight: 100}},
				},
				{
					Match:        &model.Match{Path: &model.StringMatch{Exact: "/reviews.Reviews/Get"}},
					Destinations: []model.Destination{{Subset: "v1", Weight: 100}},
				},
			},
		},
	}
	s := mustTranslate(t, reviewsOnly(route))
	routes := get[*routev3.RouteConfiguration](t, s.ByName, resource.RouteType, reviewsRC).VirtualHosts[0].Routes
	if len(routes) != 3 {
		t.Fatalf("%d routes, want 2 rules and the catch-all", len(routes))
	}
	m := routes[0].Match
	if m.GetSafeRegex().GetRegex() != "^/reviews\\.Reviews/.*" {
		t.Errorf("path regex = %v", m.PathSpecifier)
	}
	h := m.Headers[0]
	if h.Name != "x-user" || h.GetStringMatch().GetSafeRegex().GetRegex() != "^test(er)?-[0-9]+$" {
		t.Errorf("header matcher = %v, want lower-case name and a safe_regex string match", h)
	}
	if routes[1].Match.GetPath() != "/reviews.Reviews/Get" {
		t.Errorf("exact path = %v", routes[1].Match.PathSpecifier)
	}
	if routes[2].Name != "default" || routes[2].GetRoute().GetCluster() != "outbound|9080||reviews.default.svc.cluster.local" {
		t.Errorf("unmatched requests go to %v, want the whole service", routes[2])
	}
}

func TestSidecarHTTPListenersCarryTelemetry(t *testing.T) {
	s := mustTranslate(t, bookinfoMesh())
	r := s.Sidecars["default/productpage-v1"]
	for _, name := range []string{"0.0.0.0_9080", VirtualInboundListener} {
		l := get[*listenerv3.Listener](t, r, resource.ListenerType, name)
		hcm := unpack(t, l.FilterChains[0].Filters[0].GetTypedConfig(), &hcmv3.HttpConnectionManager{})
		if names := filterNames(hcm); names[len(names)-1] != routerFilterName {
			t.Errorf("%s: last filter is %s, want the router", name, names[len(names)-1])
		}
		if len(hcm.AccessLog) != 1 || hcm.AccessLog[0].Name != httpGRPCLoggerName {
			t.Errorf("%s: access log = %v", name, hcm.AccessLog)
		}
		if !strings.Contains(hcm.GetTracing().GetProvider().GetTypedConfig().String(), "productpage") {
			t.Errorf("%s: tracing does not name the service productpage: %v", name, hcm.GetTracing())
		}
	}
	out := get[*listenerv3.Listener](t, r, resource.ListenerType, "0.0.0.0_9080")
	hcm := unpack(t, out.FilterChains[0].Filters[0].GetTypedConfig(), &hcmv3.HttpConnectionManager{})
	if got := filterNames(hcm); !reflect.DeepEqual(got, []string{faultFilterName, routerFilterName}) {
		t.Errorf("port 9080 filters = %v, want fault then router (reviews injects faults)", got)
	}
}

func TestSidecarRouteDomains(t *testing.T) {
	m := model.NewMesh(model.Objects{
		Services: []*model.Service{grpcService("a", "reviews", 9080), grpcService("b", "reviews", 9080), grpcService("a", "ratings", 9080)},
	})
	s := mustTranslate(t, m)
	rc := get[*routev3.RouteConfiguration](t, s.ByName, resource.RouteType, "9080")
	got := map[string][]string{}
	for _, vh := range rc.VirtualHosts {
		got[vh.Name] = vh.Domains
	}
	want := map[string][]string{
		"ratings.a.svc.cluster.local:9080": {"ratings", "ratings:9080", "ratings.a", "ratings.a:9080", "ratings.a.svc.cluster.local", "ratings.a.svc.cluster.local:9080"},
		"reviews.a.svc.cluster.local:9080": {"reviews.a", "reviews.a:9080", "reviews.a.svc.cluster.local", "reviews.a.svc.cluster.local:9080"},
		"reviews.b.svc.cluster.local:9080": {"reviews.b", "reviews.b:9080", "reviews.b.svc.cluster.local", "reviews.b.svc.cluster.local:9080"},
		"allow_any":                        {"*"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("domains = %v\nwant %v (an ambiguous short name is left out)", got, want)
	}
}

func TestTranslateRejects(t *testing.T) {
	rule := func(r model.Rule) *model.Mesh {
		return reviewsOnly(&model.TrafficRoute{
			Meta: meta("default", "reviews", nil),
			Spec: model.TrafficRouteSpec{
				Service: "reviews",
				Subsets: []model.Subset{{Name: "v1", Labels: map[string]string{"version": "v1"}}},
				Rules:   []model.Rule{r},
			},
		})
	}
	v1 := []model.Destination{{Subset: "v1", Weight: 100}}
	for _, tc := range []struct {
		name string
		mesh *model.Mesh
		want string
	}{
		{"an unknown subset", rule(model.Rule{Destinations: []model.Destination{{Subset: "v7", Weight: 100}}}), `unknown subset "v7"`},
		{"a header regex that is not RE2", rule(model.Rule{Match: &model.Match{Headers: map[string]model.StringMatch{"x": {Regex: "(?!x)"}}}, Destinations: v1}), "header x: regex"},
		{"an unknown gRPC status", rule(model.Rule{Destinations: v1, Fault: &model.Fault{Abort: &model.FaultAbort{Percent: 1, GRPCStatus: "BROKEN"}}}), `unknown gRPC status "BROKEN"`},
		{"an abort without a status", rule(model.Rule{Destinations: v1, Fault: &model.Fault{Abort: &model.FaultAbort{Percent: 1}}}), "needs httpStatus or grpcStatus"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Translate(tc.mesh, Options{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestFaultPercentages(t *testing.T) {
	for _, tc := range []struct {
		percent float64
		want    *typev3.FractionalPercent
	}{
		{0, &typev3.FractionalPercent{Numerator: 0}},
		{25, &typev3.FractionalPercent{Numerator: 25}},
		{100, &typev3.FractionalPercent{Numerator: 100}},
		{0.5, &typev3.FractionalPercent{Numerator: 5000, Denominator: typev3.FractionalPercent_MILLION}},
		{0.0001, &typev3.FractionalPercent{Numerator: 1, Denominator: typev3.FractionalPercent_MILLION}},
	} {
		if got := fraction(tc.percent); !proto.Equal(got, tc.want) {
			t.Errorf("fraction(%v) = %v, want %v", tc.percent, got, tc.want)
		}
	}
}

func TestTranslateIsDeterministic(t *testing.T) {
	a, b := mustTranslate(t, bookinfoMesh()), mustTranslate(t, bookinfoMesh())
	ja, _ := json.Marshal(render(t, a.ByName))
	jb, _ := json.Marshal(render(t, b.ByName))
	if string(ja) != string(jb) {
		t.Error("two translations of one mesh differ")
	}
}

func TestEmptyMesh(t *testing.T) {
	s := mustTranslate(t, model.Empty())
	if len(s.ByName) != 0 {
		t.Errorf("empty mesh gives by-name resources: %v", s.ByName)
	}
	if _, ok := s.Sidecars[""][resource.ListenerType][VirtualOutboundListener]; !ok {
		t.Error("unknown sidecars get no virtualOutbound listener")
	}
}

func TestReferencesResolve(t *testing.T) {
	for name, m := range map[string]*model.Mesh{
		"bookinfo":      bookinfoMesh(),
		"no route":      reviewsOnly(nil),
		"shared ports":  model.NewMesh(model.Objects{Services: []*model.Service{grpcService("a", "reviews", 9080), grpcService("b", "reviews", 9080)}}),
		"an empty mesh": model.Empty(),
	} {
		t.Run(name, func(t *testing.T) {
			if err := mustTranslate(t, m).CheckReferences(); err != nil {
				t.Fatal(err)
			}
		})
	}
	t.Run("a missing cluster is reported", func(t *testing.T) {
		s := mustTranslate(t, bookinfoMesh())
		delete(s.ByName[resource.ClusterType], "outbound|9080|v2|reviews.default.svc.cluster.local")
		err := s.CheckReferences()
		if err == nil || !strings.Contains(err.Error(), `cluster "outbound|9080|v2|reviews.default.svc.cluster.local"`) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("a view that passed before fails once a name it needs is gone", func(t *testing.T) {
		s := mustTranslate(t, bookinfoMesh())
		var c RefCache
		if err := s.CheckReferencesWith(&c); err != nil {
			t.Fatal(err)
		}
		// The same views (the very maps that passed), but the sidecars'
		// route configuration "9080" is gone from ByName.
		next := &Snapshot{ByName: maps.Clone(s.ByName), Sidecars: s.Sidecars}
		next.ByName[resource.RouteType] = maps.Clone(s.ByName[resource.RouteType])
		delete(next.ByName[resource.RouteType], "9080")
		err := next.CheckReferencesWith(&c)
		if err == nil || !strings.Contains(err.Error(), "sidecar") || !strings.Contains(err.Error(), `"9080"`) {
			t.Fatalf("err = %v, want the sidecars' missing route configuration 9080", err)
		}
		// And a new view map is checked even when the names are all there.
		if err := s.CheckReferencesWith(&c); err != nil {
			t.Fatal(err)
		}
		bad := maps.Clone(s.Sidecars)
		view := maps.Clone(bad[""])
		view[resource.ClusterType] = maps.Clone(view[resource.ClusterType])
		for name := range view[resource.ClusterType] {
			if strings.HasPrefix(name, "outbound|9080|") && strings.Contains(name, "reviews") {
				delete(view[resource.ClusterType], name)
			}
		}
		bad[""] = view
		if err := (&Snapshot{ByName: s.ByName, Sidecars: bad}).CheckReferencesWith(&c); err == nil || !strings.Contains(err.Error(), "reviews") {
			t.Fatalf("err = %v, want the view's missing reviews cluster", err)
		}
	})
	t.Run("a missing load assignment is reported", func(t *testing.T) {
		s := mustTranslate(t, bookinfoMesh())
		delete(s.ByName[resource.EndpointType], "outbound|27017||mongodb.default.svc.cluster.local")
		err := s.CheckReferences()
		if err == nil || !strings.Contains(err.Error(), `load assignment "outbound|27017||mongodb.default.svc.cluster.local"`) {
			t.Fatalf("err = %v", err)
		}
	})
}
