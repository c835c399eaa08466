package source

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/glassmesh/glassmesh/control/model"
	"github.com/glassmesh/glassmesh/control/source/internal/unstr"
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
	GatewayGroup     = "gateway.networking.k8s.io"
	smiSplitGroup    = "split.smi-spec.io"
	HTTPRoutesPlural = "httproutes"
	splitsPlural     = "trafficsplits"
)

// importedResources are the group/plural of each imported resource.
var importedResources = map[string]string{HTTPRoutesPlural: GatewayGroup, splitsPlural: smiSplitGroup}

// ImportedGroup is the API group of the imported resource plural (Gateway
// API HTTPRoutes, SMI TrafficSplits), "" for any other.
func ImportedGroup(plural string) string { return importedResources[plural] }

// ImportedOrigin is where an object of the imported resource plural came
// from, as its TrafficRoutes and diagnostics name it.
func ImportedOrigin(plural string, o metav1.Object) model.Origin {
	return KubernetesOrigin(plural+"."+importedResources[plural], o.GetNamespace(), o.GetName())
}

// RouteImports collects the TrafficRoutes made from objects of other route
// APIs, to merge into the objects read with them: a native TrafficRoute
// wins, and of several imports for one service the oldest.
type RouteImports struct {
	// Selectors are the core Services' selectors by namespace/name, which
	// pick a backend Service's workloads.
	Selectors map[string]map[string]string

	imports          []imported
	Errors, Warnings []model.Diagnostic
}

// Add imports u, an object of the imported resource plural read from the
// API server.
func (ri *RouteImports) Add(plural string, u *unstructured.Unstructured) {
	ri.add(plural == HTTPRoutesPlural, u.Object, ImportedOrigin(plural, u), u.GetCreationTimestamp().Time)
}

// add imports one object (an HTTPRoute, else a TrafficSplit) read from o,
// created at created (zero when it is not known).
func (ri *RouteImports) add(httpRoute bool, obj map[string]any, o model.Origin, created time.Time) {
	routes, e, w := importObject(httpRoute, obj, o, ri.selectorOf)
	ri.Errors, ri.Warnings = append(ri.Errors, e...), append(ri.Warnings, w...)
	for _, r := range routes {
		ri.imports = append(ri.imports, imported{route: r, created: created})
	}
}

func (ri *RouteImports) selectorOf(namespace, name string) (map[string]string, bool) {
	s, ok := ri.Selectors[namespace+"/"+name]
	return s, ok
}

// Len is how many TrafficRoutes were made.
func (ri *RouteImports) Len() int { return len(ri.imports) }

// MergeInto adds the TrafficRoutes to objs and returns warnings for those
// not taken.
func (ri *RouteImports) MergeInto(objs *model.Objects) []model.Diagnostic {
	return mergeImported(objs, ri.imports)
}

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

func objectMeta(obj map[string]any) (namespace, name string) {
	namespace = unstr.String(obj, "metadata", "namespace")
	if namespace == "" {
		namespace = model.DefaultNamespace
	}
	return namespace, unstr.String(obj, "metadata", "name")
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
	root, _, _ := strings.Cut(unstr.String(obj, "spec", "service"), ".")
	if root == "" {
		im.errorf("spec.service", "required: the root service that clients call")
		return nil, im.errs, im.warns
	}
	if len(unstr.List(obj, "spec", "matches")) > 0 {
		im.warnf("spec.matches", "HTTPRouteGroup matches are not supported: the split applies to every request")
	}
	b := &backends{namespace: ns, sel: sel}
	var ws []weighted
	for i, be := range unstr.List(obj, "spec", "backends") {
		at := fmt.Sprintf("spec.backends[%d]", i)
		svc := unstr.String(be, "service")
		if svc == "" {
			im.errorf(at+".service", "required: a Service name")
			continue
		}
		w, ok := splitWeight(unstr.Field(be, "weight"))
		if !ok {
			im.errorf(at+".weight", "want a non-negative integer weight")
			continue
		}
		if b.subset(im, at+".service", svc) {
			ws = addWeight(ws, svc, w)
		}
	}
	if len(unstr.List(obj, "spec", "backends")) == 0 {
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
	n, _, ok := unstr.Integer(map[string]any{"w": v}, "w")
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
// NotImported starts the warning of an import that lost to another route.
const NotImported = "not imported: "

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
				NotImported+"service %s already has TrafficRoute %s (from %s), which wins", key, first.Key(), first.Origin)})
			continue
		}
		owner[key] = r
		objs.Routes = append(objs.Routes, r)
	}
	return warns
}
