package source

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/glassmesh/glassmesh/control/model"
	"github.com/glassmesh/glassmesh/control/source/internal/unstr"
)

// Gateway API HTTPRoutes (mesh mode) as TrafficRoutes; see import.go.

// httpRouteRoutes imports a Gateway API HTTPRoute in mesh mode (GAMMA): one
// TrafficRoute per parentRef of kind Service in the route's namespace,
// named httproute-<name> (httproute-<name>-<service> when there are
// several). A route with only Gateway parents is not the mesh's: nil, and
// no diagnostics. Each match of each rule is one glassmesh rule with the
// rule's backends; rules are ordered by Gateway API precedence (exact path,
// then regular expression, then the longest prefix, then the most header
// matches; then as written), since glassmesh takes the first rule that
// matches. PathPrefix matches whole path elements, so "/api" becomes the
// regex /api(/.*)? (a regex matches the whole path).
//
// Errors (the route would send requests elsewhere than the object says):
// backends that are not Services of the route's namespace, or not found,
// or without a selector; method and query parameter matches (leaving them
// out would widen the rule); the filters RequestRedirect, URLRewrite and
// unknown ones; a request timeout that is not a duration.
// Warnings (the route is imported without the feature): filters that only
// change headers or mirror, backendRequest timeouts, retry and session
// persistence, a parent port (the route then applies to every port),
// backend ports differing from it, and parents in other namespaces
// (consumer routes, ignored).
func httpRouteRoutes(obj map[string]any, o model.Origin, sel selectorOf) ([]*model.TrafficRoute, []model.Diagnostic, []model.Diagnostic) {
	im := &importer{o: o}
	ns, name := objectMeta(obj)
	var parents []string
	var parentPort int64
	for i, p := range unstr.List(obj, "spec", "parentRefs") {
		at := fmt.Sprintf("spec.parentRefs[%d]", i)
		if unstr.String(p, "kind") != "Service" || (unstr.String(p, "group") != "" && unstr.String(p, "group") != "core") {
			continue
		}
		if pns := unstr.String(p, "namespace"); pns != "" && pns != ns {
			im.warnf(at+".namespace", "a route for a Service of another namespace (a consumer route) is not supported: ignored")
			continue
		}
		if port, present, _ := unstr.Integer(p, "port"); present {
			im.warnf(at+".port", "glassmesh routes every port of a service: the route applies to all ports of %s, not only %d", unstr.String(p, "name"), port)
			parentPort = port
		}
		if svc := unstr.String(p, "name"); svc != "" && !slices.Contains(parents, svc) {
			parents = append(parents, svc)
		}
	}
	if len(parents) == 0 {
		return nil, nil, im.warns
	}
	var out []*model.TrafficRoute
	for i, svc := range parents {
		// Only a rule without backends depends on the parent: report
		// the rest once.
		pim := im
		if i > 0 {
			pim = &importer{o: o}
		}
		r := pim.httpRoute(obj, ns, svc, parentPort, sel)
		for _, e := range pim.errs {
			if pim != im && !slices.Contains(im.errs, e) {
				im.errs = append(im.errs, e)
			}
		}
		if r == nil {
			continue
		}
		r.Name = "httproute-" + name
		if len(parents) > 1 {
			r.Name += "-" + svc
		}
		out = append(out, r)
	}
	if len(im.errs) > 0 {
		return nil, im.errs, im.warns
	}
	return out, im.errs, im.warns
}

// httpRoute imports the rules of an HTTPRoute for one parent service; nil
// when there are errors.
func (im *importer) httpRoute(obj map[string]any, ns, parent string, parentPort int64, sel selectorOf) *model.TrafficRoute {
	b := &backends{namespace: ns, sel: sel}
	var rules []rankedRule
	for i, rule := range unstr.List(obj, "spec", "rules") {
		rules = append(rules, im.httpRule(fmt.Sprintf("spec.rules[%d]", i), rule, b, parent, parentPort)...)
	}
	if len(unstr.List(obj, "spec", "rules")) == 0 {
		// An HTTPRoute without rules sends everything to the parent.
		rules = im.httpRule("spec.rules", map[string]any{}, b, parent, parentPort)
	}
	if len(im.errs) > 0 {
		return nil
	}
	slices.SortStableFunc(rules, func(a, b rankedRule) int { return a.rank.compare(b.rank) })
	r := &model.TrafficRoute{
		Meta:   model.Meta{Namespace: ns},
		Spec:   model.TrafficRouteSpec{Service: parent, Subsets: b.subsets},
		Origin: im.o,
	}
	for _, rr := range rules {
		r.Spec.Rules = append(r.Spec.Rules, rr.rule)
	}
	return r
}

// rank is a match's Gateway API precedence: lower ranks first.
type rank struct {
	pathKind  int // 0 exact, 1 regular expression, 2 prefix
	prefixLen int
	headers   int
}

func (a rank) compare(b rank) int {
	switch {
	case a.pathKind != b.pathKind:
		return a.pathKind - b.pathKind
	case a.prefixLen != b.prefixLen:
		return b.prefixLen - a.prefixLen
	}
	return b.headers - a.headers
}

type rankedRule struct {
	rule model.Rule
	rank rank
}

// httpRule imports one rule of an HTTPRoute: one glassmesh rule per match.
// A rule without backendRefs routes to the parent Service, as mesh
// implementations of GAMMA (Istio) do.
func (im *importer) httpRule(at string, rule any, b *backends, parent string, parentPort int64) []rankedRule {
	im.filters(at+".filters", unstr.List(rule, "filters"))
	for _, f := range []string{"retry", "sessionPersistence"} {
		if unstr.Field(rule, f) != nil {
			im.warnf(at+"."+f, "not supported: ignored")
		}
	}
	var base model.Rule
	if t := unstr.String(rule, "timeouts", "request"); t != "" {
		d, err := time.ParseDuration(t)
		if err != nil || d < 0 {
			im.errorf(at+".timeouts.request", "%q is not a duration such as 10s", t)
		}
		base.Timeout = model.Duration{Duration: d}
	}
	if unstr.Field(rule, "timeouts", "backendRequest") != nil {
		im.warnf(at+".timeouts.backendRequest", "not supported: ignored")
	}
	var ws []weighted
	for j, ref := range unstr.List(rule, "backendRefs") {
		rat := fmt.Sprintf("%s.backendRefs[%d]", at, j)
		if w, ok := im.backendRef(rat, ref, b, parentPort); ok {
			ws = addWeight(ws, unstr.String(ref, "name"), w)
		}
	}
	if len(unstr.List(rule, "backendRefs")) == 0 {
		if !b.subset(im, at, parent) {
			return nil
		}
		ws = []weighted{{subset: parent, weight: 1}}
	}
	if len(ws) == 0 {
		return nil
	}
	base.Destinations, base.Fault = destinations(im, at+".backendRefs", ws)
	matches := unstr.List(rule, "matches")
	if len(matches) == 0 {
		return []rankedRule{{rule: base, rank: rank{pathKind: 2, prefixLen: 1}}}
	}
	out := make([]rankedRule, 0, len(matches))
	for k, m := range matches {
		r := base
		var rk rank
		r.Match, rk = im.httpMatch(fmt.Sprintf("%s.matches[%d]", at, k), m)
		out = append(out, rankedRule{rule: r, rank: rk})
	}
	return out
}

// backendRef reads one backendRef of a rule, adding its subset; false when
// it is wrong (reported).
func (im *importer) backendRef(at string, ref any, b *backends, parentPort int64) (int64, bool) {
	if g, k := unstr.String(ref, "group"), unstr.String(ref, "kind"); (g != "" && g != "core") || (k != "" && k != "Service") {
		im.errorf(at, "backend %s %s is not a core Service: only Services can be subsets", k, unstr.String(ref, "name"))
		return 0, false
	}
	if bns := unstr.String(ref, "namespace"); bns != "" && bns != b.namespace {
		im.errorf(at+".namespace", "a backend in another namespace (%s) is not supported: a destination must be a subset of the routed service", bns)
		return 0, false
	}
	if port, present, _ := unstr.Integer(ref, "port"); present && parentPort != 0 && port != parentPort {
		im.warnf(at+".port", "port %d differs from the parent's %d: requests keep the port they were sent to", port, parentPort)
	}
	im.filters(at+".filters", unstr.List(ref, "filters"))
	w, present, ok := unstr.Integer(ref, "weight")
	if !present {
		w = 1
	} else if !ok || w < 0 {
		im.errorf(at+".weight", "want a non-negative integer")
		return 0, false
	}
	name := unstr.String(ref, "name")
	if name == "" {
		im.errorf(at+".name", "required: a Service name")
		return 0, false
	}
	return w, b.subset(im, at+".name", name)
}

// filters reports the filters of a rule or backend, which glassmesh does
// not apply.
func (im *importer) filters(at string, fs []any) {
	for i, f := range fs {
		fat := fmt.Sprintf("%s[%d]", at, i)
		switch t := unstr.String(f, "type"); t {
		case "RequestHeaderModifier", "ResponseHeaderModifier", "RequestMirror", "CORS":
			im.warnf(fat, "filter %s is not supported: ignored", t)
		default:
			im.errorf(fat, "filter %s is not supported, and requests would go elsewhere without it", t)
		}
	}
}

// httpMatch imports one HTTPRouteMatch. A match of every path and no
// headers is nil: the rule is a default.
func (im *importer) httpMatch(at string, m any) (*model.Match, rank) {
	var out model.Match
	rk := rank{pathKind: 2, prefixLen: 1}
	typ, value := unstr.String(m, "path", "type"), unstr.String(m, "path", "value")
	if typ == "" {
		typ = "PathPrefix"
	}
	if value == "" {
		value = "/"
	}
	switch typ {
	case "Exact":
		out.Path = &model.StringMatch{Exact: value}
		rk = rank{pathKind: 0}
	case "RegularExpression":
		out.Path = &model.StringMatch{Regex: value}
		rk = rank{pathKind: 1}
	case "PathPrefix":
		p := strings.TrimRight(value, "/")
		rk.prefixLen = len(p) + 1
		if p != "" {
			out.Path = &model.StringMatch{Regex: regexp.QuoteMeta(p) + "(/.*)?"}
		}
	default:
		im.errorf(at+".path.type", "unknown path match type %s", typ)
	}
	for i, h := range unstr.List(m, "headers") {
		hat := fmt.Sprintf("%s.headers[%d]", at, i)
		name := strings.ToLower(unstr.String(h, "name"))
		if _, dup := out.Headers[name]; dup {
			continue // Gateway API: the first match of a header wins
		}
		var sm model.StringMatch
		switch t := unstr.String(h, "type"); t {
		case "", "Exact":
			sm.Exact = unstr.String(h, "value")
		case "RegularExpression":
			sm.Regex = unstr.String(h, "value")
		default:
			im.errorf(hat+".type", "unknown header match type %s", t)
		}
		if out.Headers == nil {
			out.Headers = map[string]model.StringMatch{}
		}
		out.Headers[name] = sm
	}
	rk.headers = len(out.Headers)
	for _, f := range []string{"method", "queryParams"} {
		if unstr.Field(m, f) != nil {
			im.errorf(at+"."+f, "%s matches are not supported, and leaving them out would route more requests by this rule", f)
		}
	}
	if out.Path == nil && len(out.Headers) == 0 {
		return nil, rk
	}
	return &out, rk
}
