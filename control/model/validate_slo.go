package model

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/prometheus/promql/parser"
)

// SLO windows outside these bounds make burn-rate alerts meaningless: the
// ticket alert looks back 3 days (scaled to the window), and a year is as far
// as anyone plans an error budget.
const (
	minSLOWindow = 24 * time.Hour
	maxSLOWindow = 365 * 24 * time.Hour
)

// promql parses the PromQL of SLO indicators and canary gates, so a typo is
// a config error with a line number rather than a failing rule later.
var promql = parser.NewParser(parser.Options{})

// errPosition is the "line:column: " the PromQL parser puts before errors.
var errPosition = regexp.MustCompile(`(^|\n)\d+:\d+: `)

// sampleVars stand in for the $variables of queries when they are checked.
var sampleVars = map[string]string{
	"window": "5m", "interval": "1m", "canary": "canary", "stable": "stable",
	"service": "service", "namespace": "namespace",
}

func (v *validator) slo(s *SLO, ix *index) {
	o := s.Origin
	switch {
	case s.Spec.Service == "":
		v.errorf(o, "spec.service", "required: the name of a service in namespace %s", s.Namespace)
	case ix.services[s.Namespace+"/"+s.Spec.Service] == nil:
		v.errorf(o, "spec.service", "service %s not found in namespace %s", s.Spec.Service, s.Namespace)
	}
	if obj := s.Spec.Objective; !(obj > 0 && obj < 100) {
		v.errorf(o, "spec.objective", "%v is out of range: want a percentage above 0 and below 100, like 99.9", obj)
	}
	if w := s.Spec.Window.Duration; w < minSLOWindow || w > maxSLOWindow {
		v.errorf(o, "spec.window", "%s is out of range: want from 1d to 365d, like 30d", s.Spec.Window)
	}
	v.indicator(s)
}

func (v *validator) indicator(s *SLO) {
	o, in := s.Origin, s.Spec.Indicator
	set := 0
	for _, ok := range []bool{in.Availability != nil, in.Latency != nil, in.Ratio != nil} {
		if ok {
			set++
		}
	}
	if set != 1 {
		v.errorf(o, "spec.indicator", "set exactly one of availability, latency or ratio (got %d)", set)
		return
	}
	if l := in.Latency; l != nil && !slices.Contains(latencyBucketsMs[:], l.ThresholdMs) {
		v.errorf(o, "spec.indicator.latency.thresholdMs", "%v is not a bucket bound of istio_request_duration_milliseconds, so the SLI cannot be exact; use one of %s", l.ThresholdMs, formatFloats(latencyBucketsMs[:]))
	}
	if r := in.Ratio; r != nil {
		v.query(o, "spec.indicator.ratio.errorQuery", r.ErrorQuery)
		v.query(o, "spec.indicator.ratio.totalQuery", r.TotalQuery)
		for path, q := range map[string]string{"errorQuery": r.ErrorQuery, "totalQuery": r.TotalQuery} {
			if q != "" && !strings.Contains(q, "$window") {
				v.warnf(o, "spec.indicator.ratio."+path, "has no $window, so every SLI window gets the same value")
			}
		}
	}
}

// query reports a missing or invalid PromQL expression at path.
func (v *validator) query(o Origin, path, q string) {
	if strings.TrimSpace(q) == "" {
		v.errorf(o, path, "required: a PromQL expression")
		return
	}
	expanded := ExpandQuery(q, sampleVars)
	if _, err := promql.ParseExpr(expanded); err != nil {
		msg := err.Error()
		if expanded != q { // positions are in the expanded text: drop them
			msg = errPosition.ReplaceAllString(msg, "")
		}
		v.errorf(o, path, "invalid PromQL: %s", msg)
	}
}

func (v *validator) canary(c *Canary, ix *index) {
	o := c.Origin
	r := v.canaryRoute(c, ix)
	v.canarySubsets(c, r)
	v.steps(c)
	if c.Spec.Interval.Duration < time.Second {
		v.errorf(o, "spec.interval", "%s is too short: want at least 1s", c.Spec.Interval)
	}
	if c.Spec.MinRequests == 0 {
		v.warnf(o, "spec.minRequests", "0 lets a step pass on no traffic at all")
	}
	if len(c.Spec.Gates) == 0 {
		v.warnf(o, "spec.gates", "no gates: the canary advances every interval whatever its traffic does")
	}
	for i, g := range c.Spec.Gates {
		v.gate(c, r, indexPath("spec.gates", i), g, ix)
	}
}

// canaryRoute returns the route a canary drives, or nil when it has none
// (which is reported), and claims the route for this canary.
func (v *validator) canaryRoute(c *Canary, ix *index) *TrafficRoute {
	o := c.Origin
	if c.Spec.Route == "" {
		v.errorf(o, "spec.route", "required: the name of a TrafficRoute in namespace %s", c.Namespace)
		return nil
	}
	r := ix.routesByName[c.Namespace+"/"+c.Spec.Route]
	if r == nil {
		v.errorf(o, "spec.route", "TrafficRoute %s not found in namespace %s", c.Spec.Route, c.Namespace)
		return nil
	}
	key := r.Key()
	if first := ix.canaries[key]; first != nil {
		v.errorf(o, "spec.route", "TrafficRoute %s is already driven by Canary %s at %s:%d", c.Spec.Route, first.Key(), first.Origin.File, first.Origin.Line)
		return nil
	}
	ix.canaries[key] = c
	return r
}

func (v *validator) canarySubsets(c *Canary, r *TrafficRoute) {
	o := c.Origin
	for _, f := range []struct{ path, subset string }{{"spec.stable", c.Spec.Stable}, {"spec.canary", c.Spec.Canary}} {
		switch {
		case f.subset == "":
			v.errorf(o, f.path, "required: a subset of the route")
		case r != nil && r.Subset(f.subset) == nil:
			v.errorf(o, f.path, "subset %q is not defined in TrafficRoute %s", f.subset, r.Name)
		}
	}
	if c.Spec.Stable != "" && c.Spec.Stable == c.Spec.Canary {
		v.errorf(o, "spec.canary", "the canary must be a different subset from the stable one")
	}
	if r == nil || len(r.Spec.Rules) == 0 || c.Spec.Stable == "" {
		return
	}
	last := r.Spec.Rules[len(r.Spec.Rules)-1]
	if !slices.ContainsFunc(last.Destinations, func(d Destination) bool { return d.Subset == c.Spec.Stable }) {
		v.errorf(o, "spec.stable", "subset %q is not a destination of the last rule of TrafficRoute %s, whose weights the canary moves", c.Spec.Stable, r.Name)
	}
}

func (v *validator) steps(c *Canary) {
	if len(c.Spec.Steps) == 0 {
		v.errorf(c.Origin, "spec.steps", "at least one step is required: the canary's weight at each step, like [5, 25, 50, 100]")
	}
	for i, w := range c.Spec.Steps {
		at := indexPath("spec.steps", i)
		switch {
		case w < 1 || w > 100:
			v.errorf(c.Origin, at, "weight %d is out of range 1..100", w)
		case i > 0 && w <= c.Spec.Steps[i-1]:
			v.errorf(c.Origin, at, "weight %d does not increase on the step before it (%d)", w, c.Spec.Steps[i-1])
		}
	}
}

func (v *validator) gate(c *Canary, r *TrafficRoute, at string, g Gate, ix *index) {
	o := c.Origin
	switch {
	case (g.SLO == "") == (g.Query == ""):
		v.errorf(o, at, "set exactly one of slo or query")
	case g.SLO != "":
		s := ix.slos[c.Namespace+"/"+g.SLO]
		switch {
		case s == nil:
			v.errorf(o, at+".slo", "SLO %s not found in namespace %s", g.SLO, c.Namespace)
		case r != nil && s.Spec.Service != r.Spec.Service:
			v.errorf(o, at+".slo", "SLO %s is about service %s, but the canary's route is for service %s", g.SLO, s.Spec.Service, r.Spec.Service)
		}
		if g.Max != nil {
			v.errorf(o, at+".max", "max belongs to query gates; an slo gate fails on the SLO's page-level burn rate")
		}
	default:
		v.query(o, at+".query", g.Query)
		if g.Max == nil {
			v.errorf(o, at+".max", "required for a query gate: the largest value that passes")
		}
	}
}

func formatFloats(fs []float64) string {
	s := make([]string, len(fs))
	for i, f := range fs {
		s[i] = strconv.FormatFloat(f, 'f', -1, 64)
	}
	return strings.Join(s, ", ")
}

// String formats a gate for logs and decision records.
func (g Gate) String() string {
	if g.SLO != "" {
		return "slo " + g.SLO
	}
	if g.Max != nil {
		return fmt.Sprintf("query %s <= %v", g.Query, *g.Max)
	}
	return "query " + g.Query
}
