package topology

import (
	"slices"
	"testing"

	"github.com/glassmesh/glassmesh/control/model"
)

// fixtureMesh is the registry of the fixture mesh: reviews-v2 has no
// endpoints; reviews-v3 and orphan exist but carry no traffic (v3 has no
// endpoints either); the legacy service selects no workload; audit is in
// another namespace.
func fixtureMesh() *model.Mesh {
	wl := func(ns, name, app, version string, endpoints int) *model.Workload {
		w := &model.Workload{Meta: model.Meta{Name: name, Namespace: ns, Labels: map[string]string{"app": app, "version": version}}}
		for range endpoints {
			w.Spec.Endpoints = append(w.Spec.Endpoints, model.Endpoint{Address: "127.0.0.1", Ports: map[string]uint32{"http": 9080}})
		}
		return w
	}
	svc := func(ns, name, app string) *model.Service {
		return &model.Service{Meta: model.Meta{Name: name, Namespace: ns}, Spec: model.ServiceSpec{Selector: map[string]string{"app": app}}}
	}
	return model.NewMesh(model.Objects{
		Workloads: []*model.Workload{
			wl("bookinfo", "productpage-v1", "productpage", "v1", 1), wl("bookinfo", "details-v1", "details", "v1", 2),
			wl("bookinfo", "reviews-v1", "reviews", "v1", 1), wl("bookinfo", "reviews-v2", "reviews", "v2", 0),
			wl("bookinfo", "reviews-v3", "reviews", "v3", 0), wl("bookinfo", "ratings-v1", "ratings", "v1", 1),
			wl("bookinfo", "mysql-v1", "mysql", "v1", 1), wl("bookinfo", "orphan-v1", "orphan", "v1", 1),
			wl("other", "audit-v1", "audit", "v1", 1),
		},
		Services: []*model.Service{
			svc("bookinfo", "productpage", "productpage"), svc("bookinfo", "details", "details"),
			svc("bookinfo", "reviews", "reviews"), svc("bookinfo", "ratings", "ratings"), svc("bookinfo", "mysql", "mysql"),
			svc("bookinfo", "legacy", "legacy"), svc("other", "audit", "audit"),
		},
	})
}

// flags lists a graph's nodes that are dead or idle, as "label dead idle
// dataSource".
func flags(c *Cytoscape) []string {
	var out []string
	for _, n := range c.Elements.Nodes {
		d := n.Data
		if !d.IsDead && !d.IsIdle {
			continue
		}
		s := label(d)
		if d.IsDead {
			s += " dead"
		}
		if d.IsIdle {
			s += " idle(" + d.DataSource + ")"
		}
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

func TestRegistryMarksDeadAndAddsIdleNodes(t *testing.T) {
	g := newFixtureGraph(t, fixtureNow)
	mesh := fixtureMesh()
	g.SetMesh(func() *model.Mesh { return mesh })
	for _, tc := range []struct {
		query string
		want  []string
	}{
		{"graphType=workload", []string{"wk:reviews-v2 dead"}},
		{"graphType=workload&appenders=idleNode", []string{"wk:audit-v1 idle(registry)", "wk:orphan-v1 idle(registry)", "wk:reviews-v3 idle(registry)"}},
		{"graphType=workload&appenders=deadNode,idleNode&namespaces=bookinfo",
			[]string{"wk:orphan-v1 idle(registry)", "wk:reviews-v2 dead", "wk:reviews-v3 dead idle(registry)"}},
		{"graphType=workload&appenders=deadNode,idleNode",
			[]string{"wk:audit-v1 idle(registry)", "wk:orphan-v1 idle(registry)", "wk:reviews-v2 dead", "wk:reviews-v3 dead idle(registry)"}},
		// An app is alive while any of its workloads is.
		{"graphType=app&appenders=deadNode,idleNode&namespaces=bookinfo", []string{"app:orphan idle(registry)"}},
		{"graphType=versionedApp&appenders=deadNode,idleNode&namespaces=bookinfo",
			[]string{"app:orphan:v1 idle(registry)", "app:reviews:v2 dead", "app:reviews:v3 dead idle(registry)"}},
		{"graphType=service&appenders=deadNode,idleNode&namespaces=bookinfo", []string{"svc:legacy dead idle(registry)"}},
		{"graphType=workload&injectServiceNodes=true&appenders=deadNode,idleNode&namespaces=bookinfo",
			[]string{"svc:legacy dead idle(registry)", "wk:orphan-v1 idle(registry)", "wk:reviews-v2 dead", "wk:reviews-v3 dead idle(registry)"}},
		{"graphType=workload&appenders=health", nil},
	} {
		t.Run(tc.query, func(t *testing.T) {
			c := buildFixture(t, g, tc.query, pathMemory)
			if got := flags(c); !slices.Equal(got, tc.want) {
				t.Errorf("dead/idle nodes\n got %q\nwant %q", got, tc.want)
			}
			for _, n := range c.Elements.Nodes {
				if n.Data.DataSource == SourceRegistry && (n.Data.Traffic != nil || n.Data.Cluster != DefaultRegistryCluster) {
					t.Errorf("registry node %s has traffic %v, cluster %q", label(n.Data), n.Data.Traffic, n.Data.Cluster)
				}
			}
		})
	}
}

func TestRegistryFollowsTheCurrentMesh(t *testing.T) {
	g := newFixtureGraph(t, fixtureNow)
	var mesh *model.Mesh
	g.SetMesh(func() *model.Mesh { return mesh })
	const q = "graphType=workload&appenders=deadNode"
	if got := flags(buildFixture(t, g, q, pathMemory)); got != nil {
		t.Errorf("without a mesh: %q", got)
	}
	mesh = fixtureMesh()
	if got := flags(buildFixture(t, g, q, pathMemory)); !slices.Equal(got, []string{"wk:reviews-v2 dead"}) {
		t.Errorf("with the fixture mesh: %q", got)
	}
	objs := model.Objects{Workloads: slices.Clone(mesh.Workloads), Services: mesh.Services}
	for i, w := range objs.Workloads {
		if w.Name == "reviews-v2" {
			up := *w
			up.Spec.Endpoints = []model.Endpoint{{Address: "127.0.0.2"}}
			objs.Workloads[i] = &up
		}
	}
	mesh = model.NewMesh(objs)
	if got := flags(buildFixture(t, g, q, pathMemory)); got != nil {
		t.Errorf("after reviews-v2 got an endpoint: %q", got)
	}
}

func TestServiceIsAliveWhenASelectedWorkloadHasEndpoints(t *testing.T) {
	wl := func(name string, labels map[string]string, endpoints int) *model.Workload {
		w := &model.Workload{Meta: model.Meta{Name: name, Namespace: "ns", Labels: labels}}
		for range endpoints {
			w.Spec.Endpoints = append(w.Spec.Endpoints, model.Endpoint{Address: "10.0.0.1"})
		}
		return w
	}
	svc := func(name string, selector map[string]string) *model.Service {
		return &model.Service{Meta: model.Meta{Name: name, Namespace: "ns"}, Spec: model.ServiceSpec{Selector: selector}}
	}
	ix := newRegistryIndex(model.NewMesh(model.Objects{
		Workloads: []*model.Workload{
			wl("a-v1", map[string]string{"app": "a", "tier": "web"}, 0),
			wl("a-v2", map[string]string{"app": "a", "tier": "db"}, 1),
			wl("b-v1", map[string]string{"app": "b"}, 0),
		},
		Services: []*model.Service{
			svc("a", map[string]string{"app": "a"}),
			svc("a-web", map[string]string{"app": "a", "tier": "web"}),
			svc("a-db", map[string]string{"tier": "db", "app": "a"}),
			svc("b", map[string]string{"app": "b"}),
			svc("none", nil),
		},
	}), "c")
	var alive []string
	for _, s := range ix.services {
		if s.alive {
			alive = append(alive, s.name)
		}
	}
	if want := []string{"a", "a-db"}; !slices.Equal(alive, want) {
		t.Errorf("alive services %q, want %q", alive, want)
	}
}
