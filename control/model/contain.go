package model

import (
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
)

// Containment: a config is many teams' objects, and one team's mistake must
// not hold back another's change. Contain builds the mesh that serves from
// a load that has errors: every object with an error is set aside (its last
// good version keeps serving; a new one does not exist yet), and everything
// else is applied. Only errors that belong to no object (a file that is not
// YAML at all) hold more: the objects that file held before.

// Serving says which version of an object the mesh serves.
type Serving string

const (
	// ServingCurrent: the object as the config has it now.
	ServingCurrent Serving = "current"
	// ServingLastGood: the last version that was valid; the newest is not.
	ServingLastGood Serving = "lastGood"
	// ServingNone: no version serves (it never was valid, or its last
	// good version is not valid with the rest of the config any more).
	ServingNone Serving = "none"
)

// SetAside is an object whose newest version does not serve.
type SetAside struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Origin is where the version that failed is ("file:line", or
	// kubernetes:<resource>/<namespace>/<name>); for an object of a held
	// file, the file.
	Origin  string  `json:"origin"`
	Serving Serving `json:"serving"`
	// ServingOrigin is where the serving version came from, when one does.
	ServingOrigin string `json:"servingOrigin,omitempty"`
	// Errors are why, with file:line.
	Errors []Diagnostic `json:"errors"`
}

// Key is the object's ObjectKey.
func (s SetAside) Key() string { return s.Kind + "/" + s.Namespace + "/" + s.Name }

// Contained is the config that serves after a load.
type Contained struct {
	// Mesh is what serves: the load's valid objects, the last good
	// versions of its invalid ones, and the objects held files held.
	Mesh *Mesh
	// Errors are every error of the load (set aside or held); Warnings
	// are the serving mesh's and the load's.
	Errors, Warnings []Diagnostic
	// SetAside lists the objects whose newest version does not serve,
	// by key.
	SetAside []SetAside
	// HeldFiles are the files (or directories) whose errors belong to no
	// object; the objects they held before keep serving as they were.
	HeldFiles []string
	// Whole is true when an error could not be contained at all (it names
	// no file): the previous mesh serves unchanged.
	Whole bool
}

// ObjectKey is how diagnostics and statuses name an object:
// "<Kind>/<namespace>/<name>", the namespace defaulted.
func ObjectKey(kind string, m Meta) string {
	ns := m.Namespace
	if ns == "" {
		ns = DefaultNamespace
	}
	return kind + "/" + ns + "/" + m.Name
}

// Contain builds the serving mesh from a load's objects (every object
// read, valid or not) and the load's own errors (reading, parsing,
// importing), given the mesh that served before (prev, never nil). It
// validates as Validate does; a load without errors gives the same Mesh
// Validate gives.
func Contain(objs Objects, loadErrs []Diagnostic, prev *Mesh) Contained {
	c := Contained{Errors: slices.Clone(loadErrs)}
	var held []string
	for _, d := range loadErrs {
		switch {
		case d.Object != "":
		case d.File == "":
			return whole(prev, loadErrs)
		case !slices.Contains(held, d.File):
			held = append(held, d.File)
		}
	}
	c.HeldFiles = held
	heldBy := func(file string) bool {
		return slices.ContainsFunc(held, func(h string) bool { return within(file, h) })
	}

	setAside := map[string]*SetAside{}
	// aside records that e does not serve; servingOrigin is where the
	// version that serves instead came from ("" for none).
	aside := func(e entry, serving Serving, servingOrigin string, errs []Diagnostic) {
		s := setAside[e.key()]
		if s == nil {
			s = &SetAside{Kind: e.kind, Namespace: e.meta.Namespace, Name: e.meta.Name, Origin: e.origin.String()}
			setAside[e.key()] = s
		}
		s.Serving, s.ServingOrigin = serving, servingOrigin
		for _, d := range errs {
			if !slices.Contains(s.Errors, d) {
				s.Errors = append(s.Errors, d)
			}
		}
	}
	errsOf := func(ds []Diagnostic) map[string][]Diagnostic {
		out := map[string][]Diagnostic{}
		for _, d := range ds {
			out[d.Object] = append(out[d.Object], d)
		}
		return out
	}

	// The candidates: what the load read, where its file could be read,
	// and what held files held before.
	type candidate struct {
		entry
		fromPrev bool
	}
	var cands []candidate
	for _, e := range objs.entries() {
		if !heldBy(e.origin.File) {
			cands = append(cands, candidate{entry: e})
		}
	}
	loadErrsOf := errsOf(loadErrs)
	prevByKey := map[string]entry{}
	for _, e := range prev.Objects().entries() {
		prevByKey[e.key()] = e
		if heldBy(e.origin.File) {
			cands = append(cands, candidate{entry: e, fromPrev: true})
			var why []Diagnostic
			for _, d := range loadErrs {
				if d.Object == "" && within(e.origin.File, d.File) {
					why = append(why, d)
				}
			}
			aside(e, ServingLastGood, e.origin.String(), why)
		}
	}

	// Set aside what has errors until nothing has: an object's last good
	// version may itself fail against the new config (the service it
	// routes is gone), and setting one aside may fail another (a canary
	// of a route that no longer serves). Each round moves at least one
	// candidate from new to last good or out, so this ends.
	for {
		var cur Objects
		for _, cd := range cands {
			cur.add(cd.entry)
		}
		mesh, errs, warns, bad := validate(cur)
		for _, cd := range cands {
			if cd.entry.parseFailed() {
				bad[cd.obj] = true
			}
		}
		if len(bad) == 0 {
			if len(errs) > 0 { // an error of no object: nothing to set aside
				return whole(prev, append(c.Errors, errs...))
			}
			c.Mesh = mesh
			c.Warnings = warns
			break
		}
		byObject := errsOf(errs)
		next := cands[:0:0]
		present := map[string]int{}
		for _, cd := range cands {
			present[cd.key()]++
		}
		for _, cd := range cands {
			if !bad[cd.obj] {
				next = append(next, cd)
				continue
			}
			key := cd.key()
			c.Errors = append(c.Errors, byObject[key]...)
			why := append(slices.Clone(loadErrsOf[key]), byObject[key]...)
			last, ok := prevByKey[key]
			switch {
			case !cd.fromPrev && ok && last.obj != cd.obj && present[key] == 1:
				aside(cd.entry, ServingLastGood, last.origin.String(), why)
				next = append(next, candidate{entry: last, fromPrev: true})
			default:
				// New and never valid, a duplicate, or a last good
				// version that fails against the rest of the config
				// now (the service it routes is gone): nothing serves.
				aside(cd.entry, ServingNone, "", why)
				present[key]--
			}
		}
		cands = next
	}

	for _, s := range setAside {
		sortDiagnostics(s.Errors)
		c.SetAside = append(c.SetAside, *s)
	}
	slices.SortFunc(c.SetAside, func(a, b SetAside) int { return strings.Compare(a.Key(), b.Key()) })
	c.Errors = dedupe(c.Errors)
	sortDiagnostics(c.Errors)
	sortDiagnostics(c.Warnings)
	return c
}

// within reports whether file is path itself or lies in the directory
// path.
func within(file, path string) bool {
	return file == path || strings.HasPrefix(file, path+string(filepath.Separator))
}

// whole is the Contained of a load nothing of which can be taken.
func whole(prev *Mesh, errs []Diagnostic) Contained {
	errs = dedupe(errs)
	sortDiagnostics(errs)
	return Contained{Mesh: prev, Errors: errs, Whole: true}
}

func dedupe(ds []Diagnostic) []Diagnostic {
	seen := make(map[Diagnostic]bool, len(ds))
	out := ds[:0:0]
	for _, d := range ds {
		if !seen[d] {
			seen[d] = true
			out = append(out, d)
		}
	}
	return out
}

// entry is one object of any kind.
type entry struct {
	kind   string
	obj    any // the object's pointer
	meta   Meta
	origin Origin
}

func (e entry) key() string { return ObjectKey(e.kind, e.meta) }

// parseFailed reports whether some field of the object failed to decode.
func (e entry) parseFailed() bool {
	return e.origin.fields != nil && len(e.origin.fields.bad) > 0
}

// entries lists every object, kind by kind, in order.
func (o Objects) entries() []entry {
	out := make([]entry, 0, o.Len())
	for _, x := range o.Services {
		out = append(out, entry{KindService, x, x.Meta, x.Origin})
	}
	for _, x := range o.Workloads {
		out = append(out, entry{KindWorkload, x, x.Meta, x.Origin})
	}
	for _, x := range o.Routes {
		out = append(out, entry{KindTrafficRoute, x, x.Meta, x.Origin})
	}
	for _, x := range o.SLOs {
		out = append(out, entry{KindSLO, x, x.Meta, x.Origin})
	}
	for _, x := range o.Canaries {
		out = append(out, entry{KindCanary, x, x.Meta, x.Origin})
	}
	for _, x := range o.Policies {
		out = append(out, entry{KindSLOPolicy, x, x.Meta, x.Origin})
	}
	for _, x := range o.PeerAuths {
		out = append(out, entry{KindPeerAuthentication, x, x.Meta, x.Origin})
	}
	for _, x := range o.AuthzPols {
		out = append(out, entry{KindAuthorizationPolicy, x, x.Meta, x.Origin})
	}
	return out
}

// HideLines makes every object's Origin WithoutLines.
func (o Objects) HideLines() {
	for _, e := range o.entries() {
		p := e.originOf()
		*p = p.WithoutLines()
	}
}

// originOf is where the object of e keeps its Origin.
func (e entry) originOf() *Origin {
	switch x := e.obj.(type) {
	case *Service:
		return &x.Origin
	case *Workload:
		return &x.Origin
	case *TrafficRoute:
		return &x.Origin
	case *SLO:
		return &x.Origin
	case *Canary:
		return &x.Origin
	case *SLOPolicy:
		return &x.Origin
	case *PeerAuthentication:
		return &x.Origin
	case *AuthorizationPolicy:
		return &x.Origin
	}
	panic(fmt.Sprintf("model: no origin in %T", e.obj))
}

// add appends the object of e to its kind's list.
func (o *Objects) add(e entry) {
	switch x := e.obj.(type) {
	case *Service:
		o.Services = append(o.Services, x)
	case *Workload:
		o.Workloads = append(o.Workloads, x)
	case *TrafficRoute:
		o.Routes = append(o.Routes, x)
	case *SLO:
		o.SLOs = append(o.SLOs, x)
	case *Canary:
		o.Canaries = append(o.Canaries, x)
	case *SLOPolicy:
		o.Policies = append(o.Policies, x)
	case *PeerAuthentication:
		o.PeerAuths = append(o.PeerAuths, x)
	case *AuthorizationPolicy:
		o.AuthzPols = append(o.AuthzPols, x)
	}
}

// Intern gives each object of objs that equals (reflect.DeepEqual, where
// it came from included) the object of the same kind and name in prev that
// earlier object, so unchanged objects keep their identity from load to
// load even from sources that build every object anew (Kubernetes): the
// parts downstream tell what changed by identity. It reports how many
// objects it replaced; objs itself is not modified.
func Intern(objs Objects, prev *Mesh) (Objects, int) {
	old := map[string]any{}
	for _, e := range prev.Objects().entries() {
		old[e.key()] = e.obj
	}
	var out Objects
	n := 0
	for _, e := range objs.entries() {
		if o, ok := old[e.key()]; ok && o != e.obj && reflect.DeepEqual(o, e.obj) {
			e.obj = o
			n++
		}
		out.add(e)
	}
	return out, n
}
