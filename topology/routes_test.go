package topology

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/glassmesh/glassmesh/control/model"
)

// routedMesh is the fixture mesh with routes: reviews splits v1/v2 with a
// header match first, and a canary of v2 drives it; ratings has a route
// to one subset; details has none.
func routedMesh(canary bool) *model.Mesh {
	objs := fixtureMesh().Objects()
	sub := func(v string) model.Subset { return model.Subset{Name: v, Labels: map[string]string{"version": v}} }
	objs.Routes = []*model.TrafficRoute{
		{Meta: model.Meta{Name: "reviews-route", Namespace: "bookinfo"}, Spec: model.TrafficRouteSpec{
			Service: "reviews", Subsets: []model.Subset{sub("v1"), sub("v2")},
			Rules: []model.Rule{
				{Match: &model.Match{Headers: map[string]model.StringMatch{"x-user": {Exact: "tester"}}}, Destinations: []model.Destination{{Subset: "v2", Weight: 100}}},
				{Destinations: []model.Destination{{Subset: "v1", Weight: 90}, {Subset: "v2", Weight: 10}}},
			}}},
		{Meta: model.Meta{Name: "ratings", Namespace: "bookinfo"}, Spec: model.TrafficRouteSpec{
			Service: "ratings", Subsets: []model.Subset{sub("v1"), sub("v2")},
			Rules: []model.Rule{{Destinations: []model.Destination{{Subset: "v1", Weight: 100}, {Subset: "v2", Weight: 0}}}}}},
	}
	if canary {
		objs.Canaries = []*model.Canary{{Meta: model.Meta{Name: "reviews", Namespace: "bookinfo"},
			Spec: model.CanarySpec{Route: "reviews-route", Stable: "v1", Canary: "v2", Steps: []uint32{10, 50, 100}}}}
	}
	return model.NewMesh(objs)
}

// badges lists a graph's nodes that carry route or canary fields, as
// "label vs=hosts shifting routing canary=ns/name:state".
func badges(c *Cytoscape) []string {
	var out []string
	for _, n := range c.Elements.Nodes {
		d := n.Data
		var parts []string
		if d.HasVS != nil {
			parts = append(parts, "vs="+strings.Join(d.HasVS.Hostnames, ","))
		}
		if d.HasTrafficShifting {
			parts = append(parts, "shifting")
		}
		if d.HasRequestRouting {
			parts = append(parts, "routing")
		}
		if d.Canary != nil {
			parts = append(parts, fmt.Sprintf("canary=%s/%s:%s", d.Canary.Namespace, d.Canary.Name, d.Canary.State))
		}
		if parts != nil {
			out = append(out, label(d)+" "+strings.Join(parts, " "))
		}
	}
	slices.Sort(out)
	return out
}

func TestIstioAppenderMarksRoutedServicesAndCanaryNodes(t *testing.T) {
	const (
		reviewsVS = "svc:reviews vs=reviews.bookinfo.svc.cluster.local shifting routing"
		ratingsVS = "svc:ratings vs=ratings.bookinfo.svc.cluster.local"
		canary    = " canary=bookinfo/reviews:progressing"
	)
	states := func(ns, name string) string {
		if ns == "bookinfo" && name == "reviews" {
			return "progressing"
		}
		return ""
	}
	for _, tc := range []struct {
		name   string
		mesh   *model.Mesh
		states func(ns, name string) string
		query  string
		want   []string
	}{
		{"a service graph marks the routed services and names the canary on its route's service", routedMesh(true), states,
			"graphType=service", []string{ratingsVS, reviewsVS + canary}},
		{"a workload graph with service nodes also names the canary on the canary subset's workloads", routedMesh(true), states,
			"graphType=workload&injectServiceNodes=true", []string{ratingsVS, reviewsVS + canary, "wk:reviews-v2" + canary}},
		{"a versioned app graph names the canary on the canary version only", routedMesh(true), states,
			"graphType=versionedApp", []string{"app:reviews:v2" + canary}},
		{"an app graph names the canary on the app that holds the canary version", routedMesh(true), states,
			"graphType=app", []string{"app:reviews" + canary}},
		{"an idle canary workload is named too", routedMesh(true), states,
			"graphType=workload&appenders=idleNode,istio", []string{"wk:reviews-v2" + canary}},
		{"without canary states the canary is named without its state", routedMesh(true), nil,
			"graphType=service", []string{ratingsVS, reviewsVS + " canary=bookinfo/reviews:"}},
		{"routes without a canary mark only the services", routedMesh(false), states,
			"graphType=workload&injectServiceNodes=true", []string{ratingsVS, reviewsVS}},
		{"a mesh without routes marks nothing", fixtureMesh(), states, "graphType=service", nil},
		{"without the istio appender nothing is marked", routedMesh(true), states,
			"graphType=workload&injectServiceNodes=true&appenders=health,deadNode", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newFixtureGraph(t, fixtureNow)
			g.SetMesh(func() *model.Mesh { return tc.mesh })
			if tc.states != nil {
				g.SetCanaryStates(tc.states)
			}
			if got := badges(buildFixture(t, g, tc.query, pathMemory)); !slices.Equal(got, tc.want) {
				t.Errorf("marked nodes\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestIstioAppenderFieldsAreEncodingJSON(t *testing.T) {
	g := newFixtureGraph(t, fixtureNow)
	mesh := routedMesh(true)
	g.SetMesh(func() *model.Mesh { return mesh })
	g.SetCanaryStates(func(string, string) string { return "rolled-back" })
	body, err := g.buildFrom(context.Background(), mustOptions(t, "graphType=workload&injectServiceNodes=true"), pathMemory)
	if err != nil {
		t.Fatal(err)
	}
	sameAsEncodingJSON(t, body)
	for _, s := range []string{`"hasVS":{"hostnames":["reviews.bookinfo.svc.cluster.local"]}`, `"hasTrafficShifting":true`,
		`"canary":{"namespace":"bookinfo","name":"reviews","state":"rolled-back"}`} {
		if !bytes.Contains(body, []byte(s)) {
			t.Errorf("the graph has no %s", s)
		}
	}
}
