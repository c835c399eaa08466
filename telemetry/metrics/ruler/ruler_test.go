package ruler

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/model/timestamp"
	"github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/glassmesh/glassmesh/telemetry/metrics"
	"github.com/glassmesh/glassmesh/telemetry/metrics/metricstest"
)

func TestRulesReloadKeepsRulesOnError(t *testing.T) {
	path := metricstest.WriteRules(t, metricstest.RulesYAML)
	cfg := Config{Files: []string{filepath.Join(filepath.Dir(path), "*.yml")}, Interval: time.Second}
	e := newRulesEnv(t, &cfg)
	metricstest.Eventually(t, 5*time.Second, "the file's group", func() bool { return len(e.rules.RuleGroups()) == 1 })
	if err := os.WriteFile(path, []byte("groups: [{name: x, rules: [{record: y, expr: 'sum('}]}]"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := e.rules.Reload()
	metricstest.CheckErr(t, err, path)
	if got := e.rules.RuleGroups(); len(got) != 1 || got[0].Name() != "test" {
		t.Fatalf("after a failed reload the groups are %v", got)
	}
}

func TestRulesConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"an interval is enough", Config{Interval: time.Second}, ""},
		{"a zero interval is named", Config{}, "rules.interval: must be > 0"},
		{"a negative resend delay is named", Config{Interval: time.Second, ResendDelay: -1}, "rules.resend-delay"},
		{"an alertmanager URL without scheme is named by index",
			Config{Interval: time.Second, AlertmanagerURLs: []string{"http://am:9093", "am:9093"}}, "alertmanager-url[1]"},
		{"an alertmanager URL without host is named", Config{Interval: time.Second, AlertmanagerURLs: []string{"http:///x"}}, "missing host"},
		{"a relative external URL is named", Config{Interval: time.Second, ExternalURL: "/x"}, "rules.external-url"},
		{"a bad external label is named", Config{Interval: time.Second, ExternalLabels: map[string]string{"a": "\xff"}}, "rules.external-labels"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			metricstest.CheckErr(t, tt.cfg.Validate(), tt.want)
		})
	}
}

func TestNewRulesRefusesBadFiles(t *testing.T) {
	e := newRulesEnv(t, nil)
	b := metrics.BackendFromDB(e.db)
	tests := []struct {
		name  string
		files []string
		want  string
	}{
		{"a missing file is named", []string{filepath.Join(t.TempDir(), "nope.yml")}, "rules[0]"},
		{"a glob matching nothing is fine", []string{filepath.Join(t.TempDir(), "*.yml")}, ""},
		{"a bad expression names the file", []string{metricstest.WriteRules(t, "groups: [{name: x, rules: [{record: y, expr: 'sum('}]}]")}, "rules.yml"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := New(Config{Files: tt.files, Interval: time.Second}, b, e.engine, metricstest.Logger(t), nil)
			metricstest.CheckErr(t, err, tt.want)
			if r != nil {
				r.cancel()
			}
		})
	}
}

func TestRulesGeneratedBeforeRunAreLoadedByRun(t *testing.T) {
	e := newRulesEnv(t, nil)
	r, err := New(Config{Interval: 100 * time.Millisecond}, metrics.BackendFromDB(e.db), e.engine, metricstest.Logger(t), nil)
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
	metricstest.Run(t, r.Run)
	metricstest.Eventually(t, 5*time.Second, "the early group", func() bool { return len(r.RuleGroups()) == 1 })
}

// instant evaluates expr now on q and returns the vector by labels.
func instant(t *testing.T, eng *metrics.Engine, q storage.Queryable, expr string) map[string]float64 {
	t.Helper()
	qry, err := eng.PromQL().NewInstantQuery(context.Background(), q, nil, expr, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	defer qry.Close()
	vec, err := qry.Exec(context.Background()).Vector()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, s := range vec {
		out[s.Metric.String()] = s.F
	}
	return out
}

// sharedStore is another TSDB standing in for the store several replicas
// remote-write to, holding two up series of job api.
func sharedStore(t *testing.T) *tsdb.DB {
	shared := metricstest.OpenDB(t)
	now := timestamp.FromTime(time.Now())
	metricstest.Append(t, shared,
		metricstest.Sample{Labels: labels.FromStrings("__name__", "up", "job", "api", "instance", "a"), T: now, V: 1},
		metricstest.Sample{Labels: labels.FromStrings("__name__", "up", "job", "api", "instance", "b"), T: now, V: 1})
	return shared
}

func TestRulerEvaluatesOnTheSharedStoreAndWritesLocally(t *testing.T) {
	e := newRulesEnv(t, nil)
	shared := sharedStore(t)
	cfg := Config{Files: []string{metricstest.WriteRules(t, metricstest.RulesYAML)}, Interval: 100 * time.Millisecond,
		Query: rules.EngineQueryFunc(e.engine.PromQL(), shared)}
	r, err := New(cfg, metrics.BackendFromDB(e.db), e.engine, metricstest.Logger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	metricstest.Run(t, r.Run)
	// The local TSDB holds no up series: the sum can only come from the
	// shared store.
	metricstest.Eventually(t, 10*time.Second, "job:up:sum from the shared store", func() bool {
		return instant(t, e.engine, e.db, "job:up:sum")[`{__name__="job:up:sum", job="api"}`] == 2
	})
	if got := instant(t, e.engine, e.db, "up"); len(got) != 0 {
		t.Fatalf("local up series %v: the test's premise is broken", got)
	}
}

func TestFollowerRulerEvaluatesOnlyWhileLeading(t *testing.T) {
	e := newRulesEnv(t, nil)
	shared := sharedStore(t)
	cfg := Config{Files: []string{metricstest.WriteRules(t, metricstest.RulesYAML)}, Interval: 100 * time.Millisecond,
		Query: rules.EngineQueryFunc(e.engine.PromQL(), shared), Follower: true}
	r, err := New(cfg, metrics.BackendFromDB(e.db), e.engine, metricstest.Logger(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	metricstest.Run(t, r.Run)
	time.Sleep(500 * time.Millisecond) // five intervals
	if n := len(r.RuleGroups()); n != 0 {
		t.Fatalf("a follower has %d groups in effect", n)
	}
	if got := instant(t, e.engine, e.db, "job:up:sum"); len(got) != 0 {
		t.Fatalf("a follower wrote %v", got)
	}
	if err := r.SetLeading(true); err != nil {
		t.Fatal(err)
	}
	metricstest.Eventually(t, 10*time.Second, "the leader's recording", func() bool {
		return instant(t, e.engine, e.db, "job:up:sum")[`{__name__="job:up:sum", job="api"}`] == 2
	})
	if err := r.SetLeading(false); err != nil {
		t.Fatal(err)
	}
	if n := len(r.RuleGroups()); n != 0 {
		t.Fatalf("%d groups in effect after losing the lead", n)
	}
	// The stopped group marked its series stale: it ends now, not after
	// the 5m lookback, so the next leader's series takes over at once.
	metricstest.Eventually(t, 10*time.Second, "the recording to end", func() bool {
		return len(instant(t, e.engine, e.db, "job:up:sum")) == 0
	})
}

// A replica that takes the lead restores the alerts' "for" state the last
// leader wrote to the shared store: an alert that was firing there fires
// again on the new leader's first evaluations, not after its "for" (1h).
func TestNewLeaderRestoresFiringAlertsFromTheSharedStore(t *testing.T) {
	shared := sharedStore(t)
	now := time.Now()
	// The last leader's ALERTS_FOR_STATE: active for 2h, last written 5s ago.
	metricstest.Append(t, shared, metricstest.Sample{
		Labels: labels.FromStrings("__name__", "ALERTS_FOR_STATE", "alertname", "TwoUp", "job", "api"),
		T:      timestamp.FromTime(now.Add(-5 * time.Second)), V: float64(now.Add(-2 * time.Hour).Unix())})
	rulesFile := metricstest.WriteRules(t, `groups:
  - name: restore
    rules:
      - alert: TwoUp
        expr: sum by (job) (up) > 1
        for: 1h
`)
	start := func(restore storage.Queryable) *Ruler {
		e := newRulesEnv(t, nil) // each replica its own TSDB
		cfg := Config{Files: []string{rulesFile}, Interval: 100 * time.Millisecond,
			Query: rules.EngineQueryFunc(e.engine.PromQL(), shared), Restore: restore, Follower: true}
		r, err := New(cfg, metrics.BackendFromDB(e.db), e.engine, metricstest.Logger(t), nil)
		if err != nil {
			t.Fatal(err)
		}
		metricstest.Run(t, r.Run)
		time.Sleep(300 * time.Millisecond) // following for a few intervals
		if err := r.SetLeading(true); err != nil {
			t.Fatal(err)
		}
		return r
	}
	state := func(r *Ruler) string {
		for _, ar := range r.AlertingRules() {
			for _, a := range ar.ActiveAlerts() {
				return a.State.String()
			}
		}
		return "inactive"
	}
	r := start(shared)
	metricstest.Eventually(t, 10*time.Second, "TwoUp firing on the new leader", func() bool { return state(r) == "firing" })

	// Restored from the local TSDB, which never saw the alert, it waits.
	local := start(nil)
	time.Sleep(time.Second)
	if got := state(local); got != "pending" {
		t.Fatalf("restored from the local TSDB the alert is %s, want pending (the test's premise)", got)
	}
}
