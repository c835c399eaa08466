package source

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/glassmesh/glassmesh/control/model"
)

// testSelectors are the core Services the import tests route between.
func testSelectors(namespace, name string) (map[string]string, bool) {
	if namespace != "shop" {
		return nil, false
	}
	switch name {
	case "reviews":
		return map[string]string{"app": "reviews"}, true
	case "reviews-v1", "reviews-v2", "reviews-v3":
		return map[string]string{"app": "reviews", "version": strings.TrimPrefix(name, "reviews-")}, true
	case "external":
		return nil, true
	}
	return nil, false
}

func object(t *testing.T, doc string) map[string]any {
	t.Helper()
	var obj map[string]any
	if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
		t.Fatal(err)
	}
	return obj
}

// messages lists diagnostics as "path: message" for comparing.
func messages(ds []model.Diagnostic) string {
	var out []string
	for _, d := range ds {
		out = append(out, d.Path+": "+d.Message)
	}
	return strings.Join(out, "\n")
}

const routeHead = `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: reviews, namespace: shop}
spec:
  parentRefs: [{group: "", kind: Service, name: reviews}]
`

func TestHTTPRouteImport(t *testing.T) {
	cases := []struct {
		name, spec string
		// spec of the route as JSON, or "" for no route
		want        string
		errs, warns []string // substrings, in order
	}{{
		name: "weights of a canary become percentages of subsets named after the backends",
		spec: `  rules: [{backendRefs: [{name: reviews-v1, port: 9080, weight: 90}, {name: reviews-v2, port: 9080, weight: 10}]}]`,
		want: `{"service":"reviews","subsets":[{"name":"reviews-v1","labels":{"app":"reviews","version":"v1"}},{"name":"reviews-v2","labels":{"app":"reviews","version":"v2"}}],"rules":[{"destinations":[{"subset":"reviews-v1","weight":90},{"subset":"reviews-v2","weight":10}]}]}`,
	}, {
		name: "relative weights are scaled to 100 by largest remainder and zero weights are kept",
		spec: `  rules: [{backendRefs: [{name: reviews-v1}, {name: reviews-v2, weight: 2}, {name: reviews-v3, weight: 0}, {name: reviews, weight: 3}]}]`,
		want: `{"service":"reviews","subsets":[{"name":"reviews-v1","labels":{"app":"reviews","version":"v1"}},{"name":"reviews-v2","labels":{"app":"reviews","version":"v2"}},{"name":"reviews-v3","labels":{"app":"reviews","version":"v3"}},{"name":"reviews","labels":{"app":"reviews"}}],"rules":[{"destinations":[{"subset":"reviews-v1","weight":17},{"subset":"reviews-v2","weight":33},{"subset":"reviews-v3","weight":0},{"subset":"reviews","weight":50}]}]}`,
	}, {
		name: "thirds round up the first backend",
		spec: `  rules: [{backendRefs: [{name: reviews-v1}, {name: reviews-v2}, {name: reviews-v3}]}]`,
		want: `{"service":"reviews","subsets":[{"name":"reviews-v1","labels":{"app":"reviews","version":"v1"}},{"name":"reviews-v2","labels":{"app":"reviews","version":"v2"}},{"name":"reviews-v3","labels":{"app":"reviews","version":"v3"}}],"rules":[{"destinations":[{"subset":"reviews-v1","weight":34},{"subset":"reviews-v2","weight":33},{"subset":"reviews-v3","weight":33}]}]}`,
	}, {
		name: "matches become rules ordered by precedence, each with the rule's backends and timeout",
		spec: `  rules:
  - backendRefs: [{name: reviews-v1}]
  - matches:
    - headers: [{name: X-User, value: jason}]
    - path: {type: Exact, value: /health}
    - path: {type: PathPrefix, value: /api/}
      headers: [{name: x-canary, type: RegularExpression, value: "1|yes"}]
    backendRefs: [{name: reviews-v2}]
    timeouts: {request: 1500ms}`,
		want: `{"service":"reviews","subsets":[{"name":"reviews-v1","labels":{"app":"reviews","version":"v1"}},{"name":"reviews-v2","labels":{"app":"reviews","version":"v2"}}],"rules":[` +
			`{"match":{"path":{"exact":"/health"}},"destinations":[{"subset":"reviews-v2","weight":100}],"timeout":"1.5s"},` +
			`{"match":{"headers":{"x-canary":{"regex":"1|yes"}},"path":{"regex":"/api(/.*)?"}},"destinations":[{"subset":"reviews-v2","weight":100}],"timeout":"1.5s"},` +
			`{"match":{"headers":{"x-user":{"exact":"jason"}}},"destinations":[{"subset":"reviews-v2","weight":100}],"timeout":"1.5s"},` +
			`{"destinations":[{"subset":"reviews-v1","weight":100}]}]}`,
	}, {
		name: "a route with only Gateway parents is not the mesh's",
		spec: `  parentRefs: [{name: gw}]
  rules: [{backendRefs: [{name: nowhere}]}]`,
	}, {
		name:  "every backend at weight 0 answers 500",
		spec:  `  rules: [{backendRefs: [{name: reviews-v1, weight: 0}]}]`,
		want:  `{"service":"reviews","subsets":[{"name":"reviews-v1","labels":{"app":"reviews","version":"v1"}}],"rules":[{"destinations":[{"subset":"reviews-v1","weight":100}],"fault":{"abort":{"percent":100,"httpStatus":500}}}]}`,
		warns: []string{"spec.rules[0].backendRefs: every backend has weight 0"},
	}, {
		name:  "header filters are left out with a warning",
		spec:  `  rules: [{filters: [{type: RequestHeaderModifier}], backendRefs: [{name: reviews-v1, weight: 1}, {name: reviews-v2, weight: 1000}]}]`,
		want:  `{"service":"reviews","subsets":[{"name":"reviews-v1","labels":{"app":"reviews","version":"v1"}},{"name":"reviews-v2","labels":{"app":"reviews","version":"v2"}}],"rules":[{"destinations":[{"subset":"reviews-v1","weight":0},{"subset":"reviews-v2","weight":100}]}]}`,
		warns: []string{"spec.rules[0].filters[0]: filter RequestHeaderModifier is not supported", "spec.rules[0].backendRefs: backend reviews-v1 has weight 1 of 1001, which rounds to 0%"},
	}, {
		name: "what would route wrongly is an error and no route",
		spec: `  rules:
  - matches: [{method: GET}]
    filters: [{type: URLRewrite}]
    backendRefs: [{name: reviews-v1, namespace: other}, {kind: ServiceImport, name: x}, {name: missing}, {name: external}, {name: reviews-v2, weight: -1}]`,
		errs: []string{
			"spec.rules[0].filters[0]: filter URLRewrite is not supported",
			"spec.rules[0].backendRefs[0].namespace: a backend in another namespace (other) is not supported",
			"spec.rules[0].backendRefs[1]: backend ServiceImport x is not a core Service",
			"spec.rules[0].backendRefs[2].name: Service missing not found in namespace shop",
			"spec.rules[0].backendRefs[3].name: Service external has no selector",
			"spec.rules[0].backendRefs[4].weight: want a non-negative integer",
		},
	}, {
		name: "a method match is an error",
		spec: `  rules: [{matches: [{method: GET}], backendRefs: [{name: reviews-v1}]}]`,
		errs: []string{"spec.rules[0].matches[0].method: method matches are not supported"},
	}, {
		name: "a rule without backends goes to the parent, and the parent port is a warning",
		spec: `  parentRefs: [{kind: Service, name: reviews, port: 9080}, {kind: Service, name: ratings, namespace: other}]
  rules: [{timeouts: {request: 0s, backendRequest: 1s}}]`,
		want:  `{"service":"reviews","subsets":[{"name":"reviews","labels":{"app":"reviews"}}],"rules":[{"destinations":[{"subset":"reviews","weight":100}]}]}`,
		warns: []string{"spec.parentRefs[0].port: glassmesh routes every port", "spec.parentRefs[1].namespace: a route for a Service of another namespace", "spec.rules[0].timeouts.backendRequest: not supported"},
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			doc := routeHead + c.spec
			if strings.HasPrefix(c.spec, "  parentRefs") {
				doc = strings.Replace(routeHead, "  parentRefs: [{group: \"\", kind: Service, name: reviews}]\n", "", 1) + c.spec
			}
			o := KubernetesOrigin("httproutes.gateway.networking.k8s.io", "shop", "reviews")
			routes, errs, warns := httpRouteRoutes(object(t, doc), o, testSelectors)
			checkMessages(t, "errors", errs, c.errs)
			checkMessages(t, "warnings", warns, c.warns)
			if c.want == "" {
				if len(routes) != 0 {
					t.Fatalf("imported %+v, want nothing", routes[0].Spec)
				}
				return
			}
			if len(routes) != 1 {
				t.Fatalf("%d routes, want 1", len(routes))
			}
			r := routes[0]
			if r.Name != "httproute-reviews" || r.Namespace != "shop" || r.Origin.File != "kubernetes:httproutes.gateway.networking.k8s.io/shop/reviews" {
				t.Errorf("route %s at %s", r.Key(), r.Origin.File)
			}
			got, _ := json.Marshal(r.Spec)
			if string(got) != c.want {
				t.Errorf("spec\n got %s\nwant %s", got, c.want)
			}
		})
	}
}

func checkMessages(t *testing.T, what string, got []model.Diagnostic, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s:\n%s\nwant %d: %q", what, messages(got), len(want), want)
		return
	}
	for i := range want {
		if s := got[i].Path + ": " + got[i].Message; !strings.Contains(s, want[i]) {
			t.Errorf("%s[%d] = %q, want it to contain %q", what, i, s, want[i])
		}
	}
}

func TestHTTPRouteWithSeveralServiceParents(t *testing.T) {
	doc := strings.Replace(routeHead, "name: reviews}]", "name: reviews}, {kind: Service, name: reviews-v1}]", 1) + "  rules: [{}]\n"
	routes, errs, _ := httpRouteRoutes(object(t, doc), model.Origin{File: "r.yaml"}, testSelectors)
	if len(errs) != 0 || len(routes) != 2 {
		t.Fatalf("routes %d, errors %s", len(routes), messages(errs))
	}
	for i, want := range []string{"reviews", "reviews-v1"} {
		r := routes[i]
		if r.Name != "httproute-reviews-"+want || r.Spec.Service != want || r.Spec.Rules[0].Destinations[0].Subset != want {
			t.Errorf("route %d: %s for %s to %+v", i, r.Name, r.Spec.Service, r.Spec.Rules[0].Destinations)
		}
	}
}

func TestTrafficSplitImport(t *testing.T) {
	cases := []struct {
		name, spec, want string
		errs, warns      []string
	}{{
		name: "an FQDN root and integer weights",
		spec: `{service: reviews.shop.svc.cluster.local, backends: [{service: reviews-v1, weight: 3}, {service: reviews-v2, weight: 1}]}`,
		want: `{"service":"reviews","subsets":[{"name":"reviews-v1","labels":{"app":"reviews","version":"v1"}},{"name":"reviews-v2","labels":{"app":"reviews","version":"v2"}}],"rules":[{"destinations":[{"subset":"reviews-v1","weight":75},{"subset":"reviews-v2","weight":25}]}]}`,
	}, {
		name:  "v1alpha1 quantities, and matches left out with a warning",
		spec:  `{service: reviews, matches: [{kind: HTTPRouteGroup, name: canary}], backends: [{service: reviews, weight: 500m}, {service: reviews-v2, weight: "1"}]}`,
		want:  `{"service":"reviews","subsets":[{"name":"reviews","labels":{"app":"reviews"}},{"name":"reviews-v2","labels":{"app":"reviews","version":"v2"}}],"rules":[{"destinations":[{"subset":"reviews","weight":33},{"subset":"reviews-v2","weight":67}]}]}`,
		warns: []string{"spec.matches: HTTPRouteGroup matches are not supported"},
	}, {
		name: "unknown backends and missing fields are errors",
		spec: `{backends: [{service: missing, weight: 1}]}`,
		errs: []string{"spec.service: required"},
	}, {
		name: "a backend that is not found is an error",
		spec: `{service: reviews, backends: [{service: missing, weight: 1}, {weight: 1}, {service: reviews-v1, weight: -2}]}`,
		errs: []string{"spec.backends[0].service: Service missing not found", "spec.backends[1].service: required", "spec.backends[2].weight: want a non-negative integer"},
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			doc := "apiVersion: split.smi-spec.io/v1alpha4\nkind: TrafficSplit\nmetadata: {name: canary, namespace: shop}\nspec: " + c.spec
			r, errs, warns := trafficSplitRoute(object(t, doc), KubernetesOrigin("trafficsplits.split.smi-spec.io", "shop", "canary"), testSelectors)
			checkMessages(t, "errors", errs, c.errs)
			checkMessages(t, "warnings", warns, c.warns)
			if c.want == "" {
				if r != nil {
					t.Fatalf("imported %+v, want nothing", r.Spec)
				}
				return
			}
			if r == nil || r.Key() != "shop/trafficsplit-canary" {
				t.Fatalf("route %+v", r)
			}
			if got, _ := json.Marshal(r.Spec); string(got) != c.want {
				t.Errorf("spec\n got %s\nwant %s", got, c.want)
			}
		})
	}
}

func TestMergeImported(t *testing.T) {
	route := func(name, file string) *model.TrafficRoute {
		return &model.TrafficRoute{Meta: model.Meta{Name: name, Namespace: "shop"}, Spec: model.TrafficRouteSpec{Service: "reviews"}, Origin: model.Origin{File: file}}
	}
	t0 := time.Unix(1000, 0)
	t.Run("the oldest import wins over a newer one", func(t *testing.T) {
		var objs model.Objects
		warns := mergeImported(&objs, []imported{
			{route: route("httproute-new", "kubernetes:httproutes/shop/new"), created: t0.Add(time.Second)},
			{route: route("trafficsplit-old", "kubernetes:trafficsplits/shop/old"), created: t0},
		})
		if len(objs.Routes) != 1 || objs.Routes[0].Name != "trafficsplit-old" || len(warns) != 1 {
			t.Fatalf("routes %v, warnings %s", objs.Routes, messages(warns))
		}
	})
	t.Run("a native TrafficRoute wins over every import", func(t *testing.T) {
		native := route("reviews", "mesh/reviews.yaml")
		native.Origin.Line = 3
		objs := model.Objects{Routes: []*model.TrafficRoute{native}}
		warns := mergeImported(&objs, []imported{{route: route("httproute-reviews", "kubernetes:httproutes.gateway.networking.k8s.io/shop/reviews")}})
		if len(objs.Routes) != 1 || objs.Routes[0] != native {
			t.Fatalf("routes %v", objs.Routes)
		}
		want := "kubernetes:httproutes.gateway.networking.k8s.io/shop/reviews: not imported: service shop/reviews already has TrafficRoute shop/reviews (from mesh/reviews.yaml:3), which wins"
		if len(warns) != 1 || warns[0].Error() != want {
			t.Errorf("warnings %s\nwant %s", messages(warns), want)
		}
		// The result validates: no "already has a route" error.
		if _, errs, _ := model.Validate(objs); strings.Contains(messages(errs), "already has a route") {
			t.Errorf("validation: %s", messages(errs))
		}
	})
}

var updateGolden = flag.Bool("update", false, "rewrite the golden files of the manifest tests")

// TestImportManifests loads the manifest directories under
// control/model/testdata/manifests as `glassmesh validate` does and
// compares what it finds with the .golden file next to each.
func TestImportManifests(t *testing.T) {
	for _, dir := range []string{"valid", "invalid"} {
		t.Run(dir, func(t *testing.T) {
			root := filepath.Join("..", "model", "testdata", "manifests")
			r, skipped := model.LoadManifests(filepath.Join(root, dir), ImportManifests)
			var b strings.Builder
			for _, d := range r.Errors {
				fmt.Fprintln(&b, "error:", strings.TrimPrefix(d.Error(), root+"/"))
			}
			for _, d := range r.Warnings {
				fmt.Fprintln(&b, "warning:", strings.TrimPrefix(d.Error(), root+"/"))
			}
			fmt.Fprintf(&b, "skipped: %s\n", skipped)
			if r.Mesh != nil {
				routes, _ := yaml.Marshal(r.Mesh.Routes)
				fmt.Fprintf(&b, "services: %d\nroutes:\n%s", len(r.Mesh.Services), routes)
				for _, s := range r.Mesh.Services {
					fmt.Fprintf(&b, "service %s from %s:%d\n", s.Key(), strings.TrimPrefix(s.Origin.File, root+"/"), s.Origin.Line)
				}
			}
			golden := filepath.Join(root, dir+".golden")
			if *updateGolden {
				if err := os.WriteFile(golden, []byte(b.String()), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if b.String() != string(want) {
				t.Errorf("got\n%s\nwant (%s; -update rewrites it)\n%s", b.String(), golden, want)
			}
		})
	}
}
