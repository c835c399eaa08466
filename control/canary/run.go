package canary

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/glassmesh/glassmesh/control/model"
)

// Run evaluates the running canaries until ctx ends: every Tick for the
// fast rollback path, and at the end of each interval for a verdict. push is
// called, outside any lock, whenever weights changed; it should re-apply the
// overlay (source.Store.Reapply) so the change goes out over xDS.
func (c *Controller) Run(ctx context.Context, push func()) error {
	t := time.NewTicker(c.cfg.Tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-c.wake:
		}
		caughtUp := c.catchUp()
		if c.evaluateAll(ctx) || caughtUp {
			push()
		}
	}
}

// evaluateAll evaluates every progressing canary and reports whether any
// weights changed.
func (c *Controller) evaluateAll(ctx context.Context) bool {
	changed := false
	for _, t := range c.targets() {
		now := time.Now()
		// At an interval's end the verdict is on the step's traffic; in
		// between, the fast path looks at the recent traffic (the last
		// interval, at most fastWindow), across a step change, so failures
		// that began just before one count at once.
		full := !now.Before(t.status.NextEvaluationAt)
		window := min(t.spec.Interval.Duration, fastWindow)
		if full {
			window = now.Sub(t.status.StepStartedAt)
		}
		ev := evaluate(ctx, c.cfg.Querier, t, now, window)
		if ctx.Err() != nil {
			return changed
		}
		c.metrics.evaluations.Inc()
		d, ok := verdict(t, ev, full)
		if !ok {
			continue
		}
		if c.decide(t, d) {
			changed = true
		}
	}
	return changed
}

// fastWindow bounds the window of the fast rollback path, so a long
// interval's good traffic does not hide a sudden failure.
const fastWindow = 30 * time.Second

// targets copies what evaluating each progressing canary needs.
func (c *Controller) targets() []target {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.leading || !c.current() {
		return nil
	}
	var out []target
	for key, cur := range c.canaries {
		if cur.st.State != Progressing || cur.spec == nil {
			continue
		}
		t, err := c.targetOf(cur)
		if err != nil {
			c.logger.Warn("canary cannot be evaluated", "canary", key, "error", err)
			continue
		}
		t.key = key
		out = append(out, t)
	}
	return out
}

func (c *Controller) targetOf(cur *canary) (target, error) {
	st := &cur.st
	route := c.mesh.Route(st.Namespace, st.Route)
	if route == nil {
		return target{}, fmt.Errorf("route %s not found", st.Route)
	}
	svc := c.mesh.Service(route.Namespace, route.Spec.Service)
	stable, canary := route.Subset(st.Stable), route.Subset(st.Canary)
	if svc == nil || stable == nil || canary == nil {
		return target{}, errors.New("the route's service or subsets are gone")
	}
	t := target{
		gen: cur.gen, spec: *cur.spec, namespace: st.Namespace, service: svc.Name,
		matchers: subsetMatchers(c.mesh, svc, canary), status: st.clone(),
		vars: map[string]string{
			"canary": subsetVersion(canary), "stable": subsetVersion(stable),
			"service": svc.Name, "namespace": svc.Namespace,
		},
		slos: map[string]*model.SLO{},
	}
	for _, g := range cur.spec.Gates {
		if g.SLO == "" {
			continue
		}
		s := c.mesh.SLO(st.Namespace, g.SLO)
		if s == nil {
			return target{}, fmt.Errorf("SLO %s not found", g.SLO)
		}
		t.slos[g.SLO] = s
	}
	return t, nil
}

// verdict decides what an evaluation means. Between interval ends (full is
// false) only a conclusive failure counts: the fast path. ok is false when
// nothing is to be done or recorded.
func verdict(t target, ev evaluation, full bool) (Decision, bool) {
	d := Decision{At: ev.at, Requests: ev.requests, Window: ev.window.String(), Gates: ev.gates, By: "controller"}
	enough := ev.requests >= float64(t.spec.MinRequests)
	if f := ev.failed(); f != nil && enough {
		d.Verdict = Rollback
		d.Reason = fmt.Sprintf("gate %q failed on %.0f canary requests over %s: %s", f.Gate, ev.requests, ev.window, f.Message)
		return d, true
	}
	if !full {
		return d, false
	}
	st := t.status
	missing := ev.noData()
	switch {
	case ev.unavailable != nil:
		// Missing data is no verdict: hold without counting the interval
		// towards maxInconclusive, and judge again when the metrics return.
		d.Verdict, d.unavailable = Hold, true
		d.Reason = fmt.Sprintf("no verdict: the canary's metrics cannot be read (%v); held at step %d, not counted as inconclusive",
			ev.unavailable, st.Step)
		return d, true
	case !enough:
		d.Verdict = Hold
		d.Reason = fmt.Sprintf("inconclusive: %.0f canary requests over %s, fewer than minRequests %d (%d of %d inconclusive intervals)",
			ev.requests, ev.window, t.spec.MinRequests, st.Inconclusive+1, t.spec.MaxInconclusive)
	case missing != nil:
		d.Verdict = Hold
		d.Reason = fmt.Sprintf("inconclusive: gate %q: %s (%d of %d inconclusive intervals)", missing.Gate, missing.Message, st.Inconclusive+1, t.spec.MaxInconclusive)
	case st.Step >= len(st.Steps):
		d.Verdict = Promote
		d.Reason = fmt.Sprintf("every gate passed at the last step on %.0f canary requests over %s: promoted", ev.requests, ev.window)
	default:
		d.Verdict = Advance
		d.Reason = fmt.Sprintf("every gate passed on %.0f canary requests over %s: step %d gives %s %d%%",
			ev.requests, ev.window, st.Step+1, st.Canary, st.Steps[st.Step])
	}
	if d.Verdict == Hold && st.Inconclusive+1 >= int(t.spec.MaxInconclusive) {
		d.Verdict = Abort
		d.Reason += ": aborted, all traffic back to " + st.Stable
	}
	return d, true
}

// decide applies a controller decision, unless the canary changed since it
// was evaluated. It reports whether the weights changed.
func (c *Controller) decide(t target, d Decision) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	cur := c.canaries[t.key]
	if !c.leading || !c.current() || cur == nil || cur.gen != t.gen || cur.st.State != Progressing {
		return false // the lease may have lapsed while the gates were queried
	}
	return c.transition(cur, d)
}

// transition moves a canary as d says and records d. Called with c.mu held.
func (c *Controller) transition(cur *canary, d Decision) bool {
	st := &cur.st
	d.WeightsBefore = cloneWeights(st.Weights)
	now := d.At
	interval := time.Minute
	if cur.spec != nil {
		interval = cur.spec.Interval.Duration
	}
	switch d.Verdict {
	case Advance:
		st.Step++
		st.Weights = weightsAt(st.Stable, st.Canary, st.TotalWeight, st.Steps[st.Step-1])
		st.StepStartedAt, st.NextEvaluationAt, st.Inconclusive = now, now.Add(interval), 0
	case Hold:
		if !d.unavailable {
			st.Inconclusive++
		}
		st.NextEvaluationAt = now.Add(interval)
	case Resume:
		st.State = Progressing
		st.StepStartedAt, st.NextEvaluationAt, st.Inconclusive = now, now.Add(interval), 0
	case Pause:
		st.State = Paused
	case Promote:
		st.State = Succeeded
		st.Weights = weightsAt(st.Stable, st.Canary, st.TotalWeight, 100)
	case Rollback, Abort:
		st.State = RolledBack
		if d.Verdict == Abort {
			st.State = Aborted
		}
		st.Weights = weightsAt(st.Stable, st.Canary, st.TotalWeight, 0)
	}
	if st.State.Done() {
		st.NextEvaluationAt = time.Time{}
	}
	d.WeightsAfter = cloneWeights(st.Weights)
	c.record(cur, d)
	return !equalWeights(d.WeightsBefore, d.WeightsAfter)
}

func equalWeights(a, b map[string]uint32) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// Errors of operator actions.
var (
	ErrNotFound = errors.New("canary not found")
	ErrConflict = errors.New("canary is not in a state that allows this")
	// ErrNotLeader: another replica decides; send the action to it.
	ErrNotLeader = errors.New("this replica is not the leader: another glassmesh replica runs the canaries")
)

// Act applies an operator's action (promote, abort, pause or resume) asked
// through the API and reports whether the weights changed, in which case
// the caller pushes.
func (c *Controller) Act(namespace, name string, action Verdict, reason string) (Status, bool, error) {
	return c.ActBy(namespace, name, action, reason, "api")
}

// ActBy is Act for an action asked by another way: by says which in the
// decision ("api", "annotation").
func (c *Controller) ActBy(namespace, name string, action Verdict, reason, by string) (Status, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.leading || !c.current() {
		return Status{}, false, ErrNotLeader
	}
	cur := c.canaries[namespace+"/"+name]
	if cur == nil {
		return Status{}, false, ErrNotFound
	}
	st := &cur.st
	allowed := map[Verdict]bool{
		Promote: st.State == Progressing || st.State == Paused,
		Abort:   st.State == Progressing || st.State == Paused,
		Pause:   st.State == Progressing,
		Resume:  st.State == Paused,
	}
	ok, known := allowed[action]
	if !known {
		return Status{}, false, fmt.Errorf("unknown action %q: want promote, abort, pause or resume", action)
	}
	if !ok || (action == Resume && cur.spec == nil) {
		return st.clone(), false, fmt.Errorf("%w: %s is %s", ErrConflict, st.Key(), st.State)
	}
	if reason == "" {
		reason = string(action) + " requested through the API"
		if by == ByAnnotation {
			reason = string(action) + " requested by the " + AnnotationAction + " annotation"
		}
	}
	changed := c.transition(cur, Decision{At: time.Now(), Verdict: action, By: by, Reason: reason})
	c.poke()
	return st.clone(), changed, nil
}
