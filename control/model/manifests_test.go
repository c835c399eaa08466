package model

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestParseManifests(t *testing.T) {
	cases := []struct {
		name, data string
		services   int      // glassmesh Services parsed
		manifests  []string // Kind/namespace/name@line of the other objects
		errs       []string // diagnostics as file:line: path: message (substrings)
	}{{
		name: "glassmesh kinds are parsed and other kinds are kept as manifests with their line",
		data: `apiVersion: glassmesh.io/v1alpha1
kind: Service
metadata: {name: a}
spec: {ports: [{name: http, port: 80, protocol: HTTP}], selector: {app: a}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: a, namespace: shop}
spec: {replicas: 2}
---
---
apiVersion: v1
kind: Service
metadata: {name: b}
`,
		services:  1,
		manifests: []string{"Deployment/shop/a@6", "Service/default/b@12"},
	}, {
		name: "lists are read item by item, glassmesh items too",
		data: `apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: c}
- apiVersion: glassmesh.io/v1alpha1
  kind: Service
  metadata: {name: a}
  spec: {ports: [{name: http, port: 80, protocol: HTTP}], selector: {app: a}}
- apiVersion: v1
  kind: ServiceList
  items:
  - {apiVersion: v1, kind: Service, metadata: {name: s}}
`,
		services:  1,
		manifests: []string{"ConfigMap/default/c@4", "Service/default/s@14"},
	}, {
		name: "errors in glassmesh kinds keep file:line, and other versions of the group are errors",
		data: `apiVersion: glassmesh.io/v1alpha1
kind: Service
metadata: {name: a}
spec: {portz: []}
---
apiVersion: glassmesh.io/v1
kind: Workload
metadata: {name: w}
---
kind: Deployment
`,
		services: 1,
		errs: []string{
			"m.yaml:4: spec.portz: unknown field",
			`m.yaml:6: apiVersion: "glassmesh.io/v1" is not supported`,
			"m.yaml:10: apiVersion: missing",
			`m.yaml:10: kind: unknown kind "Deployment"`,
		},
	}, {
		name: "a malformed other object is an error at its line",
		data: "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: a, name: b}\n",
		errs: []string{"m.yaml:3: metadata.name: duplicate key"},
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			objs, ms, errs := ParseManifests("m.yaml", []byte(c.data))
			if len(objs.Services) != c.services {
				t.Errorf("%d glassmesh services, want %d", len(objs.Services), c.services)
			}
			var got []string
			for _, m := range ms {
				got = append(got, m.Kind+"/"+m.Namespace+"/"+m.Name+"@"+strconv.Itoa(m.Origin.Line))
			}
			if strings.Join(got, " ") != strings.Join(c.manifests, " ") {
				t.Errorf("manifests %q, want %q", got, c.manifests)
			}
			if len(errs) != len(c.errs) {
				t.Fatalf("errors %v, want %q", errs, c.errs)
			}
			for i := range errs {
				if !strings.Contains(errs[i].Error(), c.errs[i]) {
					t.Errorf("error %d = %q, want it to contain %q", i, errs[i].Error(), c.errs[i])
				}
			}
		})
	}
}

func TestManifestFieldLines(t *testing.T) {
	_, ms, _ := ParseManifests("m.yaml", []byte("apiVersion: v1\nkind: Service\nmetadata:\n  name: a\nspec:\n  ports:\n  - name: http\n    port: 80\n"))
	if len(ms) != 1 {
		t.Fatalf("%d manifests", len(ms))
	}
	for path, want := range map[string]int{"spec.ports[0].port": 8, "spec.ports[0]": 7, "metadata.name": 4, "spec.selector": 5} {
		if got := ms[0].Origin.LineOf(path); got != want {
			t.Errorf("line of %s = %d, want %d", path, got, want)
		}
	}
	if port, ok := ms[0].Object["spec"].(map[string]any)["ports"].([]any)[0].(map[string]any)["port"].(int64); !ok || port != 80 {
		t.Errorf("port %v: integers should be int64, as in unstructured objects", port)
	}
}

func TestLoadManifestsCountsWhatItSkips(t *testing.T) {
	dir := t.TempDir()
	data := "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: a}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: b}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n"
	if err := os.WriteFile(filepath.Join(dir, "app.yaml"), []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	r, skipped := LoadManifests(dir, nil)
	if len(r.Errors) != 0 || r.Mesh == nil {
		t.Fatalf("errors %v", r.Errors)
	}
	if skipped.Total() != 3 || skipped.String() != "Deployment×2, ConfigMap×1" {
		t.Errorf("skipped %d: %s", skipped.Total(), skipped)
	}
	imp := func(objs *Objects, ms []Manifest) (errs, warns []Diagnostic, rest []Manifest) {
		for _, m := range ms {
			if m.Kind != "ConfigMap" {
				rest = append(rest, m)
			}
		}
		return []Diagnostic{{File: ms[0].Origin.File, Line: ms[0].Origin.Line, Message: "boom"}}, nil, rest
	}
	r, skipped = LoadManifests(dir, imp)
	if len(r.Errors) != 1 || r.Errors[0].Line != 1 || r.Mesh != nil || skipped.String() != "Deployment×2" {
		t.Errorf("with an importer: errors %v, skipped %s", r.Errors, skipped)
	}
}

// FuzzParseManifests feeds ParseManifests arbitrary bytes: it must not
// panic, and every diagnostic and manifest must point at a line of the
// file.
func FuzzParseManifests(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/manifests/*/*.y*ml")
	for _, p := range seeds {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("apiVersion: v1\nkind: List\nitems: &a [{apiVersion: v1, kind: List, items: *a}]\n"))
	f.Add([]byte("apiVersion: v1\nkind: List\nitems: [1, [2], {kind: X}]\n"))
	f.Add([]byte("apiVersion: v1\nkind: Service\nmetadata: {name: 1e999, namespace: [x]}\nspec: {ports: [{port: 99999999999999999999}]}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		objs, ms, errs := ParseManifests("fuzz.yaml", data)
		_, verrs, warns := Validate(objs)
		for _, ds := range [][]Diagnostic{errs, verrs, warns} {
			for _, d := range ds {
				if d.File != "fuzz.yaml" || d.Line <= 0 {
					t.Errorf("diagnostic without a place: %+v", d)
				}
			}
		}
		for _, m := range ms {
			if m.Origin.File != "fuzz.yaml" || m.Origin.Line <= 0 || m.Kind == "" || m.Namespace == "" {
				t.Errorf("manifest without a place or kind: %+v", m)
			}
		}
	})
}
