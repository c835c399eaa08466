package slo

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/glassmesh/glassmesh/control/model"
	"github.com/glassmesh/glassmesh/telemetry/metrics"
)

// traffic writes counters every 10s over [from, to): perSecond(t) events
// a second of each series, growing from the value reached at from.
type traffic struct {
	series    string
	perSecond func(t time.Duration) float64
}

// appendTraffic writes ts's samples every 10s in (from, to] (durations
// since the Unix epoch, as the rule tests use; a sample at 0 when from is
// negative), each counter starting at 0 at time 0.
func (e *env) appendTraffic(t testing.TB, from, to time.Duration, ts ...traffic) {
	t.Helper()
	app := e.st.Appendable().Appender(context.Background())
	for _, tr := range ts {
		lbls, err := parseSeries(tr.series)
		if err != nil {
			t.Fatal(err)
		}
		v := 0.0
		for at := time.Duration(0); at <= to; at += 10 * time.Second {
			if at > from {
				if _, err := app.Append(0, lbls, at.Milliseconds(), v); err != nil {
					t.Fatal(err)
				}
			}
			v += tr.perSecond(at) * 10
		}
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
}

func newTestEngine(t testing.TB, e *env, step time.Duration) *Engine {
	t.Helper()
	eng, err := NewEngine(EngineConfig{Step: step}, e.eng.QueryFunc(e.st.Queryable()), e.st.Appendable(), e.st.Queryable(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return eng
}

// rounds runs eng's rounds at every step in (from, to].
func rounds(t testing.TB, eng *Engine, from, to time.Duration) {
	t.Helper()
	for at := from + eng.Step(); at <= to; at += eng.Step() {
		if err := eng.Round(context.Background(), time.Unix(0, 0).Add(at)); err != nil {
			t.Fatalf("round at %s: %v", at, err)
		}
	}
}

const reviewsSel = `reporter="source",source_workload="productpage",destination_service_name="reviews",destination_service_namespace="default"`

// errorShare is 1% errors in the first and last half hour and 5% in
// between: the same at both ends, so that Sloth's mean of 5m ratios and
// the event ratio of the whole history agree (they differ when the error
// ratio differs at the history's edges, which the mean weighs less).
func errorShare(t time.Duration) float64 {
	if t >= 30*time.Minute && t < 90*time.Minute {
		return 0.05
	}
	return 0.01
}

// agreementTraffic is two hours of traffic for an availability, a latency
// and a ratio SLO, each with errorShare failing.
func agreementTraffic() []traffic {
	ratingsSel := `reporter="source",source_workload="productpage",destination_service_name="ratings",destination_service_namespace="default"`
	return []traffic{
		{`istio_requests_total{` + reviewsSel + `,response_code="200"}`, func(t time.Duration) float64 { return 20 * (1 - errorShare(t)) }},
		{`istio_requests_total{` + reviewsSel + `,response_code="503"}`, func(t time.Duration) float64 { return 20 * errorShare(t) }},
		{`istio_request_duration_milliseconds_bucket{` + ratingsSel + `,le="250.0"}`, func(t time.Duration) float64 { return 10 * (1 - errorShare(t)) }},
		{`istio_request_duration_milliseconds_bucket{` + ratingsSel + `,le="+Inf"}`, func(time.Duration) float64 { return 10 }},
		{`app_requests_total{service="details"}`, func(time.Duration) float64 { return 5 }},
		{`app_errors_total{service="details"}`, func(t time.Duration) float64 { return 5 * errorShare(t) }},
	}
}

func agreementSLOs() []*model.SLO {
	avail := testSLO("reviews-availability", 99, 30*24*time.Hour, model.Indicator{Availability: &model.AvailabilityIndicator{}})
	lat := testSLO("ratings-latency", 99, 12*7*24*time.Hour, model.Indicator{Latency: &model.LatencyIndicator{ThresholdMs: 250}})
	lat.Spec.Service = "ratings"
	ratio := testSLO("details-ratio", 95, 28*24*time.Hour, model.Indicator{Ratio: &model.RatioIndicator{
		ErrorQuery: `sum(rate(app_errors_total{service="$service"}[$window]))`,
		TotalQuery: `sum(rate(app_requests_total{service="$service"}[$window]))`,
	}})
	ratio.Spec.Service = "details"
	return []*model.SLO{avail, lat, ratio}
}

// TestEngineAgreesWithRules checks that the incremental values match the
// Sloth-compatible rules' within 1%, for every indicator kind: the short
// windows (rates over the raw series) and the SLO window (Sloth's mean of
// the 5m ratios over the whole history).
func TestEngineAgreesWithRules(t *testing.T) {
	e := newEnv(t)
	const end = 2 * time.Hour
	slos := agreementSLOs()
	groups := loadGroups(t, testEngine(t), e.st.DB(), Generate(slos), time.Minute)
	eng := newTestEngine(t, e, time.Minute)
	eng.SetSLOs(slos)
	// As it happens live: each minute's traffic arrives, then the rules
	// and the engine evaluate (the TSDB takes no samples far behind its
	// newest, so history cannot be written after the fact).
	for at := time.Duration(0); at <= end; at += time.Minute {
		e.appendTraffic(t, at-time.Minute, at, agreementTraffic()...)
		ts := time.Unix(0, 0).Add(at)
		for _, g := range groups {
			g.Eval(context.Background(), ts)
		}
		if at > 0 {
			if err := eng.Round(context.Background(), ts); err != nil {
				t.Fatal(err)
			}
		}
	}

	at := time.Unix(0, 0).Add(end)
	for _, s := range slos {
		b, ok := eng.Budget(ID(s))
		if !ok {
			t.Fatalf("%s: no budget", s.Name)
		}
		for _, w := range []string{"5m", "30m", "1h", "2h", promDuration(sloWindow(s))} {
			t.Run(fmt.Sprintf("%s over %s agrees with the rules", s.Name, w), func(t *testing.T) {
				v := e.query(t, fmt.Sprintf(`%s%s{sloth_id=%q}`, SLIErrorMetric, w, ID(s)), at)
				if len(v) != 1 {
					t.Fatalf("rules recorded %d samples", len(v))
				}
				got, ok := b.SLI[w]
				if !ok {
					t.Fatalf("engine has no SLI for %s: %v", w, b.SLI)
				}
				if rel := math.Abs(got-v[0].F) / v[0].F; rel > 0.01 {
					t.Errorf("engine %.6f, rules %.6f: %.2f%% apart", got, v[0].F, 100*rel)
				}
			})
		}
	}
	t.Run("the budget is the window's SLI over the allowed ratio", func(t *testing.T) {
		b, _ := eng.Budget(ID(slos[0]))
		// 3% errors over the history against a 1% budget: 2 budgets overspent.
		if b.Remaining == nil || math.Abs(*b.Remaining-(-2)) > 0.02 || b.State != StateExhausted {
			t.Errorf("remaining %v, state %s; want about -2, exhausted", deref(b.Remaining), b.State)
		}
		if b.TimeToExhaustionSeconds == nil || *b.TimeToExhaustionSeconds != 0 {
			t.Errorf("an exhausted budget has 0 s left, got %v", deref(b.TimeToExhaustionSeconds))
		}
	})
}

func deref(f *float64) any {
	if f == nil {
		return nil
	}
	return *f
}

func TestBudgetState(t *testing.T) {
	for _, c := range []struct {
		remaining float64
		want      string
	}{{1, StateHealthy}, {0.25, StateHealthy}, {0.2499, StateTight}, {0.01, StateTight}, {0, StateExhausted}, {-3, StateExhausted}} {
		if got := BudgetState(c.remaining); got != c.want {
			t.Errorf("BudgetState(%v) = %s, want %s", c.remaining, got, c.want)
		}
	}
}

func TestTimeToExhaustion(t *testing.T) {
	s := testSLO("a", 99, 30*24*time.Hour, model.Indicator{Availability: &model.AvailabilityIndicator{}})
	now := time.Unix(1e9, 0)
	// Half the budget spent over the window; the last hour burns at 10x:
	// the half left lasts 0.5 × 30d / 10 = 36h.
	b := budgetOf(s, windowCounts{"30d": {errors: 50, total: 10000}, "1h": {errors: 10, total: 100}}, now.Add(-31*24*time.Hour), now)
	if b.State != StateHealthy || b.TimeToExhaustionSeconds == nil || math.Abs(*b.TimeToExhaustionSeconds-36*3600) > 1 {
		t.Fatalf("state %s, time to exhaustion %v s; want healthy, %v", b.State, deref(b.TimeToExhaustionSeconds), 36*3600)
	}
	if b.ExhaustsAt == nil || !b.ExhaustsAt.Equal(now.Add(36*time.Hour)) || b.Coverage != 1 {
		t.Errorf("exhausts at %v, coverage %v", b.ExhaustsAt, b.Coverage)
	}
	b = budgetOf(s, windowCounts{"30d": {errors: 0, total: 10000}, "1h": {errors: 0, total: 100}}, now, now)
	if b.TimeToExhaustionSeconds != nil || b.ExhaustsAt != nil {
		t.Errorf("nothing burns, yet it exhausts in %v", deref(b.TimeToExhaustionSeconds))
	}
	if b = budgetOf(s, nil, time.Time{}, now); b.State != StateUnknown || b.Remaining != nil {
		t.Errorf("without events: %s %v", b.State, deref(b.Remaining))
	}
}

// TestEngineRestart checks that the counters continue from the TSDB after
// the storage is reopened, that the gap is counted at the next round, and
// that a window longer than the rollups' history counts from their start.
func TestEngineRestart(t *testing.T) {
	dir := t.TempDir()
	const end = 40 * time.Minute
	open := func() *env {
		e := &env{}
		var err error
		e.st, err = metrics.OpenStorage(metrics.StorageConfig{DataDir: dir}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		e.eng = newEnv(t).eng
		return e
	}
	e := open()
	e.appendTraffic(t, -time.Second, end, traffic{`istio_requests_total{` + reviewsSel + `,response_code="200"}`, func(time.Duration) float64 { return 9 }},
		traffic{`istio_requests_total{` + reviewsSel + `,response_code="500"}`, func(time.Duration) float64 { return 1 }})
	s := testSLO("reviews-availability", 99, 30*24*time.Hour, model.Indicator{Availability: &model.AvailabilityIndicator{}})
	eng := newTestEngine(t, e, time.Minute)
	eng.SetSLOs([]*model.SLO{s})
	rounds(t, eng, 0, 20*time.Minute)
	if err := e.st.Close(); err != nil {
		t.Fatal(err)
	}

	e = open()
	t.Cleanup(func() { _ = e.st.Close() })
	eng = newTestEngine(t, e, time.Minute)
	eng.SetSLOs([]*model.SLO{s})
	// Down from 20m to 30m: the round at 30m counts the gap.
	rounds(t, eng, 29*time.Minute, end)
	b, _ := eng.Budget(ID(s))
	for w, want := range map[string]float64{"5m": 3000, "30m": 18000, "1h": 24000, "30d": 24000} {
		if got := b.SLI[w]; math.Abs(got-0.1) > 0.001 {
			t.Errorf("SLI %s = %v, want 0.1", w, got)
		}
		got := eventsIn(t, eng, s, w)
		if math.Abs(got-want)/want > 0.01 {
			t.Errorf("events in %s: %v, want %v", w, got, want)
		}
	}
	if b.Since == nil || !b.Since.Equal(time.Unix(0, 0)) || b.Coverage >= 0.01 {
		t.Errorf("since %v, coverage %v: want the epoch and a sliver of 30d", b.Since, b.Coverage)
	}
}

// eventsIn is the total events the engine counts over window w now,
// from its stored counters.
func eventsIn(t *testing.T, eng *Engine, s *model.SLO, w string) float64 {
	t.Helper()
	b, _ := eng.Budget(ID(s))
	if w == promDuration(sloWindow(s)) {
		return b.Events
	}
	d, err := model.ParseDuration(w)
	if err != nil {
		t.Fatal(err)
	}
	pts, err := eng.hist.lastAt(context.Background(), b.At.Add(-d), 2*eng.Step(), nil)
	if err != nil {
		t.Fatal(err)
	}
	st := eng.state[ID(s)]
	return st.total - pts[seriesKey{ID(s), eventTotal}].v
}
