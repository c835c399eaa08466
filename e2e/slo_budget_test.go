package e2e

import (
	"fmt"
	"io"
	"math"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// sloBudgets is the part of GET /api/slos the budget tests read.
type sloBudgets struct {
	SLOs []struct {
		Name   string `json:"name"`
		Budget *struct {
			State     string     `json:"state"`
			Remaining *float64   `json:"remaining"`
			Errors    float64    `json:"errors"`
			Events    float64    `json:"events"`
			Since     *time.Time `json:"since"`
			Coverage  float64    `json:"coverage"`
		} `json:"budget"`
	} `json:"slos"`
}

// TestSLOBudgetSurvivesKill9 sends failing calls, reads the availability
// SLO's budget from /api/slos, its reports and /metrics, then kills
// glassmesh with SIGKILL and checks that the restarted process continues
// the same rollups: the events counted before the kill are still in the
// window, counted once.
func TestSLOBudgetSurvivesKill9(t *testing.T) {
	dir, data := t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(dir, "mesh.yaml"), telemetryMesh)
	writeFile(t, filepath.Join(dir, "slos.yaml"), reviewsSLOs)
	flags := []string{"--slo.step", "5s", "--metrics.interval", "1s", "--rules.interval", "1s"}
	gm := startIn(t, dir, data, flags...)

	// productpage's sidecar: 10 OK calls to reviews, 2 answered 503.
	productpage := envoyNode("productpage-v1", "productpage", "10.1.0.1")
	out := "outbound|9080||reviews.default.svc.cluster.local"
	ok := grpcEntry{cluster: out, upstream: "10.1.0.2:9080", downstream: "10.1.0.1:40000", code: 200, grpcStatus: "0"}
	bad := grpcEntry{cluster: out, upstream: "10.1.0.2:9080", downstream: "10.1.0.1:40000", code: 503}
	streamALS(t, gm.GRPCAddr, productpage, append(repeat(ok, 10), repeat(bad, 2)...)...)

	var before time.Time
	t.Run("the budget of the burning SLO is exhausted", func(t *testing.T) {
		eventually(t, 60*time.Second, func() error {
			var a sloBudgets
			gm.getJSON(t, "/api/slos", &a)
			b := a.SLOs[0].Budget
			// Counts are anchored increase()s of the raw counters (no
			// extrapolation): 12, give or take a request at a step's edge.
			if b == nil || b.State != "exhausted" || b.Remaining == nil || *b.Remaining >= 0 || b.Events < 11 || b.Events > 16 ||
				math.Abs(b.Errors/b.Events-2.0/12) > 0.02 {
				return fmt.Errorf("%s: budget %+v, want exhausted with 2 errors in 12 events", a.SLOs[0].Name, b)
			}
			if b.Since == nil || b.Coverage >= 0.01 {
				return fmt.Errorf("a fresh install covers a sliver of 30d from its first events: %+v", b)
			}
			before = *b.Since
			return nil
		})
	})
	t.Run("the reports carry a burn-down series", func(t *testing.T) {
		for _, period := range []string{"rolling", "month"} {
			var r struct {
				Period   string `json:"period"`
				State    string `json:"state"`
				Events   float64
				BurnDown []struct {
					At        time.Time `json:"at"`
					Remaining *float64  `json:"remaining"`
				} `json:"burnDown"`
			}
			gm.getJSON(t, "/api/slos/default/reviews-availability/report?period="+period, &r)
			last := r.BurnDown[len(r.BurnDown)-1]
			if r.Period != period || r.State != "exhausted" || last.Remaining == nil || *last.Remaining >= 0 {
				t.Errorf("%s report: %s, %s, %d points, last %+v", period, r.Period, r.State, len(r.BurnDown), last)
			}
		}
		for path, code := range map[string]int{
			"/api/slos/default/reviews-availability/report?period=week": http.StatusBadRequest,
			"/api/slos/default/nope/report":                             http.StatusNotFound,
		} {
			resp, err := http.Get("http://" + gm.HTTPAddr + path)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != code {
				t.Errorf("GET %s: %d, want %d", path, resp.StatusCode, code)
			}
		}
	})
	t.Run("the budget state is a metric", func(t *testing.T) {
		resp, err := http.Get("http://" + gm.HTTPAddr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		want := `glassmesh_slo_error_budget_state{namespace="default",service="reviews",slo="reviews-availability",state="exhausted"} 1`
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	})
	t.Run("after kill -9 the rollups continue where they were", func(t *testing.T) {
		gm.kill()
		gm = startIn(t, dir, data, flags...)
		time.Sleep(12 * time.Second) // two steps of the new process
		eventually(t, 60*time.Second, func() error {
			var a sloBudgets
			gm.getJSON(t, "/api/slos", &a)
			b := a.SLOs[0].Budget
			if b == nil || b.Events < 11 || b.Events > 16 || b.Since == nil || !b.Since.Equal(before) {
				return fmt.Errorf("budget %+v, want the 12 events from before the kill, since %s", b, before)
			}
			return nil
		})
	})
}
