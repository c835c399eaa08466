package model

import (
	"math"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Manifest is one object of a Kubernetes manifest file that is not of a
// glassmesh kind (a core Service, an HTTPRoute, a Deployment, ...), kept as
// JSON-like values (map[string]any, []any, string, int64, float64, bool,
// nil) for an Importer to read.
type Manifest struct {
	APIVersion string
	Kind       string
	// Name and Namespace are the object's metadata; Namespace is
	// DefaultNamespace when the object names none, as kubectl applies it.
	Name, Namespace string
	Object          map[string]any
	// Origin is the file and line of the object, and knows the line of
	// each of its fields (Origin.LineOf).
	Origin Origin
}

// Importer turns the manifests that are not glassmesh kinds into mesh
// objects, which it adds to objs (holding the glassmesh objects read, with
// defaults applied). It returns its errors and warnings, and the manifests
// it does not read, which are skipped. The model itself knows no other API;
// control/source provides the importer.
type Importer func(objs *Objects, ms []Manifest) (errs, warns []Diagnostic, skipped []Manifest)

// Skipped counts skipped manifests by kind.
type Skipped map[string]int

// Total is how many manifests were skipped.
func (s Skipped) Total() int {
	n := 0
	for _, c := range s {
		n += c
	}
	return n
}

// String lists the kinds, most frequent first: "Deployment×2, ConfigMap×1".
func (s Skipped) String() string {
	kinds := make([]string, 0, len(s))
	for k := range s {
		kinds = append(kinds, k)
	}
	slices.SortFunc(kinds, func(a, b string) int {
		if s[a] != s[b] {
			return s[b] - s[a]
		}
		return strings.Compare(a, b)
	})
	for i, k := range kinds {
		kinds[i] = k + "×" + strconv.Itoa(s[k])
	}
	return strings.Join(kinds, ", ")
}

// LoadManifests reads path as Load does (the *.yaml and *.yml files of a
// directory, recursively, or one file), but as Kubernetes manifests, the
// way `kubectl apply -f` takes them: documents of the glassmesh kinds are
// parsed and checked as Load parses them, `kind: List` documents are read
// item by item, and every other object goes to imp (nil skips them all).
// The result is validated as a whole, as the Kubernetes source would see
// the same objects applied.
func LoadManifests(path string, imp Importer) (Result, Skipped) {
	return LoadManifestsCached(path, imp, nil)
}

// LoadManifestsCached is LoadManifests parsing through c (ParseCache): the
// documents that did not change since the last load through c give the
// objects they gave then.
func LoadManifestsCached(path string, imp Importer, c *ParseCache) (Result, Skipped) {
	var objs Objects
	var ms []Manifest
	res := readFiles(path, func(file string, data []byte) []Diagnostic {
		o, m, errs := ParseManifestsCached(file, data, c)
		objs.Append(o)
		ms = append(ms, m...)
		return errs
	})
	c.done()
	skipped := Skipped{}
	if imp != nil {
		errs, warns, rest := imp(&objs, ms)
		res.Errors = append(res.Errors, errs...)
		res.Warnings = append(res.Warnings, warns...)
		ms = rest
	}
	for _, m := range ms {
		skipped[m.Kind]++
	}
	mesh, errs, warns := Validate(objs)
	res.Objects, res.ReadErrors = objs, slices.Clone(res.Errors)
	res.Errors = append(res.Errors, errs...)
	res.Warnings = append(res.Warnings, warns...)
	sortDiagnostics(res.Errors)
	sortDiagnostics(res.Warnings)
	if len(res.Errors) == 0 {
		res.Mesh = mesh
	}
	return res, skipped
}

// ParseManifests reads the documents of one manifest file; file names it in
// diagnostics. Documents whose apiVersion is of the glassmesh.io group, or
// that have none, are parsed as Parse parses them; lists (`kind: List` and
// other *List kinds with items) are read item by item; every other object
// is returned as a Manifest. Errors name file:line.
func ParseManifests(file string, data []byte) (Objects, []Manifest, []Diagnostic) {
	return parseManifestsAt(file, data, 1)
}

// parseManifestsAt is ParseManifests of a piece of a file that starts at
// line first, with every line (and every line a message quotes) as in the
// whole file.
func parseManifestsAt(file string, data []byte, first int) (Objects, []Manifest, []Diagnostic) {
	var objs Objects
	var ms []Manifest
	errs := eachDocument(file, data, first, func(doc *yaml.Node) []Diagnostic { return manifestDocument(file, doc, &objs, &ms, 0) })
	applyDefaults(objs)
	return objs, ms, errs
}

// Bounds on what one manifest may be, so hostile input (aliases that
// refer to themselves, deep nesting) is an error rather than an outage.
// The largest manifests in use (CRDs with big schemas) are ~50,000 nodes
// and ~30 levels deep.
const (
	maxListDepth     = 8       // lists of lists
	maxManifestDepth = 100     // nested mappings and lists
	maxManifestNodes = 1 << 17 // values in one document, aliases expanded
	maxLineDepth     = 24      // deeper fields' lines are their ancestor's
)

// manifestDocument reads one document, or one item of a list, into objs or
// ms.
func manifestDocument(file string, root *yaml.Node, objs *Objects, ms *[]Manifest, depth int) []Diagnostic {
	d := newDecoder(file, root)
	n := d.resolve(root, "")
	if n == nil || n.Kind != yaml.MappingNode {
		return parseDocument(file, root, objs) // reports what is wrong with it
	}
	apiVersion, kind := scalarField(n, "apiVersion"), scalarField(n, "kind")
	group, _, _ := strings.Cut(apiVersion, "/")
	if apiVersion == "" || !strings.Contains(apiVersion, "/") && apiVersion != "v1" || group == CRDGroup || kind == "" {
		return parseDocument(file, root, objs)
	}
	value := d.generic(n, "", 0)
	if len(d.errs) > 0 {
		return d.errs
	}
	obj, _ := value.(map[string]any)
	if _, ok := obj["items"].([]any); ok && strings.HasSuffix(kind, "List") {
		if depth >= maxListDepth {
			d.errorf(n, "items", "lists nested more than %d deep", maxListDepth)
			return d.errs
		}
		var errs []Diagnostic
		for _, item := range listItems(n) {
			errs = append(errs, manifestDocument(file, item, objs, ms, depth+1)...)
		}
		return errs
	}
	m := Manifest{APIVersion: apiVersion, Kind: kind, Object: obj, Origin: d.origin(n)}
	if meta, ok := obj["metadata"].(map[string]any); ok {
		m.Name, _ = meta["name"].(string)
		m.Namespace, _ = meta["namespace"].(string)
	}
	if m.Namespace == "" {
		m.Namespace = DefaultNamespace
	}
	*ms = append(*ms, m)
	return nil
}

// scalarField is the string value of a top-level key of a mapping, or "".
func scalarField(n *yaml.Node, key string) string {
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.Value == key {
			if v.Kind == yaml.ScalarNode && v.ShortTag() == "!!str" {
				return v.Value
			}
			return ""
		}
	}
	return ""
}

// listItems returns the item nodes of a list document.
func listItems(n *yaml.Node) []*yaml.Node {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := n.Content[i]; k.Kind == yaml.ScalarNode && k.Value == "items" {
			v := n.Content[i+1]
			for v.Kind == yaml.AliasNode && v.Alias != nil {
				v = v.Alias
			}
			return v.Content
		}
	}
	return nil
}

// generic reads any node into JSON-like values, recording the line of
// every field down to maxLineDepth as the typed decoding does.
func (d *decoder) generic(n *yaml.Node, path string, depth int) any {
	if n = d.resolve(n, path); n == nil || len(d.errs) > 0 {
		return nil
	}
	switch {
	case depth > maxManifestDepth:
		d.errorf(n, path, "nested more than %d levels deep", maxManifestDepth)
		return nil
	case d.nodes > maxManifestNodes:
		d.errorf(n, path, "the document expands to more than %d values (through aliases?)", maxManifestNodes)
		return nil
	}
	deep := depth > maxLineDepth // no more lines or paths: LineOf finds the ancestor's
	switch {
	case n.Kind == yaml.MappingNode && deep:
		m := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			if k := d.resolve(n.Content[i], path); k != nil && k.Kind == yaml.ScalarNode {
				m[k.Value] = d.generic(n.Content[i+1], path, depth+1)
			}
		}
		return m
	case n.Kind == yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		d.pairs(n, path, func(key string, _, val *yaml.Node, at string) {
			m[key] = d.generic(val, at, depth+1)
		})
		return m
	case n.Kind == yaml.SequenceNode:
		s := make([]any, len(n.Content))
		for i, item := range n.Content {
			at := path
			if !deep {
				at = indexPath(path, i)
				d.fields.lines[at] = item.Line
			}
			s[i] = d.generic(item, at, depth+1)
		}
		return s
	case n.Kind == yaml.ScalarNode:
		return scalarValue(n)
	}
	d.errorf(n, path, "unexpected %s", describe(n))
	return nil
}

// scalarValue is a scalar as encoding/json would give it, except that
// integers stay integers (int64), as in Kubernetes' unstructured objects.
func scalarValue(n *yaml.Node) any {
	switch n.ShortTag() {
	case "!!null":
		return nil
	case "!!bool":
		var b bool
		if n.Decode(&b) == nil {
			return b
		}
	case "!!int":
		var i int64
		if n.Decode(&i) == nil {
			return i
		}
		var f float64
		if n.Decode(&f) == nil {
			return f
		}
	case "!!float":
		var f float64
		if n.Decode(&f) == nil && !math.IsInf(f, 0) && !math.IsNaN(f) {
			return f
		}
	}
	return n.Value
}
