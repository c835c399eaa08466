// Package archtest checks the shape of the code base: which part may
// import which, as DESIGN.md's table and docs/internals.md say.
package archtest

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
)

const module = "github.com/glassmesh/glassmesh/"

// allowed lists, for each part (a folder and everything below it), the
// parts its non-test code may import. The leaf packages of shared names
// and records may be imported by every part; cmd, demo, e2e, bench and
// this folder may import anything.
var allowed = map[string][]string{
	"control/model":        nil,
	"control/naming":       nil,
	"control/ca":           nil,
	"control/source":       {"control/model"},
	"control/translate":    {"control/model"},
	"control/xds":          {"control/model", "control/translate", "control/ca"},
	"control/canary":       {"control/model", "telemetry/slo", "telemetry/metrics"},
	"control/push":         {"control/model", "control/translate", "control/xds", "control/ca"},
	"telemetry/record":     nil,
	"telemetry/receiver":   {"telemetry/pipeline", "tracing/propagation", "telemetry/admission"},
	"telemetry/admission":  nil,
	"telemetry/diskspace":  nil, // the data dir's free-space guard every store shares
	"telemetry/pipeline":   {"control/model", "telemetry/metrics", "tracing/store", "topology"},
	"telemetry/metrics":    {"control/model"},
	"telemetry/slo":        {"control/model", "telemetry/metrics"},
	"telemetry/grpcreport": {"tracing/propagation"},
	"tracing/store":        nil,
	"tracing/forward":      {"tracing/store"},
	"tracing/query":        {"tracing/store"},
	"tracing/propagation":  nil,
	"topology":             {"telemetry/metrics", "tracing/store", "control/model"},
	"sidecar-config":       {"control/model"},
	"dashboards":           nil,

	// A Reader over a shared Jaeger (--traces.query-url): only the contract.
	"tracing/store/jaegerquery": {"tracing/store"},
}

var (
	leaves = []string{"control/naming", "telemetry/record", "telemetry/diskspace"}
	free   = []string{"cmd", "demo", "e2e", "bench", "archtest", "deploy"}
)

// partOf is the part a package folder belongs to: the longest part that
// is the folder or holds it; "" when none.
func partOf(dir string) string {
	best := ""
	for p := range allowed {
		if (dir == p || strings.HasPrefix(dir, p+"/")) && len(p) > len(best) {
			best = p
		}
	}
	for _, p := range free {
		if dir == p || strings.HasPrefix(dir, p+"/") {
			return p
		}
	}
	return best
}

func TestImportsFollowTheTable(t *testing.T) {
	root := ".."
	seen := map[string]bool{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); name == "node_modules" || name == "testdata" || strings.HasPrefix(name, ".") && path != root {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		rel, _ := filepath.Rel(root, filepath.Dir(path))
		rel = filepath.ToSlash(rel)
		part := partOf(rel)
		if slices.Contains(free, part) {
			return nil
		}
		if part == "" {
			t.Errorf("%s: package folder %s is in no part of the table; add it", path, rel)
			return nil
		}
		seen[part] = true
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, src, parser.ImportsOnly)
		if err != nil {
			return err
		}
		for _, imp := range f.Imports {
			ip := strings.Trim(imp.Path.Value, `"`)
			dep, ours := strings.CutPrefix(ip, module)
			if !ours {
				continue
			}
			target := partOf(dep)
			switch {
			case target == part, slices.Contains(leaves, target), slices.Contains(allowed[part], target):
			default:
				t.Errorf("%s (part %s) imports %s (part %s), which the table does not allow", path, part, dep, target)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var missing []string
	for p := range allowed {
		if !seen[p] {
			missing = append(missing, p)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("parts of the table with no code (moved or renamed?): %v", missing)
	}
}
