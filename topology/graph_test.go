package topology

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"testing"
	"time"
)

var fixtureNow = time.Unix(1_790_000_000, 0)

// label names a node the way a test reads it.
func label(d *NodeData) string {
	switch d.NodeType {
	case NodeTypeService:
		return "svc:" + d.Service
	case NodeTypeUnknown:
		return "unknown"
	case NodeTypeBox:
		return "box:" + d.IsBox + ":" + d.Namespace + ":" + d.App
	case NodeTypeWorkload:
		return "wk:" + d.Workload
	}
	if d.Version != "" {
		return "app:" + d.App + ":" + d.Version
	}
	return "app:" + d.App
}

// summary lists a graph's nodes and edges as sorted readable strings.
func summary(c *Cytoscape) (nodes, edges []string, byLabel map[string]*NodeData, edgeBy map[string]*EdgeData) {
	byID := map[string]*NodeData{}
	byLabel = map[string]*NodeData{}
	edgeBy = map[string]*EdgeData{}
	for _, n := range c.Elements.Nodes {
		byID[n.Data.ID] = n.Data
		byLabel[label(n.Data)] = n.Data
		nodes = append(nodes, label(n.Data)+"("+n.Data.DataSource+")")
	}
	for _, e := range c.Elements.Edges {
		s := label(byID[e.Data.Source]) + "->" + label(byID[e.Data.Target])
		edgeBy[s] = e.Data
		edges = append(edges, fmt.Sprintf("%s %s(%s)", s, e.Data.Traffic.Protocol, e.Data.DataSource))
	}
	slices.Sort(nodes)
	slices.Sort(edges)
	return nodes, edges, byLabel, edgeBy
}

func mustOptions(t testing.TB, q string) Options {
	t.Helper()
	v, err := url.ParseQuery(q)
	if err != nil {
		t.Fatal(err)
	}
	o, err := ParseOptions(v)
	if err != nil {
		t.Fatal(err)
	}
	o.QueryTime = fixtureNow
	return o
}

func buildFixture(t testing.TB, g *Graph, q string, mode pathMode) *Cytoscape {
	t.Helper()
	return buildGraph(t, g, mustOptions(t, q), mode)
}

// buildGraph builds o's graph from the given path and decodes it
// strictly into the Kiali types.
func buildGraph(t testing.TB, g *Graph, o Options, mode pathMode) *Cytoscape {
	t.Helper()
	body, err := g.buildFrom(context.Background(), o, mode)
	if err != nil {
		t.Fatal(err)
	}
	return strictDecode(t, body)
}

// near checks a rate string within ±1% of want.
func near(t *testing.T, what, got string, want float64) {
	t.Helper()
	f, err := strconv.ParseFloat(got, 64)
	if err != nil || (want == 0 && f != 0) || (want != 0 && (f/want < 0.99 || f/want > 1.01)) {
		t.Errorf("%s = %q, want %.4g ±1%%", what, got, want)
	}
}

func TestGraphTypesDrawTheFixtureMesh(t *testing.T) {
	g := newFixtureGraph(t, fixtureNow)
	for _, tc := range []struct {
		query        string
		nodes, edges []string
	}{
		{"graphType=workload",
			[]string{"app:audit(spans)", "unknown(metrics)", "wk:details-v1(both)", "wk:mysql-v1(metrics)", "wk:productpage-v1(both)", "wk:ratings-v1(metrics)", "wk:reviews-v1(both)", "wk:reviews-v2(metrics)"},
			[]string{"unknown->wk:productpage-v1 http(metrics)", "wk:productpage-v1->wk:details-v1 http(both)", "wk:productpage-v1->wk:reviews-v1 http(metrics)", "wk:productpage-v1->wk:reviews-v2 http(metrics)", "wk:reviews-v1->app:audit http(spans)", "wk:reviews-v1->wk:mysql-v1 tcp(metrics)", "wk:reviews-v2->wk:ratings-v1 grpc(metrics)"}},
		{"graphType=app",
			[]string{"app:audit(spans)", "app:details(both)", "app:mysql(metrics)", "app:productpage(both)", "app:ratings(metrics)", "app:reviews(both)", "unknown(metrics)"},
			[]string{"app:productpage->app:details http(both)", "app:productpage->app:reviews http(metrics)", "app:reviews->app:audit http(spans)", "app:reviews->app:mysql tcp(metrics)", "app:reviews->app:ratings grpc(metrics)", "unknown->app:productpage http(metrics)"}},
		{"graphType=versionedApp",
			[]string{"app:audit(spans)", "app:details:v1(both)", "app:mysql:v1(metrics)", "app:productpage:v1(both)", "app:ratings:v1(metrics)", "app:reviews:v1(both)", "app:reviews:v2(metrics)", "box:app:bookinfo:reviews()", "unknown(metrics)"},
			[]string{"app:productpage:v1->app:details:v1 http(both)", "app:productpage:v1->app:reviews:v1 http(metrics)", "app:productpage:v1->app:reviews:v2 http(metrics)", "app:reviews:v1->app:audit http(spans)", "app:reviews:v1->app:mysql:v1 tcp(metrics)", "app:reviews:v2->app:ratings:v1 grpc(metrics)", "unknown->app:productpage:v1 http(metrics)"}},
		{"graphType=service",
			[]string{"app:audit(spans)", "svc:details(both)", "svc:mysql(metrics)", "svc:productpage(both)", "svc:ratings(metrics)", "svc:reviews(both)", "unknown(metrics)"},
			[]string{"svc:productpage->svc:details http(both)", "svc:productpage->svc:reviews http(metrics)", "svc:reviews->app:audit http(spans)", "svc:reviews->svc:mysql tcp(metrics)", "svc:reviews->svc:ratings grpc(metrics)", "unknown->svc:productpage http(metrics)"}},
		{"graphType=workload&injectServiceNodes=true",
			[]string{"app:audit(spans)", "svc:details(both)", "svc:mysql(metrics)", "svc:productpage(metrics)", "svc:ratings(metrics)", "svc:reviews(metrics)", "unknown(metrics)", "wk:details-v1(both)", "wk:mysql-v1(metrics)", "wk:productpage-v1(both)", "wk:ratings-v1(metrics)", "wk:reviews-v1(both)", "wk:reviews-v2(metrics)"},
			[]string{"svc:details->wk:details-v1 http(both)", "svc:mysql->wk:mysql-v1 tcp(metrics)", "svc:productpage->wk:productpage-v1 http(metrics)", "svc:ratings->wk:ratings-v1 grpc(metrics)", "svc:reviews->wk:reviews-v1 http(metrics)", "svc:reviews->wk:reviews-v2 http(metrics)", "unknown->svc:productpage http(metrics)", "wk:productpage-v1->svc:details http(both)", "wk:productpage-v1->svc:reviews http(metrics)", "wk:reviews-v1->app:audit http(spans)", "wk:reviews-v1->svc:mysql tcp(metrics)", "wk:reviews-v2->svc:ratings grpc(metrics)"}},
	} {
		t.Run(tc.query, func(t *testing.T) {
			nodes, edges, _, _ := summary(buildFixture(t, g, tc.query, pathMemory))
			if !slices.Equal(nodes, tc.nodes) {
				t.Errorf("nodes:\n got %q\nwant %q", nodes, tc.nodes)
			}
			if !slices.Equal(edges, tc.edges) {
				t.Errorf("edges:\n got %q\nwant %q", edges, tc.edges)
			}
		})
	}
}

func TestWorkloadGraphRatesHealthAndSecurity(t *testing.T) {
	g := newFixtureGraph(t, fixtureNow)
	_, _, nodes, edges := summary(buildFixture(t, g, "graphType=workload&responseTime=avg&throughputType=request", pathMemory))
	checkFixtureTraffic(t, nodes, edges)
	d := edges["wk:productpage-v1->wk:details-v1"]
	if d.IsMTLS != "100" || d.ResponseTime != "33" || d.Throughput != "100" {
		t.Errorf("details edge isMTLS=%q responseTime=%q throughput=%q, want 100, 33 (avg 32.7), 100", d.IsMTLS, d.ResponseTime, d.Throughput)
	}
	if got := d.Traffic.Responses["503"].Flags["UF"]; got != "10.0" {
		t.Errorf("503 UF share = %q, want 10.0", got)
	}
	if got := d.Traffic.Responses["200"].Hosts["details.bookinfo.svc.cluster.local"]; got != "90.0" {
		t.Errorf("200 host share = %q, want 90.0", got)
	}
	if u := edges["unknown->wk:productpage-v1"]; u.IsMTLS != "" || u.HealthStatus != HealthHealthy {
		t.Errorf("unknown edge isMTLS=%q health=%q, want none and Healthy", u.IsMTLS, u.HealthStatus)
	}
	if !nodes["unknown"].IsRoot || nodes["wk:productpage-v1"].IsRoot {
		t.Error("the unknown node is the root, productpage is not")
	}
}

// checkFixtureTraffic checks the workload graph's rates (±1%), error
// shares and health against the fixture.
func checkFixtureTraffic(t *testing.T, nodes map[string]*NodeData, edges map[string]*EdgeData) {
	t.Helper()
	for name, want := range map[string]map[string]float64{
		"unknown->wk:productpage-v1":       {"http": 2, "httpPercentReq": 100},
		"wk:productpage-v1->wk:reviews-v1": {"http": 1, "httpPercentReq": 40},
		"wk:productpage-v1->wk:reviews-v2": {"http": 0.5, "httpPercentReq": 20},
		"wk:productpage-v1->wk:details-v1": {"http": 1, "http5xx": 0.1, "httpPercentErr": 10, "httpPercentReq": 40},
		"wk:reviews-v2->wk:ratings-v1":     {"grpc": 0.5, "grpcErr": 0.02 /* 1/60, Kiali prints 2 decimals */, "grpcPercentErr": 3.3, "grpcPercentReq": 100},
		"wk:reviews-v1->wk:mysql-v1":       {"tcp": 100},
	} {
		e := edges[name]
		if e == nil {
			t.Errorf("no edge %s", name)
			continue
		}
		for k, v := range want {
			near(t, name+" "+k, e.Traffic.Rates[k], v)
		}
		if len(e.Traffic.Rates) != len(want) {
			t.Errorf("%s rates %v, want only %v", name, e.Traffic.Rates, want)
		}
	}
	for name, want := range map[string]string{
		"wk:productpage-v1->wk:details-v1": HealthFailure, "wk:reviews-v2->wk:ratings-v1": HealthDegraded,
		"wk:productpage-v1->wk:reviews-v1": HealthHealthy, "wk:reviews-v1->wk:mysql-v1": "",
	} {
		if got := edges[name].HealthStatus; got != want {
			t.Errorf("%s health %q, want %q", name, got, want)
		}
	}
	for name, want := range map[string]string{
		// productpage is degraded by its calls (outbound: Kiali's default
		// direction .* counts both), 4% of which got 5xx; reviews-v2 by
		// its calls to ratings.
		"wk:details-v1": HealthFailure, "wk:ratings-v1": HealthDegraded, "wk:productpage-v1": HealthDegraded,
		"wk:reviews-v1": HealthHealthy, "wk:reviews-v2": HealthDegraded, "unknown": HealthNA, "wk:mysql-v1": HealthNA,
	} {
		if got := nodes[name].HealthStatus; got != want {
			t.Errorf("node %s health %q, want %q", name, got, want)
		}
	}
	pp := nodes["wk:productpage-v1"].Traffic
	if len(pp) != 1 || pp[0].Protocol != "http" {
		t.Fatalf("productpage traffic %+v", pp)
	}
	near(t, "productpage httpIn", pp[0].Rates["httpIn"], 2)
	near(t, "productpage httpOut", pp[0].Rates["httpOut"], 2.5)
}

func mustFloat(s string) float64 {
	f, _ := strconv.ParseFloat(s, 64)
	return f
}

func TestTheSameDataDrawsTheSameBytes(t *testing.T) {
	// Forty callers of one workload: the node's sums have forty terms,
	// whose float total depends on their order (rows come in map order).
	g, err := New(Config{}, nil, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	g.now = func() time.Time { return fixtureNow }
	g.started = fixtureNow.Add(-time.Hour)
	var calls []call
	for i := range 40 {
		name := "c" + strconv.Itoa(i)
		calls = append(calls, call{src: wk(name+"-v1", name, "v1"), dst: wk("db-v1", "db", "v1"), svc: "db", proto: "http",
			code: 200, n: 1 + i*37%23, ms: time.Duration(i) * time.Millisecond},
			call{src: wk(name+"-v1", name, "v1"), dst: wk("db-v1", "db", "v1"), svc: "db", proto: "http", code: 503, n: 1 + i%3})
	}
	if err := g.ConsumeRequests(context.Background(), requests(calls, fixtureNow.Add(-time.Minute))); err != nil {
		t.Fatal(err)
	}
	o := mustOptions(t, "duration=7m")
	first, err := g.buildFrom(context.Background(), o, pathMemory)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		again, err := g.buildFrom(context.Background(), o, pathMemory)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(again, first) {
			t.Fatalf("build %d differs from the first", i+2)
		}
	}
}
