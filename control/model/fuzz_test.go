package model

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
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

// FuzzContain contains an arbitrary file beside a valid one, against a
// valid last good config: whatever the file holds, the serving mesh must
// validate cleanly, the valid file's change must apply, and every error
// must belong to an object set aside or to the held file.
func FuzzContain(f *testing.F) {
	f.Add([]byte(teamA(60, 60)))
	f.Add([]byte(teamA(50, 50)))
	f.Add([]byte("kind: [Service\n"))
	f.Add([]byte(teamB(7000)))
	f.Add([]byte(teamA(50, 50)[strings.LastIndex(teamA(50, 50), "apiVersion:"):]))
	prevA, errs := Parse("a.yaml", []byte(teamA(50, 50)))
	prevB, errs2 := Parse("b.yaml", []byte(teamB(8001)))
	prevA.Append(prevB)
	prev, verrs, _ := Validate(prevA)
	if len(errs)+len(errs2)+len(verrs) > 0 {
		f.Fatal(errs, errs2, verrs)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		objs, readErrs := Parse("a.yaml", data)
		b, _ := Parse("b.yaml", []byte(teamB(8002)))
		objs.Append(b)
		c := Contain(objs, readErrs, prev)
		if _, errs, _ := Validate(c.Mesh.Objects()); len(errs) > 0 {
			t.Fatalf("the contained mesh does not validate: %v", errs)
		}
		if c.Whole {
			t.Fatal("a file's errors held the whole config")
		}
		// Set aside is allowed: the file may define team-b's service first
		// (the first definition serves), which then selects no b-v1.
		applied := func(w *Workload) bool {
			return w != nil && len(w.Spec.Endpoints) > 0 && w.Spec.Endpoints[0].Ports["grpc"] == 8002
		}
		if w := c.Mesh.Workload("team-b", "b-v1"); !applied(w) && !slices.ContainsFunc(c.SetAside, func(s SetAside) bool { return s.Key() == "Workload/team-b/b-v1" }) {
			t.Fatalf("team-b's change did not apply: %+v", w)
		}
		for _, e := range c.Errors {
			owned := slices.ContainsFunc(c.SetAside, func(s SetAside) bool { return s.Key() == e.Object })
			if !owned && !slices.Contains(c.HeldFiles, e.File) {
				t.Errorf("error %v belongs to nothing set aside or held", e)
			}
		}
	})
}

// FuzzParseCached: parsing a file document by document through a cache
// gives what parsing it whole gives, line numbers included; read again,
// it gives the very same objects.
func FuzzParseCached(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/valid/*.y*ml")
	for _, p := range seeds {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(teamA(50, 50) + "---\n" + teamB(8001)))
	f.Add([]byte(teamA(60, 60) + "...\n---\nkind: [Service\n---\n" + teamB(8001)))
	f.Add([]byte("apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Service\n  metadata: {name: x}\n---\n--- |\n  text\n---\n"))
	f.Add([]byte("a: |\n  ---\n---\nb: 1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		wantObjs, wantMs, wantErrs := ParseManifests("f.yaml", data)
		c := &ParseCache{}
		objs, ms, errs := ParseManifestsCached("f.yaml", data, c)
		c.done()
		if !reflect.DeepEqual(errs, wantErrs) && !(len(errs) == 0 && len(wantErrs) == 0) {
			t.Fatalf("diagnostics\n%v\nwant\n%v", errs, wantErrs)
		}
		if !reflect.DeepEqual(objs.entries(), wantObjs.entries()) {
			t.Fatalf("objects differ:\n%+v\nwant\n%+v", objs.entries(), wantObjs.entries())
		}
		if len(ms) != len(wantMs) || len(ms) > 0 && !reflect.DeepEqual(ms, wantMs) {
			t.Fatalf("manifests differ:\n%+v\nwant\n%+v", ms, wantMs)
		}
		if parsedWhole(data) || slices.ContainsFunc(errs, func(d Diagnostic) bool { return strings.HasPrefix(d.Message, "invalid YAML") }) {
			return // parsed whole, every time
		}
		again, _, _ := ParseManifestsCached("f.yaml", data, c)
		a, b := again.entries(), objs.entries()
		for i := range a {
			if a[i].obj != b[i].obj {
				t.Fatalf("object %d parsed again", i)
			}
		}
	})
}
