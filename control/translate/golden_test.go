package translate

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// render prints resources as JSON sorted by type URL, then name. protojson's
// whitespace varies between builds on purpose; going through encoding/json
// (which sorts map keys and re-indents raw messages) makes it stable.
func render(t *testing.T, r Resources) map[string]map[string]json.RawMessage {
	t.Helper()
	out := map[string]map[string]json.RawMessage{}
	for typeURL, byName := range r {
		out[typeURL] = map[string]json.RawMessage{}
		for name, res := range byName {
			b, err := protojson.Marshal(res)
			if err != nil {
				t.Fatalf("marshal %s %q: %v", typeURL, name, err)
			}
			out[typeURL][name] = b
		}
	}
	return out
}

// golden compares v, as indented JSON, with testdata/name, or rewrites the
// file with -update.
func golden(t *testing.T, name string, v any) {
	t.Helper()
	got, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the translation; run go test -update and review the diff:\n%s", path, firstDiff(want, got))
	}
}

// firstDiff shows a few lines around where two texts first differ.
func firstDiff(want, got []byte) string {
	wl, gl := bytes.Split(want, []byte("\n")), bytes.Split(got, []byte("\n"))
	for i := 0; i < len(wl) || i < len(gl); i++ {
		var w, g []byte
		if i < len(wl) {
			w = wl[i]
		}
		if i < len(gl) {
			g = gl[i]
		}
		if !bytes.Equal(w, g) {
			return "line " + strconv.Itoa(i+1) + ":\n- " + string(w) + "\n+ " + string(g)
		}
	}
	return "(equal)"
}

func TestBookinfoGolden(t *testing.T) {
	s, err := Translate(bookinfoMesh(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	if len(s.Warnings) != 0 {
		t.Errorf("warnings for a clean mesh: %q", s.Warnings)
	}
	t.Run("resources requested by name match the golden file", func(t *testing.T) {
		golden(t, "bookinfo_byname.golden.json", render(t, s.ByName))
	})
	t.Run("sidecar resources match the golden file", func(t *testing.T) {
		sidecars := map[string]any{}
		// Every workload's set differs from another's only by its inbound
		// side and tracing name: one known workload, the TCP one and the
		// unknown one cover every shape.
		for _, k := range []string{"", "default/reviews-v2", "default/mongodb-v1"} {
			sidecars[k] = render(t, s.Sidecars[k])
		}
		golden(t, "bookinfo_sidecars.golden.json", sidecars)
	})
}
