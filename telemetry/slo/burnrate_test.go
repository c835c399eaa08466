package slo

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/promqltest"
	"github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/storage"

	"github.com/glassmesh/glassmesh/control/model"
	"github.com/glassmesh/glassmesh/telemetry/metrics"
)

// burnSLOs are the SLOs testdata/burnrate.promqltest is about: testSLOs() and
// one of a service without traffic.
func burnSLOs() []*model.SLO {
	ratings := testSLO("ratings-availability", 99.9, 30*24*time.Hour, model.Indicator{Availability: &model.AvailabilityIndicator{}})
	ratings.Spec.Service = "ratings"
	return append(testSLOs(), ratings)
}

// TestBurnRateScript loads the series of testdata/burnrate.promqltest, evaluates the
// generated rules over them the way promtool test rules does (each group
// in order, every minute), and runs the script's eval commands on what
// the rules wrote.
func TestBurnRateScript(t *testing.T) {
	script, err := os.ReadFile(filepath.Join("testdata", "burnrate.promqltest"))
	if err != nil {
		t.Fatal(err)
	}
	load, evals := splitScript(string(script))
	st := promqltest.LoadedStorage(t, load)
	eng := testEngine(t)
	evalRules(t, eng, st, Generate(burnSLOs()), 240*time.Minute, 5*time.Minute)
	promqltest.RunTestWithStorage(t, evals, eng, func(testing.TB) storage.Storage { return st })
}

// splitScript cuts a promqltest script before its first eval command.
func splitScript(s string) (load, evals string) {
	i := strings.Index(s, "\neval ")
	if i < 0 {
		return s, ""
	}
	return s[:i+1], s[i+1:]
}

func testEngine(t testing.TB) *promql.Engine {
	t.Helper()
	eng, err := metrics.NewEngine(metrics.EngineConfig{Dir: t.TempDir()}, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = eng.Close() })
	return eng.PromQL()
}

// evalRules evaluates groups against st at every step from time 0 to end,
// writing their results (and the ALERTS series) into st.
func evalRules(t *testing.T, eng *promql.Engine, st storage.Storage, groups []rulefmt.RuleGroup, end, step time.Duration) {
	t.Helper()
	loaded := loadGroups(t, eng, st, groups, step)
	start := time.Unix(0, 0).UTC()
	for ts := start; !ts.After(start.Add(end)); ts = ts.Add(step) {
		for _, g := range loaded {
			g.Eval(context.Background(), ts)
			for _, r := range g.Rules() {
				if err := r.LastError(); err != nil {
					t.Fatalf("rule %s at %s: %v", r.Name(), ts.Sub(start), err)
				}
			}
		}
	}
}

// loadGroups turns groups into Prometheus rule groups over st, in order,
// for a caller to evaluate at the times it chooses, as promtool test rules
// does.
func loadGroups(t testing.TB, eng *promql.Engine, st storage.Storage, groups []rulefmt.RuleGroup, interval time.Duration) []*rules.Group {
	t.Helper()
	return loadGroupsQuerying(t, rules.EngineQueryFunc(eng, st), st, groups, interval)
}

// loadGroupsQuerying is loadGroups with the rules' expressions evaluated by
// q (a remote store's, say) and the results written to st.
func loadGroupsQuerying(t testing.TB, q rules.QueryFunc, st storage.Storage, groups []rulefmt.RuleGroup, interval time.Duration) []*rules.Group {
	t.Helper()
	file := filepath.Join(t.TempDir(), "slo.rules.yaml")
	out, err := RuleFile(groups)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, out, 0o644); err != nil {
		t.Fatal(err)
	}
	m := rules.NewManager(&rules.ManagerOptions{
		QueryFunc:    q,
		AppendableV2: st,
		Queryable:    st,
		Context:      context.Background(),
		NotifyFunc:   func(context.Context, string, ...*rules.Alert) {},
		Logger:       slog.New(slog.DiscardHandler),
	})
	loaded, errs := m.LoadGroups(interval, labels.EmptyLabels(), "", nil, false, file)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	var ordered []*rules.Group
	for _, g := range loaded {
		ordered = append(ordered, g)
		for _, r := range g.Rules() {
			if a, ok := r.(*rules.AlertingRule); ok {
				a.SetRestored(true) // so that Eval writes ALERTS
			}
		}
	}
	slices.SortFunc(ordered, func(a, b *rules.Group) int { return strings.Compare(a.Name(), b.Name()) })
	return ordered
}
