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
