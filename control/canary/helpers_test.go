package canary

import (
	"context"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"

	"github.com/glassmesh/glassmesh/control/model"
	telemetry "github.com/glassmesh/glassmesh/telemetry/metrics"

	"github.com/prometheus/prometheus/rules"
)

// meshYAML is reviews with v1 (stable) and v3 (canary) subsets, v2 holding
// 20 of the last rule's 100, an availability SLO and a canary.
const meshYAML = `apiVersion: glassmesh.io/v1alpha1
kind: Service
metadata: {name: reviews}
spec:
  ports: [{name: grpc, port: 9080, protocol: GRPC}]
  selector: {app: reviews}
---
apiVersion: glassmesh.io/v1alpha1
kind: Workload
metadata: {name: reviews-v1, labels: {app: reviews, version: v1}}
spec: {endpoints: [{address: 127.0.0.1, ports: {grpc: 19081}}]}
---
apiVersion: glassmesh.io/v1alpha1
kind: Workload
metadata: {name: reviews-v2, labels: {app: reviews, version: v2}}
spec: {endpoints: [{address: 127.0.0.1, ports: {grpc: 19082}}]}
---
apiVersion: glassmesh.io/v1alpha1
kind: Workload
metadata: {name: reviews-v3, labels: {app: reviews, version: v3}}
spec: {endpoints: [{address: 127.0.0.1, ports: {grpc: 19083}}]}
---
apiVersion: glassmesh.io/v1alpha1
kind: TrafficRoute
metadata: {name: reviews}
spec:
  service: reviews
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}, {name: v3, labels: {version: v3}}]
  rules:
    - destinations: [{subset: v1, weight: 80}, {subset: v2, weight: 20}]
---
apiVersion: glassmesh.io/v1alpha1
kind: SLO
metadata: {name: reviews-availability}
spec: {service: reviews, objective: 99, indicator: {availability: {}}}
---
apiVersion: glassmesh.io/v1alpha1
kind: Canary
metadata: {name: reviews}
spec:
  route: reviews
  stable: v1
  canary: v3
  steps: [25, 50, 100]
  interval: 1s
  minRequests: 20
  maxInconclusive: 3
  gates: [{slo: reviews-availability}]
`

// loadMesh loads YAML documents as a config directory.
func loadMesh(t testing.TB, yaml string) *model.Mesh {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "mesh.yaml"), []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	r := model.Load(dir)
	if len(r.Errors) > 0 {
		t.Fatalf("config errors: %v", r.Errors)
	}
	return r.Mesh
}

// tsdb is a real TSDB and PromQL engine, as glassmesh run has them.
type tsdb struct {
	st  *telemetry.Storage
	eng *telemetry.Engine
}

func newTSDB(t testing.TB) *tsdb {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := telemetry.OpenStorage(telemetry.StorageConfig{DataDir: t.TempDir(), Retention: time.Hour}, logger, nil)
	if err != nil {
		t.Fatal(err)
	}
	eng, err := telemetry.NewEngine(telemetry.EngineConfig{Dir: t.TempDir()}, logger, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close(); st.Close() })
	return &tsdb{st: st, eng: eng}
}

func (db *tsdb) querier() rules.QueryFunc {
	return rules.EngineQueryFunc(db.eng.PromQL(), db.st.Queryable())
}

// traffic appends istio_requests_total counters for reviews' versions, as
// the aggregator would: reporter=source, one series per code.
type traffic struct {
	app storage.Appendable

	mu     sync.Mutex
	counts map[[2]string]float64 // {version, code}
}

func newTraffic(db *tsdb) *traffic {
	return &traffic{app: db.st.Appendable(), counts: map[[2]string]float64{}}
}

// add counts requests by {version, code} and appends every series' value
// now (a new series first gets a 0 a millisecond earlier, so its first
// requests count in increase()).
func (tr *traffic) add(t testing.TB, n map[[2]string]float64) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	now := time.Now().UnixMilli()
	app := tr.app.Appender(context.Background())
	for key, v := range n {
		if _, seen := tr.counts[key]; !seen && v > 0 {
			if _, err := app.Append(0, series(key[0], key[1]), now-1, 0); err != nil {
				t.Error(err)
			}
			tr.counts[key] = 0
		}
		if _, seen := tr.counts[key]; seen {
			tr.counts[key] += v
		}
	}
	for k, v := range tr.counts {
		if _, err := app.Append(0, series(k[0], k[1]), now, v); err != nil {
			t.Error(err)
		}
	}
	if err := app.Commit(); err != nil {
		t.Error(err)
	}
}

func series(version, code string) labels.Labels {
	return labels.FromStrings("__name__", "istio_requests_total", "reporter", "source",
		"source_workload", "productpage-v1", "source_workload_namespace", "default",
		"destination_service_name", "reviews", "destination_service_namespace", "default",
		"destination_workload", "reviews-"+version, "destination_workload_namespace", "default",
		"destination_version", version, "response_code", code, "request_protocol", "grpc")
}

// drive adds traffic every 100 ms until the test ends: perTick requests to
// v1 and to v3, of which v3 answers a share bad() with 503.
func (tr *traffic) drive(t testing.TB, perTick float64, bad func() float64) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			b := bad()
			tr.add(t, map[[2]string]float64{{"v1", "200"}: perTick, {"v3", "200"}: perTick * (1 - b), {"v3", "503"}: perTick * b})
		}
	}()
}

// newController starts a controller on mesh m and returns it with a
// function that reports the weights last pushed for reviews' last rule.
func newController(t testing.TB, dir string, q rules.QueryFunc, m *model.Mesh) (*Controller, func() map[string]uint32) {
	t.Helper()
	c, err := New(Config{DataDir: dir, Querier: q, Tick: 100 * time.Millisecond}, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	pushed := weightsOf(c.Overlay(m))
	push := func() {
		mu.Lock()
		defer mu.Unlock()
		pushed = weightsOf(c.Overlay(m))
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(ctx, push) }()
	t.Cleanup(func() { cancel(); <-done })
	return c, func() map[string]uint32 {
		mu.Lock()
		defer mu.Unlock()
		return pushed
	}
}

// weightsOf is the last rule of reviews in an overlaid mesh, by subset.
func weightsOf(m *model.Mesh, _ []model.Override) map[string]uint32 {
	r := m.Route("default", "reviews")
	out := map[string]uint32{}
	for _, d := range r.Spec.Rules[len(r.Spec.Rules)-1].Destinations {
		out[d.Subset] = d.Weight
	}
	return out
}

// waitState waits (generously: machines are shared) for a canary state.
func waitState(t *testing.T, c *Controller, want State, within time.Duration) Status {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		st, _ := c.Get("default", "reviews")
		if st.State == want {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("state %s after %s, want %s; decisions:\n%s", st.State, within, want, describe(st))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitWeights waits for the pushed weights to become want.
func waitWeights(t *testing.T, pushed func() map[string]uint32, want map[string]uint32) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !maps.Equal(pushed(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("pushed weights = %v, want %v", pushed(), want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func describe(st Status) string {
	s := ""
	for _, d := range st.Decisions {
		s += "  " + d.At.Format("15:04:05.000") + " " + string(d.Verdict) + ": " + d.Reason + "\n"
	}
	return s
}

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
