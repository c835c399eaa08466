// Package helmtest renders and checks glassmesh's Helm chart with helm's Go
// packages. It is its own module so the main build does not pull in helm.
//
// Render is exported for other test harnesses (e2e/k8s may apply the
// rendered manifests to a real API server).
package helmtest

import (
	"fmt"
	"path/filepath"
	"runtime"
	"sort"
	"strings"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
)

// ReleaseName and Namespace are what Render installs the chart as.
const (
	ReleaseName = "glassmesh"
	Namespace   = "glassmesh-system"
)

// DeployDir is the repository's deploy/ directory, found from this source
// file's location, so callers in any working directory find the chart.
func DeployDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..")
}

// ChartDir is the chart's directory, deploy/helm/glassmesh.
func ChartDir() string { return filepath.Join(DeployDir(), "helm", "glassmesh") }

// Load loads the chart from ChartDir.
func Load() (*chart.Chart, error) { return loader.Load(ChartDir()) }

// Render renders the chart's templates (not its crds/, which Helm applies
// first and unrendered; see CRDs) as release ReleaseName in Namespace, with
// values merged over values.yaml as `helm install -f` would. The result is
// one multi-document YAML stream, templates in name order, each document
// headed by a `# Source:` comment like `helm template` prints. NOTES.txt
// and templates that render empty are left out.
func Render(values map[string]any) ([]byte, error) {
	ch, err := Load()
	if err != nil {
		return nil, err
	}
	return RenderChart(ch, values)
}

// RenderChart is Render for an already loaded chart.
func RenderChart(ch *chart.Chart, values map[string]any) ([]byte, error) {
	return RenderRelease(ch, values, ReleaseName, Namespace)
}

// RenderRelease is RenderChart as another release in another namespace.
func RenderRelease(ch *chart.Chart, values map[string]any, release, namespace string) ([]byte, error) {
	if values == nil {
		values = map[string]any{}
	}
	opts := chartutil.ReleaseOptions{Name: release, Namespace: namespace, Revision: 1, IsInstall: true}
	vals, err := chartutil.ToRenderValues(ch, values, opts, chartutil.DefaultCapabilities)
	if err != nil {
		return nil, fmt.Errorf("values: %w", err)
	}
	files, err := engine.Render(ch, vals)
	if err != nil {
		return nil, fmt.Errorf("render: %w", err)
	}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, name := range names {
		if strings.HasSuffix(name, "NOTES.txt") || strings.HasPrefix(filepath.Base(name), "_") {
			continue
		}
		for _, doc := range strings.Split(files[name], "\n---") {
			if strings.TrimSpace(stripComments(doc)) == "" {
				continue
			}
			fmt.Fprintf(&b, "---\n# Source: %s\n%s\n", name, strings.Trim(doc, "\n"))
		}
	}
	return []byte(b.String()), nil
}

// CRDs returns the chart's crds/ files by name (crds/NAME.yaml), as Helm
// installs them before the templates.
func CRDs(ch *chart.Chart) map[string][]byte {
	out := map[string][]byte{}
	for _, f := range ch.CRDObjects() {
		out[f.File.Name] = f.File.Data
	}
	return out
}

func stripComments(doc string) string {
	var b strings.Builder
	for _, line := range strings.Split(doc, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		b.WriteString(line)
		b.WriteByte('\n')
	}
	return b.String()
}
