package source

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/glassmesh/glassmesh/control/model"
)

func meshWith(names ...string) *model.Mesh {
	var svcs []*model.Service
	for _, n := range names {
		svcs = append(svcs, &model.Service{Meta: model.Meta{Name: n, Namespace: "default"}})
	}
	return model.NewMesh(model.Objects{Services: svcs})
}

func TestStoreKeepsTheLastGoodConfig(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := NewStore(slog.New(slog.DiscardHandler), reg)
	if s.Loaded() {
		t.Fatal("loaded before any Apply")
	}
	if _, ok := s.Apply(model.Result{Mesh: meshWith("a")}, nil); !ok {
		t.Fatal("a clean result was not taken")
	}
	_, goodVersion := s.Mesh()

	bad := model.Result{Errors: []model.Diagnostic{{File: "r.yaml", Line: 3, Path: "spec.x", Message: "boom"}}}
	if _, ok := s.Apply(bad, nil); ok {
		t.Fatal("a result with errors was taken")
	}
	if m, v := s.Mesh(); v != goodVersion || m.Service("default", "a") == nil {
		t.Fatalf("after a bad load the serving mesh changed (version %s, want %s)", v, goodVersion)
	}
	st := s.Status()
	if len(st.Errors) != 1 || st.Errors[0].Error() != "r.yaml:3: spec.x: boom" {
		t.Fatalf("status errors = %+v", st.Errors)
	}

	_, taken := s.Apply(model.Result{Mesh: meshWith("b")}, func(*model.Mesh) error { return errors.New("no route") })
	if taken || s.Status().Errors[0].Message != "translation failed: no route" {
		t.Fatalf("a mesh that failed to translate: taken=%v status=%+v", taken, s.Status().Errors)
	}
	if m, _ := s.Mesh(); m.Service("default", "b") != nil {
		t.Fatal("the mesh that failed to translate is serving")
	}

	if _, ok := s.Apply(model.Result{Mesh: meshWith("b")}, func(*model.Mesh) error { return nil }); !ok {
		t.Fatal("the fixed config was not taken")
	}
	if len(s.Status().Errors) != 0 {
		t.Fatal("errors remain after a clean load")
	}
	if got := testutil.ToFloat64(s.reloads.WithLabelValues("failure")); got != 2 {
		t.Errorf("failed reloads = %v, want 2", got)
	}
	if got := testutil.ToFloat64(s.reloads.WithLabelValues("success")); got != 2 {
		t.Errorf("successful reloads = %v, want 2", got)
	}
}

func TestStoreServesConfigStatus(t *testing.T) {
	s := NewStore(slog.New(slog.DiscardHandler), nil)
	s.Apply(model.Result{Mesh: meshWith("reviews")}, nil)
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest("GET", "/api/mesh/config", nil))
	var body map[string]json.RawMessage
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"version", "loadedAt", "errors", "warnings", "resources"} {
		if _, ok := body[k]; !ok {
			t.Errorf("no %q in %s", k, rec.Body)
		}
	}
	if !strings.Contains(string(body["resources"]), `"name": "reviews"`) {
		t.Errorf("resources lack the service: %s", body["resources"])
	}
}

func TestStoreStatusSaysWhereEachObjectCameFrom(t *testing.T) {
	objs := model.Objects{
		Services: []*model.Service{{Meta: model.Meta{Name: "reviews", Namespace: "default"}, Origin: model.Origin{File: "mesh/services.yaml", Line: 12}}},
		Routes: []*model.TrafficRoute{{Meta: model.Meta{Name: "httproute-reviews", Namespace: "default"}, Spec: model.TrafficRouteSpec{Service: "reviews"},
			Origin: KubernetesOrigin("httproutes.gateway.networking.k8s.io", "default", "reviews")}},
	}
	s := NewStore(slog.New(slog.DiscardHandler), nil)
	s.Apply(model.Result{Mesh: model.NewMesh(objs)}, nil)
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest("GET", "/api/mesh/config", nil))
	var body struct {
		Origins map[string]string `json:"origins"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"Service/default/reviews":                "mesh/services.yaml:12",
		"TrafficRoute/default/httproute-reviews": "kubernetes:httproutes.gateway.networking.k8s.io/default/reviews",
	}
	if len(body.Origins) != len(want) {
		t.Errorf("origins %v, want %v", body.Origins, want)
	}
	for k, v := range want {
		if body.Origins[k] != v {
			t.Errorf("origins[%s] = %q, want %q", k, body.Origins[k], v)
		}
	}

	t.Run("the version does not depend on where objects came from", func(t *testing.T) {
		_, v1 := s.Mesh()
		objs.Services[0].Origin = model.Origin{File: "elsewhere.yaml", Line: 1}
		s.Apply(model.Result{Mesh: model.NewMesh(objs)}, nil)
		if _, v2 := s.Mesh(); v1 != v2 {
			t.Errorf("version changed from %s to %s with the file name", v1, v2)
		}
	})
}

// A config read again and again (every status write on Kubernetes) says each
// error and warning once while it lasts, and a reload that changes nothing
// says so at debug only.
func TestStoreLogsEachDiagnosticOnce(t *testing.T) {
	var logs strings.Builder
	s := NewStore(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo})), nil)
	warn := model.Diagnostic{File: "a.yaml", Path: "spec.selector", Message: "selects no workload"}
	bad := model.Diagnostic{File: "b.yaml", Path: "spec.x", Message: "boom"}
	count := func(s string) int { return strings.Count(logs.String(), s) }

	for range 3 {
		s.Apply(model.Result{Mesh: meshWith("a"), Warnings: []model.Diagnostic{warn}}, nil)
	}
	if n := count("selects no workload"); n != 1 {
		t.Errorf("the warning logged %d times over 3 loads, want 1:\n%s", n, logs.String())
	}
	if n := count("mesh config loaded"); n != 1 {
		t.Errorf("%d info lines for 3 loads of one config, want 1:\n%s", n, logs.String())
	}
	for range 2 {
		s.Apply(model.Result{Errors: []model.Diagnostic{bad}}, nil)
	}
	if n := count("boom"); n != 1 {
		t.Errorf("the error logged %d times over 2 loads, want 1", n)
	}
	// Gone and back: said again, as the warning after a load without it.
	s.Apply(model.Result{Mesh: meshWith("a")}, nil)
	s.Apply(model.Result{Errors: []model.Diagnostic{bad}}, nil)
	s.Apply(model.Result{Mesh: meshWith("b"), Warnings: []model.Diagnostic{warn}}, nil)
	if n, w := count("boom"), count("selects no workload"); n != 2 || w != 2 {
		t.Errorf("after going away: error logged %d times, warning %d, want 2 each:\n%s", n, w, logs.String())
	}
}

// Two teams' files: one team's invalid route is set aside (its last good
// version serves) while the other team's change applies.
func TestStoreContainsAnInvalidObject(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	teamA := func(w1, w2 int) string {
		return fmt.Sprintf(`apiVersion: glassmesh.io/v1alpha1
kind: Service
metadata: {name: a, namespace: team-a}
spec: {ports: [{name: http, port: 80, protocol: HTTP}], selector: {app: a}}
---
apiVersion: glassmesh.io/v1alpha1
kind: TrafficRoute
metadata: {name: a, namespace: team-a}
spec:
  service: a
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
  rules: [{destinations: [{subset: v1, weight: %d}, {subset: v2, weight: %d}]}]
`, w1, w2)
	}
	teamB := func(port int) string {
		return fmt.Sprintf(`apiVersion: glassmesh.io/v1alpha1
kind: Service
metadata: {name: b, namespace: team-b}
spec: {ports: [{name: http, port: 80, protocol: HTTP}], selector: {app: b}}
---
apiVersion: glassmesh.io/v1alpha1
kind: Workload
metadata: {name: b-v1, namespace: team-b, labels: {app: b}}
spec: {endpoints: [{address: 10.0.0.1, ports: {http: %d}}]}
`, port)
	}
	reg := prometheus.NewRegistry()
	s := NewStore(slog.New(slog.DiscardHandler), reg)
	var pushed *model.Mesh
	accept := func(m *model.Mesh) error { pushed = m; return nil }
	write("a.yaml", teamA(50, 50))
	write("b.yaml", teamB(8001))
	if aside, ok := s.Apply(model.Load(dir), accept); !ok || len(aside) != 0 {
		t.Fatalf("taken %v, set aside %v", ok, aside)
	}

	write("a.yaml", teamA(60, 60))
	write("b.yaml", teamB(8002))
	aside, ok := s.Apply(model.Load(dir), accept)
	if !ok || len(aside) != 1 || aside[0].Key() != "TrafficRoute/team-a/a" || aside[0].Serving != model.ServingLastGood {
		t.Fatalf("taken %v, set aside %+v", ok, aside)
	}
	m, _ := s.Mesh()
	if m != pushed || m.Workload("team-b", "b-v1").Spec.Endpoints[0].Ports["http"] != 8002 {
		t.Fatal("team-b's change is not serving")
	}
	if w := m.Route("team-a", "a").Spec.Rules[0].Destinations[0].Weight; w != 50 {
		t.Fatalf("team-a's route weight %d, want the last good 50", w)
	}
	st := s.Status()
	if len(st.InvalidObjects) != 1 || st.InvalidObjects[0].Since.IsZero() || len(st.Errors) != 1 || st.Errors[0].Line != 12 {
		t.Fatalf("status %+v", st)
	}
	since := st.InvalidObjects[0].Since
	for name, want := range map[string]float64{
		`glassmesh_config_invalid_objects{kind="TrafficRoute"}`: 1,
		`glassmesh_config_stale_objects{kind="TrafficRoute"}`:   1,
		`glassmesh_config_reloads_total{result="contained"}`:    1,
		`glassmesh_config_errors`:                               1,
	} {
		if got := gathered(t, reg, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	// Read again: still set aside since the same time.
	time.Sleep(5 * time.Millisecond)
	s.Apply(model.Load(dir), accept)
	if st := s.Status(); len(st.InvalidObjects) != 1 || !st.InvalidObjects[0].Since.Equal(since) {
		t.Errorf("since moved: %+v", st.InvalidObjects)
	}

	write("a.yaml", teamA(10, 90))
	if aside, ok := s.Apply(model.Load(dir), accept); !ok || len(aside) != 0 {
		t.Fatalf("fixed: taken %v, set aside %v", ok, aside)
	}
	if st := s.Status(); len(st.InvalidObjects) != 0 || len(st.Errors) != 0 {
		t.Errorf("status after the fix %+v", st)
	}
	if got := gathered(t, reg, `glassmesh_config_invalid_objects{kind="TrafficRoute"}`); got != 0 {
		t.Errorf("invalid objects after the fix = %v", got)
	}
}

// gathered reads one sample from reg, by its name and labels as
// name{label="value"}; 0 when absent.
func gathered(t *testing.T, reg *prometheus.Registry, series string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			name := mf.GetName()
			if len(m.GetLabel()) > 0 {
				var ls []string
				for _, l := range m.GetLabel() {
					ls = append(ls, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
				}
				name += "{" + strings.Join(ls, ",") + "}"
			}
			if name != series {
				continue
			}
			switch {
			case m.Gauge != nil:
				return m.GetGauge().GetValue()
			case m.Counter != nil:
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// Objects a source builds anew (Kubernetes does, on every event) keep their
// identity while they do not change, so the translation reuses what it
// built of them.
func TestStoreKeepsUnchangedObjectsTheSame(t *testing.T) {
	build := func(port uint32) model.Result {
		objs := model.Objects{
			Services: []*model.Service{{Meta: model.Meta{Name: "a", Namespace: "default"},
				Spec: model.ServiceSpec{Ports: []model.ServicePort{{Name: "http", Port: 80, Protocol: model.ProtocolHTTP}}, Selector: map[string]string{"app": "a"}}}},
			Workloads: []*model.Workload{{Meta: model.Meta{Name: "a-1", Namespace: "default", Labels: map[string]string{"app": "a"}},
				Spec: model.WorkloadSpec{ServiceAccount: "default", Endpoints: []model.Endpoint{{Address: "10.0.0.1", Ports: map[string]uint32{"http": port}}}}}},
		}
		m, errs, _ := model.Validate(objs)
		if len(errs) > 0 {
			t.Fatal(errs)
		}
		return model.Result{Mesh: m, Objects: objs}
	}
	s := NewStore(slog.New(slog.DiscardHandler), nil)
	s.Apply(build(8080), nil)
	first, _ := s.Mesh()
	s.Apply(build(8080), nil)
	second, _ := s.Mesh()
	if second.Services[0] != first.Services[0] || second.Workloads[0] != first.Workloads[0] {
		t.Error("equal objects read again are new objects")
	}
	s.Apply(build(9090), nil)
	third, _ := s.Mesh()
	if third.Services[0] != first.Services[0] || third.Workloads[0] == first.Workloads[0] || third.Workloads[0].Spec.Endpoints[0].Ports["http"] != 9090 {
		t.Error("want the service kept and the changed workload new")
	}
}

// The version is a function of the content only: a versioner that kept the
// encodings of the last mesh gives what a fresh one gives, for the same
// objects, for equal objects that are new values, and after a change.
func TestVersionIsTheContentsOnly(t *testing.T) {
	fresh := func(m *model.Mesh) string {
		var v versioner
		return v.of(m)
	}
	var v versioner
	a := meshWith("a", "b")
	if got, want := v.of(a), fresh(a); got != want {
		t.Fatalf("first: %s, want %s", got, want)
	}
	again := meshWith("a", "b") // equal objects, new values
	if got := v.of(again); got != fresh(a) {
		t.Errorf("equal content: %s, want %s", got, fresh(a))
	}
	changed := model.NewMesh(model.Objects{Services: []*model.Service{again.Services[0], meshWith("c").Services[0]}})
	if got, want := v.of(changed), fresh(changed); got != want || got == fresh(a) {
		t.Errorf("after a change: %s, want %s (and not %s)", got, want, fresh(a))
	}
}
