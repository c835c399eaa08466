package e2e

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// policyMesh is reviews v1/v2 50/50 (productpage calls it), an
// availability SLO and an SLOPolicy that drains a burning version and
// brings it back in two steps.
func policyMesh(p1, p2 int, dryRun bool) string {
	return reviewsService + "---\n" + reviewsWorkloads(p1, p2) + "---\n" + reviewsRoute(50, 50) + fmt.Sprintf(`---
apiVersion: glassmesh.io/v1alpha1
kind: Workload
metadata: {name: productpage, namespace: default, labels: {app: productpage, version: v1}}
spec: {serviceAccount: productpage}
---
apiVersion: glassmesh.io/v1alpha1
kind: SLO
metadata: {name: reviews-availability, namespace: default}
spec: {service: reviews, objective: 99, indicator: {availability: {}}}
---
apiVersion: glassmesh.io/v1alpha1
kind: SLOPolicy
metadata: {name: reviews, namespace: default}
spec:
  slo: reviews-availability
  actions: [{when: page, shiftTraffic: {route: reviews, minRequests: 10}}]
  recovery: {after: 4s, steps: [50, 100], interval: 4s}
  dryRun: %v
`, dryRun)
}

// policyStatus is what the tests read of /api/slo-policies/{ns}/{name}.
type policyStatus struct {
	Subsets map[string]struct {
		Phase string `json:"phase"`
		Step  int    `json:"step"`
	} `json:"subsets"`
	Weights   map[string]uint32 `json:"weights"`
	Message   string            `json:"message"`
	Decisions []struct {
		Subset       string            `json:"subset"`
		From         string            `json:"from"`
		To           string            `json:"to"`
		Held         bool              `json:"held"`
		DryRun       bool              `json:"dryRun"`
		Reason       string            `json:"reason"`
		SLO          string            `json:"slo"`
		WeightsAfter map[string]uint32 `json:"weightsAfter"`
		Thresholds   struct{ Alert, Quiet float64 }
		Evidence     map[string]struct {
			Requests  float64            `json:"requests"`
			BurnRates map[string]float64 `json:"burnRates"`
			Burning   bool               `json:"burning"`
		} `json:"evidence"`
	} `json:"decisions"`
}

func (in *instance) policy(t testing.TB) policyStatus {
	t.Helper()
	var st policyStatus
	in.getJSON(t, "/api/slo-policies/default/reviews", &st)
	return st
}

// waitServed waits until reviews' served weights are want (a missing
// subset is 0).
func (in *instance) waitServed(t testing.TB, within time.Duration, want map[string]uint32) {
	t.Helper()
	eventually(t, within, func() error {
		got := in.servedWeights(t)
		for s, w := range want {
			if got[s] != w {
				return fmt.Errorf("served weights %v, want %v (policy: %s)", got, want, in.policy(t).Message)
			}
		}
		return nil
	})
}

func TestSLOPolicy(t *testing.T) {
	t.Run("a burning version loses its traffic, comes back in steps, and is drained again if it burns during recovery", func(t *testing.T) {
		v1, v2 := newCanaryBackend(t, "v1"), newCanaryBackend(t, "v2")
		dir := t.TempDir()
		writeFile(t, filepath.Join(dir, "mesh.yaml"), policyMesh(v1.port, v2.port, false))
		gm := start(t, dir, "--slo-policy.interval", "2s")
		ct := startClientTraffic(t, gm, 40)
		ct.waitAnswered(t, "v2", 30*time.Second)

		v2.failing.Store(true)
		broke := time.Now()
		gm.waitServed(t, 60*time.Second, map[string]uint32{"v1": 100, "v2": 0})
		ct.waitAllAt(t, "v1", 30*time.Second)
		t.Logf("first failing request -> served weights off v2 and client traffic at v1: %s", time.Since(broke).Round(time.Millisecond))
		st := gm.policy(t)
		d := st.Decisions[len(st.Decisions)-1]
		if d.Subset != "v2" || d.To != "drained" || d.SLO != "reviews-availability" || !d.Evidence["v2"].Burning ||
			d.Evidence["v2"].Requests < 10 || d.Thresholds.Alert <= 0 || !strings.Contains(d.Reason, "reviews-availability") {
			t.Errorf("drain record = %+v", d)
		}

		// Healed: after recovery.after of quiet, 50% of v2's weight, then
		// all of it.
		v2.failing.Store(false)
		gm.waitServed(t, 60*time.Second, map[string]uint32{"v1": 75, "v2": 25})
		// Burning again during recovery drops it back to zero.
		v2.failing.Store(true)
		gm.waitServed(t, 60*time.Second, map[string]uint32{"v1": 100, "v2": 0})
		st = gm.policy(t)
		if d := st.Decisions[len(st.Decisions)-1]; d.Subset != "v2" || d.To != "drained" || !strings.Contains(d.Reason, "burned again during recovery") {
			t.Errorf("re-drain record = %+v", d)
		}
		v2.failing.Store(false)
		gm.waitServed(t, 90*time.Second, map[string]uint32{"v1": 50, "v2": 50})
		eventually(t, 30*time.Second, func() error {
			if p := gm.policy(t).Subsets["v2"].Phase; p != "healthy" {
				return fmt.Errorf("v2 %s, want healthy", p)
			}
			return nil
		})
	})

	t.Run("the shift survives kill -9: a restart serves the drained weights before it evaluates again", func(t *testing.T) {
		v1, v2 := newCanaryBackend(t, "v1"), newCanaryBackend(t, "v2")
		dir, data := t.TempDir(), t.TempDir()
		writeFile(t, filepath.Join(dir, "mesh.yaml"), policyMesh(v1.port, v2.port, false))
		gm := startIn(t, dir, data, "--slo-policy.interval", "2s")
		startClientTraffic(t, gm, 40)
		v2.failing.Store(true)
		gm.waitServed(t, 60*time.Second, map[string]uint32{"v1": 100, "v2": 0})
		gm.kill()
		// A long interval: what serves after the restart is the saved
		// state, not a new evaluation.
		gm = startIn(t, dir, data, "--slo-policy.interval", "1h")
		if w := gm.servedWeights(t); w["v1"] != 100 || w["v2"] != 0 {
			t.Errorf("served weights after kill -9 = %v, want v1 100", w)
		}
		if p := gm.policy(t).Subsets["v2"].Phase; p != "drained" {
			t.Errorf("v2 %s after kill -9, want drained", p)
		}
	})

	t.Run("dryRun records what it would do and changes no weight", func(t *testing.T) {
		v1, v2 := newCanaryBackend(t, "v1"), newCanaryBackend(t, "v2")
		dir := t.TempDir()
		writeFile(t, filepath.Join(dir, "mesh.yaml"), policyMesh(v1.port, v2.port, true))
		gm := start(t, dir, "--slo-policy.interval", "2s")
		ct := startClientTraffic(t, gm, 40)
		ct.waitAnswered(t, "v2", 30*time.Second)
		v2.failing.Store(true)
		var st policyStatus
		eventually(t, 60*time.Second, func() error {
			if st = gm.policy(t); len(st.Decisions) == 0 {
				return fmt.Errorf("no decision yet: %s", st.Message)
			}
			return nil
		})
		if d := st.Decisions[0]; !d.DryRun || d.Subset != "v2" || d.To != "drained" {
			t.Errorf("dry-run record = %+v", d)
		}
		if !strings.HasPrefix(st.Message, "dry run: would drain v2") {
			t.Errorf("message %q", st.Message)
		}
		if w := gm.servedWeights(t); w["v1"] != 50 || w["v2"] != 50 {
			t.Errorf("served weights = %v, want the file's 50/50", w)
		}
		if !ct.answered("error") {
			t.Error("failing v2 gets no traffic in dry run")
		}
	})
}
