package model

import (
	"cmp"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"
)

// DefaultNamespace is the namespace of objects that do not name one.
const DefaultNamespace = "default"

// DefaultServiceAccount is the service account of workloads that do not
// name one, as in Kubernetes.
const DefaultServiceAccount = "default"

var (
	dns1123Label     = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	dns1123Subdomain = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
)

// Validate checks objects against each other and builds the Mesh they
// describe. It fills in defaults first (namespace "default", service account
// "default", weight 100 for a rule's only destination), changing the objects.
// The Mesh is nil when there are errors. Diagnostics are sorted by file and
// line. Sources that do not parse YAML (Kubernetes) call it directly.
func Validate(objs Objects) (mesh *Mesh, errs, warns []Diagnostic) {
	mesh, errs, warns, _ = validate(objs)
	return mesh, errs, warns
}

// validate is Validate, also saying which objects (by pointer) have errors.
func validate(objs Objects) (*Mesh, []Diagnostic, []Diagnostic, map[any]bool) {
	applyDefaults(objs)
	v := &validator{bad: map[any]bool{}}
	ix := v.index(objs)
	for _, s := range objs.Services {
		v.at(KindService, s, s.Meta)
		v.service(s, ix)
	}
	for _, w := range objs.Workloads {
		v.at(KindWorkload, w, w.Meta)
		v.workload(w, ix)
	}
	for _, r := range objs.Routes {
		v.at(KindTrafficRoute, r, r.Meta)
		v.route(r, ix)
	}
	for _, s := range objs.SLOs {
		v.at(KindSLO, s, s.Meta)
		v.slo(s, ix)
	}
	for _, c := range objs.Canaries {
		v.at(KindCanary, c, c.Meta)
		v.canary(c, ix)
	}
	for _, p := range objs.Policies {
		v.at(KindSLOPolicy, p, p.Meta)
		v.sloPolicy(p, ix)
	}
	for _, p := range objs.PeerAuths {
		v.at(KindPeerAuthentication, p, p.Meta)
		v.peerAuthentication(p, ix)
	}
	for _, p := range objs.AuthzPols {
		v.at(KindAuthorizationPolicy, p, p.Meta)
		v.authorizationPolicy(p, ix)
	}
	sortDiagnostics(v.errs)
	sortDiagnostics(v.warns)
	if len(v.errs) > 0 {
		return nil, v.errs, v.warns, v.bad
	}
	return NewMesh(objs.clone()), nil, v.warns, v.bad
}

// applyDefaults fills in what users may leave out. It is idempotent.
func applyDefaults(objs Objects) {
	for _, s := range objs.Services {
		defaultNamespace(&s.Meta)
	}
	for _, w := range objs.Workloads {
		defaultNamespace(&w.Meta)
		if w.Spec.ServiceAccount == "" {
			w.Spec.ServiceAccount = DefaultServiceAccount
		}
	}
	for _, r := range objs.Routes {
		defaultNamespace(&r.Meta)
		for i := range r.Spec.Rules {
			d := r.Spec.Rules[i].Destinations
			if len(d) == 1 && d[0].Weight == 0 && !r.Origin.written(indexPath(fmt.Sprintf("spec.rules[%d].destinations", i), 0)+".weight") {
				d[0].Weight = 100
			}
		}
	}
	for _, s := range objs.SLOs {
		defaultNamespace(&s.Meta)
		if s.Spec.Window.Duration == 0 {
			s.Spec.Window.Duration = DefaultSLOWindow
		}
		// "availability:" with no value is as clear as "availability: {}".
		if s.Spec.Indicator.Availability == nil && s.Origin.written("spec.indicator.availability") {
			s.Spec.Indicator.Availability = &AvailabilityIndicator{}
		}
	}
	for _, c := range objs.Canaries {
		defaultNamespace(&c.Meta)
		if c.Spec.Interval.Duration == 0 {
			c.Spec.Interval.Duration = DefaultCanaryInterval
		}
		if c.Spec.MinRequests == 0 && !c.Origin.written("spec.minRequests") {
			c.Spec.MinRequests = DefaultCanaryMinRequests
		}
		if c.Spec.MaxInconclusive == 0 {
			c.Spec.MaxInconclusive = DefaultCanaryMaxInconclusive
		}
	}
	for _, p := range objs.Policies {
		defaultNamespace(&p.Meta)
		for i := range p.Spec.Actions {
			s := p.Spec.Actions[i].ShiftTraffic
			if s == nil {
				continue
			}
			at := indexPath("spec.actions", i) + ".shiftTraffic"
			if s.MaxShift == 0 && !p.Origin.written(at+".maxShift") {
				s.MaxShift = DefaultPolicyMaxShift
			}
			if s.MinHealthySubsets == 0 && !p.Origin.written(at+".minHealthySubsets") {
				s.MinHealthySubsets = DefaultPolicyMinHealthySubsets
			}
			if s.MinRequests == 0 && !p.Origin.written(at+".minRequests") {
				s.MinRequests = DefaultPolicyMinRequests
			}
		}
		r := &p.Spec.Recovery
		if r.After.Duration == 0 {
			r.After.Duration = DefaultPolicyRecoveryAfter
		}
		if r.Interval.Duration == 0 {
			r.Interval.Duration = DefaultPolicyRecoveryInterval
		}
		if len(r.Steps) == 0 {
			r.Steps = DefaultPolicyRecoverySteps()
		}
	}
	for _, p := range objs.PeerAuths {
		defaultNamespace(&p.Meta)
	}
	for _, p := range objs.AuthzPols {
		defaultNamespace(&p.Meta)
		if p.Spec.Action == "" {
			p.Spec.Action = ActionAllow
		}
	}
}

func defaultNamespace(m *Meta) {
	if m.Namespace == "" {
		m.Namespace = DefaultNamespace
	}
}

// written reports whether the field path was written in the file.
func (o Origin) written(path string) bool {
	if o.fields == nil {
		return false
	}
	_, ok := o.fields.lines[path]
	return ok
}

// validator collects the diagnostics of one Validate call. Every check
// runs on behalf of one object (set by at): the one that holds the field
// or the reference, which is the object its diagnostics belong to.
type validator struct {
	errs, warns []Diagnostic
	cur         any    // the object being checked
	curKey      string // its ObjectKey
	bad         map[any]bool
}

// at makes obj the object the following diagnostics belong to.
func (v *validator) at(kind string, obj any, m Meta) {
	v.cur, v.curKey = obj, ObjectKey(kind, m)
}

func (v *validator) errorf(o Origin, path, format string, args ...any) {
	if o.failed(path) {
		return
	}
	v.errs = append(v.errs, Diagnostic{File: o.File, Line: o.LineOf(path), Path: path, Message: message(format, args...), Object: v.curKey})
	v.bad[v.cur] = true
}

func (v *validator) warnf(o Origin, path, format string, args ...any) {
	v.warns = append(v.warns, Diagnostic{File: o.File, Line: o.LineOf(path), Path: path, Message: message(format, args...), Object: v.curKey})
}

func sortDiagnostics(ds []Diagnostic) {
	slices.SortStableFunc(ds, func(a, b Diagnostic) int {
		return cmp.Or(cmp.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line))
	})
}

// index is the first object of each kind and name, and what refers to what.
type index struct {
	services  map[string]*Service // by namespace/name
	byNS      map[string][]*Service
	workloads map[string][]*Workload   // by namespace
	routes    map[string]*TrafficRoute // the first route of each namespace/service
	// by namespace/name
	routesByName map[string]*TrafficRoute
	slos         map[string]*SLO
	canaries     map[string]*Canary    // the first canary of each namespace/route
	policies     map[string]*SLOPolicy // the first policy shifting each namespace/route
	sel          *selectorIndex        // of the services and workloads above
}

// index checks names and their uniqueness, and indexes the objects that
// validation looks up. A duplicate is reported and left out of the index.
func (v *validator) index(objs Objects) *index {
	ix := &index{
		services: map[string]*Service{}, byNS: map[string][]*Service{},
		workloads: map[string][]*Workload{}, routes: map[string]*TrafficRoute{},
		routesByName: map[string]*TrafficRoute{}, slos: map[string]*SLO{}, canaries: map[string]*Canary{},
		policies: map[string]*SLOPolicy{},
	}
	var services []*Service
	var workloads []*Workload
	seen := map[string]Origin{}
	unique := func(kind string, obj any, m Meta, o Origin) bool {
		v.at(kind, obj, m)
		v.name(m, o)
		key := kind + " " + m.Key()
		if first, dup := seen[key]; dup {
			v.errorf(o, "metadata.name", "%s %s is already defined at %s:%d", kind, m.Key(), first.File, first.Line)
			return false
		}
		seen[key] = o
		return true
	}
	for _, s := range objs.Services {
		if unique(KindService, s, s.Meta, s.Origin) {
			ix.services[s.Key()] = s
			ix.byNS[s.Namespace] = append(ix.byNS[s.Namespace], s)
			services = append(services, s)
		}
	}
	for _, w := range objs.Workloads {
		if unique(KindWorkload, w, w.Meta, w.Origin) {
			ix.workloads[w.Namespace] = append(ix.workloads[w.Namespace], w)
			workloads = append(workloads, w)
		}
	}
	ix.sel = newSelectorIndex(services, workloads)
	for _, r := range objs.Routes {
		if unique(KindTrafficRoute, r, r.Meta, r.Origin) {
			ix.routesByName[r.Key()] = r
		}
	}
	for _, s := range objs.SLOs {
		if unique(KindSLO, s, s.Meta, s.Origin) {
			ix.slos[s.Key()] = s
		}
	}
	for _, c := range objs.Canaries {
		unique(KindCanary, c, c.Meta, c.Origin)
	}
	for _, p := range objs.Policies {
		unique(KindSLOPolicy, p, p.Meta, p.Origin)
	}
	return ix
}

// name checks that an object's name and namespace are DNS-1123 labels, as
// they become parts of DNS names and cluster names.
func (v *validator) name(m Meta, o Origin) {
	if msg := labelError(m.Name); msg != "" {
		v.errorf(o, "metadata.name", "%s", msg)
	}
	if msg := labelError(m.Namespace); msg != "" {
		v.errorf(o, "metadata.namespace", "%s", msg)
	}
}

// labelError says why s is not a DNS-1123 label, or returns "".
func labelError(s string) string {
	switch {
	case s == "":
		return "required"
	case len(s) > 63:
		return fmt.Sprintf("%q is longer than 63 characters", s)
	case !dns1123Label.MatchString(s):
		return fmt.Sprintf("%q is not a DNS-1123 label: use lower-case letters, digits and '-', starting and ending with a letter or digit", s)
	}
	return ""
}

var protocols = []string{ProtocolHTTP, ProtocolHTTP2, ProtocolGRPC, ProtocolTCP}

func (v *validator) service(s *Service, ix *index) {
	if len(s.Spec.Ports) == 0 {
		v.errorf(s.Origin, "spec.ports", "at least one port is required")
	}
	names, numbers := map[string]int{}, map[uint32]int{}
	for i, p := range s.Spec.Ports {
		at := indexPath("spec.ports", i)
		switch j, dup := names[p.Name]; {
		case p.Name == "":
			v.errorf(s.Origin, at+".name", "required")
		case dup:
			v.errorf(s.Origin, at+".name", "port name %q is already used by spec.ports[%d]", p.Name, j)
		default:
			names[p.Name] = i
		}
		switch j, dup := numbers[p.Port]; {
		case p.Port < 1 || p.Port > 65535:
			v.errorf(s.Origin, at+".port", "port %d is out of range 1..65535", p.Port)
		case dup:
			v.errorf(s.Origin, at+".port", "port %d is already used by spec.ports[%d]", p.Port, j)
		default:
			numbers[p.Port] = i
		}
		if !slices.Contains(protocols, p.Protocol) {
			v.errorf(s.Origin, at+".protocol", "%s", oneOf("protocol", p.Protocol, protocols))
		}
	}
	if ix.services[s.Key()] == s && len(ix.sel.selected(s.Namespace, s.Spec.Selector, nil)) == 0 {
		v.warnf(s.Origin, "spec.selector", "service %s selects no workload", s.Name)
	}
}

// oneOf is the message for a value that is not one of the allowed ones.
func oneOf(what, got string, want []string) string {
	if got == "" {
		return fmt.Sprintf("required: one of %s", strings.Join(want, ", "))
	}
	msg := fmt.Sprintf("%s %q is not one of %s", what, got, strings.Join(want, ", "))
	for _, w := range want {
		if strings.EqualFold(w, got) {
			msg += "; did you mean " + w + "?"
		}
	}
	return msg
}

func (v *validator) workload(w *Workload, ix *index) {
	if !dns1123Subdomain.MatchString(w.Spec.ServiceAccount) || len(w.Spec.ServiceAccount) > 253 {
		v.errorf(w.Origin, "spec.serviceAccount", "%q is not a DNS-1123 subdomain", w.Spec.ServiceAccount)
	}
	selecting := ix.sel.selecting(w)
	for i, ep := range w.Spec.Endpoints {
		at := indexPath("spec.endpoints", i)
		if a, err := netip.ParseAddr(ep.Address); err != nil || a.Zone() != "" {
			v.errorf(w.Origin, at+".address", "%q is not an IP address", ep.Address)
		}
		for _, name := range sortedKeys(ep.Ports) {
			port := ep.Ports[name]
			if port < 1 || port > 65535 {
				v.errorf(w.Origin, fieldPath(at+".ports", name), "port %d is out of range 1..65535", port)
			}
			if !slices.ContainsFunc(selecting, func(s *Service) bool { return s.Port(name) != nil }) {
				v.errorf(w.Origin, fieldPath(at+".ports", name), "%s", noSuchPort(name, selecting))
			}
		}
	}
}

// noSuchPort is the message for a workload port that no service names.
func noSuchPort(name string, selecting []*Service) string {
	if len(selecting) == 0 {
		return fmt.Sprintf("no service selects this workload, so port %q means nothing; check the service's selector and the workload's labels", name)
	}
	names := make([]string, len(selecting))
	for i, s := range selecting {
		names[i] = s.Name
	}
	return fmt.Sprintf("no service selecting this workload (%s) has a port named %q", strings.Join(names, ", "), name)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// The values the validator accepts for the enumerated fields, for schemas
// (control/model/crdgen) and docs; each call returns a copy.

// Protocols are a service port's protocols.
func Protocols() []string { return slices.Clone(protocols) }

// GRPCCodes are the gRPC status names a fault may abort with.
func GRPCCodes() []string { return slices.Clone(grpcCodes) }

// LBAlgorithms are the simple load balancers of a traffic policy.
func LBAlgorithms() []string { return slices.Clone(lbAlgorithms) }

// MTLSModes are a PeerAuthentication's modes.
func MTLSModes() []string { return slices.Clone(mtlsModes) }

// AuthzActions are an AuthorizationPolicy's actions.
func AuthzActions() []string { return slices.Clone(authzActions) }
