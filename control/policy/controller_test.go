package policy

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/glassmesh/glassmesh/control/model"
	"github.com/glassmesh/glassmesh/telemetry/slo"
)

const freezeMesh = `apiVersion: glassmesh.io/v1alpha1
kind: Service
metadata: {name: reviews}
spec: {ports: [{name: grpc, port: 9080, protocol: GRPC}], selector: {app: reviews}}
---
apiVersion: glassmesh.io/v1alpha1
kind: SLO
metadata: {name: avail}
spec: {service: reviews, objective: 99, indicator: {availability: {}}}
---
apiVersion: glassmesh.io/v1alpha1
kind: SLOPolicy
metadata: {name: budget}
spec:
  slo: avail
  actions: [{when: budgetExhausted, freezeCanaries: true}]
  dryRun: %s
`

func loadMesh(t *testing.T, yaml string) *model.Mesh {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "mesh.yaml"), []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	r := model.Load(dir)
	if len(r.Errors) > 0 {
		t.Fatal(r.Errors)
	}
	return r.Mesh
}

func TestFrozenWhileTheBudgetIsExhausted(t *testing.T) {
	state := slo.StateHealthy
	left := -0.25
	budget := func(s *model.SLO) (slo.Budget, bool) {
		if s.Name != "avail" {
			t.Errorf("budget of %s asked", s.Name)
		}
		return slo.Budget{State: state, Remaining: &left}, true
	}
	for _, dry := range []string{"false", "true"} {
		c, err := New(Config{Budget: budget}, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
		if err != nil {
			t.Fatal(err)
		}
		c.Overlay(loadMesh(t, strings.Replace(freezeMesh, "%s", dry, 1)))
		state = slo.StateHealthy
		if r := c.Frozen("default", "reviews"); r != "" {
			t.Errorf("dryRun %s, healthy budget: frozen %q", dry, r)
		}
		state = slo.StateExhausted
		r := c.Frozen("default", "reviews")
		want := "SLOPolicy default/budget: SLO avail's error budget is exhausted (-25.0% left)"
		if dry == "true" && r != "" || dry == "false" && r != want {
			t.Errorf("dryRun %s, exhausted budget: frozen %q, want %q", dry, r, map[string]string{"true": "", "false": want}[dry])
		}
		if r := c.Frozen("default", "ratings"); r != "" {
			t.Errorf("another service frozen: %q", r)
		}
	}
}
