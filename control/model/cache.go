package model

import (
	"bytes"
	"strings"
)

// ParseCache lets a watcher that reads the same files again and again parse
// only the documents that changed: a document whose bytes, file and first
// line are as last time gives the very objects it gave then (so unchanged
// objects keep their identity, which is how the parts downstream tell what
// changed). It keeps the documents of the last load only. Not safe for
// concurrent use.
type ParseCache struct {
	docs map[chunkKey]parsedDoc
	next map[chunkKey]parsedDoc
}

type chunkKey struct {
	file string
	line int
	text string
}

// parsedDoc is what one document gave: its objects, the manifests of
// other kinds, its diagnostics, and whether it ended the file's reading.
type parsedDoc struct {
	objs   Objects
	ms     []Manifest
	errs   []Diagnostic
	syntax bool
}

// ParseManifestsCached is ParseManifests through c (nil parses afresh).
func ParseManifestsCached(file string, data []byte, c *ParseCache) (Objects, []Manifest, []Diagnostic) {
	if c == nil || parsedWhole(data) {
		return ParseManifests(file, data)
	}
	if c.next == nil {
		c.next = map[chunkKey]parsedDoc{}
	}
	var objs Objects
	var ms []Manifest
	var errs []Diagnostic
	for _, d := range splitDocuments(data) {
		k := chunkKey{file: file, line: d.line, text: string(d.text)}
		p, ok := c.next[k]
		if !ok {
			if p, ok = c.docs[k]; !ok {
				p = parseDocumentAt(file, d.text, d.line)
			}
			c.next[k] = p
		}
		if p.syntax {
			// Where a syntax error is found, and what the documents
			// before it give, depends on reading the file as one
			// stream: read it so.
			return ParseManifests(file, data)
		}
		objs.Append(p.objs)
		ms = append(ms, p.ms...)
		errs = append(errs, p.errs...)
	}
	return objs, ms, errs
}

// done ends one load: the documents it did not read are forgotten.
func (c *ParseCache) done() {
	if c == nil {
		return
	}
	c.docs, c.next = c.next, nil
}

// document is one YAML document of a file and the line it starts at.
type document struct {
	text []byte
	line int
}

// splitDocuments cuts data before every line that starts a document ("---"
// alone or followed by a space): YAML forbids such a line inside any
// scalar, so each piece holds whole documents.
func splitDocuments(data []byte) []document {
	var out []document
	start, startLine, line := 0, 1, 1
	for i := 0; i < len(data); {
		end := bytes.IndexByte(data[i:], '\n')
		next := len(data)
		if end >= 0 {
			next = i + end + 1
		}
		if i > start && isMarker(data[i:next]) {
			out = append(out, document{text: data[start:i], line: startLine})
			start, startLine = i, line
		}
		i = next
		line++
	}
	if start < len(data) || len(out) == 0 {
		out = append(out, document{text: data[start:], line: startLine})
	}
	return out
}

func isMarker(l []byte) bool {
	l = bytes.TrimRight(l, "\r\n")
	if len(l) < 3 || !bytes.HasPrefix(l, []byte("---")) {
		return false
	}
	return len(l) == 3 || l[3] == ' ' || l[3] == '\t'
}

// parsedWhole reports whether data is parsed whole rather than document
// by document: when it has a line starting with '%' (a YAML directive,
// which belongs to the document after it) or "..." (a document end, after
// which a document may start without "---"), or a carriage return alone,
// which YAML counts as a line break where splitDocuments counts none.
func parsedWhole(data []byte) bool {
	return bytes.HasPrefix(data, []byte("%")) || bytes.Contains(data, []byte("\n%")) ||
		bytes.HasPrefix(data, []byte("...")) || bytes.Contains(data, []byte("\n...")) ||
		bytes.Count(data, []byte("\r")) != bytes.Count(data, []byte("\r\n"))
}

// parseDocumentAt parses one piece of a file that starts at line first, with
// every line number as in the whole file.
func parseDocumentAt(file string, text []byte, first int) parsedDoc {
	objs, ms, errs := parseManifestsAt(file, text, first)
	p := parsedDoc{objs: objs, ms: ms, errs: errs}
	for _, e := range errs {
		p.syntax = p.syntax || strings.HasPrefix(e.Message, "invalid YAML")
	}
	return p
}
