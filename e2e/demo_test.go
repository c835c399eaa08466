package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestDemo runs `glassmesh demo` as a user would and checks that its
// traffic flows through the mesh and shows up as metrics.
func TestDemo(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "demo-mesh")
	gm := startCmd(t, "demo", dir, t.TempDir(), "--traffic-rps", "20")

	t.Run("every app is an xDS node: servers get their listener, mTLS and authorization from glassmesh", func(t *testing.T) {
		eventually(t, 60*time.Second, func() error {
			var px proxies
			gm.getJSON(t, "/api/xds/proxies", &px)
			var names []string
			for _, p := range px.Proxies {
				names = append(names, p.Workload)
			}
			sort.Strings(names)
			if got := strings.Join(names, ","); got != "details-v1,productpage-v1,ratings-v1,reviews-v1,reviews-v2,reviews-v3,traffic-generator" {
				return fmt.Errorf("proxies: %s", got)
			}
			return nil
		})
	})
	t.Run("every workload has request metrics", func(t *testing.T) {
		want := "details-v1,productpage-v1,ratings-v1,reviews-v1,reviews-v2,reviews-v3"
		eventually(t, 90*time.Second, func() error {
			r := gm.query(t, `sum by (destination_workload) (rate(istio_requests_total{reporter="source"}[1m]))`)
			var names []string
			for _, s := range r {
				if s.float(t) > 0 {
					names = append(names, s.Metric["destination_workload"])
				}
			}
			sort.Strings(names)
			if got := strings.Join(names, ","); got != want {
				return fmt.Errorf("workloads with traffic: %s, want %s", got, want)
			}
			return nil
		})
	})
	t.Run("every call is mutual TLS between SPIFFE identities, and the graph says so", func(t *testing.T) {
		eventually(t, 60*time.Second, func() error {
			// Series idle for the last minute (calls before the servers had
			// their certificates) read 0 and are left out.
			r := gm.query(t, `sum by (connection_security_policy) (rate(istio_requests_total{reporter="source"}[1m])) > 0`)
			if len(r) != 1 || r[0].Metric["connection_security_policy"] != "mutual_tls" {
				return fmt.Errorf("traffic by security policy: %+v, want only mutual_tls", r)
			}
			return nil
		})
		r := gm.query(t, `sum by (source_principal) (rate(istio_requests_total{reporter="source", destination_workload="ratings-v1"}[1m]))`)
		for _, s := range r {
			if p := s.Metric["source_principal"]; p != "spiffe://cluster.local/ns/default/sa/reviews" {
				t.Errorf("ratings called by %s; only reviews may", p)
			}
		}
		// The graph's window starts at a bucket boundary, up to a few
		// seconds before the query's [1m]: calls that failed before the
		// servers had their certificates (never connected, so not mutual
		// TLS) may still show in it for a moment. Every edge with traffic
		// must reach 100% and stay there.
		eventually(t, 60*time.Second, func() error {
			var g kialiGraph
			gm.getJSON(t, "/api/namespaces/graph?namespaces=default&graphType=workload&appenders=securityPolicy&duration=60s", &g) // the window of the check above
			var problems []string
			checked := 0
			for _, e := range g.Elements.Edges {
				// An edge without traffic in the window has no share to show.
				carries := false
				for k, v := range e.Data.Traffic.Rates {
					if f, err := strconv.ParseFloat(v, 64); err == nil && f > 0 && (k == "grpc" || k == "http" || k == "tcp") {
						carries = true
					}
				}
				if !carries {
					continue
				}
				checked++
				if e.Data.IsMTLS != "100" {
					problems = append(problems, fmt.Sprintf("edge %s → %s is %q%% mTLS (rates %v), want 100", e.Data.Source, e.Data.Target, e.Data.IsMTLS, e.Data.Traffic.Rates))
				}
			}
			if checked < 3 {
				problems = append(problems, fmt.Sprintf("%d edges with traffic, want at least 3 (traffic-generator, productpage, reviews call out)", checked))
			}
			if len(problems) > 0 {
				return errors.New(strings.Join(problems, "; "))
			}
			return nil
		})
	})
	t.Run("a trace stitches productpage, reviews and the B3 app ratings under one root", func(t *testing.T) {
		eventually(t, 60*time.Second, func() error {
			var res jaegerTrace
			gm.getJSON(t, "/api/traces?service=ratings&limit=5", &res)
			for _, tr := range res.Data {
				services := map[string]bool{}
				roots := 0
				for _, s := range tr.Spans {
					services[tr.Processes[s.ProcessID].ServiceName] = true
					if len(s.References) == 0 {
						roots++
					}
				}
				if len(tr.Spans) >= 5 && roots == 1 && services["productpage"] && services["reviews"] && services["ratings"] {
					return nil
				}
			}
			return fmt.Errorf("no stitched trace among %d", len(res.Data))
		})
	})
	t.Run("metric exemplars point at stored traces", func(t *testing.T) {
		eventually(t, 60*time.Second, func() error {
			now := time.Now().Unix()
			var ex struct {
				Data []struct {
					Exemplars []struct {
						Labels map[string]string `json:"labels"`
					} `json:"exemplars"`
				} `json:"data"`
			}
			gm.getJSON(t, fmt.Sprintf("/api/v1/query_exemplars?query=istio_request_duration_milliseconds_bucket&start=%d&end=%d", now-600, now+60), &ex)
			for _, s := range ex.Data {
				for _, e := range s.Exemplars {
					resp, err := http.Get("http://" + gm.HTTPAddr + "/api/traces/" + e.Labels["trace_id"])
					if err != nil {
						return err
					}
					resp.Body.Close()
					if resp.StatusCode == 200 {
						return nil
					}
				}
			}
			return fmt.Errorf("no exemplar whose trace is stored (%d series)", len(ex.Data))
		})
	})
	t.Run("the graph draws the demo like Kiali, and streams it", func(t *testing.T) {
		want := "details v1,productpage v1,ratings v1,reviews v1,reviews v2,reviews v3,traffic-generator v1"
		eventually(t, 60*time.Second, func() error {
			var g kialiGraph
			gm.getJSON(t, "/api/namespaces/graph?namespaces=default&graphType=versionedApp", &g)
			var names []string
			for _, n := range g.Elements.Nodes {
				// versionedApp boxes an app's versions, as Kiali does; a service
				// node appears for calls that failed before the servers served
				// (slow machines), and is not an app.
				if n.Data.IsBox == "" && n.Data.NodeType != "service" {
					names = append(names, n.Data.App+" "+n.Data.Version)
				}
			}
			sort.Strings(names)
			if got := strings.Join(names, ","); got != want || len(g.Elements.Edges) < 7 {
				return fmt.Errorf("nodes %s (want %s), %d edges", got, want, len(g.Elements.Edges))
			}
			return nil
		})
		resp, err := http.Get("http://" + gm.HTTPAddr + "/api/graph/stream?namespaces=default&refresh=1s")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<22)
		if !sc.Scan() || sc.Text() != "event: graph" || !sc.Scan() || !strings.HasPrefix(sc.Text(), `data: {"timestamp"`) {
			t.Fatalf("stream did not start with a graph event: %q", sc.Text())
		}
	})
	t.Run("the reviews canary advances on its own and the config shows who set the weights", func(t *testing.T) {
		eventually(t, 120*time.Second, func() error {
			var st struct {
				State     string            `json:"state"`
				Step      int               `json:"step"`
				Weights   map[string]uint32 `json:"weights"`
				Decisions []struct{ Verdict, Reason string }
			}
			gm.getJSON(t, "/api/canaries/default/reviews", &st)
			for _, d := range st.Decisions {
				if d.Verdict == "advance" && st.Weights["v3"] > 8 {
					return nil
				}
			}
			return fmt.Errorf("no advance yet: %+v", st)
		})
		var cfg struct {
			Overrides []struct{ Name, Path, By string }
		}
		gm.getJSON(t, "/api/mesh/config", &cfg)
		if len(cfg.Overrides) != 1 || cfg.Overrides[0].By != "Canary default/reviews" || cfg.Overrides[0].Path != "spec.rules[1].destinations" {
			t.Errorf("overrides = %+v", cfg.Overrides)
		}
	})
	t.Run("a fault injected in the config turns the reviews edge red", func(t *testing.T) {
		writeFile(t, filepath.Join(dir, "routes.yaml"), `apiVersion: glassmesh.io/v1alpha1
kind: TrafficRoute
metadata: {name: reviews, namespace: default}
spec:
  service: reviews
  subsets:
    - {name: v1, labels: {version: v1}}
    - {name: v2, labels: {version: v2}}
    - {name: v3, labels: {version: v3}}
  rules:
    - destinations: [{subset: v1, weight: 50}, {subset: v2, weight: 25}, {subset: v3, weight: 25}]
      fault: {abort: {percent: 100, grpcStatus: UNAVAILABLE}}
`)
		start := time.Now()
		eventually(t, 60*time.Second, func() error {
			var g kialiGraph
			gm.getJSON(t, "/api/namespaces/graph?namespaces=default&graphType=app&duration=15s", &g)
			app := map[string]string{}
			for _, n := range g.Elements.Nodes {
				// Aborted calls reach no workload: they end at the reviews service node.
				app[n.Data.ID] = n.Data.App
				if n.Data.App == "" {
					app[n.Data.ID] = n.Data.Service
				}
			}
			for _, e := range g.Elements.Edges {
				if app[e.Data.Source] == "productpage" && app[e.Data.Target] == "reviews" && e.Data.HealthStatus == "Failure" {
					return nil
				}
			}
			return fmt.Errorf("no failing productpage -> reviews edge yet: %+v", g.Elements.Edges)
		})
		t.Logf("edge turned red %s after the edit", time.Since(start).Round(time.Millisecond))
	})
}
