package policy

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/rules"

	"github.com/glassmesh/glassmesh/control/model"
	"github.com/glassmesh/glassmesh/telemetry/slo"
)

// queryTimeout bounds one query, so one slow query cannot stall every
// policy's evaluation.
const queryTimeout = 10 * time.Second

// alertWindows are the windows of the SLO's page and ticket alerts
// (the SRE workbook's multiwindow pairs) that can drain a subset without
// the fast path: both must burn over the threshold.
var alertWindows = map[string][2]time.Duration{
	model.WhenPage:   {5 * time.Minute, time.Hour},
	model.WhenTicket: {2 * time.Hour, 24 * time.Hour},
}

// Thresholds are the burn rates a policy's evaluation compares with.
type Thresholds struct {
	// Alert drains a subset: the SLO's page or ticket burn rate, as the
	// action's "when" says.
	Alert float64 `json:"alert"`
	// Quiet is the ticket burn rate: under it, a subset is not burning.
	Quiet float64 `json:"quiet"`
}

// subsetTarget is what one evaluation of one subset needs, copied out of
// the controller so queries run without its lock.
type subsetTarget struct {
	name     string
	matchers string
}

// evidenceOf measures one subset's burn of s: over the fast window (the
// last interval) and the alert's two windows.
func evidenceOf(ctx context.Context, q rules.QueryFunc, s *model.SLO, when string, minRequests uint32, fast time.Duration,
	t subsetTarget, th Thresholds, now time.Time) (Evidence, error) {
	ev := Evidence{BurnRates: map[string]float64{}}
	fastW := promDuration(fast)
	windows := []string{fastW}
	for _, w := range alertWindows[when] {
		windows = append(windows, promDuration(w))
	}
	vars := map[string]string{"service": s.Spec.Service, "namespace": s.Namespace}
	for i, w := range windows {
		errQ, totalQ := slo.SLI(s, w, t.matchers, vars)
		bad, _, err := query(ctx, q, errQ, now)
		if err != nil {
			return ev, err
		}
		total, ok, err := query(ctx, q, totalQ, now)
		if err != nil {
			return ev, err
		}
		if i == 0 && ok {
			ev.Requests = total * fast.Seconds()
		}
		if !ok || total <= 0 {
			continue
		}
		ev.BurnRates[w] = round3(bad / total / slo.AllowedErrorRatio(s))
	}
	fastBurn, fastOK := ev.BurnRates[fastW]
	long := alertWindows[when]
	shortBurn, okS := ev.BurnRates[promDuration(long[0])]
	longBurn, okL := ev.BurnRates[promDuration(long[1])]
	switch {
	case fastOK && ev.Requests >= float64(minRequests) && fastBurn > th.Alert:
		ev.Burning, ev.FastBurning = true, true
		ev.Why = fmt.Sprintf("burns %s's budget %.3gx over the last %s (%.0f requests), over the %s threshold %.3gx",
			s.Name, fastBurn, fastW, ev.Requests, when, th.Alert)
	case okS && okL && shortBurn > th.Alert && longBurn > th.Alert:
		ev.Burning, ev.AlertBurning = true, true
		ev.Why = fmt.Sprintf("burns %s's budget %.3gx over %s and %.3gx over %s, over the %s threshold %.3gx",
			s.Name, shortBurn, promDuration(long[0]), longBurn, promDuration(long[1]), when, th.Alert)
	case fastOK && ev.Requests >= float64(minRequests):
		ev.Why = fmt.Sprintf("burns %.3gx over the last %s, under the %s threshold %.3gx", fastBurn, fastW, when, th.Alert)
	case fastOK:
		ev.Why = fmt.Sprintf("%.0f requests over the last %s, fewer than the %d the fast path needs", ev.Requests, fastW, minRequests)
	default:
		ev.Why = "no requests over the last " + fastW
	}
	// Quiet: nothing in the last interval says it burns. A drained
	// subset has no traffic, which is quiet: the recovery steps are what
	// test it again.
	ev.Quiet = !fastOK || fastBurn < th.Quiet
	return ev, nil
}

// query evaluates expr at at and adds up the result; ok is false when it
// is empty (no data, not zero).
func query(ctx context.Context, q rules.QueryFunc, expr string, at time.Time) (float64, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	vec, err := q(ctx, expr, at)
	if err != nil {
		return 0, false, err
	}
	return sumVector(vec)
}

func sumVector(v promql.Vector) (sum float64, ok bool, err error) {
	for _, s := range v {
		if s.H == nil && !math.IsNaN(s.F) {
			sum += s.F
			ok = true
		}
	}
	return sum, ok, nil
}

// promDuration writes d in whole seconds, as PromQL reads it.
func promDuration(d time.Duration) string {
	return strconv.FormatInt(int64(math.Ceil(d.Seconds())), 10) + "s"
}

func round3(f float64) float64 {
	r, _ := strconv.ParseFloat(strconv.FormatFloat(f, 'g', 3, 64), 64)
	return r
}
