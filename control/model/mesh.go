package model

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"
)

// Diagnostic is an error or a warning about one place in the mesh config.
type Diagnostic struct {
	File    string `json:"file"`
	Line    int    `json:"line"`
	Path    string `json:"path"`
	Message string `json:"message"`
	// Object is the object the diagnostic belongs to, as
	// "<Kind>/<namespace>/<name>"; empty when it belongs to no one object
	// (a file that is not YAML, a document of no known kind).
	Object string `json:"object,omitempty"`
}

// MaxMessage bounds a diagnostic's message: a value quoted in it (a huge
// regex, say) must not make every status, log line and API answer huge.
const MaxMessage = 1024

// message formats a diagnostic's message, cut to MaxMessage bytes.
func message(format string, args ...any) string {
	m := fmt.Sprintf(format, args...)
	if len(m) <= MaxMessage {
		return m
	}
	cut := MaxMessage - 40
	for cut > 0 && !utf8.RuneStart(m[cut]) {
		cut--
	}
	return fmt.Sprintf("%s… (%d more bytes)", m[:cut], len(m)-cut)
}

// Error formats the diagnostic as "file:line: path: message".
func (d Diagnostic) Error() string {
	s := d.File
	if d.Line > 0 {
		s += fmt.Sprintf(":%d", d.Line)
	}
	if d.Path != "" {
		s += ": " + d.Path
	}
	return s + ": " + d.Message
}

// Mesh is one complete, validated version of the mesh config. It is never
// modified after it is built: later versions are new Mesh values, so readers
// may share one without locks.
type Mesh struct {
	Services  []*Service      // sorted by namespace/name
	Workloads []*Workload     // sorted by namespace/name
	Routes    []*TrafficRoute // sorted by namespace/name
	SLOs      []*SLO          // sorted by namespace/name
	Canaries  []*Canary       // sorted by namespace/name
	Policies  []*SLOPolicy    // sorted by namespace/name
	// PeerAuthentications and AuthzPolicies, sorted by namespace/name.
	PeerAuthentications []*PeerAuthentication
	AuthzPolicies       []*AuthorizationPolicy

	services  map[string]*Service
	workloads map[string]*Workload
	routes    map[string]*TrafficRoute // keyed by the namespace/name of the service they route
	slos      map[string]*SLO

	selectorsOnce sync.Once
	selectors     *selectorIndex // built at the first selector lookup
}

// selectorIndex returns the mesh's index of selectors, built once.
func (m *Mesh) selectorIndex() *selectorIndex {
	m.selectorsOnce.Do(func() { m.selectors = newSelectorIndex(m.Services, m.Workloads) })
	return m.selectors
}

// NewMesh indexes the objects, which it sorts in place. It does not
// validate them.
func NewMesh(objs Objects) *Mesh {
	m := &Mesh{
		Services: objs.Services, Workloads: objs.Workloads, Routes: objs.Routes,
		SLOs: objs.SLOs, Canaries: objs.Canaries, Policies: objs.Policies,
		PeerAuthentications: objs.PeerAuths, AuthzPolicies: objs.AuthzPols,
		services:  make(map[string]*Service, len(objs.Services)),
		workloads: make(map[string]*Workload, len(objs.Workloads)),
		routes:    make(map[string]*TrafficRoute, len(objs.Routes)),
		slos:      make(map[string]*SLO, len(objs.SLOs)),
	}
	byKey := func(a, b interface{ Key() string }) int { return strings.Compare(a.Key(), b.Key()) }
	slices.SortFunc(m.Services, func(a, b *Service) int { return byKey(a, b) })
	slices.SortFunc(m.Workloads, func(a, b *Workload) int { return byKey(a, b) })
	slices.SortFunc(m.Routes, func(a, b *TrafficRoute) int { return byKey(a, b) })
	slices.SortFunc(m.SLOs, func(a, b *SLO) int { return byKey(a, b) })
	slices.SortFunc(m.Canaries, func(a, b *Canary) int { return byKey(a, b) })
	slices.SortFunc(m.Policies, func(a, b *SLOPolicy) int { return byKey(a, b) })
	slices.SortFunc(m.PeerAuthentications, func(a, b *PeerAuthentication) int { return byKey(a, b) })
	slices.SortFunc(m.AuthzPolicies, func(a, b *AuthorizationPolicy) int { return byKey(a, b) })
	for _, s := range m.Services {
		m.services[s.Key()] = s
	}
	for _, w := range m.Workloads {
		m.workloads[w.Key()] = w
	}
	for _, r := range m.Routes {
		m.routes[r.Namespace+"/"+r.Spec.Service] = r
	}
	for _, s := range m.SLOs {
		m.slos[s.Key()] = s
	}
	return m
}

// Empty is a mesh with nothing in it.
func Empty() *Mesh { return NewMesh(Objects{}) }

// Service returns the service namespace/name, or nil.
func (m *Mesh) Service(namespace, name string) *Service { return m.services[namespace+"/"+name] }

// Workload returns the workload namespace/name, or nil.
func (m *Mesh) Workload(namespace, name string) *Workload { return m.workloads[namespace+"/"+name] }

// SLO returns the SLO namespace/name, or nil.
func (m *Mesh) SLO(namespace, name string) *SLO { return m.slos[namespace+"/"+name] }

// Route returns the TrafficRoute namespace/name, or nil.
func (m *Mesh) Route(namespace, name string) *TrafficRoute {
	for _, r := range m.Routes {
		if r.Namespace == namespace && r.Name == name {
			return r
		}
	}
	return nil
}

// RouteFor returns the TrafficRoute of a service, or nil when it has none.
func (m *Mesh) RouteFor(svc *Service) *TrafficRoute { return m.routes[svc.Key()] }

// Subset returns the named subset of a route, or nil.
func (r *TrafficRoute) Subset(name string) *Subset {
	for i := range r.Spec.Subsets {
		if r.Spec.Subsets[i].Name == name {
			return &r.Spec.Subsets[i]
		}
	}
	return nil
}

// WorkloadsOf returns the workloads in the service's namespace that its
// selector selects and that also carry every label of extra (a subset's
// labels; nil for the whole service), in namespace/name order.
func (m *Mesh) WorkloadsOf(svc *Service, extra map[string]string) []*Workload {
	return m.selectorIndex().selected(svc.Namespace, svc.Spec.Selector, extra)
}

// ServicesOf returns the services whose selector selects the workload, in
// namespace/name order.
func (m *Mesh) ServicesOf(w *Workload) []*Service {
	return m.selectorIndex().selecting(w)
}

// Port returns the service port with the given name, or nil.
func (s *Service) Port(name string) *ServicePort {
	for i := range s.Spec.Ports {
		if s.Spec.Ports[i].Name == name {
			return &s.Spec.Ports[i]
		}
	}
	return nil
}

// Objects returns the mesh's objects, in new slices, for building a
// changed mesh with NewMesh.
func (m *Mesh) Objects() Objects {
	return Objects{
		Services: m.Services, Workloads: m.Workloads, Routes: m.Routes, SLOs: m.SLOs, Canaries: m.Canaries, Policies: m.Policies,
		PeerAuths: m.PeerAuthentications, AuthzPols: m.AuthzPolicies,
	}.clone()
}

func matches(labels, selector map[string]string) bool {
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// Override is a change a controller made to the config at run time, on top
// of the files, which are never rewritten: the canary controller's weights.
type Override struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Path      string `json:"path"`  // the field path, as in diagnostics
	Value     any    `json:"value"` // what the field holds now
	By        string `json:"by"`    // who set it, e.g. "Canary default/reviews"
	Reason    string `json:"reason"`
}
