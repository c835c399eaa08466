package model

import (
	"slices"
	"testing"
)

// TestParseCachedQuotesTheFilesLines: a document parsed alone through the
// cache quotes in its messages the lines it has in the file, not in
// itself (FuzzParseCached found "first set on line 2" for line 3).
func TestParseCachedQuotesTheFilesLines(t *testing.T) {
	data := []byte("kind: Service\n---\napiVersion: glassmesh.io/v1alpha1\nkind: Service\nmetadata: {name: a}\nmetadata: {name: b}\n")
	_, _, want := ParseManifests("f.yaml", data)
	c := &ParseCache{}
	_, _, got := ParseManifestsCached("f.yaml", data, c)
	c.done()
	_, _, again := ParseManifestsCached("f.yaml", data, c)
	i := slices.IndexFunc(want, func(d Diagnostic) bool { return d.Path == "metadata" })
	if i < 0 || want[i].Line != 6 || want[i].Message != "duplicate key; first set on line 5" {
		t.Fatalf("parsed whole: %v", want)
	}
	for _, errs := range [][]Diagnostic{got, again} {
		if !slices.Equal(errs, want) {
			t.Errorf("through the cache:\n%v\nwant\n%v", errs, want)
		}
	}
}

// TestParseCachedLoneCarriageReturn: YAML counts a carriage return alone
// as a line break; a file with one is parsed whole, so its lines are
// YAML's (FuzzParseCached: "\r0\n--- 0" put its second document on line 2).
func TestParseCachedLoneCarriageReturn(t *testing.T) {
	data := []byte("\r0\n--- 0")
	_, _, want := ParseManifests("f.yaml", data)
	c := &ParseCache{}
	_, _, got := ParseManifestsCached("f.yaml", data, c)
	if len(want) != 2 || want[1].Line != 3 || !slices.Equal(got, want) {
		t.Errorf("through the cache:\n%v\nwhole:\n%v", got, want)
	}
}
