package translate

import (
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	faultcommonv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/common/fault/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/glassmesh/glassmesh/control/model"
)

const (
	faultFilterName  = "envoy.filters.http.fault"
	routerFilterName = "envoy.filters.http.router"
	// defaultRetryOn is Istio's default, minus its status-code list: only
	// failures where the request surely did not reach the app.
	defaultRetryOn = "connect-failure,refused-stream,unavailable,cancelled"
)

// routes are the routes of a service port, in rule order (first match
// wins). Requests that no rule matches go to the whole service, so a route
// always ends with a catch-all.
func (t *translator) routes(sp servicePort) ([]*routev3.Route, error) {
	whole := ClusterName(sp.svc, sp.port.Port, "")
	if sp.route == nil || len(sp.route.Spec.Rules) == 0 {
		return []*routev3.Route{defaultRoute(whole)}, nil
	}
	if err := checkSubsets(sp); err != nil {
		return nil, err
	}
	var out []*routev3.Route
	caught := false
	for i, rule := range sp.route.Spec.Rules {
		r, err := ruleRoute(sp, i, rule)
		if err != nil {
			return nil, fmt.Errorf("%s: rule %d: %w", sp.route.Key(), i, err)
		}
		out = append(out, r)
		if catchAll(rule.Match) {
			caught = true
			if i < len(sp.route.Spec.Rules)-1 {
				t.warnf("%s: rule %d matches every request; the rules after it are never used", sp.route.Key(), i)
			}
			break
		}
	}
	if !caught {
		out = append(out, defaultRoute(whole))
	}
	return out, nil
}

// catchAll says whether a match takes every request.
func catchAll(m *model.Match) bool {
	return m == nil || len(m.Headers) == 0 && (m.Path == nil || *m.Path == model.StringMatch{Prefix: "/"})
}

func defaultRoute(cluster string) *routev3.Route {
	return &routev3.Route{
		Name:  "default",
		Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
		Action: &routev3.Route_Route{Route: &routev3.RouteAction{
			ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: cluster},
			Timeout:          durationpb.New(0), // Envoy's 15 s default would cut streams
		}},
	}
}

func ruleRoute(sp servicePort, i int, rule model.Rule) (*routev3.Route, error) {
	match, err := routeMatch(rule.Match)
	if err != nil {
		return nil, err
	}
	if len(rule.Destinations) == 0 {
		return nil, fmt.Errorf("no destinations")
	}
	action := &routev3.RouteAction{Timeout: durationpb.New(rule.Timeout.Duration)}
	if len(rule.Destinations) == 1 {
		action.ClusterSpecifier = &routev3.RouteAction_Cluster{Cluster: ClusterName(sp.svc, sp.port.Port, rule.Destinations[0].Subset)}
	} else {
		wc := &routev3.WeightedCluster{}
		for _, d := range rule.Destinations {
			wc.Clusters = append(wc.Clusters, &routev3.WeightedCluster_ClusterWeight{
				Name:   ClusterName(sp.svc, sp.port.Port, d.Subset),
				Weight: wrapperspb.UInt32(d.Weight),
			})
		}
		action.ClusterSpecifier = &routev3.RouteAction_WeightedClusters{WeightedClusters: wc}
	}
	if rule.Timeout.Duration > 0 {
		// grpc-go applies only max_stream_duration, Envoy only timeout.
		action.MaxStreamDuration = &routev3.RouteAction_MaxStreamDuration{MaxStreamDuration: durationpb.New(rule.Timeout.Duration)}
	}
	action.RetryPolicy = retryPolicy(rule.Retries)
	r := &routev3.Route{Name: "rule-" + strconv.Itoa(i), Match: match, Action: &routev3.Route_Route{Route: action}}
	if rule.Fault != nil {
		f, err := httpFault(sp, rule.Fault)
		if err != nil {
			return nil, err
		}
		r.TypedPerFilterConfig = map[string]*anypb.Any{faultFilterName: mustAny(f)}
	}
	return r, nil
}

// routeMatch is a rule's match; no path means every path ("/" prefix).
func routeMatch(m *model.Match) (*routev3.RouteMatch, error) {
	rm := &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}}
	if m == nil {
		return rm, nil
	}
	if p := m.Path; p != nil {
		switch {
		case p.Exact != "":
			rm.PathSpecifier = &routev3.RouteMatch_Path{Path: p.Exact}
		case p.Prefix != "":
			rm.PathSpecifier = &routev3.RouteMatch_Prefix{Prefix: p.Prefix}
		case p.Regex != "":
			if _, err := regexp.Compile(p.Regex); err != nil {
				return nil, fmt.Errorf("path regex: %w", err)
			}
			rm.PathSpecifier = &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: p.Regex}}
		}
	}
	names := make([]string, 0, len(m.Headers))
	for name := range m.Headers {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		sm, err := stringMatcher(m.Headers[name])
		if err != nil {
			return nil, fmt.Errorf("header %s: %w", name, err)
		}
		rm.Headers = append(rm.Headers, &routev3.HeaderMatcher{
			// grpc-go matches lower-case names only; Envoy ignores case.
			Name:                 strings.ToLower(name),
			HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: sm},
		})
	}
	return rm, nil
}

func stringMatcher(sm model.StringMatch) (*matcherv3.StringMatcher, error) {
	switch {
	case sm.Exact != "":
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: sm.Exact}}, nil
	case sm.Prefix != "":
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: sm.Prefix}}, nil
	case sm.Regex != "":
		if _, err := regexp.Compile(sm.Regex); err != nil {
			return nil, fmt.Errorf("regex: %w", err)
		}
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: sm.Regex}}}, nil
	}
	return nil, fmt.Errorf("empty match: one of exact, prefix, regex is needed")
}

// retryPolicy passes retryOn through as given (less spaces): Envoy reads its
// HTTP and gRPC conditions, grpc-go the gRPC codes and ignores the rest. Zero attempts
// means no retries (grpc-go rejects num_retries 0).
func retryPolicy(r *model.Retries) *routev3.RetryPolicy {
	if r == nil || r.Attempts == 0 {
		return nil
	}
	var conds []string
	for c := range strings.SplitSeq(r.RetryOn, ",") {
		if c = strings.TrimSpace(c); c != "" {
			conds = append(conds, c)
		}
	}
	p := &routev3.RetryPolicy{RetryOn: strings.Join(conds, ","), NumRetries: wrapperspb.UInt32(r.Attempts)}
	if p.RetryOn == "" {
		p.RetryOn = defaultRetryOn
	}
	if r.PerTryTimeout.Duration > 0 {
		p.PerTryTimeout = durationpb.New(r.PerTryTimeout.Duration)
	}
	return p
}

// httpFault is a rule's fault as the fault filter's per-route config. An
// abort with both statuses uses the gRPC one on gRPC ports.
func httpFault(sp servicePort, f *model.Fault) (*faultv3.HTTPFault, error) {
	out := &faultv3.HTTPFault{}
	if a := f.Abort; a != nil {
		abort := &faultv3.FaultAbort{Percentage: fraction(a.Percent)}
		switch {
		case a.GRPCStatus != "" && (a.HTTPStatus == 0 || sp.port.Protocol == model.ProtocolGRPC):
			code, err := grpcCode(a.GRPCStatus)
			if err != nil {
				return nil, err
			}
			abort.ErrorType = &faultv3.FaultAbort_GrpcStatus{GrpcStatus: code}
		case a.HTTPStatus != 0:
			abort.ErrorType = &faultv3.FaultAbort_HttpStatus{HttpStatus: a.HTTPStatus}
		default:
			return nil, fmt.Errorf("fault abort needs httpStatus or grpcStatus")
		}
		out.Abort = abort
	}
	if d := f.Delay; d != nil {
		out.Delay = &faultcommonv3.FaultDelay{
			FaultDelaySecifier: &faultcommonv3.FaultDelay_FixedDelay{FixedDelay: durationpb.New(d.FixedDelay.Duration)},
			Percentage:         fraction(d.Percent),
		}
	}
	return out, nil
}

// grpcCode reads a gRPC status by name ("UNAVAILABLE", "unavailable") or
// number ("14").
func grpcCode(s string) (uint32, error) {
	if n, err := strconv.ParseUint(s, 10, 32); err == nil && n <= 16 {
		return uint32(n), nil
	}
	var c codes.Code
	if err := c.UnmarshalJSON([]byte(strconv.Quote(strings.ToUpper(s)))); err != nil {
		return 0, fmt.Errorf("unknown gRPC status %q", s)
	}
	return uint32(c), nil
}

// fraction is a percentage per hundred when whole, else per million.
func fraction(percent float64) *typev3.FractionalPercent {
	percent = math.Max(0, math.Min(100, percent))
	if percent == math.Trunc(percent) {
		return &typev3.FractionalPercent{Numerator: uint32(percent), Denominator: typev3.FractionalPercent_HUNDRED}
	}
	return &typev3.FractionalPercent{Numerator: uint32(math.Round(percent * 10000)), Denominator: typev3.FractionalPercent_MILLION}
}

// usesFault says whether any rule of a route injects faults, so its
// listeners need the fault filter.
func usesFault(r *model.TrafficRoute) bool {
	if r == nil {
		return false
	}
	for _, rule := range r.Spec.Rules {
		if rule.Fault != nil {
			return true
		}
	}
	return false
}

// proxylessRouteConfig is the route configuration proxyless listeners of a
// service port point to: one virtual host answering to both listener names.
func proxylessRouteConfig(sp servicePort, routes []*routev3.Route) *routev3.RouteConfiguration {
	name := ProxylessRouteName(sp.svc, sp.port.Port)
	return &routev3.RouteConfiguration{
		Name: name,
		VirtualHosts: []*routev3.VirtualHost{{
			Name:    name,
			Domains: append(ProxylessListenerNames(sp.svc, sp.port.Port), "*"),
			Routes:  policyRoutes(sp, routes, false),
		}},
	}
}
