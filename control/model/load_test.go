package model

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"gopkg.in/yaml.v3"
)

func TestLoadReadsAValidDirectory(t *testing.T) {
	r := Load("testdata/valid")
	if len(r.Errors) > 0 || r.Mesh == nil {
		t.Fatalf("errors: %v", r.Errors)
	}
	// README.md, .routes.yaml.swp and .hidden/ are not read.
	if r.Files != 5 {
		t.Errorf("Files = %d, want 5", r.Files)
	}
	m := r.Mesh
	if len(m.Services) != 3 || len(m.Workloads) != 4 || len(m.Routes) != 2 || len(m.SLOs) != 1 || len(m.Canaries) != 1 {
		t.Fatalf("got %d services, %d workloads, %d routes, %d SLOs, %d canaries", len(m.Services), len(m.Workloads), len(m.Routes), len(m.SLOs), len(m.Canaries))
	}
	if s := m.SLO("default", "reviews-availability"); s == nil || s.Spec.Indicator.Availability == nil || s.Spec.Window.Duration != DefaultSLOWindow {
		t.Errorf("SLO = %+v", s)
	}
	if c := m.Canaries[0]; c.Spec.MinRequests != DefaultCanaryMinRequests || c.Spec.MaxInconclusive != DefaultCanaryMaxInconclusive || len(c.Spec.Gates) != 2 {
		t.Errorf("canary defaults = %+v", c.Spec)
	}
	reviews := m.Service("default", "reviews")
	if reviews == nil || reviews.Origin.File != filepath.Join("testdata", "valid", "services.yaml") || reviews.Origin.Line != 2 {
		t.Fatalf("reviews = %+v", reviews)
	}
	route := m.RouteFor(reviews)
	if route == nil || len(m.WorkloadsOf(reviews, route.Subset("v2").Labels)) != 1 {
		t.Errorf("route for reviews = %+v", route)
	}
	if db := m.Service("storage", "db"); db == nil || len(m.WorkloadsOf(db, nil)) != 1 {
		t.Errorf("db = %+v", db)
	}
}

// TestLoadRoundTrip writes a loaded mesh back out as YAML and loads that:
// the two meshes must be equal, so nothing read is lost or changed.
func TestLoadRoundTrip(t *testing.T) {
	first := Load("testdata/valid")
	if len(first.Errors) > 0 {
		t.Fatalf("errors: %v", first.Errors)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "mesh.yaml"), encode(t, first.Mesh), 0o644); err != nil {
		t.Fatal(err)
	}
	second := Load(dir)
	if len(second.Errors) > 0 {
		t.Fatalf("errors reading back: %v", second.Errors)
	}
	if !reflect.DeepEqual(withoutOrigins(first.Mesh), withoutOrigins(second.Mesh)) {
		t.Errorf("round trip changed the mesh:\n%s\nvs\n%s", encode(t, first.Mesh), encode(t, second.Mesh))
	}
	if len(first.Warnings) != len(second.Warnings) {
		t.Errorf("warnings %v, then %v", first.Warnings, second.Warnings)
	}
}

// encode writes a mesh as one multi-document YAML file.
func encode(t *testing.T, m *Mesh) []byte {
	t.Helper()
	type document struct {
		APIVersion string `yaml:"apiVersion"`
		Kind       string `yaml:"kind"`
		Metadata   Meta   `yaml:"metadata"`
		Spec       any    `yaml:"spec"`
	}
	var docs []document
	for _, s := range m.Services {
		docs = append(docs, document{APIVersion, KindService, s.Meta, s.Spec})
	}
	for _, w := range m.Workloads {
		docs = append(docs, document{APIVersion, KindWorkload, w.Meta, w.Spec})
	}
	for _, r := range m.Routes {
		docs = append(docs, document{APIVersion, KindTrafficRoute, r.Meta, r.Spec})
	}
	for _, s := range m.SLOs {
		docs = append(docs, document{APIVersion, KindSLO, s.Meta, s.Spec})
	}
	for _, c := range m.Canaries {
		docs = append(docs, document{APIVersion, KindCanary, c.Meta, c.Spec})
	}
	for _, p := range m.PeerAuthentications {
		docs = append(docs, document{APIVersion, KindPeerAuthentication, p.Meta, p.Spec})
	}
	for _, p := range m.AuthzPolicies {
		docs = append(docs, document{APIVersion, KindAuthorizationPolicy, p.Meta, p.Spec})
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	for _, d := range docs {
		if err := enc.Encode(d); err != nil {
			t.Fatal(err)
		}
	}
	if err := enc.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func withoutOrigins(m *Mesh) *Mesh {
	for _, s := range m.Services {
		s.Origin = Origin{}
	}
	for _, w := range m.Workloads {
		w.Origin = Origin{}
	}
	for _, r := range m.Routes {
		r.Origin = Origin{}
	}
	for _, s := range m.SLOs {
		s.Origin = Origin{}
	}
	for _, c := range m.Canaries {
		c.Origin = Origin{}
	}
	for _, p := range m.PeerAuthentications {
		p.Origin = Origin{}
	}
	for _, p := range m.AuthzPolicies {
		p.Origin = Origin{}
	}
	return m
}

func TestLoadReadsOneFileWhateverItsName(t *testing.T) {
	p := filepath.Join(t.TempDir(), "mesh.conf")
	if err := os.WriteFile(p, []byte(base), 0o644); err != nil {
		t.Fatal(err)
	}
	r := Load(p)
	if len(r.Errors) > 0 || r.Files != 1 || len(r.Mesh.Workloads) != 2 {
		t.Errorf("Load(file) = %+v", r)
	}
}

func TestLoadOfAMissingPathIsAnError(t *testing.T) {
	p := filepath.Join(t.TempDir(), "nope")
	r := Load(p)
	if len(r.Errors) != 1 || r.Errors[0].File != p || r.Mesh != nil {
		t.Errorf("Load(missing) = %+v", r)
	}
}

func TestLoadDigestFollowsContent(t *testing.T) {
	dir := t.TempDir()
	write := func(s string) string {
		if err := os.WriteFile(filepath.Join(dir, "a.yaml"), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return Load(dir).Digest
	}
	a, again, b := write(base), write(base), write(base+"\n# changed\n")
	if a != again || a == b || a == "" {
		t.Errorf("digests %q, %q, %q: want the first two equal and the third different", a, again, b)
	}
	if err := os.WriteFile(filepath.Join(dir, ".a.yaml.swp"), []byte("junk"), 0o644); err != nil {
		t.Fatal(err)
	}
	if Load(dir).Digest != b {
		t.Error("a hidden file changed the digest")
	}
}

// BenchmarkLoad loads a directory of 2,000 files (1,000 services, each with
// a workload file).
func BenchmarkLoad(b *testing.B) {
	dir := b.TempDir()
	writeManyFiles(b, dir, 1000)
	b.ResetTimer()
	for b.Loop() {
		if r := Load(dir); len(r.Errors) > 0 {
			b.Fatal(r.Errors[0])
		}
	}
	b.ReportMetric(float64(2000*b.N)/b.Elapsed().Seconds(), "files/s")
}

// BenchmarkLoadManifests loads the same directory as the file source reads
// it (source.LoadConfig; its importer is not called for glassmesh kinds).
func BenchmarkLoadManifests(b *testing.B) {
	dir := b.TempDir()
	writeManyFiles(b, dir, 1000)
	b.ResetTimer()
	for b.Loop() {
		if r, _ := LoadManifests(dir, nil); len(r.Errors) > 0 {
			b.Fatal(r.Errors[0])
		}
	}
	b.ReportMetric(float64(2000*b.N)/b.Elapsed().Seconds(), "files/s")
}

// writeManyFiles writes n services and their n workloads, one file each,
// spread over subdirectories.
func writeManyFiles(tb testing.TB, dir string, n int) {
	tb.Helper()
	for i := range n {
		sub := filepath.Join(dir, fmt.Sprintf("team-%02d", i%20))
		if err := os.MkdirAll(sub, 0o755); err != nil {
			tb.Fatal(err)
		}
		svc := fmt.Sprintf("apiVersion: %s\nkind: Service\nmetadata: {name: svc-%d}\nspec:\n  ports: [{name: http, port: 8080, protocol: HTTP}]\n  selector: {app: svc-%d}\n", APIVersion, i, i)
		wl := fmt.Sprintf("apiVersion: %s\nkind: Workload\nmetadata: {name: svc-%d-v1, labels: {app: svc-%d}}\nspec:\n  endpoints: [{address: 10.0.%d.%d, ports: {http: 8080}}]\n", APIVersion, i, i, i/250, i%250)
		for name, data := range map[string]string{fmt.Sprintf("svc-%d.yaml", i): svc, fmt.Sprintf("svc-%d-workload.yml", i): wl} {
			if err := os.WriteFile(filepath.Join(sub, name), []byte(data), 0o644); err != nil {
				tb.Fatal(err)
			}
		}
	}
}

func TestLoadFollowsASymlinkedDirectory(t *testing.T) {
	target := t.TempDir()
	if err := os.WriteFile(filepath.Join(target, "a.yaml"), []byte(base), 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(t.TempDir(), "mesh")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	r := Load(link)
	if len(r.Errors) > 0 || r.Files != 1 {
		t.Fatalf("Load(symlink) = %+v", r)
	}
	if got, want := r.Mesh.Services[0].Origin.File, filepath.Join(link, "a.yaml"); got != want {
		t.Errorf("file = %q, want %q", got, want)
	}
}

// TestJSONRoundTrip checks that the mesh survives /api/mesh/config, which
// other commands read back with encoding/json.
func TestJSONRoundTrip(t *testing.T) {
	m := withoutOrigins(Load("testdata/valid").Mesh)
	type kinds struct {
		Services  []*Service
		Workloads []*Workload
		Routes    []*TrafficRoute
	}
	in := kinds{m.Services, m.Workloads, m.Routes}
	data, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var out kinds
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, out) {
		t.Errorf("JSON round trip changed the mesh:\n%s", data)
	}
	if !bytes.Contains(data, []byte(`"timeout":"5s"`)) {
		t.Errorf("durations are not written as strings:\n%s", data)
	}
}
