package model

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func diagStrings(ds []Diagnostic) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.Error()
	}
	return out
}

func TestParseErrorsNameFileLineAndPath(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string
	}{{
		name: "an unknown field is named with its path and a suggestion",
		yaml: `apiVersion: glassmesh.io/v1alpha1
kind: TrafficRoute
metadata: {name: reviews}
spec:
  service: reviews
  rules:
    - destinations: [{subset: v1, weight: 100}]
    - destinations:
        - subset: v1
          wieght: 100
`,
		want: []string{"p.yaml:10: spec.rules[1].destinations[0].wieght: unknown field; did you mean weight?"},
	}, {
		name: "an unknown field without a close match is just unknown",
		yaml: "apiVersion: glassmesh.io/v1alpha1\nkind: Service\nmetadata: {name: a}\nspec: {colour: blue}\n",
		want: []string{"p.yaml:4: spec.colour: unknown field"},
	}, {
		name: "an unknown top-level field is an error",
		yaml: "apiVersion: glassmesh.io/v1alpha1\nkind: Service\nmetadata: {name: a}\nstatus: {}\n",
		want: []string{"p.yaml:4: status: unknown field"},
	}, {
		name: "a string where an integer belongs is a type error",
		yaml: "apiVersion: glassmesh.io/v1alpha1\nkind: Service\nmetadata: {name: a}\nspec:\n  ports:\n  - {name: http, port: eighty}\n",
		want: []string{`p.yaml:6: spec.ports[0].port: expected an integer, got string "eighty"`},
	}, {
		name: "a negative port does not fit",
		yaml: "apiVersion: glassmesh.io/v1alpha1\nkind: Service\nmetadata: {name: a}\nspec:\n  ports:\n  - {name: http, port: -1}\n",
		want: []string{"p.yaml:6: spec.ports[0].port: -1 is out of range: want an integer from 0 to 4294967295"},
	}, {
		name: "an integer label value must be quoted",
		yaml: "apiVersion: glassmesh.io/v1alpha1\nkind: Workload\nmetadata:\n  name: a\n  labels:\n    version: 2\n",
		want: []string{"p.yaml:6: metadata.labels.version: expected a string, got integer 2 (quote it if a string is meant)"},
	}, {
		name: "a dotted label key is quoted in the path",
		yaml: "apiVersion: glassmesh.io/v1alpha1\nkind: Workload\nmetadata:\n  name: a\n  labels: {app.kubernetes.io/name: [x]}\n",
		want: []string{`p.yaml:5: metadata.labels["app.kubernetes.io/name"]: expected a string, got a list`},
	}, {
		name: "a list where a mapping belongs is a type error",
		yaml: "apiVersion: glassmesh.io/v1alpha1\nkind: Service\nmetadata: {name: a}\nspec:\n  selector: [app]\n",
		want: []string{"p.yaml:5: spec.selector: expected a mapping, got a list"},
	}, {
		name: "a mapping where a list belongs is a type error",
		yaml: "apiVersion: glassmesh.io/v1alpha1\nkind: Service\nmetadata: {name: a}\nspec:\n  ports: {name: http}\n",
		want: []string{"p.yaml:5: spec.ports: expected a list, got a mapping"},
	}, {
		name: "a percent must be a number",
		yaml: "apiVersion: glassmesh.io/v1alpha1\nkind: TrafficRoute\nmetadata: {name: a}\nspec:\n  rules:\n  - fault: {delay: {percent: half}}\n",
		want: []string{`p.yaml:6: spec.rules[0].fault.delay.percent: expected a number, got string "half"`},
	}, {
		name: "a bad duration is an error",
		yaml: "apiVersion: glassmesh.io/v1alpha1\nkind: TrafficRoute\nmetadata: {name: a}\nspec:\n  rules:\n  - timeout: 5 seconds\n",
		want: []string{`p.yaml:6: spec.rules[0].timeout: invalid duration "5 seconds": want a Go duration like 1m30s, or days like 30d`},
	}, {
		name: "a wrong apiVersion is an error",
		yaml: "apiVersion: v1\nkind: Service\nmetadata: {name: a}\n",
		want: []string{`p.yaml:1: apiVersion: "v1" is not supported; want glassmesh.io/v1alpha1`},
	}, {
		name: "a missing apiVersion is an error at the document",
		yaml: "# header\nkind: Service\nmetadata: {name: a}\n",
		want: []string{"p.yaml:2: apiVersion: missing; want apiVersion: glassmesh.io/v1alpha1"},
	}, {
		name: "a missing kind is an error",
		yaml: "apiVersion: glassmesh.io/v1alpha1\nmetadata: {name: a}\n",
		want: []string{"p.yaml:1: kind: missing; want one of Service, Workload, TrafficRoute, SLO, Canary, SLOPolicy, PeerAuthentication, AuthorizationPolicy"},
	}, {
		name: "a kind that is not a string is one error",
		yaml: "apiVersion: glassmesh.io/v1alpha1\nkind: [Service]\n",
		want: []string{"p.yaml:2: kind: expected a string, got a list"},
	}, {
		name: "an unknown kind is an error",
		yaml: "apiVersion: glassmesh.io/v1alpha1\nkind: VirtualService\nmetadata: {name: a}\n",
		want: []string{`p.yaml:2: kind: unknown kind "VirtualService"; want one of Service, Workload, TrafficRoute, SLO, Canary, SLOPolicy, PeerAuthentication, AuthorizationPolicy`},
	}, {
		name: "a duplicate key names the first",
		yaml: "apiVersion: glassmesh.io/v1alpha1\nkind: Service\nmetadata: {name: a}\nspec:\n  selector: {app: a}\n  selector: {app: b}\n",
		want: []string{"p.yaml:6: spec.selector: duplicate key; first set on line 5"},
	}, {
		name: "a document that is not a mapping is an error",
		yaml: "apiVersion: glassmesh.io/v1alpha1\nkind: Service\nmetadata: {name: a}\n---\n- a\n- b\n",
		want: []string{"p.yaml:5: a document must be a mapping with apiVersion, kind, metadata and spec; got a list"},
	}, {
		name: "a YAML syntax error has its line",
		yaml: "apiVersion: glassmesh.io/v1alpha1\nkind: Service\nmetadata: {name: a}\nspec:\n  ports: [{name: a\n",
		want: []string{"p.yaml:5: invalid YAML: did not find expected ',' or '}'"},
	}, {
		name: "a YAML syntax error on line 1 has line 1",
		yaml: "a: b: c\n",
		want: []string{"p.yaml:1: invalid YAML: mapping values are not allowed in this context"},
	}, {
		name: "merge keys are refused",
		yaml: "apiVersion: glassmesh.io/v1alpha1\nkind: Service\nmetadata: {name: a}\nspec:\n  <<: {selector: {app: a}}\n",
		want: []string{"p.yaml:5: spec: merge keys (<<) are not supported; write the fields out"},
	}, {
		name: "the spec of a kind that is not implemented must be a mapping",
		yaml: "apiVersion: glassmesh.io/v1alpha1\nkind: PeerAuthentication\nmetadata: {name: a}\nspec: [1]\n",
		want: []string{"p.yaml:4: spec: expected a mapping, got a list"},
	}, {
		name: "policy kinds are checked field by field",
		yaml: "apiVersion: glassmesh.io/v1alpha1\nkind: AuthorizationPolicy\nmetadata: {name: a, nmespace: b}\nspec:\n  rules: [{from: [{principal: [x]}]}]\n",
		want: []string{
			"p.yaml:3: metadata.nmespace: unknown field; did you mean namespace?",
			"p.yaml:5: spec.rules[0].from[0].principal: unknown field; did you mean principals?",
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, errs := Parse("p.yaml", []byte(tt.yaml))
			if got := diagStrings(errs); !slices.Equal(got, tt.want) {
				t.Errorf("errors:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestParseReadsEveryKindAndSkipsEmptyDocuments(t *testing.T) {
	data := `---
# only a comment
---
apiVersion: glassmesh.io/v1alpha1
kind: Service
metadata: {name: reviews}
spec: {ports: [{name: grpc, port: 9080, protocol: GRPC}], selector: {app: reviews}}
---
apiVersion: glassmesh.io/v1alpha1
kind: Workload
metadata: {name: reviews-v1, namespace: shop, labels: {app: reviews}}
spec: {endpoints: [{address: 10.0.0.1, ports: {grpc: 1}}]}
---
apiVersion: glassmesh.io/v1alpha1
kind: TrafficRoute
metadata: {name: reviews}
spec:
  service: reviews
  rules: [{destinations: [{subset: v1}], timeout: 1d2h, retries: {attempts: 3, perTryTimeout: 250ms}}]
---
apiVersion: glassmesh.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: reviews}
spec: {rules: [{from: [{principals: ["cluster.local/ns/shop/sa/*"]}], to: [{methods: [POST]}]}]}
---
`
	objs, errs := Parse("p.yaml", []byte(data))
	if len(errs) > 0 {
		t.Fatalf("errors: %v", errs)
	}
	if objs.Len() != 4 {
		t.Fatalf("got %d objects, want 4", objs.Len())
	}
	s := objs.Services[0]
	if s.Namespace != "default" || s.Origin != (Origin{File: "p.yaml", Line: 4, fields: s.Origin.fields}) || s.Spec.Ports[0].Port != 9080 {
		t.Errorf("service = %+v", s)
	}
	if w := objs.Workloads[0]; w.Namespace != "shop" || w.Spec.ServiceAccount != "default" || w.Spec.Endpoints[0].Ports["grpc"] != 1 {
		t.Errorf("workload = %+v", w)
	}
	r := objs.Routes[0].Spec.Rules[0]
	if r.Timeout.Duration != 26*time.Hour || r.Retries.PerTryTimeout.Duration != 250*time.Millisecond || r.Destinations[0].Weight != 100 {
		t.Errorf("rule = %+v", r)
	}
	p := objs.AuthzPols[0]
	want := AuthorizationPolicySpec{Action: ActionAllow, Rules: []AuthzRule{{
		From: []AuthzSource{{Principals: []string{"cluster.local/ns/shop/sa/*"}}},
		To:   []AuthzOperation{{Methods: []string{"POST"}}},
	}}}
	if p.Origin.Line != 21 || p.Namespace != "default" || !reflect.DeepEqual(p.Spec, want) {
		t.Errorf("authorization policy = %+v", p)
	}
	if got := objs.Routes[0].Origin.LineOf("spec.rules[0].retries.perTryTimeout"); got != 19 {
		t.Errorf("LineOf(perTryTimeout) = %d, want 19", got)
	}
	if got := objs.Routes[0].Origin.LineOf("spec.subsets[3].name"); got != 17 {
		t.Errorf("LineOf of a field that is not written = %d, want its nearest ancestor's line 17", got)
	}
}

func TestParseBoundsAliasExpansion(t *testing.T) {
	// Lists of lists through aliases: 200 rules × 200 sources × 200
	// principals is 8M nodes from a few kilobytes.
	const n = 200
	repeat := func(item string) string { return strings.TrimSuffix(strings.Repeat(item+", ", n-1), ", ") }
	var b strings.Builder
	b.WriteString("apiVersion: glassmesh.io/v1alpha1\nkind: AuthorizationPolicy\nmetadata: {name: a}\nspec:\n  rules:\n")
	b.WriteString("    - from: &f\n        - principals: &p [" + repeat("x") + ", x]\n")
	for range n - 1 {
		b.WriteString("        - principals: *p\n")
	}
	for range n - 1 {
		b.WriteString("    - from: *f\n")
	}
	start := time.Now()
	_, errs := Parse("bomb.yaml", []byte(b.String()))
	if len(errs) != 1 || !strings.Contains(errs[0].Message, "more than") {
		t.Errorf("errors = %v, want one about the expansion", errs)
	}
	// Unbounded, the 10^9-node expansion would run for many minutes; the
	// bound is generous because CI machines are shared (-race: ~5 s).
	if d := time.Since(start); d > time.Minute {
		t.Errorf("took %v", d)
	}
}

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		err  bool
	}{
		{"5s", 5 * time.Second, false},
		{"1m30s", 90 * time.Second, false},
		{"30d", 30 * 24 * time.Hour, false},
		{"1d12h", 36 * time.Hour, false},
		{"-2d", -48 * time.Hour, false},
		{"0", 0, false},
		{"1.5d", 0, true},
		{"d", 0, true},
		{"3dd", 0, true},
		{"1d-1h", 0, true},
		{"99999999999d", 0, true},
		{"five", 0, true},
	}
	for _, tt := range tests {
		got, err := ParseDuration(tt.in)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.err)
		}
	}
}

func TestParentPath(t *testing.T) {
	for in, want := range map[string]string{
		"spec.rules[1].destinations[0].weight": "spec.rules[1].destinations[0]",
		"spec.rules[1]":                        "spec.rules",
		`metadata.labels["a.b[c]"]`:            "metadata.labels",
		`metadata.labels["a\"."]`:              "metadata.labels",
		"spec":                                 "",
	} {
		if got := parentPath(in); got != want {
			t.Errorf("parentPath(%q) = %q, want %q", in, got, want)
		}
	}
}
