package model

import (
	"math"
	"reflect"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// maxNodes bounds the nodes one document may expand to through aliases, so a
// "billion laughs" document is an error rather than an outage.
const maxNodes = 1 << 20

var durationType = reflect.TypeFor[Duration]()

// decoder turns the nodes of one YAML document into one object, strictly:
// every unknown field and every value of the wrong type is a Diagnostic that
// names the file, the line and the field path. It records the line of every
// field it reads, so validation can point at lines too.
type decoder struct {
	file   string
	errs   []Diagnostic
	fields *fieldLines
	nodes  int
}

func newDecoder(file string, root *yaml.Node) *decoder {
	return &decoder{file: file, fields: &fieldLines{lines: map[string]int{"": root.Line}}}
}

// errorf records an error at node n, and marks path as not decoded so that
// validation does not report the same mistake a second time.
func (d *decoder) errorf(n *yaml.Node, path, format string, args ...any) {
	d.errs = append(d.errs, Diagnostic{File: d.file, Line: max(n.Line, 1), Path: path, Message: message(format, args...)})
	d.fields.bad = append(d.fields.bad, path)
}

// origin is where the object whose root node is root came from.
func (d *decoder) origin(root *yaml.Node) Origin {
	return Origin{File: d.file, Line: max(root.Line, 1), fields: d.fields}
}

// resolve follows aliases and counts nodes against maxNodes. It returns nil
// when the budget is spent.
func (d *decoder) resolve(n *yaml.Node, path string) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	d.nodes++
	if d.nodes == maxNodes+1 {
		d.errorf(n, path, "document expands to more than %d nodes (through aliases)", maxNodes)
	}
	if d.nodes > maxNodes {
		return nil
	}
	return n
}

// decode reads n into v, which is addressable.
func (d *decoder) decode(n *yaml.Node, path string, v reflect.Value) {
	if n = d.resolve(n, path); n == nil || isNull(n) {
		return
	}
	if v.Type() == durationType {
		d.duration(n, path, v)
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		d.decode(n, path, p.Elem())
		v.Set(p)
	case reflect.Struct:
		d.structure(n, path, v, nil)
	case reflect.Slice:
		d.sequence(n, path, v)
	case reflect.Map:
		d.mapping(n, path, v)
	case reflect.String:
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
			d.errorf(n, path, "expected a string, got %s", describe(n))
			return
		}
		v.SetString(n.Value)
	case reflect.Uint32:
		d.unsigned(n, path, v)
	case reflect.Bool:
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" {
			d.errorf(n, path, "expected true or false, got %s", describe(n))
			return
		}
		var b bool
		_ = n.Decode(&b) // a !!bool scalar always decodes
		v.SetBool(b)
	case reflect.Float64:
		var f float64
		if n.Kind != yaml.ScalarNode || (n.ShortTag() != "!!int" && n.ShortTag() != "!!float") || n.Decode(&f) != nil {
			d.errorf(n, path, "expected a number, got %s", describe(n))
			return
		}
		v.SetFloat(f)
	default:
		d.errorf(n, path, "cannot read a value into a field of type %s", v.Type())
	}
}

func (d *decoder) unsigned(n *yaml.Node, path string, v reflect.Value) {
	var i int64
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
		d.errorf(n, path, "expected an integer, got %s", describe(n))
		return
	}
	if err := n.Decode(&i); err != nil || i < 0 || i > math.MaxUint32 {
		d.errorf(n, path, "%s is out of range: want an integer from 0 to %d", n.Value, uint32(math.MaxUint32))
		return
	}
	v.SetUint(uint64(i))
}

func (d *decoder) duration(n *yaml.Node, path string, v reflect.Value) {
	if n.Kind != yaml.ScalarNode {
		d.errorf(n, path, "expected a duration like 5s or 30d, got %s", describe(n))
		return
	}
	dur, err := ParseDuration(n.Value)
	if err != nil {
		d.errorf(n, path, "%v", err)
		return
	}
	v.Set(reflect.ValueOf(Duration{dur}))
}

// structure reads a mapping into a struct by its yaml tags. Keys in skip are
// allowed and ignored (apiVersion and kind, read by the caller).
func (d *decoder) structure(n *yaml.Node, path string, v reflect.Value, skip map[string]bool) {
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "expected a mapping, got %s", describe(n))
		return
	}
	fields := yamlFields(v.Type())
	d.pairs(n, path, func(key string, k, val *yaml.Node, at string) {
		if skip[key] {
			return
		}
		i, ok := fields[key]
		if !ok {
			d.errorf(k, at, "%s", unknownField(key, fields))
			return
		}
		d.decode(val, at, v.Field(i))
	})
}

func (d *decoder) sequence(n *yaml.Node, path string, v reflect.Value) {
	if n.Kind != yaml.SequenceNode {
		d.errorf(n, path, "expected a list, got %s", describe(n))
		return
	}
	s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, item := range n.Content {
		at := indexPath(path, i)
		d.fields.lines[at] = item.Line
		d.decode(item, at, s.Index(i))
	}
	v.Set(s)
}

func (d *decoder) mapping(n *yaml.Node, path string, v reflect.Value) {
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "expected a mapping, got %s", describe(n))
		return
	}
	m := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
	d.pairs(n, path, func(key string, _, val *yaml.Node, at string) {
		e := reflect.New(v.Type().Elem()).Elem()
		d.decode(val, at, e)
		m.SetMapIndex(reflect.ValueOf(key), e)
	})
	v.Set(m)
}

// pairs calls f for each key of a mapping with a scalar, non-duplicate key,
// after recording the key's line under the field path at.
func (d *decoder) pairs(n *yaml.Node, path string, f func(key string, k, v *yaml.Node, at string)) {
	seen := make(map[string]int, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k = d.resolve(k, path); k == nil {
			return
		}
		if k.Kind != yaml.ScalarNode || k.ShortTag() == "!!null" {
			d.errorf(k, path, "expected a string key, got %s", describe(k))
			continue
		}
		if k.ShortTag() == "!!merge" {
			d.errorf(k, path, "merge keys (<<) are not supported; write the fields out")
			continue
		}
		at := fieldPath(path, k.Value)
		if first, dup := seen[k.Value]; dup {
			d.errorf(k, at, "duplicate key; first set on line %d", first)
			continue
		}
		seen[k.Value] = k.Line
		d.fields.lines[at] = k.Line
		f(k.Value, k, val, at)
	}
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" }

// yamlFields maps the yaml names of a struct's fields to their indexes.
func yamlFields(t reflect.Type) map[string]int {
	out := make(map[string]int, t.NumField())
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if name != "" && name != "-" {
			out[name] = i
		}
	}
	return out
}

// describe names a node's type and value for "expected X, got Y" messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.DocumentNode:
		return "a document"
	}
	v := n.Value
	if len(v) > 40 {
		v = v[:37] + "..."
	}
	switch n.ShortTag() {
	case "!!str":
		return "string " + strconv.Quote(v)
	case "!!int":
		return "integer " + v + " (quote it if a string is meant)"
	case "!!float":
		return "number " + v + " (quote it if a string is meant)"
	case "!!bool":
		return "boolean " + v + " (quote it if a string is meant)"
	case "!!null":
		return "null"
	}
	return strings.TrimPrefix(n.ShortTag(), "!!") + " " + strconv.Quote(v)
}

// unknownField is the message for a key that is not a field, with the
// closest field name when the key looks like a typo of it.
func unknownField(key string, fields map[string]int) string {
	best, bestDist := "", 3
	for name := range fields {
		dist := editDistance(strings.ToLower(key), strings.ToLower(name))
		if dist < bestDist || (dist == bestDist && name < best) {
			best, bestDist = name, dist
		}
	}
	if best == "" || bestDist > len(key)/2 {
		return "unknown field"
	}
	return "unknown field; did you mean " + best + "?"
}

// editDistance is the Levenshtein distance of two short strings.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
