package k8s

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"
)

func TestCRDsInstall(t *testing.T) {
	cfg, _ := startAPIServer(t)
	crds := installCRDs(t, cfg, crdDir)
	for _, crd := range crds {
		if crd.Spec.Group != "glassmesh.io" {
			t.Errorf("CRD %s: group %q, want glassmesh.io", crd.Name, crd.Spec.Group)
		}
		t.Logf("%s established (%s)", crd.Name, crd.Spec.Names.Kind)
	}
}

// TestCustomResources creates one object of every installed kind (from
// testdata/examples.yaml, or built from the schema) and reads it back.
func TestCustomResources(t *testing.T) {
	cfg, _ := startAPIServer(t)
	crds := installCRDs(t, cfg, crdDir)
	examples := readExamples(t, "testdata/examples.yaml")
	dyn := dynamic.NewForConfigOrDie(cfg)
	ns := newNamespace(t, kubernetes.NewForConfigOrDie(cfg))

	for _, crd := range crds {
		for _, v := range crd.Spec.Versions {
			if !v.Served {
				continue
			}
			kind := crd.Spec.Names.Kind
			t.Run("a minimal "+kind+" "+v.Name+" is accepted and read back", func(t *testing.T) {
				obj, from := examples[kind], "testdata/examples.yaml"
				if obj == nil {
					obj, from = fromSchema(kind, v.Schema), "the schema's required fields"
				}
				obj = obj.DeepCopy()
				obj.SetAPIVersion(crd.Spec.Group + "/" + v.Name)
				gvr := schema.GroupVersionResource{Group: crd.Spec.Group, Version: v.Name, Resource: crd.Spec.Names.Plural}
				var ri dynamic.ResourceInterface = dyn.Resource(gvr)
				if crd.Spec.Scope == apiextensionsv1.NamespaceScoped {
					obj.SetNamespace(ns)
					ri = dyn.Resource(gvr).Namespace(ns)
				}
				ctx := context.Background()
				if _, err := ri.Create(ctx, obj, metav1.CreateOptions{FieldValidation: "Strict"}); err != nil {
					body, _ := json.Marshal(obj.Object)
					t.Fatalf("create %s (from %s) %s: %v", kind, from, body, err)
				}
				got, err := ri.Get(ctx, obj.GetName(), metav1.GetOptions{})
				if err != nil {
					t.Fatal(err)
				}
				want, _ := json.Marshal(obj.Object["spec"])
				have, _ := json.Marshal(got.Object["spec"])
				if from == "testdata/examples.yaml" && !jsonContains(t, have, want) {
					t.Errorf("spec read back %s, created %s: the schema dropped fields", have, want)
				}
			})
		}
	}
}

// readExamples returns the first object of each kind in file.
func readExamples(t *testing.T, file string) map[string]*unstructured.Unstructured {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*unstructured.Unstructured{}
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		var m map[string]any
		if err := yaml.Unmarshal(doc, &m); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if m == nil {
			continue
		}
		u := &unstructured.Unstructured{Object: m}
		if out[u.GetKind()] == nil {
			out[u.GetKind()] = u
		}
	}
}

// fromSchema builds an object with only the fields the schema requires.
func fromSchema(kind string, v *apiextensionsv1.CustomResourceValidation) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{}}
	u.SetKind(kind)
	u.SetName("minimal-" + strings.ToLower(kind))
	if v == nil || v.OpenAPIV3Schema == nil {
		return u
	}
	root := v.OpenAPIV3Schema
	for name, prop := range root.Properties {
		if name == "spec" || contains(root.Required, name) {
			u.Object[name] = minimal(prop)
		}
	}
	return u
}

// minimal returns the smallest value that fits s: its default, its first
// enum value, its minimum, and for objects and arrays only what is required.
func minimal(s apiextensionsv1.JSONSchemaProps) any {
	if s.Default != nil {
		var v any
		if json.Unmarshal(s.Default.Raw, &v) == nil {
			return v
		}
	}
	if len(s.Enum) > 0 {
		var v any
		if json.Unmarshal(s.Enum[0].Raw, &v) == nil {
			return v
		}
	}
	if s.XIntOrString {
		return 1
	}
	switch s.Type {
	case "object":
		m := map[string]any{}
		for _, name := range s.Required {
			m[name] = minimal(s.Properties[name])
		}
		return m
	case "array":
		var a []any
		for i := int64(0); s.MinItems != nil && i < *s.MinItems; i++ {
			if s.Items != nil && s.Items.Schema != nil {
				a = append(a, minimal(*s.Items.Schema))
			}
		}
		if a == nil {
			a = []any{}
		}
		return a
	case "integer", "number":
		n := 1.0
		if s.Minimum != nil && *s.Minimum > n {
			n = *s.Minimum
		}
		if s.Maximum != nil && *s.Maximum < n {
			n = *s.Maximum
		}
		if s.Type == "integer" {
			return int64(n)
		}
		return n
	case "boolean":
		return false
	case "string":
		n := int64(1)
		if s.MinLength != nil && *s.MinLength > n {
			n = *s.MinLength
		}
		return strings.Repeat("a", int(n))
	}
	return map[string]any{}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// jsonContains reports whether every field of want is in have with the same
// value (the server may add defaults).
func jsonContains(t *testing.T, have, want []byte) bool {
	t.Helper()
	var h, w any
	if err := json.Unmarshal(have, &h); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatal(err)
	}
	return subset(w, h)
}

func subset(want, have any) bool {
	switch w := want.(type) {
	case map[string]any:
		h, ok := have.(map[string]any)
		if !ok {
			return false
		}
		for k, v := range w {
			if !subset(v, h[k]) {
				return false
			}
		}
		return true
	case []any:
		h, ok := have.([]any)
		if !ok || len(h) != len(w) {
			return false
		}
		for i := range w {
			if !subset(w[i], h[i]) {
				return false
			}
		}
		return true
	default:
		wb, _ := json.Marshal(want)
		hb, _ := json.Marshal(have)
		return bytes.Equal(wb, hb)
	}
}
