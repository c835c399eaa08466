package source

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/glassmesh/glassmesh/control/model"
)

const deadline = 5 * time.Second

func service(name string) string {
	return fmt.Sprintf(`apiVersion: glassmesh.io/v1alpha1
kind: Service
metadata: {name: %s}
spec:
  ports: [{name: http, port: 8080, protocol: HTTP}]
  selector: {app: %s}
`, name, name)
}

// results collects what a running File source reports.
type results struct {
	mu  sync.Mutex
	all []model.Result
}

func (r *results) add(res model.Result) []ObjectStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.all = append(r.all, res)
	return nil
}

func (r *results) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.all)
}

// await waits until the newest result satisfies ok, and returns it.
func (r *results) await(t *testing.T, what string, ok func(model.Result) bool) model.Result {
	t.Helper()
	for end := time.Now().Add(deadline); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		r.mu.Lock()
		n := len(r.all)
		var last model.Result
		if n > 0 {
			last = r.all[n-1]
		}
		r.mu.Unlock()
		if n > 0 && ok(last) {
			return last
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	t.Fatalf("no result with %s within %v; got %d results, last %+v", what, deadline, len(r.all), r.all[max(len(r.all)-1, 0):])
	return model.Result{}
}

// start runs a File source on path until the test ends, and checks that
// it returns and leaves no goroutine behind.
func start(t *testing.T, path string) *results {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	f := NewFile(FileConfig{Path: path, Debounce: 50 * time.Millisecond}, slog.New(slog.DiscardHandler))
	r := &results{}
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx, r.add) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(deadline):
			t.Fatal("Run did not return after cancel")
		}
		goleak.VerifyNone(t)
	})
	return r
}

func write(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func services(n int) func(model.Result) bool {
	return func(r model.Result) bool { return r.Mesh != nil && len(r.Mesh.Services) == n }
}

func TestFileReportsBreakageAndRecovery(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "svc.yaml")
	write(t, file, service("a"))
	r := start(t, dir)
	r.await(t, "service a", services(1))

	write(t, file, service("a")+"  colour: blue\n")
	broken := r.await(t, "errors", func(r model.Result) bool { return len(r.Errors) > 0 })
	if want := file + ":7: spec.colour: unknown field"; broken.Mesh != nil || len(broken.Errors) != 1 || broken.Errors[0].Error() != want {
		t.Errorf("errors = %v, want [%s]", broken.Errors, want)
	}

	write(t, file, service("a"))
	r.await(t, "recovery", services(1))

	write(t, filepath.Join(dir, "team", "deep", "b.yml"), service("b"))
	r.await(t, "a service in a new subdirectory", services(2))
	write(t, filepath.Join(dir, "team", "deep", "c.yaml"), service("c"))
	r.await(t, "a service added to the new subdirectory", services(3))

	if err := os.RemoveAll(filepath.Join(dir, "team")); err != nil {
		t.Fatal(err)
	}
	r.await(t, "the subdirectory gone", services(1))
}

func TestFileTreatsAMissingPathAsEmptyUntilItAppears(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "not", "yet", "mesh")
	r := start(t, dir)
	first := r.await(t, "an empty mesh", services(0))
	if len(first.Errors) > 0 || first.Files != 0 {
		t.Errorf("first = %+v", first)
	}

	write(t, filepath.Join(dir, "a.yaml"), service("a"))
	r.await(t, "the directory appearing", services(1))

	if err := os.RemoveAll(filepath.Dir(dir)); err != nil {
		t.Fatal(err)
	}
	r.await(t, "the directory gone", func(r model.Result) bool { return r.Files == 0 && services(0)(r) && len(r.Errors) == 0 })
}

func TestFileWatchesOneFileReplacedByRename(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "mesh.yaml")
	write(t, file, service("a"))
	write(t, filepath.Join(dir, "other.yaml"), service("other"))
	r := start(t, file)
	r.await(t, "service a", func(r model.Result) bool { return services(1)(r) && r.Mesh.Service("default", "a") != nil })

	// What vim and many tools do: write a new file, rename it over the old.
	tmp := filepath.Join(dir, ".mesh.yaml.tmp")
	write(t, tmp, service("b"))
	if err := os.Rename(tmp, file); err != nil {
		t.Fatal(err)
	}
	r.await(t, "service b", func(r model.Result) bool { return services(1)(r) && r.Mesh.Service("default", "b") != nil })

	// Neither other files nor swap files nor a rewrite of the same content
	// produce a result.
	n := r.count()
	write(t, filepath.Join(dir, "other.yaml"), service("changed"))
	write(t, filepath.Join(dir, ".mesh.yaml.swp"), "junk")
	write(t, file, service("b"))
	time.Sleep(300 * time.Millisecond)
	if got := r.count(); got != n {
		t.Errorf("%d results after changes that change nothing read, want %d", got, n)
	}
}

func TestFileFollowsAKubernetesConfigMapSwap(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "..v1", "mesh.yaml"), service("a"))
	mustSymlink(t, "..v1", filepath.Join(dir, "..data"))
	mustSymlink(t, filepath.Join("..data", "mesh.yaml"), filepath.Join(dir, "mesh.yaml"))
	r := start(t, dir)
	r.await(t, "service a", func(r model.Result) bool { return services(1)(r) && r.Mesh.Service("default", "a") != nil })

	write(t, filepath.Join(dir, "..v2", "mesh.yaml"), service("b"))
	mustSymlink(t, "..v2", filepath.Join(dir, "..data_tmp"))
	if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	r.await(t, "service b", func(r model.Result) bool { return services(1)(r) && r.Mesh.Service("default", "b") != nil })
}

func mustSymlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

func TestFileCoalescesBursts(t *testing.T) {
	dir := t.TempDir()
	r := start(t, dir)
	r.await(t, "an empty mesh", services(0))
	before := r.count()
	for i := range 40 {
		write(t, filepath.Join(dir, fmt.Sprintf("s%02d.yaml", i)), service(fmt.Sprintf("s%d", i)))
	}
	r.await(t, "all 40 services", services(40))
	if got := r.count() - before; got > 10 {
		t.Errorf("40 quick writes gave %d results; want them coalesced", got)
	}
}

func TestFileLoadsThousandsOfFiles(t *testing.T) {
	dir := t.TempDir()
	for i := range 1000 {
		sub := filepath.Join(dir, fmt.Sprintf("team-%02d", i%20))
		name := fmt.Sprintf("svc-%d", i)
		write(t, filepath.Join(sub, name+".yaml"), service(name))
		write(t, filepath.Join(sub, name+"-v1.yaml"), fmt.Sprintf(
			"apiVersion: glassmesh.io/v1alpha1\nkind: Workload\nmetadata: {name: %s-v1, labels: {app: %s}}\nspec:\n  endpoints: [{address: 10.1.%d.%d, ports: {http: 8080}}]\n",
			name, name, i/250, i%250))
	}
	began := time.Now()
	r := start(t, dir)
	first := r.await(t, "1000 services", services(1000))
	if first.Files != 2000 || len(first.Warnings) != 0 || len(first.Mesh.Workloads) != 1000 {
		t.Errorf("files %d, warnings %d, workloads %d", first.Files, len(first.Warnings), len(first.Mesh.Workloads))
	}
	t.Logf("2000 files loaded in %v", time.Since(began))

	write(t, filepath.Join(dir, "team-07", "svc-7.yaml"), strings.Replace(service("svc-7"), "8080", "9090", 1))
	r.await(t, "the changed port", func(r model.Result) bool {
		return r.Mesh != nil && len(r.Errors) == 0 && r.Mesh.Service("default", "svc-7").Spec.Ports[0].Port == 9090
	})
}

func TestFileRunReturnsWhenCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	f := NewFile(FileConfig{Path: t.TempDir()}, slog.New(slog.DiscardHandler))
	got := make(chan model.Result, 1)
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx, func(r model.Result) []ObjectStatus { got <- r; return nil }) }()
	select {
	case <-got:
	case <-time.After(deadline):
		t.Fatal("no first result")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v, want nil", err)
		}
	case <-time.After(deadline):
		t.Fatal("Run did not return")
	}
	goleak.VerifyNone(t)
}

// A GitOps directory as kubectl applies it works as the mesh config: core
// Services and an HTTPRoute are read (the route imported, with its file and
// line as origin), a Deployment is skipped; and an edit to the HTTPRoute
// reloads.
func TestFileReadsKubernetesManifests(t *testing.T) {
	dir := t.TempDir()
	svc := func(name string, labels string) string {
		return fmt.Sprintf("apiVersion: v1\nkind: Service\nmetadata: {name: %s, namespace: shop}\nspec:\n  selector: %s\n  ports: [{name: grpc, port: 9080}]\n", name, labels)
	}
	write(t, filepath.Join(dir, "services.yaml"), svc("reviews", "{app: reviews}")+"---\n"+
		svc("reviews-v1", "{app: reviews, version: v1}")+"---\n"+svc("reviews-v2", "{app: reviews, version: v2}"))
	write(t, filepath.Join(dir, "deploy.yaml"), "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: reviews-v1, namespace: shop}\nspec: {}\n")
	route := func(v1, v2 int) string {
		return fmt.Sprintf(`apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: reviews, namespace: shop}
spec:
  parentRefs: [{group: "", kind: Service, name: reviews}]
  rules:
    - backendRefs:
        - {name: reviews-v1, port: 9080, weight: %d}
        - {name: reviews-v2, port: 9080, weight: %d}
`, v1, v2)
	}
	write(t, filepath.Join(dir, "route.yaml"), route(3, 1))
	weights := func(v1, v2 uint32) func(model.Result) bool {
		return func(r model.Result) bool {
			if r.Mesh == nil || len(r.Mesh.Routes) != 1 {
				return false
			}
			d := r.Mesh.Routes[0].Spec.Rules[0].Destinations
			return len(d) == 2 && d[0].Weight == v1 && d[1].Weight == v2
		}
	}
	r := start(t, dir)
	got := r.await(t, "the HTTPRoute imported at 75/25", weights(75, 25))
	if len(got.Errors) > 0 || len(got.Mesh.Services) != 3 {
		t.Fatalf("errors %v, %d services", got.Errors, len(got.Mesh.Services))
	}
	if o := got.Mesh.Routes[0].Origin; !strings.HasSuffix(o.File, "route.yaml") || o.Line != 1 {
		t.Errorf("origin %v, want route.yaml:1", o)
	}
	write(t, filepath.Join(dir, "route.yaml"), route(1, 1))
	r.await(t, "the edit at 50/50", weights(50, 50))
}
