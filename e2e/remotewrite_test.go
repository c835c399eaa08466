package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/glassmesh/glassmesh/e2e/prometheustest"
)

func TestRemoteWriteToPrometheus(t *testing.T) {
	prom := prometheustest.Start(t)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "mesh.yaml"), telemetryMesh)
	gm := start(t, dir, "--remote-write-url", prom+"/api/v1/write")

	productpage := envoyNode("productpage-v1", "productpage", "10.1.0.1")
	ok := grpcEntry{cluster: "outbound|9080||reviews.default.svc.cluster.local", upstream: "10.1.0.2:9080",
		downstream: "10.1.0.1:40000", code: 200, grpcStatus: "0"}
	streamALS(t, gm.GRPCAddr, productpage, repeat(ok, 7)...)
	gm.waitValue(t, `sum(istio_requests_total)`, 7)

	eventually(t, 60*time.Second, func() error {
		resp, err := http.Get(prom + "/api/v1/query?query=" + url.QueryEscape(`sum(istio_requests_total{destination_workload="reviews-v1"})`))
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var body struct {
			Data struct {
				Result []promResult `json:"result"`
			} `json:"data"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			return err
		}
		if len(body.Data.Result) != 1 || body.Data.Result[0].Value[1] != "7" {
			return fmt.Errorf("prometheus has %+v, want 7", body.Data.Result)
		}
		return nil
	})
}

// TestRulesEvaluateOnTheSharedStore runs two replicas that remote-write to
// one Debian Prometheus and read it back (--metrics.query-url). Each
// replica's series carry its replica label (its --leader-elect.identity),
// so the store sums their shares; the rules evaluate there, so a recording
// covers the traffic both received, and it goes without the replica label
// (one leader writes it for the mesh); and the PromQL API of either replica
// (the UI's charts, Grafana) answers from the store: the whole mesh.
func TestRulesEvaluateOnTheSharedStore(t *testing.T) {
	prom := prometheustest.Start(t)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "mesh.yaml"), telemetryMesh)
	rules := filepath.Join(t.TempDir(), "mesh.rules.yml")
	writeFile(t, rules, "groups:\n  - name: mesh\n    rules:\n      - record: mesh:requests:sum\n        expr: sum(istio_requests_total)\n")
	shared := []string{"--remote-write-url", prom + "/api/v1/write", "--metrics.query-url", prom}
	// The file source runs one leader: only a evaluates rules.
	a := start(t, dir, append(shared, "--leader-elect.identity", "a", "--rules", rules)...)
	b := start(t, dir, append(shared, "--leader-elect.identity", "b")...)
	productpage := envoyNode("productpage-v1", "productpage", "10.1.0.1")
	ok := grpcEntry{cluster: "outbound|9080||reviews.default.svc.cluster.local", upstream: "10.1.0.2:9080",
		downstream: "10.1.0.1:40000", code: 200, grpcStatus: "0"}
	streamALS(t, a.GRPCAddr, productpage, repeat(ok, 7)...)
	streamALS(t, b.GRPCAddr, productpage, repeat(ok, 5)...)
	eventually(t, 60*time.Second, func() error {
		got := map[string]float64{}
		for _, r := range promGet(t, prom, `sum by (replica) (istio_requests_total)`) {
			got[r.Metric["replica"]] = r.float(t)
		}
		if got["a"] != 7 || got["b"] != 5 || len(got) != 2 {
			return fmt.Errorf("the store's requests by replica = %v, want a=7 b=5", got)
		}
		return nil
	})
	for _, in := range []*instance{a, b} {
		in.waitValue(t, `sum(istio_requests_total)`, 12)
	}
	eventually(t, 60*time.Second, func() error {
		r := promGet(t, prom, `mesh:requests:sum`)
		if len(r) != 1 || r[0].float(t) != 12 || r[0].Metric["replica"] != "" {
			return fmt.Errorf("the store's recording = %+v, want one series of 12 (7 + 5) without a replica label", r)
		}
		return nil
	})
}

// promGet runs an instant query on the Prometheus HTTP API at base.
func promGet(t testing.TB, base, q string) []promResult {
	t.Helper()
	return (&instance{HTTPAddr: strings.TrimPrefix(base, "http://")}).query(t, q)
}

// TestGraphFromRemoteWrittenIstioMetrics sends one glassmesh's istio_*
// series by remote-write into another, as an Istio mesh's Prometheus would
// during a migration: the receiving one draws the calls in its graph
// though no access log reached it.
func TestGraphFromRemoteWrittenIstioMetrics(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "mesh.yaml"), telemetryMesh)
	store := start(t, dir)
	sender := start(t, dir, "--remote-write-url", "http://"+store.HTTPAddr+"/api/v1/write")
	productpage := envoyNode("productpage-v1", "productpage", "10.1.0.1")
	ok := grpcEntry{cluster: "outbound|9080||reviews.default.svc.cluster.local", upstream: "10.1.0.2:9080",
		downstream: "10.1.0.1:40000", code: 200, grpcStatus: "0"}
	streamALS(t, sender.GRPCAddr, productpage, repeat(ok, 7)...)
	eventually(t, 60*time.Second, func() error {
		// Keep the counter growing: remote-write ships what is written
		// after it starts, so the first value alone would read as no rate.
		streamALS(t, sender.GRPCAddr, productpage, ok)
		var g kialiGraph
		// A window the receiving process's memory covers (it has run
		// longer than 5s), which holds no access log: only the pushed
		// series can draw the edge.
		store.getJSON(t, "/api/namespaces/graph?namespaces=default&graphType=workload&duration=5s", &g)
		workload := map[string]string{}
		for _, n := range g.Elements.Nodes {
			workload[n.Data.ID] = n.Data.Workload
		}
		for _, e := range g.Elements.Edges {
			if workload[e.Data.Source] == "productpage-v1" && workload[e.Data.Target] == "reviews-v1" {
				return nil
			}
		}
		return fmt.Errorf("no productpage-v1 → reviews-v1 edge in the receiving glassmesh's graph: %+v", g.Elements)
	})
}

// TestAStoreThatIsDownIsNamed: with --metrics.query-url pointing at a store
// that cannot be reached, what reads metrics says which store fails
// (never a replica's own share as the mesh's): the UI's charts (the PromQL
// API), /api/slos and the graph.
func TestAStoreThatIsDownIsNamed(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + l.Addr().String()
	l.Close()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "mesh.yaml"), telemetryMesh+`---
apiVersion: glassmesh.io/v1alpha1
kind: SLO
metadata: {name: reviews-availability, namespace: default}
spec: {service: reviews, objective: 99.9, indicator: {availability: {}}}
`)
	gm := start(t, dir, "--metrics.query-url", dead)
	for _, path := range []string{
		"/api/v1/query_range?query=up&start=0&end=60&step=15",
		"/api/slos",
		"/api/namespaces/graph?namespaces=default&graphType=workload&duration=60s",
	} {
		resp, err := http.Get("http://" + gm.HTTPAddr + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode < 500 || !strings.Contains(string(body), "metrics store "+dead) {
			t.Errorf("GET %s with the store down: %s %s, want a 5xx naming the store", path, resp.Status, body)
		}
	}
}
