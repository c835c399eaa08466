package metrics

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/model/timestamp"
)

const rulesTestFile = `groups:
  - name: test
    rules:
      - record: job:up:sum
        expr: sum by (job) (up)
      - alert: InstanceDown
        expr: up == 0
        labels: {severity: page}
        annotations: {summary: "{{ $labels.instance }} is down"}
`

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

func writeRulesFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "rules.yml")
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestRulesRecordAlertAndNotify(t *testing.T) {
	am := newFakeAlertmanager(t)
	amURL := strings.Replace(am.srv.URL, "http://", "http://ops:s3cret@", 1) + "/am/"
	cfg := RulesConfig{
		Files:            []string{writeRulesFile(t, rulesTestFile)},
		Interval:         100 * time.Millisecond,
		AlertmanagerURLs: []string{amURL},
		ExternalLabels:   map[string]string{"mesh": "test"},
	}
	e := newAPIEnv(t, apiEnvOptions{rules: &cfg})
	now := timestamp.FromTime(time.Now())
	apiAppend(t, e.db,
		apiSample{lbls: labels.FromStrings("__name__", "up", "job", "api", "instance", "a"), t: now, v: 1},
		apiSample{lbls: labels.FromStrings("__name__", "up", "job", "api", "instance", "b"), t: now, v: 0},
	)

	t.Run("the recording rule writes its series", func(t *testing.T) {
		apiEventually(t, 10*time.Second, "job:up:sum", func() bool {
			return e.query(t, "job:up:sum")[`{__name__="job:up:sum", job="api"}`] == "1"
		})
	})
	t.Run("the alert fires in /api/v1/alerts", func(t *testing.T) {
		apiEventually(t, 10*time.Second, "a firing alert", func() bool {
			_, body := e.get(t, "/api/v1/alerts")
			return strings.Contains(string(body), `"alertname":"InstanceDown"`) && strings.Contains(string(body), `"state":"firing"`) &&
				strings.Contains(string(body), `"summary":"b is down"`)
		})
	})
	t.Run("the alert reaches the Alertmanager with auth and prefix", func(t *testing.T) {
		apiEventually(t, 10*time.Second, "the alert at the Alertmanager", func() bool {
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
	cfg := RulesConfig{Interval: 100 * time.Millisecond}
	e := newAPIEnv(t, apiEnvOptions{rules: &cfg})
	good := []rulefmt.RuleGroup{{Name: "slo-test", Rules: []rulefmt.Rule{{Record: "slo:test:ratio", Expr: "vector(0.42)"}}}}

	t.Run("generated groups are evaluated and listed under their source", func(t *testing.T) {
		if err := e.rules.SetGeneratedGroups("slo", good); err != nil {
			t.Fatal(err)
		}
		apiEventually(t, 10*time.Second, "slo:test:ratio", func() bool {
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
		apiCheckErr(t, err, "glassmesh:generated/slo")
		apiCheckErr(t, err, "unclosed left parenthesis")
		if got := len(e.rules.RuleGroups()); got != 1 {
			t.Fatalf("%d groups in effect, want the old 1", got)
		}
	})
	t.Run("a bad source name is refused", func(t *testing.T) {
		apiCheckErr(t, e.rules.SetGeneratedGroups("a/b", good), "must be a non-empty word")
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

func TestRulesReloadKeepsRulesOnError(t *testing.T) {
	path := writeRulesFile(t, rulesTestFile)
	cfg := RulesConfig{Files: []string{filepath.Join(filepath.Dir(path), "*.yml")}, Interval: time.Second}
	e := newAPIEnv(t, apiEnvOptions{rules: &cfg})
	apiEventually(t, 5*time.Second, "the file's group", func() bool { return len(e.rules.RuleGroups()) == 1 })
	if err := os.WriteFile(path, []byte("groups: [{name: x, rules: [{record: y, expr: 'sum('}]}]"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := e.rules.Reload()
	apiCheckErr(t, err, path)
	if got := e.rules.RuleGroups(); len(got) != 1 || got[0].Name() != "test" {
		t.Fatalf("after a failed reload the groups are %v", got)
	}
}

func TestRulesConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  RulesConfig
		want string
	}{
		{"an interval is enough", RulesConfig{Interval: time.Second}, ""},
		{"a zero interval is named", RulesConfig{}, "rules.interval: must be > 0"},
		{"a negative resend delay is named", RulesConfig{Interval: time.Second, ResendDelay: -1}, "rules.resend-delay"},
		{"an alertmanager URL without scheme is named by index",
			RulesConfig{Interval: time.Second, AlertmanagerURLs: []string{"http://am:9093", "am:9093"}}, "alertmanager-url[1]"},
		{"an alertmanager URL without host is named", RulesConfig{Interval: time.Second, AlertmanagerURLs: []string{"http:///x"}}, "missing host"},
		{"a relative external URL is named", RulesConfig{Interval: time.Second, ExternalURL: "/x"}, "rules.external-url"},
		{"a bad external label is named", RulesConfig{Interval: time.Second, ExternalLabels: map[string]string{"a": "\xff"}}, "rules.external-labels"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			apiCheckErr(t, tt.cfg.Validate(), tt.want)
		})
	}
}

func TestNewRulesRefusesBadFiles(t *testing.T) {
	e := newAPIEnv(t, apiEnvOptions{})
	b := BackendFromDB(e.db)
	tests := []struct {
		name  string
		files []string
		want  string
	}{
		{"a missing file is named", []string{filepath.Join(t.TempDir(), "nope.yml")}, "rules[0]"},
		{"a glob matching nothing is fine", []string{filepath.Join(t.TempDir(), "*.yml")}, ""},
		{"a bad expression names the file", []string{writeRulesFile(t, "groups: [{name: x, rules: [{record: y, expr: 'sum('}]}]")}, "rules.yml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := NewRules(RulesConfig{Files: tt.files, Interval: time.Second}, b, e.engine, apiTestLogger(t), nil)
			apiCheckErr(t, err, tt.want)
			if r != nil {
				r.cancel()
			}
		})
	}
}

func TestRulesGeneratedBeforeRunAreLoadedByRun(t *testing.T) {
	e := newAPIEnv(t, apiEnvOptions{})
	r, err := NewRules(RulesConfig{Interval: 100 * time.Millisecond}, BackendFromDB(e.db), e.engine, apiTestLogger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	groups := []rulefmt.RuleGroup{{Name: "early", Rules: []rulefmt.Rule{{Record: "early:one", Expr: "vector(1)"}}}}
	if err := r.SetGeneratedGroups("slo", groups); err != nil {
		t.Fatal(err)
	}
	if n := len(r.RuleGroups()); n != 0 {
		t.Fatalf("%d groups before Run", n)
	}
	apiRun(t, r.Run)
	apiEventually(t, 5*time.Second, "the early group", func() bool { return len(r.RuleGroups()) == 1 })
}
