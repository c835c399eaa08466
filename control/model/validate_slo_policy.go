package model

import (
	"time"
)

func (v *validator) sloPolicy(p *SLOPolicy, ix *index) {
	o := p.Origin
	var slo *SLO
	switch {
	case p.Spec.SLO == "":
		v.errorf(o, "spec.slo", "required: the name of an SLO in namespace %s", p.Namespace)
	default:
		if slo = ix.slos[p.Namespace+"/"+p.Spec.SLO]; slo == nil {
			v.errorf(o, "spec.slo", "SLO %s not found in namespace %s", p.Spec.SLO, p.Namespace)
		}
	}
	if len(p.Spec.Actions) == 0 {
		v.errorf(o, "spec.actions", "at least one action is required: shiftTraffic (when: page or ticket) or freezeCanaries (when: budgetExhausted)")
	}
	shifts := 0
	for i, a := range p.Spec.Actions {
		at := indexPath("spec.actions", i)
		switch a.When {
		case WhenPage, WhenTicket, WhenBudgetExhausted:
		case "":
			v.errorf(o, at+".when", "required: page, ticket or budgetExhausted")
		default:
			v.errorf(o, at+".when", "%q is not page, ticket or budgetExhausted", a.When)
		}
		switch {
		case (a.ShiftTraffic != nil) == a.FreezeCanaries:
			v.errorf(o, at, "set exactly one of shiftTraffic or freezeCanaries")
		case a.ShiftTraffic != nil:
			if a.When == WhenBudgetExhausted {
				v.errorf(o, at+".when", "shiftTraffic acts on a subset's own burn: want page or ticket, not budgetExhausted (the budget is the whole service's)")
			}
			if shifts++; shifts > 1 {
				v.errorf(o, at+".shiftTraffic", "a policy shifts one route once: only one shiftTraffic action")
				continue
			}
			v.shiftTraffic(p, at+".shiftTraffic", a.ShiftTraffic, slo, ix)
		case a.FreezeCanaries && a.When != WhenBudgetExhausted && a.When != "":
			v.errorf(o, at+".when", "freezeCanaries follows the error budget: want budgetExhausted, not %s", a.When)
		}
	}
	v.recovery(p)
}

func (v *validator) shiftTraffic(p *SLOPolicy, at string, s *ShiftTraffic, slo *SLO, ix *index) {
	o := p.Origin
	if s.MaxShift < 1 || s.MaxShift > 100 {
		v.errorf(o, at+".maxShift", "%d is out of range 1..100 (percent of the rule's weight the policy may move)", s.MaxShift)
	}
	if s.MinHealthySubsets < 1 {
		v.errorf(o, at+".minHealthySubsets", "want at least 1: a route must keep a subset to send traffic to")
	}
	if s.Route == "" {
		v.errorf(o, at+".route", "required: the name of a TrafficRoute in namespace %s", p.Namespace)
		return
	}
	r := ix.routesByName[p.Namespace+"/"+s.Route]
	if r == nil {
		v.errorf(o, at+".route", "TrafficRoute %s not found in namespace %s", s.Route, p.Namespace)
		return
	}
	if slo != nil && slo.Spec.Service != r.Spec.Service {
		v.errorf(o, at+".route", "TrafficRoute %s routes service %s, but SLO %s is about service %s", s.Route, r.Spec.Service, slo.Name, slo.Spec.Service)
	}
	if slo != nil && slo.Spec.Indicator.Ratio != nil {
		v.errorf(o, at, "SLO %s measures a ratio of the user's own queries, which cannot be split by subset: shiftTraffic needs an availability or latency SLO", slo.Name)
	}
	if first := ix.policies[r.Key()]; first != nil {
		v.errorf(o, at+".route", "TrafficRoute %s is already shifted by SLOPolicy %s at %s:%d", s.Route, first.Key(), first.Origin.File, first.Origin.Line)
		return
	}
	ix.policies[r.Key()] = p
	if len(r.Spec.Rules) == 0 {
		return
	}
	last := r.Spec.Rules[len(r.Spec.Rules)-1]
	if n := uint32(len(last.Destinations)); n <= s.MinHealthySubsets {
		v.warnf(o, at+".minHealthySubsets", "the last rule of TrafficRoute %s has %d destination(s), so keeping %d healthy leaves nothing to drain", s.Route, n, s.MinHealthySubsets)
	}
	if c := ix.canaries[r.Key()]; c != nil {
		v.warnf(o, at+".route", "TrafficRoute %s is driven by Canary %s at %s:%d: while that canary progresses or is paused it owns the weights and this policy only records what it would do", s.Route, c.Key(), c.Origin.File, c.Origin.Line)
	}
}

func (v *validator) recovery(p *SLOPolicy) {
	o, r := p.Origin, p.Spec.Recovery
	if r.After.Duration < time.Second {
		v.errorf(o, "spec.recovery.after", "%s is too short: want at least 1s", r.After)
	}
	if r.Interval.Duration < time.Second {
		v.errorf(o, "spec.recovery.interval", "%s is too short: want at least 1s", r.Interval)
	}
	for i, w := range r.Steps {
		at := indexPath("spec.recovery.steps", i)
		switch {
		case w < 1 || w > 100:
			v.errorf(o, at, "%d is out of range 1..100 (percent of the subset's weight in the file)", w)
		case i > 0 && w <= r.Steps[i-1]:
			v.errorf(o, at, "%d does not increase on the step before it (%d)", w, r.Steps[i-1])
		}
	}
	if n := len(r.Steps); n > 0 && r.Steps[n-1] != 100 {
		v.errorf(o, indexPath("spec.recovery.steps", n-1), "the last step must be 100: recovery ends with the subset's whole weight back")
	}
}

// PolicyOf is the SLOPolicy that shifts the route namespace/name, or nil.
func (m *Mesh) PolicyOf(namespace, route string) *SLOPolicy {
	for _, p := range m.Policies {
		if a := p.ShiftAction(); a != nil && p.Namespace == namespace && a.ShiftTraffic.Route == route {
			return p
		}
	}
	return nil
}
