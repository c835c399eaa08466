package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"maps"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/glassmesh/glassmesh/control/model"
)

// modelDir and crdDir are control/model and deploy/crds, from here.
var (
	modelDir = ".."
	crdDir   = filepath.Join("..", "..", "..", "deploy", "crds")
)

// TestCRDs checks that deploy/crds holds exactly what crdgen writes, and
// that the CRDs are well formed.
func TestCRDs(t *testing.T) {
	crds := mustCRDs(t)
	want := map[string]bool{}
	for _, c := range crds {
		want[c.FileName()] = true
		got, err := c.YAML()
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(crdDir, c.FileName())
		old, err := os.ReadFile(path)
		if err != nil || !bytes.Equal(old, got) {
			t.Errorf("%s is not what the Go types give (%s); run go generate ./control/model and review the diff",
				path, firstDifference(old, got))
		}
	}
	files, _ := filepath.Glob(filepath.Join(crdDir, "*."+model.CRDGroup+".yaml"))
	for _, f := range files {
		if !want[filepath.Base(f)] {
			t.Errorf("%s is no glassmesh kind's CRD; delete it", f)
		}
	}

	t.Run("names follow Kubernetes conventions and do not collide", func(t *testing.T) {
		seen := map[string]string{}
		for _, c := range crds {
			n := c.Spec.Names
			if c.Metadata.Name != n.Plural+"."+c.Spec.Group || c.Spec.Group != model.CRDGroup || model.APIVersion != model.CRDGroup+"/"+model.CRDVersion {
				t.Errorf("%s: name %s, group %s", n.Kind, c.Metadata.Name, c.Spec.Group)
			}
			if n.Plural != strings.ToLower(n.Plural) || n.Singular != strings.ToLower(n.Kind) || c.Spec.Scope != "Namespaced" {
				t.Errorf("%s: plural %s, singular %s, scope %s", n.Kind, n.Plural, n.Singular, c.Spec.Scope)
			}
			for _, name := range append([]string{n.Plural, n.Singular}, n.ShortNames...) {
				if other, dup := seen[name]; dup {
					t.Errorf("%s and %s are both called %s", other, n.Kind, name)
				}
				seen[name] = n.Kind
			}
		}
		if len(crds) != len(model.Kinds()) {
			t.Errorf("%d CRDs for the kinds %s", len(crds), model.Kinds())
		}
	})

	t.Run("every schema is structural", func(t *testing.T) {
		for _, c := range crds {
			for _, p := range structuralProblems(c.Schema(), "") {
				t.Errorf("%s: %s", c.Metadata.Name, p)
			}
		}
	})

	t.Run("printer columns name fields of the schema", func(t *testing.T) {
		for _, c := range crds {
			for _, col := range c.Spec.Versions[0].AdditionalPrinterColumns {
				if s := schemaAt(c.Schema(), col.JSONPath); s == nil && col.JSONPath != ".metadata.creationTimestamp" {
					t.Errorf("%s: column %s: no field %s", c.Metadata.Name, col.Name, col.JSONPath)
				} else if s != nil && s.Type != col.Type {
					t.Errorf("%s: column %s is a %s, the field a %s", c.Metadata.Name, col.Name, col.Type, s.Type)
				}
			}
		}
	})

	t.Run("json and yaml names of spec fields agree", func(t *testing.T) {
		rules := fieldRules()
		for _, k := range crdKinds() {
			checkTags(t, k.spec, rules, map[reflect.Type]bool{})
		}
	})
}

func mustCRDs(t *testing.T) []CRD {
	t.Helper()
	crds, err := CRDs(modelDir)
	if err != nil {
		t.Fatal(err)
	}
	return crds
}

// firstDifference says where two files first differ, as a hint.
func firstDifference(old, got []byte) string {
	if old == nil {
		return "missing"
	}
	a, b := strings.Split(string(old), "\n"), strings.Split(string(got), "\n")
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return fmt.Sprintf("line %d is %q, want %q", i+1, a[i], b[i])
		}
	}
	return fmt.Sprintf("%d lines, want %d", len(a), len(b))
}

// checkTags checks that the json name of every field (the schema's) is its
// yaml name (the parser's, which the Kubernetes source feeds), and that a
// required field is never left out of JSON.
func checkTags(t *testing.T, typ reflect.Type, rules map[reflect.Type]map[string]rule, seen map[reflect.Type]bool) {
	for typ.Kind() == reflect.Pointer || typ.Kind() == reflect.Slice || typ.Kind() == reflect.Map {
		typ = typ.Elem()
	}
	if typ.Kind() != reflect.Struct || typ == reflect.TypeFor[model.Duration]() || seen[typ] {
		return
	}
	seen[typ] = true
	for i := range typ.NumField() {
		f := typ.Field(i)
		jname, jopts, _ := strings.Cut(f.Tag.Get("json"), ",")
		yname, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if jname != yname {
			t.Errorf("%s.%s: json name %q, yaml name %q", typ.Name(), f.Name, jname, yname)
		}
		if rules[typ][jname].required && jopts != "" {
			t.Errorf("%s.%s is required, but json leaves it out (%s)", typ.Name(), f.Name, jopts)
		}
		checkTags(t, f.Type, rules, seen)
	}
}

// schemaAt is the schema of the field at a simple JSON path (".spec.x").
func schemaAt(s *Schema, path string) *Schema {
	for _, name := range strings.Split(strings.TrimPrefix(path, "."), ".") {
		if s = s.Properties[name]; s == nil {
			return nil
		}
	}
	return s
}

var (
	schemaTypes = map[string]bool{"object": true, "array": true, "string": true, "integer": true, "number": true, "boolean": true}
	formats     = map[string]string{"int32": "integer", "int64": "integer", "date-time": "string"}
)

// structuralProblems lists where s breaks Kubernetes' rules for structural
// schemas (every node typed, properties or additionalProperties but not
// both, metadata unrestricted) and the rules the API server checks on the
// keywords used here.
func structuralProblems(s *Schema, path string) []string {
	var out []string
	bad := func(format string, args ...any) {
		out = append(out, fmt.Sprintf("%s: ", pathOrRoot(path))+fmt.Sprintf(format, args...))
	}
	switch {
	case s.Type == "" && !s.PreserveUnknown:
		bad("no type")
	case s.Type != "" && !schemaTypes[s.Type]:
		bad("type %q", s.Type)
	}
	if s.Properties != nil && s.AdditionalProperties != nil {
		bad("both properties and additionalProperties")
	}
	if (s.Properties != nil || s.AdditionalProperties != nil || s.Required != nil) && s.Type != "object" {
		bad("fields on a %s", s.Type)
	}
	if (s.Items != nil) != (s.Type == "array") {
		bad("items on a %s", s.Type)
	}
	if want, ok := formats[s.Format]; s.Format != "" && (!ok || want != s.Type) {
		bad("format %q on a %s", s.Format, s.Type)
	}
	if (s.Enum != nil || s.Pattern != "") && s.Type != "string" {
		bad("enum or pattern on a %s", s.Type)
	}
	if _, err := regexp.Compile(s.Pattern); err != nil {
		bad("pattern: %v", err)
	}
	if (s.Minimum != nil || s.Maximum != nil) && s.Type != "integer" && s.Type != "number" {
		bad("minimum or maximum on a %s", s.Type)
	}
	if s.MinItems != nil && s.Type != "array" || s.MinProperties != nil && s.Type != "object" {
		bad("minItems or minProperties on a %s", s.Type)
	}
	for _, r := range s.Required {
		if s.Properties[r] == nil {
			bad("required field %s is not a property", r)
		}
	}
	if s.ListType == "map" && (s.Items == nil || len(s.ListMapKeys) == 0 || !isSubset(s.ListMapKeys, s.Items.Required)) {
		bad("a map list needs its keys required in its items")
	}
	if path == ".metadata" && (s.Properties != nil || s.Type != "object") {
		bad("only name and generateName may be restricted")
	}
	for name, p := range s.Properties {
		out = append(out, structuralProblems(p, path+"."+name)...)
	}
	for _, p := range []*Schema{s.AdditionalProperties, s.Items} {
		if p != nil {
			out = append(out, structuralProblems(p, path+"[]")...)
		}
	}
	return out
}

func pathOrRoot(path string) string {
	if path == "" {
		return "(root)"
	}
	return path
}

func isSubset(a, b []string) bool {
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}

// TestDurationPatternIsParseDuration checks the schema's pattern for
// durations against model.ParseDuration, which reads them.
func TestDurationPatternIsParseDuration(t *testing.T) {
	re := regexp.MustCompile(DurationPattern)
	for _, s := range []string{
		"5s", "1m30s", "30d", "1d12h", "0", "-5s", "+1h", ".5s", "1.5h", "1.h", "2µs", "300ms", "1h2m3s4ms5us6ns", "0d", "365d",
		"", "5", "5 s", "d", "1d2d", "30d5", "1d-1h", "abc", ".s", "1x", "s", "-", "1D", "5s ", " 5s",
	} {
		_, err := model.ParseDuration(s)
		if re.MatchString(s) != (err == nil) {
			t.Errorf("%q: pattern matches %v, ParseDuration error %v", s, re.MatchString(s), err)
		}
	}
}

// A config is one mesh's documents, from one or more files.
type crdConfig struct {
	name  string
	files map[string]string // file name → YAML
}

// TestCRDSchemasAcceptConfigs validates every object of the repository's
// mesh configs (YAML files, the demo's mesh, and extra below) against its
// kind's schema: objects the model reads without errors must pass entirely;
// objects it reads with validation errors (a fixture of a broken config, or
// a demo template) must still have the schema's types; objects the parser
// rejects are skipped. Valid objects must pass as glassmesh writes them in
// JSON too, and every field of every spec must be set by one of them.
func TestCRDSchemasAcceptConfigs(t *testing.T) {
	schemas := map[string]*Schema{}
	for _, c := range mustCRDs(t) {
		schemas[c.Spec.Names.Kind] = c.Schema()
	}
	configs := repoConfigs(t)
	checked := 0
	set := map[string]bool{} // fields some valid object sets, as Kind.spec.a[].b
	for _, cfg := range configs {
		states, objs := docStates(cfg)
		for _, file := range slices.Sorted(maps.Keys(cfg.files)) {
			for _, doc := range documents(t, file, cfg.files[file]) {
				s := schemas[doc.kind]
				if s == nil {
					continue
				}
				state := states[docKey{file, doc.line}]
				if state == docUnread {
					continue // the parser's own errors cover it
				}
				strict := state == docClean
				if strict {
					markSet(s, doc.value, doc.kind, set)
				}
				for _, p := range checkValue(s, doc.value, "", strict) {
					t.Errorf("%s:%d: %s %s: %s", file, doc.line, doc.kind, p.path, p.msg)
				}
				checked++
			}
		}
		for _, o := range objs {
			if states[docKey{o.origin.File, o.origin.Line}] != docClean {
				continue
			}
			b, err := json.Marshal(o.value)
			if err != nil {
				t.Fatal(err)
			}
			var v any
			if err := json.Unmarshal(b, &v); err != nil {
				t.Fatal(err)
			}
			for _, p := range checkValue(schemas[o.kind], v, "", true) {
				t.Errorf("%s:%d: %s as JSON: %s: %s", o.origin.File, o.origin.Line, o.kind, p.path, p.msg)
			}
		}
	}
	for _, c := range mustCRDs(t) {
		for _, p := range fieldPaths(c.Schema().Properties["spec"], c.Spec.Names.Kind+".spec") {
			if !set[p] {
				t.Errorf("no valid sample config sets %s, so nothing shows that its schema accepts what glassmesh reads; add it to extraConfig", p)
			}
		}
	}
	if checked < 30 {
		t.Errorf("checked only %d objects in %d configs; are the sample configs still found?", checked, len(configs))
	}
}

// TestCRDRequiredFieldsAreRequiredByValidate removes, one at a time, every
// field a schema requires from the objects of the sample configs: the model
// must report an error each time, or the schema would refuse configs
// glassmesh takes. Every required field must be seen at least once.
func TestCRDRequiredFieldsAreRequiredByValidate(t *testing.T) {
	schemas := map[string]*Schema{}
	exercised := map[string]bool{}
	for _, c := range mustCRDs(t) {
		schemas[c.Spec.Names.Kind] = c.Schema()
		// Status is glassmesh's to write; the spec is the user's.
		kind := c.Spec.Names.Kind
		paths := requiredPaths(c.Schema().Properties["spec"], kind+".spec")
		if slices.Contains(c.Schema().Required, "spec") {
			paths = append(paths, kind+".spec")
		}
		for _, p := range paths {
			exercised[p] = false
		}
	}
	for _, cfg := range repoConfigs(t) {
		states, _ := docStates(cfg)
		for _, file := range slices.Sorted(maps.Keys(cfg.files)) {
			docs := documents(t, file, cfg.files[file])
			for i, doc := range docs {
				if schemas[doc.kind] == nil || states[docKey{file, doc.line}] != docClean {
					continue
				}
				forEachRequired(schemas[doc.kind], doc.value, doc.kind, func(at string, remove func() (restore func())) {
					restore := remove()
					defer restore()
					variant := maps.Clone(cfg.files)
					variant[file] = encodeDocs(t, docs)
					if errs := configErrors(crdConfig{cfg.name, variant}); len(errs) == 0 {
						t.Errorf("%s: document %d (%s): without %s the model finds no error, so the schema must not require it", file, i+1, doc.kind, at)
					}
					exercised[at] = true
				})
			}
		}
	}
	for _, p := range slices.Sorted(maps.Keys(exercised)) {
		if !exercised[p] {
			t.Errorf("required field %s is in no sample config; add one to extraConfig", p)
		}
	}
}

type docKey struct {
	file string
	line int
}

type doc struct {
	kind  string
	line  int // of the document's mapping, as model.Origin.Line
	value any
}

type parsedObject struct {
	kind   string
	origin model.Origin
	value  any // *model.Service, ...
}

// documents decodes the YAML documents of one file.
func documents(t *testing.T, file, data string) []doc {
	t.Helper()
	var out []doc
	dec := yaml.NewDecoder(strings.NewReader(data))
	for {
		var n yaml.Node
		if err := dec.Decode(&n); err != nil {
			break
		}
		if len(n.Content) == 0 || n.Content[0].Kind != yaml.MappingNode {
			continue
		}
		var v map[string]any
		if err := n.Decode(&v); err != nil {
			t.Fatalf("%s:%d: %v", file, n.Content[0].Line, err)
		}
		kind, _ := v["kind"].(string)
		out = append(out, doc{kind: kind, line: n.Content[0].Line, value: v})
	}
	return out
}

// encodeDocs writes documents back as one YAML file.
func encodeDocs(t *testing.T, docs []doc) string {
	t.Helper()
	var b strings.Builder
	for _, d := range docs {
		out, err := yaml.Marshal(d.value)
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString("---\n")
		b.Write(out)
	}
	return b.String()
}

// docState is what glassmesh makes of one document.
type docState int

const (
	docUnread  docState = iota // not an object, or the parser reported errors
	docInvalid                 // read, but model.Validate reports errors: its types are right
	docClean                   // read and valid
)

// docStates reads a config as glassmesh does and says what became of each
// document (by file and line), and returns the objects read.
func docStates(cfg crdConfig) (map[docKey]docState, []parsedObject) {
	var all model.Objects
	var perrs []model.Diagnostic
	for _, file := range slices.Sorted(maps.Keys(cfg.files)) {
		objs, errs := model.Parse(file, []byte(cfg.files[file]))
		all.Append(objs)
		perrs = append(perrs, errs...)
	}
	var clone model.Objects // Validate may sort and set aside; all stays as read
	clone.Append(all)
	_, verrs, _ := model.Validate(clone)
	states := map[docKey]docState{}
	var out []parsedObject
	v := reflect.ValueOf(all)
	for i := range v.NumField() {
		for j := range v.Field(i).Len() {
			o := v.Field(i).Index(j)
			origin := o.Elem().FieldByName("Origin").Interface().(model.Origin)
			kind := o.Type().Elem().Name()
			out = append(out, parsedObject{kind: kind, origin: origin, value: o.Interface()})
			states[docKey{origin.File, origin.Line}] = docClean
		}
	}
	// An error belongs to the last document starting at or before its line.
	mark := func(errs []model.Diagnostic, state docState) {
		for _, e := range errs {
			best := docKey{e.File, 0}
			for k := range states {
				if k.file == e.File && k.line <= e.Line && k.line > best.line {
					best = k
				}
			}
			states[best] = min(states[best], state)
		}
	}
	mark(verrs, docInvalid)
	mark(perrs, docUnread)
	return states, out
}

// configErrors are the errors glassmesh finds in a config.
func configErrors(cfg crdConfig) []model.Diagnostic {
	var all model.Objects
	var errs []model.Diagnostic
	for file, data := range cfg.files {
		objs, perrs := model.Parse(file, []byte(data))
		all.Append(objs)
		errs = append(errs, perrs...)
	}
	_, verrs, _ := model.Validate(all)
	return append(errs, verrs...)
}

// repoConfigs are the mesh configs of the repository: every YAML file
// with glassmesh objects (a directory of them is one config when it is
// model's testdata), the demo's mesh, and extraConfig.
func repoConfigs(t *testing.T) []crdConfig {
	t.Helper()
	root := filepath.Join("..", "..", "..")
	valid := crdConfig{name: "testdata/valid", files: map[string]string{}}
	configs := []crdConfig{{name: "extra", files: map[string]string{"extra.yaml": extraConfig}}, demoConfig(t, filepath.Join(root, "demo", "mesh.go"))}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "node_modules") {
			return filepath.SkipDir
		}
		if d.IsDir() || !model.IsConfigFile(d.Name()) {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil || !strings.Contains(string(data), "apiVersion: "+model.APIVersion) {
			return err
		}
		if rel, _ := filepath.Rel(filepath.Join(root, "control", "model", "testdata", "valid"), path); !strings.HasPrefix(rel, "..") {
			valid.files[path] = string(data)
		} else {
			configs = append(configs, crdConfig{name: path, files: map[string]string{path: string(data)}})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return append(configs, valid)
}

// demoConfig is the mesh glassmesh demo writes: the string literals of
// demo/mesh.go that hold glassmesh objects, with their format verbs filled.
func demoConfig(t *testing.T, path string) crdConfig {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	verbs := strings.NewReplacer("%s", "x", "%d", "9080")
	cfg := crdConfig{name: path, files: map[string]string{}}
	ast.Inspect(f, func(n ast.Node) bool {
		lit, ok := n.(*ast.BasicLit)
		if !ok || lit.Kind != token.STRING {
			return true
		}
		s, err := strconv.Unquote(lit.Value)
		if err == nil && strings.Contains(s, "apiVersion: "+model.APIVersion) {
			cfg.files[fmt.Sprintf("%s#%d", path, len(cfg.files)+1)] = verbs.Replace(s)
		}
		return true
	})
	if len(cfg.files) < 4 {
		t.Fatalf("found %d configs in %s", len(cfg.files), path)
	}
	return cfg
}

// extraConfig holds the fields no sample config sets, so each required
// field is exercised.
const extraConfig = `apiVersion: glassmesh.io/v1alpha1
kind: Service
metadata: {name: cart, namespace: shop}
spec:
  ports: [{name: http, port: 8080, protocol: HTTP}]
  selector: {app: cart}
---
apiVersion: glassmesh.io/v1alpha1
kind: Service
metadata: {name: pay, namespace: shop}
spec:
  ports: [{name: http, port: 8080, protocol: HTTP2}]
  selector: {app: pay}
---
apiVersion: glassmesh.io/v1alpha1
kind: Service
metadata: {name: stock, namespace: shop}
spec:
  ports: [{name: http, port: 8080, protocol: HTTP}]
  selector: {app: stock}
---
apiVersion: glassmesh.io/v1alpha1
kind: Workload
metadata: {name: cart-v1, namespace: shop, labels: {app: cart, version: v1}}
spec:
  endpoints: [{address: 10.0.0.7, ports: {http: 8080}}]
---
apiVersion: glassmesh.io/v1alpha1
kind: Workload
metadata: {name: cart-v2, namespace: shop, labels: {app: cart, version: v2}}
spec:
  serviceAccount: cart
  endpoints: [{address: 10.0.0.8, ports: {http: 8080}}]
---
apiVersion: glassmesh.io/v1alpha1
kind: Workload
metadata: {name: pay-v1, namespace: shop, labels: {app: pay, version: v1}}
spec:
  endpoints: [{address: 10.0.0.9, ports: {http: 8080}}]
---
apiVersion: glassmesh.io/v1alpha1
kind: Workload
metadata: {name: stock-v1, namespace: shop, labels: {app: stock, version: v1}}
spec:
  endpoints: [{address: 10.0.0.10, ports: {http: 8080}}]
---
apiVersion: glassmesh.io/v1alpha1
kind: TrafficRoute
metadata: {name: cart, namespace: shop}
spec:
  service: cart
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
  rules:
    - match: {headers: {x-user: {prefix: test-}}, path: {exact: /api/cart}}
      destinations: [{subset: v2}]
    - match: {path: {regex: "^/api/v[0-9]+/"}}
      destinations: [{subset: v1, weight: 90}, {subset: v2, weight: 10}]
      fault: {abort: {percent: 1.5, httpStatus: 503}, delay: {percent: 10, fixedDelay: 100ms}}
    - destinations: [{subset: v1}]
  trafficPolicy:
    loadBalancer: {consistentHash: {httpHeaderName: x-user, minimumRingSize: 2048}}
    connectionPool:
      tcp: {maxConnections: 100, connectTimeout: 2s}
      http: {http1MaxPendingRequests: 10, http2MaxRequests: 1000, maxRequestsPerConnection: 5, maxRetries: 3, idleTimeout: 1m}
    outlierDetection:
      consecutive5xxErrors: 3
      consecutiveGatewayErrors: 2
      interval: 5s
      baseEjectionTime: 1m
      maxEjectionPercent: 50
      successRate: {stdevFactor: 1900, minimumHosts: 3, requestVolume: 50, enforcingPercent: 100}
      failurePercentage: {threshold: 80, minimumHosts: 3, requestVolume: 20, enforcingPercent: 50}
    rateLimit: {requestsPerSecond: 100, burst: 200}
    mirror: {subset: v2, percent: 5}
---
apiVersion: glassmesh.io/v1alpha1
kind: TrafficRoute
metadata: {name: pay, namespace: shop}
spec:
  service: pay
  subsets: [{name: v1, labels: {version: v1}}]
  rules: [{destinations: [{subset: v1}]}]
  trafficPolicy: {loadBalancer: {consistentHash: {useSourceIp: true}}}
---
apiVersion: glassmesh.io/v1alpha1
kind: TrafficRoute
metadata: {name: stock, namespace: shop}
spec:
  service: stock
  subsets: [{name: v1, labels: {version: v1}}]
  rules: [{destinations: [{subset: v1}]}]
  trafficPolicy: {loadBalancer: {simple: LEAST_REQUEST}}
---
apiVersion: glassmesh.io/v1alpha1
kind: SLO
metadata: {name: cart-errors, namespace: shop}
spec:
  service: cart
  objective: 99.9
  window: 7d
  indicator:
    ratio:
      errorQuery: sum(rate(istio_requests_total{destination_service_name="cart",response_code=~"5.."}[$window]))
      totalQuery: sum(rate(istio_requests_total{destination_service_name="cart"}[$window]))
---
apiVersion: glassmesh.io/v1alpha1
kind: SLO
metadata: {name: cart-availability, namespace: shop}
spec: {service: cart, objective: 99.5, indicator: {availability: {}}}
---
apiVersion: glassmesh.io/v1alpha1
kind: SLOPolicy
metadata: {name: cart, namespace: shop}
spec:
  slo: cart-availability
  actions:
    - when: ticket
      shiftTraffic: {route: cart, maxShift: 50, minHealthySubsets: 1, minRequests: 10}
    - {when: budgetExhausted, freezeCanaries: true}
  recovery: {after: 5m, steps: [50, 100], interval: 1m}
  dryRun: true
---
apiVersion: glassmesh.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: cart, namespace: shop}
spec:
  selector: {app: cart}
  action: DENY
  rules:
    - from: [{notNamespaces: [shop]}]
      to: [{methods: [DELETE], notPaths: [/health]}]
      when: [{key: "request.headers[x-admin]", notValues: ["true"]}]
---
apiVersion: glassmesh.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: pay, namespace: shop}
spec:
  selector: {app: pay}
  rules:
    - from: [{namespaces: [shop], notPrincipals: ["cluster.local/ns/shop/sa/stock"]}]
      to: [{paths: ["/pay.Pay/*"], notMethods: [GET]}]
      when: [{key: "request.headers[x-tenant]", values: ["a*"]}]
---
apiVersion: glassmesh.io/v1alpha1
kind: PeerAuthentication
metadata: {name: cart, namespace: shop}
spec: {selector: {app: cart}, mtls: DISABLE}
`

type problem struct{ path, msg string }

// checkValue validates a decoded YAML or JSON value against a schema as the
// API server would. Types and unknown fields are always checked; required
// fields, enums, patterns and bounds only when strict. null is absent.
func checkValue(s *Schema, v any, path string, strict bool) []problem {
	if v == nil || path == ".metadata" {
		return nil
	}
	var out []problem
	bad := func(format string, args ...any) {
		out = append(out, problem{pathOrRoot(path), fmt.Sprintf(format, args...)})
	}
	switch s.Type {
	case "object":
		m, ok := v.(map[string]any)
		if !ok {
			bad("want an object, got %T", v)
			break
		}
		for _, k := range slices.Sorted(maps.Keys(m)) {
			switch p := s.Properties[k]; {
			case p != nil:
				out = append(out, checkValue(p, m[k], path+"."+k, strict)...)
			case s.AdditionalProperties != nil:
				out = append(out, checkValue(s.AdditionalProperties, m[k], path+"."+k, strict)...)
			case !s.PreserveUnknown:
				bad("unknown field %s", k)
			}
		}
		for _, r := range s.Required {
			if strict && m[r] == nil {
				bad("required field %s is missing", r)
			}
		}
		if strict && s.MinProperties != nil && int64(len(m)) < *s.MinProperties {
			bad("fewer than %d fields", *s.MinProperties)
		}
	case "array":
		a, ok := v.([]any)
		if !ok {
			bad("want an array, got %T", v)
			break
		}
		if strict && s.MinItems != nil && int64(len(a)) < *s.MinItems {
			bad("fewer than %d items", *s.MinItems)
		}
		for i, item := range a {
			out = append(out, checkValue(s.Items, item, fmt.Sprintf("%s[%d]", path, i), strict)...)
		}
	case "string":
		str, ok := v.(string)
		switch {
		case !ok:
			bad("want a string, got %T %v", v, v)
		case strict && s.Enum != nil && !slices.Contains(s.Enum, str):
			bad("%q is not one of %v", str, s.Enum)
		case strict && s.Pattern != "" && !regexp.MustCompile(s.Pattern).MatchString(str):
			bad("%q does not match %s", str, s.Pattern)
		}
	case "integer", "number", "boolean":
		out = append(out, checkScalar(s, v, strict, bad)...)
	}
	return out
}

func checkScalar(s *Schema, v any, strict bool, bad func(string, ...any)) []problem {
	if s.Type == "boolean" {
		if _, ok := v.(bool); !ok {
			bad("want a boolean, got %T %v", v, v)
		}
		return nil
	}
	var f float64
	switch n := v.(type) {
	case int:
		f = float64(n)
	case float64:
		f = n
	default:
		bad("want a %s, got %T %v", s.Type, v, v)
		return nil
	}
	switch {
	case s.Type == "integer" && f != math.Trunc(f):
		bad("want an integer, got %v", f)
	case strict && s.Minimum != nil && (f < float64(*s.Minimum) || s.ExclusiveMinimum && f == float64(*s.Minimum)):
		bad("%v is below the minimum %v", f, *s.Minimum)
	case strict && s.Maximum != nil && (f > float64(*s.Maximum) || s.ExclusiveMaximum && f == float64(*s.Maximum)):
		bad("%v is above the maximum %v", f, *s.Maximum)
	}
	return nil
}

// requiredPaths names every required field of a schema as kind.path.
func requiredPaths(s *Schema, path string) []string {
	var out []string
	for _, r := range s.Required {
		out = append(out, path+"."+r)
	}
	for name, p := range s.Properties {
		out = append(out, requiredPaths(p, path+"."+name)...)
	}
	for _, p := range []*Schema{s.Items, s.AdditionalProperties} {
		if p != nil {
			out = append(out, requiredPaths(p, path+"[]")...)
		}
	}
	return out
}

// fieldPaths names every field of a schema as path.a[].b.
func fieldPaths(s *Schema, path string) []string {
	out := []string{path}
	for name, p := range s.Properties {
		out = append(out, fieldPaths(p, path+"."+name)...)
	}
	for _, p := range []*Schema{s.Items, s.AdditionalProperties} {
		if p != nil {
			out = append(out, fieldPaths(p, path+"[]")[1:]...)
		}
	}
	return out
}

// markSet records in set the fields (as fieldPaths names them) that v sets.
func markSet(s *Schema, v any, path string, set map[string]bool) {
	if v == nil {
		return
	}
	set[path] = true
	switch x := v.(type) {
	case map[string]any:
		for k, val := range x {
			switch {
			case s.Properties[k] != nil:
				markSet(s.Properties[k], val, path+"."+k, set)
			case s.AdditionalProperties != nil:
				markSet(s.AdditionalProperties, val, path+"[]", set)
			}
		}
	case []any:
		for _, item := range x {
			if s.Items != nil {
				markSet(s.Items, item, path+"[]", set)
			}
		}
	}
}

// forEachRequired calls f for every required field that v sets, with its
// path (as requiredPaths names it) and a func that removes it from v and
// returns one that puts it back.
func forEachRequired(s *Schema, v any, path string, f func(at string, remove func() (restore func()))) {
	switch x := v.(type) {
	case map[string]any:
		for _, r := range s.Required {
			if old, ok := x[r]; ok {
				f(path+"."+r, func() func() {
					delete(x, r)
					return func() { x[r] = old }
				})
			}
		}
		for _, k := range slices.Sorted(maps.Keys(x)) {
			switch {
			case s.Properties[k] != nil:
				forEachRequired(s.Properties[k], x[k], path+"."+k, f)
			case s.AdditionalProperties != nil:
				forEachRequired(s.AdditionalProperties, x[k], path+"[]", f)
			}
		}
	case []any:
		for _, item := range x {
			if s.Items != nil {
				forEachRequired(s.Items, item, path+"[]", f)
			}
		}
	}
}
