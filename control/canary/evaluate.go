package canary

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/prometheus/prometheus/promql"

	"github.com/glassmesh/glassmesh/control/model"
	"github.com/glassmesh/glassmesh/telemetry/slo"

	"github.com/prometheus/prometheus/rules"
)

// sumVector adds up a vector's float samples; ok is false when it has none
// (no data, which is not zero).
func sumVector(v promql.Vector) (sum float64, ok bool) {
	for _, s := range v {
		if s.H == nil && !math.IsNaN(s.F) {
			sum += s.F
			ok = true
		}
	}
	return sum, ok
}

// target is what one evaluation needs to know about a running canary,
// copied out of the controller so queries run without its lock.
type target struct {
	key       string
	gen       uint64
	spec      model.CanarySpec
	namespace string
	service   string
	matchers  string // selects the canary's own requests
	vars      map[string]string
	slos      map[string]*model.SLO // the SLOs its gates name
	status    Status
}

// evaluation is the evidence of one evaluation of a canary.
type evaluation struct {
	at       time.Time
	window   time.Duration
	requests float64
	gates    []GateResult
	// unavailable is the metrics source's failure to count the canary's
	// requests (the shared store down or timing out): no verdict then.
	unavailable error
}

// failed is the first failing gate, or nil.
func (e evaluation) failed() *GateResult {
	for i := range e.gates {
		if e.gates[i].Verdict == GateFail {
			return &e.gates[i]
		}
	}
	return nil
}

// noData is the first gate that had no data or an error, or nil.
func (e evaluation) noData() *GateResult {
	for i := range e.gates {
		if v := e.gates[i].Verdict; v == GateNoData || v == GateError {
			return &e.gates[i]
		}
	}
	return nil
}

// queryTimeout bounds one gate query, so one slow query cannot stall every
// canary's evaluation.
const queryTimeout = 10 * time.Second

// evaluate runs the canary's request count and gates over its traffic in
// the window that ends now.
func evaluate(ctx context.Context, q rules.QueryFunc, t target, now time.Time, w time.Duration) evaluation {
	w = max(w, time.Second).Round(time.Second)
	window := promDuration(w)
	ev := evaluation{at: now, window: w}
	v, ok, err := query(ctx, q, slo.RequestRate(t.matchers, window), now)
	switch {
	case err != nil:
		ev.unavailable = err
		return ev // the gates would fail the same way
	case ok:
		ev.requests = v * w.Seconds()
	}
	vars := map[string]string{}
	for k, v := range t.vars {
		vars[k] = v
	}
	vars["interval"] = window
	for _, g := range t.spec.Gates {
		if g.SLO != "" {
			ev.gates = append(ev.gates, sloGate(ctx, q, t, t.slos[g.SLO], window, now))
		} else {
			ev.gates = append(ev.gates, queryGate(ctx, q, g, model.ExpandQuery(g.Query, vars), now))
		}
	}
	return ev
}

// query evaluates expr at at and adds up the result (a scalar comes as a
// one-sample vector); ok is false when it is empty, which means no data,
// not zero.
func query(ctx context.Context, q rules.QueryFunc, expr string, at time.Time) (float64, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	vec, err := q(ctx, expr, at)
	if err != nil {
		return 0, false, err
	}
	sum, ok := sumVector(vec)
	return sum, ok, nil
}

// sloGate holds the canary's error ratio over the window to the SLO's
// page-level burn rate: the SRE workbook's 1h/5m page, with the windows
// scaled down to the step so a verdict comes within an interval.
func sloGate(ctx context.Context, q rules.QueryFunc, t target, s *model.SLO, window string, now time.Time) GateResult {
	g := GateResult{Gate: "slo " + s.Name, Threshold: slo.PageBurnRate(s)}
	errQ, totalQ := slo.SLI(s, window, t.matchers, t.vars)
	g.Query = fmt.Sprintf("(%s) / (%s) / %g", errQ, totalQ, slo.AllowedErrorRatio(s))
	bad, okBad, err1 := query(ctx, q, errQ, now)
	total, okTotal, err2 := query(ctx, q, totalQ, now)
	switch {
	case err1 != nil || err2 != nil:
		g.Verdict, g.Message = GateError, fmt.Sprint(errorOf(err1, err2))
		return g
	case !okTotal || total <= 0:
		g.Verdict, g.Message = GateNoData, "no requests of the canary in the window"
		return g
	case !okBad:
		bad = 0 // no error series yet: no errors
	}
	ratio := bad / total
	burn := ratio / slo.AllowedErrorRatio(s)
	g.Value = &burn
	g.Verdict = GatePass
	if burn > g.Threshold {
		g.Verdict = GateFail
	}
	g.Message = fmt.Sprintf("error ratio %.3g%% over %s burns the error budget (%.3g%%) %.3gx; the page threshold is %.3gx",
		100*ratio, window, 100*slo.AllowedErrorRatio(s), burn, g.Threshold)
	return g
}

func queryGate(ctx context.Context, q rules.QueryFunc, g model.Gate, expanded string, now time.Time) GateResult {
	r := GateResult{Gate: "query", Query: expanded, Threshold: *g.Max}
	v, ok, err := query(ctx, q, expanded, now)
	switch {
	case err != nil:
		r.Verdict, r.Message = GateError, err.Error()
	case !ok:
		r.Verdict, r.Message = GateNoData, "the query returned no data"
	default:
		r.Value = &v
		r.Verdict = GatePass
		if v > r.Threshold {
			r.Verdict = GateFail
		}
		r.Message = fmt.Sprintf("%.4g (max %.4g)", v, r.Threshold)
	}
	return r
}

func errorOf(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// promDuration writes d in whole seconds, as PromQL reads it.
func promDuration(d time.Duration) string {
	return strconv.FormatInt(int64(math.Ceil(d.Seconds())), 10) + "s"
}

// subsetVersion is what $canary and $stable expand to: the subset's version
// label when it has one (what destination_version holds), else its name.
func subsetVersion(s *model.Subset) string {
	if v := s.Labels["version"]; v != "" {
		return v
	}
	return s.Name
}
