package slo

import (
	"fmt"
	"maps"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/glassmesh/glassmesh/control/model"
)

// Istio's request metrics and the labels the SLIs select on (DESIGN.md).
const (
	requestsTotal   = "istio_requests_total"
	durationBuckets = "istio_request_duration_milliseconds_bucket"
	versionLabel    = "destination_version"
)

// onceSelectors are the two halves of DESIGN.md's reporter rule, which
// counts each request once: the caller's report, plus the callee's report
// of calls from outside the mesh (which have no caller's report).
var onceSelectors = [...]string{
	`reporter="source"`,
	`reporter="destination",source_workload="unknown"`,
}

// SLI returns PromQL for the per-second rate of bad events (errorRate) and
// of all events (totalRate) of s over window, a PromQL duration such as
// "37s". Both expressions give one sample without labels, 0 when there was
// nothing to count, so neither is ever empty or NaN.
//
// For availability and latency indicators each request is counted once
// (reporter="source", plus reporter="destination" where
// source_workload="unknown"), and matchers, a label-matcher fragment such
// as `destination_version="v3"` (possibly empty), narrows every selector.
// For ratio indicators the user's queries are returned with $window and
// vars expanded (model.ExpandQuery; $service and $namespace default to
// the SLO's), each summed to one series; matchers is ignored.
func SLI(s *model.SLO, window string, matchers string, vars map[string]string) (errorRate, totalRate string) {
	errs, total := sliParts(s, window, matchers, "", vars)
	return errs, fmt.Sprintf("%s or on() vector(0)", total)
}

// sliParts returns the error and total rates of s over window, summed by
// the labels in by (empty: one sum). errs is never empty where total is
// not: a window without errors gives 0, not no data. total is empty when
// there were no requests, which callers use to avoid dividing by zero.
func sliParts(s *model.SLO, window, matchers, by string, vars map[string]string) (errs, total string) {
	sum := "sum"
	if by != "" {
		sum = "sum by (" + by + ")"
	}
	in := s.Spec.Indicator
	switch {
	case in.Ratio != nil:
		v := map[string]string{"service": s.Spec.Service, "namespace": s.Namespace}
		maps.Copy(v, vars)
		v["window"] = window
		// Summed, so that the SLI is one series whatever the user's
		// queries keep of their labels.
		total = sumOf(sum, model.ExpandQuery(in.Ratio.TotalQuery, v))
		return orZero(sumOf(sum, model.ExpandQuery(in.Ratio.ErrorQuery, v)), total, by), total
	case in.Latency != nil:
		sel := serviceSelector(s, matchers)
		total = sumOf(sum, rateOnce(durationBuckets, sel, []string{`le="+Inf"`}, window))
		le := fmt.Sprintf("le=%q", labels.FormatOpenMetricsFloat(in.Latency.ThresholdMs))
		fast := sumOf(sum, rateOnce(durationBuckets, sel, []string{le}, window))
		// Every bucket of a label set is written together, so fast exists
		// wherever total does; clamp_min absorbs rate()'s extrapolation,
		// which can differ slightly between the buckets.
		return orZero(fmt.Sprintf("clamp_min(%s - %s, 0)", total, fast), total, by), total
	default: // availability
		sel := serviceSelector(s, matchers)
		total = sumOf(sum, rateOnce(requestsTotal, sel, []string{""}, window))
		bad := rateOnce(requestsTotal, sel, []string{
			`response_code=~"5.."`,
			fmt.Sprintf(`grpc_response_status=~"%s"`, strings.Join(model.ErrorGRPCStatuses(), "|")),
		}, window)
		// A request that is both 5xx and a gRPC error is one series,
		// which "or" keeps once.
		return orZero(sumOf(sum, bad), total, by), total
	}
}

// sumOf applies the aggregation sum (such as "sum by (x)") to expr.
func sumOf(sum, expr string) string {
	return fmt.Sprintf("%s(\n  %s\n)", sum, strings.ReplaceAll(expr, "\n", "\n  "))
}

// orZero makes the error rate errs 0 rather than absent where nothing
// failed: one 0 without labels when errs is a single sum, 0 for each group
// of total otherwise.
func orZero(errs, total, by string) string {
	if by == "" {
		return fmt.Sprintf("(%s or on() vector(0))", errs)
	}
	return fmt.Sprintf("(%s or 0 * %s)", errs, total)
}

// serviceSelector is the label matchers of s's service, plus matchers.
func serviceSelector(s *model.SLO, matchers string) string {
	sel := fmt.Sprintf("destination_service_name=%q,destination_service_namespace=%q", s.Spec.Service, s.Namespace)
	if m := strings.Trim(matchers, " ,\t\n"); m != "" {
		sel += "," + m
	}
	return sel
}

// RequestRate is PromQL for the per-second rate of requests selected by
// matchers (a label-matcher fragment) over window, each request counted
// once; empty when there were none.
func RequestRate(matchers, window string) string {
	return fmt.Sprintf("sum(%s)", rateOnce(requestsTotal, strings.Trim(matchers, " ,\t\n"), []string{""}, window))
}

// rateOnce is the union of the per-series rates of metric over window, for
// each reporter half and each variant (extra matchers), so that the sum
// of it counts each request once.
func rateOnce(metric, sel string, variants []string, window string) string {
	var terms []string
	for _, reporter := range onceSelectors {
		for _, v := range variants {
			m := reporter + "," + sel
			if v != "" {
				m += "," + v
			}
			terms = append(terms, fmt.Sprintf("rate(%s{%s}[%s])", metric, m, window))
		}
	}
	return strings.Join(terms, "\nor ")
}

// Burn-rate alert windows: the SRE workbook's (and Sloth's default)
// multi-window multi-burn-rate table for a 30-day SLO, as the share of the
// error budget each alert may let burn over its long window.
var alertWindows = [...]struct {
	severity      string
	budgetPercent float64
	long, short   time.Duration
}{
	{"page", 2, time.Hour, 5 * time.Minute},       // 14.4 at 30d
	{"page", 5, 6 * time.Hour, 30 * time.Minute},  // 6
	{"ticket", 10, 24 * time.Hour, 2 * time.Hour}, // 3
	{"ticket", 10, 72 * time.Hour, 6 * time.Hour}, // 1
}

// burnFactor is how many times faster than sustainable the budget burns
// when budgetPercent of it goes in long: Sloth's formula, which keeps the
// windows and the budget shares and scales the factor with the SLO window
// (14.4 over 1h for 30 days, 13.44 for 28 days, 3.36 for 7 days).
func burnFactor(period time.Duration, budgetPercent float64, long time.Duration) float64 {
	return budgetPercent * period.Hours() / (100 * long.Hours())
}

// PageBurnRate is the burn rate of s's fastest page alert (14.4 for a
// 30-day window, scaled like the generated rules for others): a canary
// gate fails when the canary's own error ratio exceeds it times
// AllowedErrorRatio.
func PageBurnRate(s *model.SLO) float64 {
	w := alertWindows[0]
	return burnFactor(sloWindow(s), w.budgetPercent, w.long)
}

// AllowedErrorRatio is s's error budget as a ratio of events: 1 -
// objective/100, rounded to 12 significant digits so that 99.9 gives 0.001
// rather than 0.0010000000000000009.
func AllowedErrorRatio(s *model.SLO) float64 {
	return round12(1 - s.Spec.Objective/100)
}

func round12(f float64) float64 {
	r, err := strconv.ParseFloat(strconv.FormatFloat(f, 'g', 12, 64), 64)
	if err != nil || math.IsInf(r, 0) {
		return f
	}
	return r
}

// sloWindow is s's window, the default when it names none.
func sloWindow(s *model.SLO) time.Duration {
	if s.Spec.Window.Duration > 0 {
		return s.Spec.Window.Duration
	}
	return model.DefaultSLOWindow
}

// promDuration writes d in the largest PromQL unit that divides it ("30d",
// "6h", "5m"), as Sloth's sloth_window labels do.
func promDuration(d time.Duration) string {
	for _, u := range []struct {
		unit string
		d    time.Duration
	}{{"d", 24 * time.Hour}, {"h", time.Hour}, {"m", time.Minute}, {"s", time.Second}} {
		if d%u.d == 0 {
			return strconv.FormatInt(int64(d/u.d), 10) + u.unit
		}
	}
	return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
}
