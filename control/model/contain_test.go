package model

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// Two teams' config, one file each: service a in team-a with a weighted
// route, service b in team-b.
func teamA(w1, w2 int) string {
	return fmt.Sprintf(`apiVersion: glassmesh.io/v1alpha1
kind: Service
metadata: {name: a, namespace: team-a}
spec:
  ports: [{name: grpc, port: 9080, protocol: GRPC}]
  selector: {app: a}
---
apiVersion: glassmesh.io/v1alpha1
kind: Workload
metadata: {name: a-v1, namespace: team-a, labels: {app: a, version: v1}}
spec:
  endpoints: [{address: 10.0.0.1, ports: {grpc: 7001}}]
---
apiVersion: glassmesh.io/v1alpha1
kind: Workload
metadata: {name: a-v2, namespace: team-a, labels: {app: a, version: v2}}
spec:
  endpoints: [{address: 10.0.0.2, ports: {grpc: 7002}}]
---
apiVersion: glassmesh.io/v1alpha1
kind: TrafficRoute
metadata: {name: a, namespace: team-a}
spec:
  service: a
  subsets:
    - {name: v1, labels: {version: v1}}
    - {name: v2, labels: {version: v2}}
  rules:
    - destinations: [{subset: v1, weight: %d}, {subset: v2, weight: %d}]
`, w1, w2)
}

func teamB(port int) string {
	return fmt.Sprintf(`apiVersion: glassmesh.io/v1alpha1
kind: Service
metadata: {name: b, namespace: team-b}
spec:
  ports: [{name: grpc, port: 9080, protocol: GRPC}]
  selector: {app: b}
---
apiVersion: glassmesh.io/v1alpha1
kind: Workload
metadata: {name: b-v1, namespace: team-b, labels: {app: b, version: v1}}
spec:
  endpoints: [{address: 10.0.1.1, ports: {grpc: %d}}]
`, port)
}

// config is a config directory whose files a test rewrites.
type config struct {
	t   *testing.T
	dir string
}

func newConfig(t *testing.T) *config { return &config{t: t, dir: t.TempDir()} }

// write makes the directory hold exactly files (name → content).
func (c *config) write(files map[string]string) {
	c.t.Helper()
	old, _ := filepath.Glob(filepath.Join(c.dir, "*.yaml"))
	for _, p := range old {
		if _, keep := files[filepath.Base(p)]; !keep {
			os.Remove(p)
		}
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(c.dir, name), []byte(body), 0o644); err != nil {
			c.t.Fatal(err)
		}
	}
}

func (c *config) path(name string) string { return filepath.Join(c.dir, name) }

// load loads files, which must be valid.
func (c *config) load(files map[string]string) *Mesh {
	c.t.Helper()
	c.write(files)
	r := Load(c.dir)
	if len(r.Errors) > 0 {
		c.t.Fatalf("errors: %v", r.Errors)
	}
	return r.Mesh
}

// contain loads files and contains the load against prev, checking what
// must always hold: the serving mesh validates cleanly, and every error
// either belongs to a set-aside object or to a held file.
func (c *config) contain(prev *Mesh, files map[string]string) Contained {
	t := c.t
	t.Helper()
	c.write(files)
	r := Load(c.dir)
	got := Contain(r.Objects, r.ReadErrors, prev)
	if got.Mesh == nil {
		t.Fatal("no mesh")
	}
	if _, errs, _ := Validate(got.Mesh.Objects()); len(errs) > 0 {
		t.Fatalf("the contained mesh does not validate: %v", errs)
	}
	for _, e := range got.Errors {
		owned := slices.ContainsFunc(got.SetAside, func(s SetAside) bool { return s.Key() == e.Object })
		if !owned && !slices.Contains(got.HeldFiles, e.File) && !got.Whole {
			t.Errorf("error %v belongs to nothing set aside or held", e)
		}
	}
	return got
}

func weightsOf(r *TrafficRoute) []uint32 {
	var out []uint32
	for _, d := range r.Spec.Rules[len(r.Spec.Rules)-1].Destinations {
		out = append(out, d.Weight)
	}
	return out
}

func TestContainKeepsOneTeamsMistakeToItself(t *testing.T) {
	cfg := newConfig(t)
	prev := cfg.load(map[string]string{"a.yaml": teamA(50, 50), "b.yaml": teamB(8001)})
	c := cfg.contain(prev, map[string]string{"a.yaml": teamA(60, 60), "b.yaml": teamB(8002)})
	if c.Whole || len(c.HeldFiles) != 0 {
		t.Fatalf("whole %v, held %v", c.Whole, c.HeldFiles)
	}
	if got := c.Mesh.Workload("team-b", "b-v1").Spec.Endpoints[0].Ports["grpc"]; got != 8002 {
		t.Errorf("team-b's endpoint port = %d, want the new 8002", got)
	}
	a := c.Mesh.Route("team-a", "a")
	if a == nil || !slices.Equal(weightsOf(a), []uint32{50, 50}) {
		t.Fatalf("team-a's route = %+v, want its last good 50/50", a)
	}
	if len(c.SetAside) != 1 {
		t.Fatalf("set aside %+v, want the route only", c.SetAside)
	}
	s := c.SetAside[0]
	if s.Key() != "TrafficRoute/team-a/a" || s.Serving != ServingLastGood || s.Origin != cfg.path("a.yaml")+":20" || s.ServingOrigin != s.Origin {
		t.Errorf("set aside %+v", s)
	}
	if len(s.Errors) != 1 || s.Errors[0].Line != 29 || !strings.Contains(s.Errors[0].Message, "weights sum to 120") || s.Errors[0].Object != "TrafficRoute/team-a/a" {
		t.Errorf("errors %+v", s.Errors)
	}
	if len(c.Errors) != 1 || c.Errors[0] != s.Errors[0] {
		t.Errorf("all errors %+v", c.Errors)
	}

	t.Run("a new invalid object does not exist yet", func(t *testing.T) {
		cfg := newConfig(t)
		prev := cfg.load(map[string]string{"b.yaml": teamB(8001)})
		c := cfg.contain(prev, map[string]string{"a.yaml": teamA(60, 60), "b.yaml": teamB(8002)})
		if c.Mesh.Route("team-a", "a") != nil || c.Mesh.Service("team-a", "a") == nil {
			t.Fatal("want service a without its route")
		}
		if len(c.SetAside) != 1 || c.SetAside[0].Serving != ServingNone || c.SetAside[0].ServingOrigin != "" {
			t.Errorf("set aside %+v", c.SetAside)
		}
	})
	t.Run("fixed, it serves again and nothing is set aside", func(t *testing.T) {
		c2 := cfg.contain(c.Mesh, map[string]string{"a.yaml": teamA(10, 90), "b.yaml": teamB(8002)})
		if len(c2.SetAside) != 0 || len(c2.Errors) != 0 || !slices.Equal(weightsOf(c2.Mesh.Route("team-a", "a")), []uint32{10, 90}) {
			t.Errorf("set aside %+v, errors %v", c2.SetAside, c2.Errors)
		}
	})
}

func TestContainHoldsAFileThatIsNotYAML(t *testing.T) {
	cfg := newConfig(t)
	prev := cfg.load(map[string]string{"a.yaml": teamA(50, 50), "b.yaml": teamB(8001)})
	c := cfg.contain(prev, map[string]string{"a.yaml": "kind: [Service\n", "b.yaml": teamB(8002)})
	if !slices.Equal(c.HeldFiles, []string{cfg.path("a.yaml")}) {
		t.Fatalf("held %v", c.HeldFiles)
	}
	if c.Mesh.Workload("team-b", "b-v1").Spec.Endpoints[0].Ports["grpc"] != 8002 {
		t.Error("team-b's change did not apply")
	}
	// Team a's objects are the very ones that served.
	if c.Mesh.Route("team-a", "a") != prev.Route("team-a", "a") || c.Mesh.Service("team-a", "a") != prev.Service("team-a", "a") {
		t.Error("team-a's objects are not the last good ones")
	}
	if len(c.SetAside) != 4 {
		t.Fatalf("set aside %+v, want team-a's 4 objects", c.SetAside)
	}
	for _, s := range c.SetAside {
		if s.Serving != ServingLastGood || len(s.Errors) != 1 || !strings.Contains(s.Errors[0].Message, "invalid YAML") {
			t.Errorf("set aside %+v", s)
		}
	}
}

func TestContainDropsALastGoodVersionThatNoLongerFits(t *testing.T) {
	cfg := newConfig(t)
	prev := cfg.load(map[string]string{"a.yaml": teamA(50, 50), "b.yaml": teamB(8001)})
	// Service a is gone (with its workloads); the route stays as it was.
	route := teamA(50, 50)
	route = route[strings.LastIndex(route, "apiVersion:"):]
	c := cfg.contain(prev, map[string]string{"a.yaml": route, "b.yaml": teamB(8001)})
	if c.Mesh.Route("team-a", "a") != nil || c.Mesh.Service("team-a", "a") != nil {
		t.Fatal("the route of a deleted service still serves")
	}
	if len(c.SetAside) != 1 || c.SetAside[0].Serving != ServingNone || !strings.Contains(c.SetAside[0].Errors[0].Message, "service a not found") {
		t.Errorf("set aside %+v", c.SetAside)
	}
}

func TestContainFollowsReferences(t *testing.T) {
	canary := `apiVersion: glassmesh.io/v1alpha1
kind: Canary
metadata: {name: a, namespace: team-a}
spec:
  route: a
  stable: v1
  canary: v2
  steps: [50, 100]
`
	cfg := newConfig(t)
	prev := cfg.load(map[string]string{"b.yaml": teamB(8001)})
	// A new route that is invalid does not exist, so the canary that
	// drives it cannot either.
	c := cfg.contain(prev, map[string]string{"a.yaml": teamA(60, 60), "c.yaml": canary, "b.yaml": teamB(8001)})
	var keys []string
	for _, s := range c.SetAside {
		keys = append(keys, s.Key()+"="+string(s.Serving))
	}
	if !slices.Equal(keys, []string{"Canary/team-a/a=none", "TrafficRoute/team-a/a=none"}) {
		t.Errorf("set aside %v", keys)
	}
	if len(c.Mesh.Canaries) != 0 || c.Mesh.Service("team-a", "a") == nil {
		t.Errorf("canaries %v", c.Mesh.Canaries)
	}
}

func TestContainDuplicates(t *testing.T) {
	cfg := newConfig(t)
	prev := cfg.load(map[string]string{"b.yaml": teamB(8001)})
	c := cfg.contain(prev, map[string]string{"b.yaml": teamB(8001), "c.yaml": teamB(8002)})
	// The first definition serves; the second is named.
	if got := c.Mesh.Workload("team-b", "b-v1").Spec.Endpoints[0].Ports["grpc"]; got != 8001 {
		t.Errorf("port %d, want the first definition's", got)
	}
	for _, s := range c.SetAside {
		if !strings.HasPrefix(s.Origin, cfg.path("c.yaml")) || !strings.Contains(s.Errors[0].Message, "already defined") {
			t.Errorf("set aside %+v", s)
		}
	}
	if len(c.SetAside) != 2 {
		t.Errorf("set aside %+v, want both objects of c.yaml", c.SetAside)
	}
}

func TestContainOfACleanLoadIsValidate(t *testing.T) {
	r := Load("testdata/valid")
	if len(r.Errors) > 0 {
		t.Fatal(r.Errors)
	}
	c := Contain(r.Objects, r.ReadErrors, Empty())
	if len(c.Errors) != 0 || len(c.SetAside) != 0 || c.Whole {
		t.Fatalf("%+v", c)
	}
	want, got := r.Mesh.Objects().entries(), c.Mesh.Objects().entries()
	if len(want) != len(got) {
		t.Fatalf("%d objects, want %d", len(got), len(want))
	}
	for i := range want {
		if want[i].obj != got[i].obj {
			t.Errorf("object %d: %s, want %s", i, got[i].key(), want[i].key())
		}
	}
}

func TestContainErrorOfNoFileHoldsEverything(t *testing.T) {
	cfg := newConfig(t)
	prev := cfg.load(map[string]string{"b.yaml": teamB(8001)})
	cfg.write(map[string]string{"b.yaml": teamB(8002)})
	r := Load(cfg.dir)
	c := Contain(r.Objects, []Diagnostic{{Message: "the API server is gone"}}, prev)
	if !c.Whole || c.Mesh != prev || len(c.Errors) != 1 {
		t.Errorf("%+v", c)
	}
}

func TestParseNamesTheObjectOfItsErrors(t *testing.T) {
	_, errs := Parse("x.yaml", []byte("apiVersion: glassmesh.io/v1alpha1\nkind: Service\nmetadata: {name: a}\nspec: {ports: 7}\n---\nkind: Nope\n"))
	if len(errs) != 3 {
		t.Fatalf("errors %v", errs)
	}
	for _, e := range errs {
		want := "Service/default/a"
		if strings.Contains(e.Message, "Nope") || e.Path == "apiVersion" && e.Line == 6 {
			want = ""
		}
		if e.Object != want {
			t.Errorf("%v: object %q, want %q", e, e.Object, want)
		}
	}
}

// Bad input at scale: 10,000 invalid objects and one with a huge message
// are set aside while a valid change applies, and no message is huge.
func TestContainManyInvalidObjectsAndAHugeMessage(t *testing.T) {
	cfg := newConfig(t)
	prev := cfg.load(map[string]string{"b.yaml": teamB(8001)})
	var bad strings.Builder
	for i := range 10000 {
		fmt.Fprintf(&bad, "---\napiVersion: glassmesh.io/v1alpha1\nkind: TrafficRoute\nmetadata: {name: r-%d, namespace: team-b}\nspec:\n  service: nope-%d\n  rules: [{destinations: [{subset: v1}]}]\n", i, i)
	}
	huge := "apiVersion: glassmesh.io/v1alpha1\nkind: TrafficRoute\nmetadata: {name: b, namespace: team-b}\nspec:\n  service: b\n" +
		"  subsets: [{name: v1, labels: {version: v1}}]\n  rules:\n    - match: {path: {regex: \"" + strings.Repeat("(", 100000) + "\"}}\n      destinations: [{subset: v1}]\n"
	c := cfg.contain(prev, map[string]string{"b.yaml": teamB(8002), "bad.yaml": bad.String(), "huge.yaml": huge})
	if got := c.Mesh.Workload("team-b", "b-v1").Spec.Endpoints[0].Ports["grpc"]; got != 8002 {
		t.Errorf("the valid change did not apply: port %d", got)
	}
	if len(c.SetAside) != 10001 || len(c.Mesh.Routes) != 0 {
		t.Errorf("%d set aside, %d routes serving", len(c.SetAside), len(c.Mesh.Routes))
	}
	for _, e := range c.Errors {
		if len(e.Message) > MaxMessage {
			t.Fatalf("a message of %d bytes: %.80s…", len(e.Message), e.Message)
		}
	}
}

// An object that flips between valid and invalid serves its last good
// version while invalid, and each valid version as it comes.
func TestContainAnObjectThatFlips(t *testing.T) {
	cfg := newConfig(t)
	m := cfg.load(map[string]string{"a.yaml": teamA(50, 50)})
	for i := range 20 {
		w := 10 + i
		if i%2 == 1 {
			c := cfg.contain(m, map[string]string{"a.yaml": teamA(w, w)}) // sums to more than 100
			if got := weightsOf(c.Mesh.Route("team-a", "a")); got[0] != uint32(10+i-1) {
				t.Fatalf("flip %d: serving %v, want the last good %d", i, got, 10+i-1)
			}
			m = c.Mesh
			continue
		}
		c := cfg.contain(m, map[string]string{"a.yaml": teamA(w, 100-w)})
		if len(c.SetAside) != 0 || weightsOf(c.Mesh.Route("team-a", "a"))[0] != uint32(w) {
			t.Fatalf("flip %d: %+v", i, c.SetAside)
		}
		m = c.Mesh
	}
}

// A canary that points its route at itself (the same subset as stable and
// canary) is set aside alone: the route it names keeps serving as written.
func TestContainACanaryPointingAtItself(t *testing.T) {
	cfg := newConfig(t)
	prev := cfg.load(map[string]string{"a.yaml": teamA(50, 50)})
	canary := "apiVersion: glassmesh.io/v1alpha1\nkind: Canary\nmetadata: {name: a, namespace: team-a}\nspec: {route: a, stable: v1, canary: v1, steps: [50, 100]}\n"
	c := cfg.contain(prev, map[string]string{"a.yaml": teamA(20, 80), "c.yaml": canary})
	if len(c.SetAside) != 1 || c.SetAside[0].Key() != "Canary/team-a/a" || c.SetAside[0].Serving != ServingNone {
		t.Fatalf("set aside %+v", c.SetAside)
	}
	if got := weightsOf(c.Mesh.Route("team-a", "a")); !slices.Equal(got, []uint32{20, 80}) {
		t.Errorf("the route serves %v, want its new 20/80", got)
	}
}
