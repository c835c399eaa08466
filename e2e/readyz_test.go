package e2e

import (
	"encoding/json"
	"net/http"
	"testing"
)

// TestReadyzReportsEveryComponent: /readyz is 200 once xDS serves the
// mesh config, and lists each component's state; /readyz/{component} is
// 200 for a ready one, /readyz/all once all are, 404 for an unknown name.
func TestReadyzReportsEveryComponent(t *testing.T) {
	gm := start(t, t.TempDir())
	var body struct {
		Ready      bool `json:"ready"`
		Components map[string]struct {
			Ready    bool     `json:"ready"`
			State    string   `json:"state"`
			Progress *float64 `json:"progress"`
		} `json:"components"`
	}
	resp, err := http.Get("http://" + gm.HTTPAddr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != http.StatusOK || !body.Ready {
		t.Fatalf("/readyz: %d %+v %v", resp.StatusCode, body, err)
	}
	want := map[string]string{"config": "loaded", "xds": "serving", "traces": "open", "metrics": "open"}
	for name, state := range want {
		c, ok := body.Components[name]
		if !ok || !c.Ready || c.State != state {
			t.Errorf("component %s: %+v, want ready and %q", name, c, state)
		}
	}
	if p := body.Components["metrics"].Progress; p == nil || *p != 1 {
		t.Errorf("metrics replay progress %v, want 1 once open", p)
	}
	for path, code := range map[string]int{"/readyz/metrics": 200, "/readyz/traces": 200, "/readyz/xds": 200, "/readyz/all": 200, "/readyz/nope": 404} {
		resp, err := http.Get("http://" + gm.HTTPAddr + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != code {
			t.Errorf("%s: %d, want %d", path, resp.StatusCode, code)
		}
	}
}
