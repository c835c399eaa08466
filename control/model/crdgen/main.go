// Command crdgen writes deploy/crds from control/model's Go types: one
// apiextensions.k8s.io/v1 CustomResourceDefinition per glassmesh kind, its
// schema from the spec types' json fields, the constraints the validator
// checks (fieldRules) and the types' doc comments. Run it through
//
//	go generate ./control/model
//
// and review the diff; its tests check that deploy/crds is what it
// writes, so a type change without regenerating fails `make test`.
package main

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/glassmesh/glassmesh/control/model"
)

func main() {
	modelDir := flag.String("model", ".", "the directory of control/model's sources (their doc comments become descriptions)")
	out := flag.String("out", filepath.Join("..", "..", "deploy", "crds"), "where to write the CRDs")
	flag.Parse()
	if err := write(*modelDir, *out); err != nil {
		slog.Error("crdgen", "error", err)
		os.Exit(1)
	}
}

// write writes the CRDs into dir, and removes files of kinds no longer
// there.
func write(modelDir, dir string) error {
	crds, err := CRDs(modelDir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	want := map[string]bool{}
	for _, c := range crds {
		b, err := c.YAML()
		if err != nil {
			return err
		}
		want[c.FileName()] = true
		if err := os.WriteFile(filepath.Join(dir, c.FileName()), b, 0o644); err != nil {
			return err
		}
	}
	stale, _ := filepath.Glob(filepath.Join(dir, "*."+model.CRDGroup+".yaml"))
	for _, f := range stale {
		if !want[filepath.Base(f)] {
			if err := os.Remove(f); err != nil {
				return err
			}
		}
	}
	fmt.Printf("crdgen: wrote %d CRDs to %s\n", len(crds), dir)
	return nil
}
