package source

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/glassmesh/glassmesh/control/model"
)

// How routes users already have in other APIs become TrafficRoutes, read
// only: Gateway API HTTPRoutes bound to a Service (GAMMA, mesh mode) and
// SMI TrafficSplits. Pure functions of the objects (JSON-like maps, as
// unstructured objects and model.Manifest hold them), so the Kubernetes
// source and `glassmesh validate` share them.
//
// Destinations in glassmesh are subsets of the routed service: a backend
// Service becomes a subset named after it, picked by that Service's
// selector (the routed service itself as a backend picks all its
// workloads). Imports that would route differently from what the object
// says are errors, so they block the config like an invalid TrafficRoute
// (the last good config, with the route as it was, keeps serving); what
// only leaves out a side effect (header changes, mirroring) is a warning.

// Resources imported from other APIs, by group and plural.
const (
	gatewayGroup     = "gateway.networking.k8s.io"
	smiSplitGroup    = "split.smi-spec.io"
	httpRoutesPlural = "httproutes"
	splitsPlural     = "trafficsplits"
)

// importedResources are the group/plural of each imported resource.
var importedResources = map[string]string{httpRoutesPlural: gatewayGroup, splitsPlural: smiSplitGroup}

// selectorOf returns the selector of the core Service namespace/name; ok
// is false when there is no such Service.
type selectorOf func(namespace, name string) (selector map[string]string, ok bool)

// imported is one TrafficRoute made from another API's object.
type imported struct {
	route *model.TrafficRoute
	// created orders imports for one service: the oldest wins.
	created time.Time
}

// importer collects the diagnostics of one object's import.
type importer struct {
	o           model.Origin
	errs, warns []model.Diagnostic
}

func (im *importer) errorf(path, format string, args ...any) {
	im.errs = append(im.errs, model.Diagnostic{File: im.o.File, Line: im.o.LineOf(path), Path: path, Message: fmt.Sprintf(format, args...)})
}

func (im *importer) warnf(path, format string, args ...any) {
	im.warns = append(im.warns, model.Diagnostic{File: im.o.File, Line: im.o.LineOf(path), Path: path, Message: fmt.Sprintf(format, args...)})
}

// backends collects a route's subsets, one per backend Service.
type backends struct {
	namespace string
	sel       selectorOf
	subsets   []model.Subset
}

// subset returns the subset name of backend Service name, adding it on
// first use; false when the Service cannot be a subset (reported).
func (b *backends) subset(im *importer, path, name string) bool {
	if slices.ContainsFunc(b.subsets, func(s model.Subset) bool { return s.Name == name }) {
		return true
	}
	sel, ok := b.sel(b.namespace, name)
	switch {
	case !ok:
		im.errorf(path, "Service %s not found in namespace %s", name, b.namespace)
		return false
	case len(sel) == 0:
		im.errorf(path, "Service %s has no selector, so it cannot be a subset of the routed service's workloads", name)
		return false
	}
	b.subsets = append(b.subsets, model.Subset{Name: name, Labels: sel})
	return true
}

// weighted is one backend of a rule before weights become percentages.
type weighted struct {
	subset string
	weight int64
}

// destinations turns relative weights into percentages summing to 100
// (largest remainder, earlier backends first on ties), keeping zero
// weights. All weights zero means Gateway API's "no backend": every request
// gets 500, as a fault abort.
func destinations(im *importer, path string, ws []weighted) ([]model.Destination, *model.Fault) {
	var total int64
	for _, w := range ws {
		total += w.weight
	}
	if total == 0 {
		im.warnf(path, "every backend has weight 0: requests are answered 500, as Gateway API says")
		return []model.Destination{{Subset: ws[0].subset, Weight: 100}}, &model.Fault{Abort: &model.FaultAbort{Percent: 100, HTTPStatus: 500}}
	}
	out := make([]model.Destination, len(ws))
	rems := make([]int64, len(ws))
	left := uint32(100)
	for i, w := range ws {
		out[i] = model.Destination{Subset: w.subset, Weight: uint32(100 * w.weight / total)}
		rems[i] = 100 * w.weight % total
		left -= out[i].Weight
	}
	order := make([]int, len(ws))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		switch {
		case rems[a] > rems[b]:
			return -1
		case rems[a] < rems[b]:
			return 1
		}
		return 0
	})
	for _, i := range order[:left] {
		out[i].Weight++
	}
	for i, w := range ws {
		if w.weight > 0 && out[i].Weight == 0 {
			im.warnf(path, "backend %s has weight %d of %d, which rounds to 0%%", w.subset, w.weight, total)
		}
	}
	return out, nil
}

// str reads a string field of a JSON-like object ("" when absent).
func str(obj any, keys ...string) string {
	s, _ := field(obj, keys...).(string)
	return s
}

// list reads a list field of a JSON-like object.
func list(obj any, keys ...string) []any {
	l, _ := field(obj, keys...).([]any)
	return l
}

func field(obj any, keys ...string) any {
	for _, k := range keys {
		m, ok := obj.(map[string]any)
		if !ok {
			return nil
		}
		obj = m[k]
	}
	return obj
}

// integer reads an integer field; ok is false when it is absent or not a
// whole number.
func integer(obj any, keys ...string) (n int64, present, ok bool) {
	switch v := field(obj, keys...).(type) {
	case nil:
		return 0, false, true
	case int64:
		return v, true, true
	case int:
		return int64(v), true, true
	case float64:
		return int64(v), true, v == float64(int64(v))
	}
	return 0, true, false
}

func objectMeta(obj map[string]any) (namespace, name string) {
	namespace = str(obj, "metadata", "namespace")
	if namespace == "" {
		namespace = model.DefaultNamespace
	}
	return namespace, str(obj, "metadata", "name")
}

// importObject imports an HTTPRoute (httpRoute) or a TrafficSplit.
func importObject(httpRoute bool, obj map[string]any, o model.Origin, sel selectorOf) ([]*model.TrafficRoute, []model.Diagnostic, []model.Diagnostic) {
	if httpRoute {
		return httpRouteRoutes(obj, o, sel)
	}
	r, errs, warns := trafficSplitRoute(obj, o, sel)
	if r == nil {
		return nil, errs, warns
	}
	return []*model.TrafficRoute{r}, errs, warns
}

// trafficSplitRoute imports an SMI TrafficSplit (any version): spec.service
// (a name or an FQDN, whose first label names the service) gets one rule
// splitting all its traffic over spec.backends by weight (integers, or in
// v1alpha1 quantities such as 500m). spec.matches (HTTPRouteGroup
// references) are left out with a warning: the split then applies to every
// request, as SMI adaptors without HTTPRouteGroup support do.
func trafficSplitRoute(obj map[string]any, o model.Origin, sel selectorOf) (*model.TrafficRoute, []model.Diagnostic, []model.Diagnostic) {
	im := &importer{o: o}
	ns, name := objectMeta(obj)
	root, _, _ := strings.Cut(str(obj, "spec", "service"), ".")
	if root == "" {
		im.errorf("spec.service", "required: the root service that clients call")
		return nil, im.errs, im.warns
	}
	if len(list(obj, "spec", "matches")) > 0 {
		im.warnf("spec.matches", "HTTPRouteGroup matches are not supported: the split applies to every request")
	}
	b := &backends{namespace: ns, sel: sel}
	var ws []weighted
	for i, be := range list(obj, "spec", "backends") {
		at := fmt.Sprintf("spec.backends[%d]", i)
		svc := str(be, "service")
		if svc == "" {
			im.errorf(at+".service", "required: a Service name")
			continue
		}
		w, ok := splitWeight(field(be, "weight"))
		if !ok {
			im.errorf(at+".weight", "want a non-negative integer weight")
			continue
		}
		if b.subset(im, at+".service", svc) {
			ws = addWeight(ws, svc, w)
		}
	}
	if len(list(obj, "spec", "backends")) == 0 {
		im.errorf("spec.backends", "at least one backend is required")
	}
	if len(im.errs) > 0 {
		return nil, im.errs, im.warns
	}
	dests, fault := destinations(im, "spec.backends", ws)
	r := &model.TrafficRoute{
		Meta:   model.Meta{Name: "trafficsplit-" + name, Namespace: ns},
		Spec:   model.TrafficRouteSpec{Service: root, Subsets: b.subsets, Rules: []model.Rule{{Destinations: dests, Fault: fault}}},
		Origin: o,
	}
	return r, im.errs, im.warns
}

// splitWeight reads an SMI weight: an integer, or a quantity string
// (v1alpha1), in thousandths then.
func splitWeight(v any) (int64, bool) {
	switch w := v.(type) {
	case nil:
		return 0, true
	case string:
		q, err := resource.ParseQuantity(w)
		if err != nil || q.Sign() < 0 {
			return 0, false
		}
		return q.MilliValue(), true
	}
	n, _, ok := integer(map[string]any{"w": v}, "w")
	return n, ok && n >= 0
}

// addWeight adds weight to subset's entry, so a backend named twice in one
// rule is one destination.
func addWeight(ws []weighted, subset string, w int64) []weighted {
	for i := range ws {
		if ws[i].subset == subset {
			ws[i].weight += w
			return ws
		}
	}
	return append(ws, weighted{subset, w})
}

// mergeImported adds the imported routes to objs, one per service: a
// native TrafficRoute for the same service wins over any import, and among
// imports the oldest object wins (then the first by origin), as Gateway
// API resolves conflicts. Each dropped import is a warning naming both.
func mergeImported(objs *model.Objects, imports []imported) []model.Diagnostic {
	slices.SortStableFunc(imports, func(a, b imported) int {
		if c := a.created.Compare(b.created); c != 0 {
			return c
		}
		return strings.Compare(a.route.Origin.File, b.route.Origin.File)
	})
	owner := map[string]*model.TrafficRoute{}
	for _, r := range objs.Routes {
		ns := r.Namespace
		if ns == "" {
			ns = model.DefaultNamespace
		}
		if _, ok := owner[ns+"/"+r.Spec.Service]; !ok {
			owner[ns+"/"+r.Spec.Service] = r
		}
	}
	var warns []model.Diagnostic
	for _, im := range imports {
		r := im.route
		key := r.Namespace + "/" + r.Spec.Service
		if first, ok := owner[key]; ok {
			warns = append(warns, model.Diagnostic{File: r.Origin.File, Line: r.Origin.Line, Message: fmt.Sprintf(
				"not imported: service %s already has TrafficRoute %s (from %s), which wins", key, first.Key(), describeOrigin(first.Origin))})
			continue
		}
		owner[key] = r
		objs.Routes = append(objs.Routes, r)
	}
	return warns
}

func describeOrigin(o model.Origin) string {
	if o.Line > 0 {
		return fmt.Sprintf("%s:%d", o.File, o.Line)
	}
	return o.File
}

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
	for i, p := range list(obj, "spec", "parentRefs") {
		at := fmt.Sprintf("spec.parentRefs[%d]", i)
		if str(p, "kind") != "Service" || (str(p, "group") != "" && str(p, "group") != "core") {
			continue
		}
		if pns := str(p, "namespace"); pns != "" && pns != ns {
			im.warnf(at+".namespace", "a route for a Service of another namespace (a consumer route) is not supported: ignored")
			continue
		}
		if port, present, _ := integer(p, "port"); present {
			im.warnf(at+".port", "glassmesh routes every port of a service: the route applies to all ports of %s, not only %d", str(p, "name"), port)
			parentPort = port
		}
		if svc := str(p, "name"); svc != "" && !slices.Contains(parents, svc) {
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
	for i, rule := range list(obj, "spec", "rules") {
		rules = append(rules, im.httpRule(fmt.Sprintf("spec.rules[%d]", i), rule, b, parent, parentPort)...)
	}
	if len(list(obj, "spec", "rules")) == 0 {
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
	im.filters(at+".filters", list(rule, "filters"))
	for _, f := range []string{"retry", "sessionPersistence"} {
		if field(rule, f) != nil {
			im.warnf(at+"."+f, "not supported: ignored")
		}
	}
	var base model.Rule
	if t := str(rule, "timeouts", "request"); t != "" {
		d, err := time.ParseDuration(t)
		if err != nil || d < 0 {
			im.errorf(at+".timeouts.request", "%q is not a duration such as 10s", t)
		}
		base.Timeout = model.Duration{Duration: d}
	}
	if field(rule, "timeouts", "backendRequest") != nil {
		im.warnf(at+".timeouts.backendRequest", "not supported: ignored")
	}
	var ws []weighted
	for j, ref := range list(rule, "backendRefs") {
		rat := fmt.Sprintf("%s.backendRefs[%d]", at, j)
		if w, ok := im.backendRef(rat, ref, b, parentPort); ok {
			ws = addWeight(ws, str(ref, "name"), w)
		}
	}
	if len(list(rule, "backendRefs")) == 0 {
		if !b.subset(im, at, parent) {
			return nil
		}
		ws = []weighted{{subset: parent, weight: 1}}
	}
	if len(ws) == 0 {
		return nil
	}
	base.Destinations, base.Fault = destinations(im, at+".backendRefs", ws)
	matches := list(rule, "matches")
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
	if g, k := str(ref, "group"), str(ref, "kind"); (g != "" && g != "core") || (k != "" && k != "Service") {
		im.errorf(at, "backend %s %s is not a core Service: only Services can be subsets", k, str(ref, "name"))
		return 0, false
	}
	if bns := str(ref, "namespace"); bns != "" && bns != b.namespace {
		im.errorf(at+".namespace", "a backend in another namespace (%s) is not supported: a destination must be a subset of the routed service", bns)
		return 0, false
	}
	if port, present, _ := integer(ref, "port"); present && parentPort != 0 && port != parentPort {
		im.warnf(at+".port", "port %d differs from the parent's %d: requests keep the port they were sent to", port, parentPort)
	}
	im.filters(at+".filters", list(ref, "filters"))
	w, present, ok := integer(ref, "weight")
	if !present {
		w = 1
	} else if !ok || w < 0 {
		im.errorf(at+".weight", "want a non-negative integer")
		return 0, false
	}
	name := str(ref, "name")
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
		switch t := str(f, "type"); t {
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
	typ, value := str(m, "path", "type"), str(m, "path", "value")
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
	for i, h := range list(m, "headers") {
		hat := fmt.Sprintf("%s.headers[%d]", at, i)
		name := strings.ToLower(str(h, "name"))
		if _, dup := out.Headers[name]; dup {
			continue // Gateway API: the first match of a header wins
		}
		var sm model.StringMatch
		switch t := str(h, "type"); t {
		case "", "Exact":
			sm.Exact = str(h, "value")
		case "RegularExpression":
			sm.Regex = str(h, "value")
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
		if field(m, f) != nil {
			im.errorf(at+"."+f, "%s matches are not supported, and leaving them out would route more requests by this rule", f)
		}
	}
	if out.Path == nil && len(out.Headers) == 0 {
		return nil, rk
	}
	return &out, rk
}
