package model

import (
	"slices"
	"strings"
	"testing"
)

func TestPolicyErrorsNameFileLineAndPath(t *testing.T) {
	r := loadFiles(t, map[string]string{
		"base.yaml": base,
		"p.yaml": `apiVersion: glassmesh.io/v1alpha1
kind: PeerAuthentication
metadata: {name: default}
spec: {mtls: strict}
---
apiVersion: glassmesh.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: reviews}
spec:
  selector: {app: reviews}
  action: REJECT
  rules:
    - from:
        - principals: ["spiffe://cluster.local/ns/shop/sa/productpage", "cluster.local/ns/*/sa/x*", "productpage"]
        - namespaces: [nowhere]
        - {}
      to:
        - {methods: [post], paths: ["reviews.Reviews/*"]}
      when:
        - {key: source.ip, values: [10.0.0.1]}
        - {key: "request.headers[x-user]"}
`,
	})
	want := []string{
		`p.yaml:4: spec.mtls: mode "strict" is not one of STRICT, PERMISSIVE, DISABLE; did you mean STRICT?`,
		`p.yaml:11: spec.action: action "REJECT" is not one of ALLOW, DENY`,
		`p.yaml:14: spec.rules[0].from[0].principals[0]: principal "spiffe://cluster.local/ns/shop/sa/productpage": unknown namespace "shop": no service or workload is in it (known: default)`,
		`p.yaml:14: spec.rules[0].from[0].principals[1]: "cluster.local/ns/*/sa/x*": * may only be the first or last character`,
		`p.yaml:14: spec.rules[0].from[0].principals[2]: "productpage" is not a SPIFFE id: want spiffe://<trust-domain>/ns/<namespace>/sa/<service-account> (or that without spiffe://), optionally with a leading or trailing *`,
		`p.yaml:15: spec.rules[0].from[1].namespaces[0]: unknown namespace "nowhere": no service or workload is in it (known: default)`,
		`p.yaml:16: spec.rules[0].from[2]: empty: give principals, namespaces or their not- forms`,
		`p.yaml:18: spec.rules[0].to[0].methods[0]: "post" is not an HTTP method (upper case, as GET or POST; gRPC calls are POST)`,
		`p.yaml:18: spec.rules[0].to[0].paths[0]: "reviews.Reviews/*": a path starts with / (gRPC: /package.Service/Method)`,
		`p.yaml:20: spec.rules[0].when[0].key: "source.ip" is not supported; want request.headers[<name>]`,
		`p.yaml:21: spec.rules[0].when[1]: give values or notValues`,
	}
	if got := diagStrings(r.Errors); !slices.Equal(got, want) {
		t.Errorf("errors:\n got %s\nwant %s", strings.Join(got, "\n     "), strings.Join(want, "\n     "))
	}
	if r.Mesh != nil {
		t.Error("a mesh despite errors")
	}
}

func TestMTLSModeAndPoliciesFollowTheMostSpecificSelector(t *testing.T) {
	r := loadFiles(t, map[string]string{
		"base.yaml": base,
		"p.yaml": `apiVersion: glassmesh.io/v1alpha1
kind: PeerAuthentication
metadata: {name: mesh, namespace: glassmesh-system}
spec: {mtls: STRICT}
---
apiVersion: glassmesh.io/v1alpha1
kind: PeerAuthentication
metadata: {name: v2}
spec: {mtls: DISABLE, selector: {version: v2}}
---
apiVersion: glassmesh.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: only-v1}
spec:
  selector: {version: v1}
  action: DENY
  rules: [{from: [{namespaces: ["*"]}]}]
---
apiVersion: glassmesh.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: everyone, namespace: glassmesh-system}
spec:
  rules: [{from: [{principals: ["*"]}]}]
`,
	})
	if len(r.Errors) > 0 {
		t.Fatalf("errors: %v", r.Errors)
	}
	v1, v2 := r.Mesh.Workload("default", "reviews-v1"), r.Mesh.Workload("default", "reviews-v2")
	if mode, by := r.Mesh.MTLSMode(v1); mode != MTLSStrict || by == nil || by.Name != "mesh" {
		t.Errorf("reviews-v1: %s by %v, want STRICT by the mesh-wide policy", mode, by)
	}
	if mode, by := r.Mesh.MTLSMode(v2); mode != MTLSDisable || by == nil || by.Name != "v2" {
		t.Errorf("reviews-v2: %s by %v, want DISABLE by its selector", mode, by)
	}
	names := func(ps []*AuthorizationPolicy) (out []string) {
		for _, p := range ps {
			out = append(out, p.Key())
		}
		return out
	}
	if got := names(r.Mesh.AuthorizationPolicies(v1)); !slices.Equal(got, []string{"default/only-v1", "glassmesh-system/everyone"}) {
		t.Errorf("policies of reviews-v1 = %q", got)
	}
	if got := names(r.Mesh.AuthorizationPolicies(v2)); !slices.Equal(got, []string{"glassmesh-system/everyone"}) {
		t.Errorf("policies of reviews-v2 = %q", got)
	}
	noPolicy := NewMesh(Objects{Workloads: []*Workload{v1}})
	if mode, by := noPolicy.MTLSMode(v1); mode != DefaultMTLSMode || by != nil {
		t.Errorf("without policies: %s by %v, want the default", mode, by)
	}
}
