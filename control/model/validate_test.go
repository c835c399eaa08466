package model

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// base is a valid mesh the cases add to: service reviews with ports grpc
// and http, workloads reviews-v1 and reviews-v2.
const base = `apiVersion: glassmesh.io/v1alpha1
kind: Service
metadata: {name: reviews}
spec:
  ports: [{name: grpc, port: 9080, protocol: GRPC}, {name: http, port: 9081, protocol: HTTP}]
  selector: {app: reviews}
---
apiVersion: glassmesh.io/v1alpha1
kind: Workload
metadata: {name: reviews-v1, labels: {app: reviews, version: v1}}
spec:
  endpoints: [{address: 127.0.0.1, ports: {grpc: 19081}}]
---
apiVersion: glassmesh.io/v1alpha1
kind: Workload
metadata: {name: reviews-v2, labels: {app: reviews, version: v2}}
spec:
  endpoints: [{address: 127.0.0.1, ports: {grpc: 19082}}]
`

// routeHead starts a route for reviews; the cases' rules start on line 8.
const routeHead = `apiVersion: glassmesh.io/v1alpha1
kind: TrafficRoute
metadata: {name: reviews}
spec:
  service: reviews
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
  rules:
`

// loadFiles writes files into a temporary directory and loads it. File
// names in the diagnostics are made relative to the directory.
func loadFiles(t *testing.T, files map[string]string) Result {
	t.Helper()
	dir := t.TempDir()
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r := Load(dir)
	for _, ds := range [][]Diagnostic{r.Errors, r.Warnings} {
		for i := range ds {
			ds[i].File = strings.TrimPrefix(ds[i].File, dir+string(filepath.Separator))
			ds[i].Message = strings.ReplaceAll(ds[i].Message, dir+string(filepath.Separator), "")
		}
	}
	return r
}

func TestValidateErrorsNameFileLineAndPath(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  []string
	}{{
		name:  "weights must sum to 100",
		files: map[string]string{"x.yaml": routeHead + "    - destinations: [{subset: v1, weight: 100}, {subset: v2, weight: 20}]\n"},
		want:  []string{"x.yaml:8: spec.rules[0].destinations: weights sum to 120, want 100"},
	}, {
		name: "a misspelled weight is unknown and leaves the sum short",
		files: map[string]string{"x.yaml": routeHead + `    - destinations: [{subset: v1, weight: 100}]
    - destinations:
        - {subset: v1, wieght: 50}
        - {subset: v2, weight: 50}
`},
		want: []string{
			"x.yaml:9: spec.rules[1].destinations: weights sum to 50, want 100",
			"x.yaml:10: spec.rules[1].destinations[0].wieght: unknown field; did you mean weight?",
		},
	}, {
		name: "a destination must name a subset the route defines, once",
		files: map[string]string{"x.yaml": routeHead + `    - destinations:
        - {subset: v3, weight: 50}
        - {weight: 0}
        - {subset: v2, weight: 25}
        - {subset: v2, weight: 25}
`},
		want: []string{
			"x.yaml:9: spec.rules[0].destinations[0].subset: subset v3 is not defined in spec.subsets (one of v1, v2)",
			"x.yaml:10: spec.rules[0].destinations[1].subset: required: one of v1, v2",
			"x.yaml:12: spec.rules[0].destinations[3].subset: subset v2 is already a destination of this rule, at spec.rules[0].destinations[2]",
		},
	}, {
		name:  "a rule needs a destination",
		files: map[string]string{"x.yaml": routeHead + "    - timeout: 1s\n"},
		want:  []string{"x.yaml:8: spec.rules[0].destinations: at least one destination is required"},
	}, {
		name:  "a route needs a rule",
		files: map[string]string{"x.yaml": strings.TrimSuffix(routeHead, "  rules:\n")},
		want:  []string{"x.yaml:4: spec.rules: at least one rule is required"},
	}, {
		name: "a route's service must exist in its namespace",
		files: map[string]string{
			"x.yaml": strings.Replace(routeHead, "service: reviews", "service: ratings", 1) + "    - destinations: [{subset: v1}]\n",
			"y.yaml": strings.Replace(strings.Replace(routeHead, "{name: reviews}", "{name: reviews, namespace: shop}", 1), "  service: reviews\n", "", 1) + "    - destinations: [{subset: v1}]\n",
		},
		want: []string{
			"x.yaml:5: spec.service: service ratings not found in namespace default",
			"y.yaml:4: spec.service: required: the name of a service in namespace shop",
		},
	}, {
		name: "a service has at most one route",
		files: map[string]string{
			"x.yaml": routeHead + "    - destinations: [{subset: v1}]\n",
			"y.yaml": strings.Replace(routeHead, "{name: reviews}", "{name: reviews-2}", 1) + "    - destinations: [{subset: v1}]\n",
		},
		want: []string{"y.yaml:5: spec.service: service reviews already has a route: TrafficRoute default/reviews at x.yaml:1"},
	}, {
		name: "subsets need DNS names, unique, and labels",
		files: map[string]string{"x.yaml": `apiVersion: glassmesh.io/v1alpha1
kind: TrafficRoute
metadata: {name: reviews}
spec:
  service: reviews
  subsets:
    - {name: V1, labels: {version: v1}}
    - {name: v2, labels: {version: v2}}
    - {name: v2, labels: {version: v2}}
    - {name: all}
  rules:
    - destinations: [{subset: v2}]
`},
		want: []string{
			`x.yaml:7: spec.subsets[0].name: "V1" is not a DNS-1123 label: use lower-case letters, digits and '-', starting and ending with a letter or digit`,
			"x.yaml:9: spec.subsets[2].name: subset v2 is already defined by spec.subsets[1]",
			"x.yaml:10: spec.subsets[3].labels: required: the labels that pick the subset's workloads",
		},
	}, {
		name: "string matches take exactly one of exact, prefix, regex, and the regex compiles",
		files: map[string]string{"x.yaml": routeHead + `    - match:
        headers:
          x-a: {}
          x-b: {exact: a, prefix: b}
          x-c: {regex: "a(b"}
        path: {prefix: /}
      destinations: [{subset: v1}]
    - destinations: [{subset: v1}]
`},
		want: []string{
			"x.yaml:10: spec.rules[0].match.headers.x-a: set one of exact, prefix or regex",
			"x.yaml:11: spec.rules[0].match.headers.x-b: set only one of exact, prefix or regex",
			"x.yaml:12: spec.rules[0].match.headers.x-c.regex: not an RE2 regular expression: error parsing regexp: missing closing ): `a(b`",
		},
	}, {
		name: "timeouts and delays must not be negative, retries are bounded",
		files: map[string]string{"x.yaml": routeHead + `    - destinations: [{subset: v1}]
      timeout: -1s
      retries: {attempts: 11, perTryTimeout: -1ms}
      fault: {delay: {percent: 5, fixedDelay: -2d}}
`},
		want: []string{
			"x.yaml:9: spec.rules[0].timeout: must not be negative",
			"x.yaml:10: spec.rules[0].retries.attempts: 11 is more than 10",
			"x.yaml:10: spec.rules[0].retries.perTryTimeout: must not be negative",
			"x.yaml:11: spec.rules[0].fault.delay.fixedDelay: must not be negative",
		},
	}, {
		name: "fault percents are 0..100 and an abort has one valid status",
		files: map[string]string{"x.yaml": routeHead + `    - destinations: [{subset: v1}]
      fault:
        abort: {percent: 100.5, httpStatus: 600}
        delay: {percent: -1, fixedDelay: 1s}
    - destinations: [{subset: v1}]
      fault: {abort: {percent: 1}}
    - destinations: [{subset: v1}]
      fault: {abort: {percent: 1, httpStatus: 503, grpcStatus: UNAVAILABLE}}
    - destinations: [{subset: v1}]
      fault: {abort: {percent: .nan, grpcStatus: unavailable}}
`},
		want: []string{
			"x.yaml:10: spec.rules[0].fault.abort.percent: 100.5 is out of range 0..100",
			"x.yaml:10: spec.rules[0].fault.abort.httpStatus: 600 is out of range 200..599",
			"x.yaml:11: spec.rules[0].fault.delay.percent: -1 is out of range 0..100",
			"x.yaml:13: spec.rules[1].fault.abort: set httpStatus or grpcStatus",
			"x.yaml:15: spec.rules[2].fault.abort: set only one of httpStatus and grpcStatus",
			"x.yaml:17: spec.rules[3].fault.abort.percent: NaN is out of range 0..100",
			`x.yaml:17: spec.rules[3].fault.abort.grpcStatus: grpcStatus "unavailable" is not one of CANCELLED, UNKNOWN, INVALID_ARGUMENT, DEADLINE_EXCEEDED, NOT_FOUND, ALREADY_EXISTS, PERMISSION_DENIED, RESOURCE_EXHAUSTED, FAILED_PRECONDITION, ABORTED, OUT_OF_RANGE, UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS, UNAUTHENTICATED; did you mean UNAVAILABLE?`,
		},
	}, {
		name: "service ports have unique names and numbers, in range, with a known protocol",
		files: map[string]string{"x.yaml": `apiVersion: glassmesh.io/v1alpha1
kind: Service
metadata: {name: ratings}
spec:
  selector: {app: reviews}
  ports:
    - {port: 80, protocol: HTTP}
    - {name: a, port: 0, protocol: HTTP}
    - {name: a, port: 80, protocol: grpc}
    - {name: b, port: 65536, protocol: UDP}
    - {name: c, port: 81}
`},
		want: []string{
			"x.yaml:7: spec.ports[0].name: required",
			"x.yaml:8: spec.ports[1].port: port 0 is out of range 1..65535",
			`x.yaml:9: spec.ports[2].name: port name "a" is already used by spec.ports[1]`,
			"x.yaml:9: spec.ports[2].port: port 80 is already used by spec.ports[0]",
			`x.yaml:9: spec.ports[2].protocol: protocol "grpc" is not one of HTTP, HTTP2, GRPC, TCP; did you mean GRPC?`,
			"x.yaml:10: spec.ports[3].port: port 65536 is out of range 1..65535",
			`x.yaml:10: spec.ports[3].protocol: protocol "UDP" is not one of HTTP, HTTP2, GRPC, TCP`,
			"x.yaml:11: spec.ports[4].protocol: required: one of HTTP, HTTP2, GRPC, TCP",
		},
	}, {
		name:  "a service needs a port",
		files: map[string]string{"x.yaml": "apiVersion: glassmesh.io/v1alpha1\nkind: Service\nmetadata: {name: ratings}\nspec:\n  selector: {app: reviews}\n"},
		want:  []string{"x.yaml:4: spec.ports: at least one port is required"},
	}, {
		name: "names are DNS-1123 labels",
		files: map[string]string{"x.yaml": `apiVersion: glassmesh.io/v1alpha1
kind: Service
metadata: {name: Ratings_1, namespace: -shop}
spec: {ports: [{name: a, port: 1, protocol: TCP}]}
---
apiVersion: glassmesh.io/v1alpha1
kind: Workload
metadata: {namespace: shop}
---
apiVersion: glassmesh.io/v1alpha1
kind: Workload
metadata: {name: ` + strings.Repeat("w", 64) + `}
`},
		want: []string{
			`x.yaml:3: metadata.name: "Ratings_1" is not a DNS-1123 label: use lower-case letters, digits and '-', starting and ending with a letter or digit`,
			`x.yaml:3: metadata.namespace: "-shop" is not a DNS-1123 label: use lower-case letters, digits and '-', starting and ending with a letter or digit`,
			"x.yaml:8: metadata.name: required",
			`x.yaml:12: metadata.name: "` + strings.Repeat("w", 64) + `" is longer than 63 characters`,
		},
	}, {
		name: "a duplicate name names the first definition",
		files: map[string]string{
			"dup.yaml": "# again\napiVersion: glassmesh.io/v1alpha1\nkind: Service\nmetadata:\n  name: reviews\nspec: {ports: [{name: a, port: 1, protocol: TCP}]}\n",
			"ns.yaml":  "apiVersion: glassmesh.io/v1alpha1\nkind: Service\nmetadata: {name: reviews, namespace: other}\nspec: {ports: [{name: a, port: 1, protocol: TCP}]}\n",
		},
		want: []string{"dup.yaml:5: metadata.name: Service default/reviews is already defined at base.yaml:1"},
	}, {
		name: "workload endpoints have IP addresses and ports of the services selecting them",
		files: map[string]string{"x.yaml": `apiVersion: glassmesh.io/v1alpha1
kind: Workload
metadata: {name: reviews-v3, labels: {app: reviews, version: v3}}
spec:
  serviceAccount: Reviews
  endpoints:
    - address: localhost
      ports: {grpc: 70000, admin: 9901}
    - {address: "fe80::1%eth0"}
---
apiVersion: glassmesh.io/v1alpha1
kind: Workload
metadata: {name: lonely}
spec:
  endpoints: [{address: 10.0.0.1, ports: {http: 80}}]
`},
		want: []string{
			`x.yaml:5: spec.serviceAccount: "Reviews" is not a DNS-1123 subdomain`,
			`x.yaml:7: spec.endpoints[0].address: "localhost" is not an IP address`,
			`x.yaml:8: spec.endpoints[0].ports.admin: no service selecting this workload (reviews) has a port named "admin"`,
			"x.yaml:8: spec.endpoints[0].ports.grpc: port 70000 is out of range 1..65535",
			`x.yaml:9: spec.endpoints[1].address: "fe80::1%eth0" is not an IP address`,
			`x.yaml:15: spec.endpoints[0].ports.http: no service selects this workload, so port "http" means nothing; check the service's selector and the workload's labels`,
		},
	}, {
		name: "a field with a type error gets no second error from validation",
		files: map[string]string{"x.yaml": `apiVersion: glassmesh.io/v1alpha1
kind: Service
metadata: {name: ratings}
spec:
  selector: {app: reviews}
  ports: [{name: a, port: "80", protocol: TCP}]
`},
		want: []string{`x.yaml:6: spec.ports[0].port: expected an integer, got string "80"`},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := map[string]string{"base.yaml": base}
			for k, v := range tt.files {
				files[k] = v
			}
			r := loadFiles(t, files)
			if got := diagStrings(r.Errors); !slices.Equal(got, tt.want) {
				t.Errorf("errors:\n got %s\nwant %s", strings.Join(got, "\n     "), strings.Join(tt.want, "\n     "))
			}
			if r.Mesh != nil {
				t.Error("Mesh is not nil despite errors")
			}
		})
	}
}

func TestValidateWarnsAboutWhatIsAcceptedButSuspicious(t *testing.T) {
	r := loadFiles(t, map[string]string{
		"base.yaml": base,
		"route.yaml": `apiVersion: glassmesh.io/v1alpha1
kind: TrafficRoute
metadata: {name: reviews}
spec:
  service: reviews
  subsets: [{name: v1, labels: {version: v1}}, {name: v3, labels: {version: v3}}]
  rules:
    - destinations: [{subset: v1, weight: 90}, {subset: v3, weight: 10}]
      retries: {attempts: 1, retryOn: "5xx, gateway-eror"}
      match: {path: {prefix: /}}
`,
		"idle.yaml": `apiVersion: glassmesh.io/v1alpha1
kind: Service
metadata: {name: idle}
spec:
  ports: [{name: http, port: 80, protocol: HTTP}]
  selector: {app: idle}
`,
		"later.yaml": `apiVersion: glassmesh.io/v1alpha1
kind: PeerAuthentication
metadata: {name: default, namespace: glassmesh-system}
spec: {mtls: STRICT}
---
apiVersion: glassmesh.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: a}
`,
	})
	if len(r.Errors) > 0 || r.Mesh == nil {
		t.Fatalf("errors: %v", r.Errors)
	}
	want := []string{
		"idle.yaml:6: spec.selector: service idle selects no workload",
		"later.yaml:6: spec.rules: an ALLOW policy without rules allows nothing: every request to the workloads it selects is denied",
		"route.yaml:6: spec.subsets[1]: subset v3 selects no workload",
		`route.yaml:9: spec.rules[0].retries.retryOn: unknown retry condition "gateway-eror"; Envoy ignores it (known: ` + strings.Join(retryOn, ", ") + ")",
		"route.yaml:10: spec.rules[0].match: the last rule has a match, so requests that match no rule get no route; drop it to make the last rule the default",
	}
	if got := diagStrings(r.Warnings); !slices.Equal(got, want) {
		t.Errorf("warnings:\n got %s\nwant %s", strings.Join(got, "\n     "), strings.Join(want, "\n     "))
	}
	if len(r.Mesh.PeerAuthentications) != 1 || len(r.Mesh.AuthzPolicies) != 1 {
		t.Errorf("policies = %d + %d, want 1 + 1", len(r.Mesh.PeerAuthentications), len(r.Mesh.AuthzPolicies))
	}
}

func TestValidateWithoutPositionsUsesObjectOrigin(t *testing.T) {
	// Objects from a source that is not YAML (Kubernetes) have no field lines.
	svc := &Service{Meta: Meta{Name: "a"}, Origin: Origin{File: "kubernetes:Service/default/a"}}
	r := &TrafficRoute{
		Meta:   Meta{Name: "a"},
		Spec:   TrafficRouteSpec{Service: "a", Subsets: []Subset{{Name: "v1", Labels: map[string]string{"v": "1"}}}, Rules: []Rule{{Destinations: []Destination{{Subset: "v1"}}}}},
		Origin: Origin{File: "kubernetes:TrafficRoute/default/a", Line: 0},
	}
	_, errs, _ := Validate(Objects{Services: []*Service{svc}, Routes: []*TrafficRoute{r}})
	want := []string{"kubernetes:Service/default/a: spec.ports: at least one port is required"}
	if got := diagStrings(errs); !slices.Equal(got, want) {
		t.Errorf("errors = %q, want %q", got, want)
	}
	if r.Namespace != "default" || r.Spec.Rules[0].Destinations[0].Weight != 100 {
		t.Errorf("defaults not applied: %+v", r)
	}
}
