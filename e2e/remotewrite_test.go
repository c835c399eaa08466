package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// debianPrometheus starts the distribution's prometheus as a remote-write
// receiver on a free loopback port and returns its base URL.
func debianPrometheus(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skip("prometheus not installed (.ci/run installs Debian's prometheus package)")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte("global: {scrape_interval: 1m}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--web.enable-remote-write-receiver")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	base := "http://" + addr
	eventually(t, 30*time.Second, func() error {
		resp, err := http.Get(base + "/-/ready")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("prometheus not ready: %s", resp.Status)
		}
		return nil
	})
	return base
}

func TestRemoteWriteToPrometheus(t *testing.T) {
	prom := debianPrometheus(t)
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
// one Debian Prometheus and read it back (--metrics.query-url): each
// replica's rules evaluate there, so a recording covers the traffic both
// received, not the share one replica saw.
func TestRulesEvaluateOnTheSharedStore(t *testing.T) {
	prom := debianPrometheus(t)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "mesh.yaml"), telemetryMesh)
	rules := filepath.Join(t.TempDir(), "mesh.rules.yml")
	writeFile(t, rules, "groups:\n  - name: mesh\n    rules:\n      - record: mesh:requests:sum\n        expr: sum(istio_requests_total)\n")
	replica := func(name string) *instance {
		return start(t, dir, "--remote-write-url", prom+"/api/v1/write", "--remote-write.external-label", "replica="+name,
			"--metrics.query-url", prom, "--rules", rules)
	}
	a, b := replica("a"), replica("b")
	productpage := envoyNode("productpage-v1", "productpage", "10.1.0.1")
	ok := grpcEntry{cluster: "outbound|9080||reviews.default.svc.cluster.local", upstream: "10.1.0.2:9080",
		downstream: "10.1.0.1:40000", code: 200, grpcStatus: "0"}
	streamALS(t, a.GRPCAddr, productpage, repeat(ok, 7)...)
	streamALS(t, b.GRPCAddr, productpage, repeat(ok, 5)...)
	a.waitValue(t, `sum(istio_requests_total)`, 7) // a's own share
	eventually(t, 60*time.Second, func() error {
		r := a.query(t, `mesh:requests:sum`)
		if len(r) != 1 || r[0].float(t) != 12 {
			return fmt.Errorf("replica a's recording = %+v, want 12 (7 + 5 from the store)", r)
		}
		return nil
	})
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
		var g struct {
			Elements struct {
				Nodes []struct {
					Data struct{ ID, Workload string } `json:"data"`
				} `json:"nodes"`
				Edges []struct {
					Data struct{ Source, Target string } `json:"data"`
				} `json:"edges"`
			} `json:"elements"`
		}
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
