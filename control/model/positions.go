package model

import (
	"strconv"
	"strings"
)

// fieldLines is where the fields of one parsed object are in its file.
type fieldLines struct {
	lines map[string]int // field path -> line
	bad   []string       // field paths that failed to decode
	// hidden: the lines are of a document made from the object (a
	// Kubernetes object), which mean nothing to its author.
	hidden bool
}

// WithoutLines is o with no line numbers to report, for objects parsed
// from YAML made out of another representation. What fields were written
// (and failed) is kept.
func (o Origin) WithoutLines() Origin {
	o.Line = 0
	if o.fields != nil {
		f := *o.fields
		f.hidden = true
		o.fields = &f
	}
	return o
}

// LineOf returns the line of the field path (as in Diagnostic.Path) in the
// object's file: the line of the field itself when it was written, else of
// its nearest written ancestor, else the object's own line.
func (o Origin) LineOf(path string) int {
	if o.fields != nil && !o.fields.hidden {
		for p := path; p != ""; p = parentPath(p) {
			if l, ok := o.fields.lines[p]; ok {
				return l
			}
		}
	}
	return o.Line
}

// failed reports whether the field path, or an ancestor of it, failed to
// decode; such fields already have an error and get no second one.
func (o Origin) failed(path string) bool {
	if o.fields == nil {
		return false
	}
	for _, bad := range o.fields.bad {
		if bad == "" || path == bad || strings.HasPrefix(path, bad) && (path[len(bad)] == '.' || path[len(bad)] == '[') {
			return true
		}
	}
	return false
}

// fieldPath appends a mapping key to a field path: "spec.ports", and
// `metadata.labels["app.kubernetes.io/name"]` for keys that are not plain
// words.
func fieldPath(path, key string) string {
	plain := key != ""
	for _, r := range key {
		if !(r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			plain = false
			break
		}
	}
	switch {
	case !plain:
		return path + "[" + strconv.Quote(key) + "]"
	case path == "":
		return key
	}
	return path + "." + key
}

// indexPath appends a list index to a field path: "spec.ports[2]".
func indexPath(path string, i int) string { return path + "[" + strconv.Itoa(i) + "]" }

// parentPath strips the last element of a field path built by fieldPath and
// indexPath, skipping over quoted keys.
func parentPath(path string) string {
	last, quoted := 0, false
	for i := 0; i < len(path); i++ {
		switch c := path[i]; {
		case quoted && c == '\\':
			i++
		case c == '"':
			quoted = !quoted
		case !quoted && (c == '.' || c == '['):
			last = i
		}
	}
	return path[:last]
}
