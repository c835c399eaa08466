package model

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Objects are config objects as read, before validation, in the order read.
type Objects struct {
	Services  []*Service
	Workloads []*Workload
	Routes    []*TrafficRoute
	SLOs      []*SLO
	Canaries  []*Canary
	Policies  []*SLOPolicy
	PeerAuths []*PeerAuthentication
	AuthzPols []*AuthorizationPolicy
}

// Append adds the objects of more after those of o.
func (o *Objects) Append(more Objects) {
	o.Services = append(o.Services, more.Services...)
	o.Workloads = append(o.Workloads, more.Workloads...)
	o.Routes = append(o.Routes, more.Routes...)
	o.SLOs = append(o.SLOs, more.SLOs...)
	o.Canaries = append(o.Canaries, more.Canaries...)
	o.Policies = append(o.Policies, more.Policies...)
	o.PeerAuths = append(o.PeerAuths, more.PeerAuths...)
	o.AuthzPols = append(o.AuthzPols, more.AuthzPols...)
}

// clone returns o with new slices of the same objects.
func (o Objects) clone() Objects {
	var c Objects
	c.Append(o)
	return c
}

// Len is the number of objects.
func (o Objects) Len() int {
	return len(o.Services) + len(o.Workloads) + len(o.Routes) + len(o.SLOs) + len(o.Canaries) + len(o.Policies) + len(o.PeerAuths) + len(o.AuthzPols)
}

// header is what every document has besides its kind's fields.
var header = map[string]bool{"apiVersion": true, "kind": true}

// Parse reads the documents of one YAML file; file names it in diagnostics.
// Empty documents are skipped. Every field is checked: unknown fields and
// values of the wrong type are errors naming file:line and the field path.
// Objects holds every document that had a known kind, even if some of its
// fields had errors (those fields keep their zero value, and Validate does
// not report them again). Parse never returns warnings.
func Parse(file string, data []byte) (Objects, []Diagnostic) {
	var objs Objects
	errs := eachDocument(file, data, 1, func(doc *yaml.Node) []Diagnostic { return parseDocument(file, doc, &objs) })
	applyDefaults(objs)
	return objs, errs
}

// eachDocument calls parse with the root of every non-empty YAML document
// of data and gathers its diagnostics; a syntax error ends the reading
// (the scanner cannot resume after one). data starts at line first of the
// file: every node's line is shifted to the file's before parse sees it,
// so the lines messages quote are the file's too.
func eachDocument(file string, data []byte, first int, parse func(doc *yaml.Node) []Diagnostic) []Diagnostic {
	var errs []Diagnostic
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var doc yaml.Node
		err := decodeNode(dec, &doc)
		if errors.Is(err, io.EOF) {
			return errs
		}
		if err != nil {
			return append(errs, syntaxError(file, err))
		}
		if len(doc.Content) > 0 {
			if first > 1 {
				shiftLines(&doc, first-1)
			}
			errs = append(errs, parse(doc.Content[0])...)
		}
	}
}

// shiftLines adds shift to the line of n and of every node under it. An
// alias has no content (its anchor is elsewhere in the tree), so each node
// is shifted once.
func shiftLines(n *yaml.Node, shift int) {
	n.Line += shift
	for _, c := range n.Content {
		shiftLines(c, shift)
	}
}

// decodeNode reads the next document. yaml.v3 reports some malformed input
// by panicking; a config reload must never take the control plane down.
func decodeNode(dec *yaml.Decoder, doc *yaml.Node) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("yaml: %v", r)
		}
	}()
	return dec.Decode(doc)
}

var yamlLine = regexp.MustCompile(`^yaml: (?:line (\d+): )?`)

// parserProblems are the errors of yaml.v3's parser (as opposed to its
// scanner), whose line it reports counting from 0.
var parserProblems = map[string]bool{
	"did not find expected <stream-start>":   true,
	"did not find expected <document start>": true,
	"found undefined tag handle":             true,
	"did not find expected node content":     true,
	"did not find expected '-' indicator":    true,
	"did not find expected key":              true,
	"did not find expected ',' or ']'":       true,
	"did not find expected ',' or '}'":       true,
	"found duplicate %YAML directive":        true,
	"found incompatible YAML document":       true,
	"found duplicate %TAG directive":         true,
}

// syntaxError turns a yaml.v3 error ("yaml: line 5: did not find ...") into
// a Diagnostic. yaml.v3 leaves the line out for errors on its first line,
// which is line 1, or line 2 for parser errors.
func syntaxError(file string, err error) Diagnostic {
	msg := err.Error()
	line := 0
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = msg[len(m[0]):]
	}
	if parserProblems[msg] {
		line++
	}
	return Diagnostic{File: file, Line: max(line, 1), Message: "invalid YAML: " + msg}
}

// parseDocument adds the object in one document to objs.
func parseDocument(file string, root *yaml.Node, objs *Objects) []Diagnostic {
	d := newDecoder(file, root)
	if root = d.resolve(root, ""); root == nil || isNull(root) {
		return nil
	}
	if root.Kind != yaml.MappingNode {
		d.errorf(root, "", "a document must be a mapping with apiVersion, kind, metadata and spec; got %s", describe(root))
		return d.errs
	}
	apiVersion, kind := d.header(root)
	failed := d.origin(root).failed
	switch {
	case apiVersion != nil && apiVersion.Value != APIVersion:
		d.errorf(apiVersion, "apiVersion", "%s is not supported; want %s", strconv.Quote(apiVersion.Value), APIVersion)
	case apiVersion == nil && !failed("apiVersion"):
		d.errorf(root, "apiVersion", "missing; want apiVersion: %s", APIVersion)
	}
	if kind == nil {
		if !failed("kind") {
			d.errorf(root, "kind", "missing; want one of %s", knownKinds)
		}
		return d.errs
	}
	var meta *Meta // of the object the document became
	defer func() { d.attribute(kind.Value, meta) }()
	switch {
	case kind.Value == KindService:
		s := &Service{}
		d.structure(root, "", reflect.ValueOf(s).Elem(), header)
		s.Origin = d.origin(root)
		meta = &s.Meta
		objs.Services = append(objs.Services, s)
	case kind.Value == KindWorkload:
		w := &Workload{}
		d.structure(root, "", reflect.ValueOf(w).Elem(), header)
		w.Origin = d.origin(root)
		meta = &w.Meta
		objs.Workloads = append(objs.Workloads, w)
	case kind.Value == KindTrafficRoute:
		r := &TrafficRoute{}
		d.structure(root, "", reflect.ValueOf(r).Elem(), header)
		r.Origin = d.origin(root)
		meta = &r.Meta
		objs.Routes = append(objs.Routes, r)
	case kind.Value == KindSLO:
		s := &SLO{}
		d.structure(root, "", reflect.ValueOf(s).Elem(), header)
		s.Origin = d.origin(root)
		meta = &s.Meta
		objs.SLOs = append(objs.SLOs, s)
	case kind.Value == KindCanary:
		c := &Canary{}
		d.structure(root, "", reflect.ValueOf(c).Elem(), header)
		c.Origin = d.origin(root)
		meta = &c.Meta
		objs.Canaries = append(objs.Canaries, c)
	case kind.Value == KindSLOPolicy:
		p := &SLOPolicy{}
		d.structure(root, "", reflect.ValueOf(p).Elem(), header)
		p.Origin = d.origin(root)
		meta = &p.Meta
		objs.Policies = append(objs.Policies, p)
	case kind.Value == KindPeerAuthentication:
		p := &PeerAuthentication{}
		d.structure(root, "", reflect.ValueOf(p).Elem(), header)
		p.Origin = d.origin(root)
		meta = &p.Meta
		objs.PeerAuths = append(objs.PeerAuths, p)
	case kind.Value == KindAuthorizationPolicy:
		p := &AuthorizationPolicy{}
		d.structure(root, "", reflect.ValueOf(p).Elem(), header)
		p.Origin = d.origin(root)
		meta = &p.Meta
		objs.AuthzPols = append(objs.AuthzPols, p)
	default:
		d.errorf(kind, "kind", "unknown kind %s; want one of %s", strconv.Quote(kind.Value), knownKinds)
	}
	return d.errs
}

// attribute names the object a document became (meta; nil when none) in
// each of the document's diagnostics, so containment sets that object
// aside and not its whole file.
func (d *decoder) attribute(kind string, meta *Meta) {
	if meta == nil {
		return
	}
	key := ObjectKey(kind, *meta)
	for i := range d.errs {
		d.errs[i].Object = key
	}
}

var knownKinds = strings.Join(Kinds(), ", ")

// Kinds lists the glassmesh kinds in the order of DESIGN.md.
func Kinds() []string {
	return []string{KindService, KindWorkload, KindTrafficRoute, KindSLO, KindCanary, KindSLOPolicy, KindPeerAuthentication, KindAuthorizationPolicy}
}

// header finds the apiVersion and kind of a document; either is nil when
// missing or not a string (which is reported). Duplicate keys are left to
// the decoding of the whole document, which reports them.
func (d *decoder) header(root *yaml.Node) (apiVersion, kind *yaml.Node) {
	for i := 0; i+1 < len(root.Content); i += 2 {
		k := root.Content[i]
		if k.Kind != yaml.ScalarNode || !header[k.Value] {
			continue
		}
		v := d.resolve(root.Content[i+1], k.Value)
		if v == nil {
			break
		}
		if v.Kind != yaml.ScalarNode || v.ShortTag() != "!!str" {
			d.errorf(v, k.Value, "expected a string, got %s", describe(v))
			v = nil
		}
		switch {
		case k.Value == "kind" && kind == nil:
			kind = v
		case k.Value == "apiVersion" && apiVersion == nil:
			apiVersion = v
		}
	}
	return apiVersion, kind
}
