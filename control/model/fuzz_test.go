package model

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse feeds Parse arbitrary bytes: it must not panic, and every
// diagnostic, from Parse and from validating what it read, must point at a
// line of the file.
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/valid/*.y*ml")
	more, _ := filepath.Glob("testdata/valid/*/*.y*ml")
	for _, p := range append(seeds, more...) {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(base))
	f.Add([]byte(routeHead + "    - destinations: [{subset: v1, weight: 100}]\n"))
	f.Add([]byte("a: &a [*a]\n"))
	f.Add([]byte("apiVersion: glassmesh.io/v1alpha1\nkind: SLO\nspec: &x {a: *x}\n"))
	f.Add([]byte("---\n- [\n"))
	f.Add([]byte("\xef\xbb\xbfkind: Service\n<<: {a: 1}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		objs, errs := Parse("fuzz.yaml", data)
		_, verrs, warns := Validate(objs)
		for _, ds := range [][]Diagnostic{errs, verrs, warns} {
			for _, d := range ds {
				if d.File != "fuzz.yaml" || d.Line <= 0 {
					t.Errorf("diagnostic without a place: %+v", d)
				}
			}
		}
	})
}
