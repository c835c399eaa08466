package promapi

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/model/timestamp"

	"github.com/glassmesh/glassmesh/telemetry/metrics/metricstest"
	"github.com/glassmesh/glassmesh/telemetry/metrics/ruler"
)

// fakeAlertmanager records the alerts POSTed to its v2 API.
type fakeAlertmanager struct {
	srv *httptest.Server

	mu     sync.Mutex
	alerts []map[string]any
	paths  []string
	users  []string
}

func newFakeAlertmanager(t *testing.T) *fakeAlertmanager {
	am := &fakeAlertmanager{}
	am.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var alerts []map[string]any
		if err := json.NewDecoder(r.Body).Decode(&alerts); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		user, _, _ := r.BasicAuth()
		am.mu.Lock()
		am.alerts = append(am.alerts, alerts...)
		am.paths = append(am.paths, r.Method+" "+r.URL.Path)
		am.users = append(am.users, user)
		am.mu.Unlock()
	}))
	t.Cleanup(am.srv.Close)
	return am
}

// received returns the alertnames received, the request paths and users.
func (am *fakeAlertmanager) received() (names, paths, users []string) {
	am.mu.Lock()
	defer am.mu.Unlock()
	for _, a := range am.alerts {
		lbls, _ := a["labels"].(map[string]any)
		names = append(names, lbls["alertname"].(string)+"/"+lbls["instance"].(string)+"/"+lbls["severity"].(string))
	}
	return names, append([]string(nil), am.paths...), append([]string(nil), am.users...)
}

func TestRulesRecordAlertAndNotify(t *testing.T) {
	am := newFakeAlertmanager(t)
	amURL := strings.Replace(am.srv.URL, "http://", "http://ops:s3cret@", 1) + "/am/"
	cfg := ruler.Config{
		Files:            []string{metricstest.WriteRules(t, metricstest.RulesYAML)},
		Interval:         100 * time.Millisecond,
		AlertmanagerURLs: []string{amURL},
		ExternalLabels:   map[string]string{"mesh": "test"},
	}
	e := newAPIEnv(t, apiEnvOptions{rules: &cfg})
	now := timestamp.FromTime(time.Now())
	metricstest.Append(t, e.db,
		metricstest.Sample{Labels: labels.FromStrings("__name__", "up", "job", "api", "instance", "a"), T: now, V: 1},
		metricstest.Sample{Labels: labels.FromStrings("__name__", "up", "job", "api", "instance", "b"), T: now, V: 0},
	)

	t.Run("the recording rule writes its series", func(t *testing.T) {
		metricstest.Eventually(t, 10*time.Second, "job:up:sum", func() bool {
			return e.query(t, "job:up:sum")[`{__name__="job:up:sum", job="api"}`] == "1"
		})
	})
	t.Run("the alert fires in /api/v1/alerts", func(t *testing.T) {
		metricstest.Eventually(t, 10*time.Second, "a firing alert", func() bool {
			_, body := e.get(t, "/api/v1/alerts")
			return strings.Contains(string(body), `"alertname":"InstanceDown"`) && strings.Contains(string(body), `"state":"firing"`) &&
				strings.Contains(string(body), `"summary":"b is down"`)
		})
	})
	t.Run("the alert reaches the Alertmanager with auth and prefix", func(t *testing.T) {
		metricstest.Eventually(t, 10*time.Second, "the alert at the Alertmanager", func() bool {
			names, _, _ := am.received()
			return len(names) > 0
		})
		names, paths, users := am.received()
		if names[0] != "InstanceDown/b/page" || paths[0] != "POST /am/api/v2/alerts" || users[0] != "ops" {
			t.Fatalf("got alerts %v at %v as %v", names, paths, users)
		}
		am.mu.Lock()
		mesh := am.alerts[0]["labels"].(map[string]any)["mesh"]
		am.mu.Unlock()
		if mesh != "test" {
			t.Fatalf("external label mesh = %v, want test", mesh)
		}
	})
	t.Run("the rules API lists the file's group", func(t *testing.T) {
		_, body := e.get(t, "/api/v1/rules")
		for _, want := range []string{`"name":"test"`, `"name":"job:up:sum"`, `"name":"InstanceDown"`, `"health":"ok"`} {
			if !strings.Contains(string(body), want) {
				t.Fatalf("rules answer lacks %s: %s", want, body)
			}
		}
	})
	t.Run("the alertmanagers API lists the target", func(t *testing.T) {
		_, body := e.get(t, "/api/v1/alertmanagers")
		if !strings.Contains(string(body), "/am/api/v2/alerts") {
			t.Fatalf("alertmanagers: %s", body)
		}
	})
}

func TestRulesGeneratedGroups(t *testing.T) {
	cfg := ruler.Config{Interval: 100 * time.Millisecond}
	e := newAPIEnv(t, apiEnvOptions{rules: &cfg})
	good := []rulefmt.RuleGroup{{Name: "slo-test", Rules: []rulefmt.Rule{{Record: "slo:test:ratio", Expr: "vector(0.42)"}}}}

	t.Run("generated groups are evaluated and listed under their source", func(t *testing.T) {
		if err := e.rules.SetGeneratedGroups("slo", good); err != nil {
			t.Fatal(err)
		}
		metricstest.Eventually(t, 10*time.Second, "slo:test:ratio", func() bool {
			return e.query(t, "slo:test:ratio")[`{__name__="slo:test:ratio"}`] == "0.42"
		})
		_, body := e.get(t, "/api/v1/rules")
		if !strings.Contains(string(body), `"file":"glassmesh:generated/slo"`) {
			t.Fatalf("rules: %s", body)
		}
	})
	t.Run("an invalid group is refused with its source and rule, the old ones stay", func(t *testing.T) {
		bad := []rulefmt.RuleGroup{{Name: "slo-test", Rules: []rulefmt.Rule{{Record: "slo:bad", Expr: "sum(up"}}}}
		err := e.rules.SetGeneratedGroups("slo", bad)
		metricstest.CheckErr(t, err, "glassmesh:generated/slo")
		metricstest.CheckErr(t, err, "unclosed left parenthesis")
		if got := len(e.rules.RuleGroups()); got != 1 {
			t.Fatalf("%d groups in effect, want the old 1", got)
		}
	})
	t.Run("a bad source name is refused", func(t *testing.T) {
		metricstest.CheckErr(t, e.rules.SetGeneratedGroups("a/b", good), "must be a non-empty word")
	})
	t.Run("no groups removes the source", func(t *testing.T) {
		if err := e.rules.SetGeneratedGroups("slo", nil); err != nil {
			t.Fatal(err)
		}
		if got := len(e.rules.RuleGroups()); got != 0 {
			t.Fatalf("%d groups in effect, want 0", got)
		}
	})
}
