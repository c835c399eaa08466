package grpcreport

import (
	"os/exec"
	"strings"
	"testing"
)

// An application that imports the interceptor links no part of the
// control plane: not the mesh model, its YAML or the PromQL parser.
func TestLinksNoControlPlane(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Skipf("go list: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, banned := range []string{"/control/model", "promql/parser", "gopkg.in/yaml"} {
			if strings.Contains(dep, banned) {
				t.Errorf("grpcreport depends on %s", dep)
			}
		}
	}
}
