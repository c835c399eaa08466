package policy

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/prometheus/rules"

	"github.com/glassmesh/glassmesh/control/model"
	"github.com/glassmesh/glassmesh/control/statedir"
	"github.com/glassmesh/glassmesh/telemetry/slo"
)

// Config configures the controller.
type Config struct {
	// Querier runs the burn queries.
	Querier rules.QueryFunc
	// DataDir keeps one state file per policy; "" keeps them in memory.
	DataDir string
	// Interval is how often every policy is evaluated, and its fast
	// window.
	Interval time.Duration
	// CanaryOf names the Canary driving a route while it progresses or
	// is paused (then it owns the weights), or "".
	CanaryOf func(namespace, route string) string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Budget is an SLO's error budget (the SLO engine's), for
	// freezeCanaries; nil: budgets are unknown and nothing freezes.
	Budget func(s *model.SLO) (slo.Budget, bool)
}

// maxDecisions is how many decision records a policy keeps.
const maxDecisions = 100

// Decision is the record of one action or reversal, with its evidence.
type Decision struct {
	At            time.Time           `json:"at"`
	Subset        string              `json:"subset"`
	From          Phase               `json:"from"`
	To            Phase               `json:"to"`
	Step          int                 `json:"step,omitempty"`
	Held          bool                `json:"held,omitempty"` // wanted, not made
	DryRun        bool                `json:"dryRun,omitempty"`
	Reason        string              `json:"reason"`
	WeightsBefore map[string]uint32   `json:"weightsBefore"`
	WeightsAfter  map[string]uint32   `json:"weightsAfter"`
	SLO           string              `json:"slo"`
	Thresholds    Thresholds          `json:"thresholds"`
	Evidence      map[string]Evidence `json:"evidence"`
}

// Status is one policy's state: what /api/slo-policies and the state file
// hold.
type Status struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	SLO       string `json:"slo"`
	Route     string `json:"route,omitempty"`
	DryRun    bool   `json:"dryRun"`
	// FileRule identifies the file's last rule the states were built
	// on: when it changes, the policy starts over from it.
	FileRule string                 `json:"fileRule"`
	Subsets  map[string]SubsetState `json:"subsets"`
	// FileWeights are the file's weights; Weights what the policy serves
	// (in dry run, what it would serve).
	FileWeights map[string]uint32 `json:"fileWeights"`
	Weights     map[string]uint32 `json:"weights"`
	// HeldBy names the canary that owns the route's weights now, if any.
	HeldBy    string     `json:"heldBy,omitempty"`
	Message   string     `json:"message"`
	Decisions []Decision `json:"decisions"`
}

// Key is namespace/name.
func (s *Status) Key() string { return s.Namespace + "/" + s.Name }

// Controller runs every SLOPolicy of the serving mesh.
type Controller struct {
	cfg    Config
	logger *slog.Logger
	dir    statedir.Dir

	mu       sync.Mutex
	mesh     *model.Mesh
	policies map[string]*Status // by namespace/name

	actions *prometheus.CounterVec
	weight  *prometheus.GaugeVec
}

// New loads the saved states and returns a controller; it evaluates once
// Run is called.
func New(cfg Config, logger *slog.Logger, reg prometheus.Registerer) (*Controller, error) {
	if cfg.Interval <= 0 {
		cfg.Interval = 10 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.CanaryOf == nil {
		cfg.CanaryOf = func(string, string) string { return "" }
	}
	f := promauto.With(reg)
	c := &Controller{
		cfg: cfg, logger: logger, dir: statedir.Dir(cfg.DataDir),
		policies: map[string]*Status{},
		actions: f.NewCounterVec(prometheus.CounterOpts{
			Name: "glassmesh_slo_policy_actions_total",
			Help: "SLO policy actions and reversals, by policy, subset and action (drain, recover, restore, hold); dry-run ones too, with dry_run=\"true\".",
		}, []string{"namespace", "policy", "subset", "action", "dry_run"}),
		weight: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "glassmesh_slo_policy_weight",
			Help: "The weight an SLO policy gives each subset of its route (in dry run, would give); the file's weight when it has not acted.",
		}, []string{"namespace", "policy", "route", "subset"}),
	}
	saved, err := statedir.Load[Status](c.dir, "SLO policy")
	if err != nil {
		return nil, err
	}
	for _, st := range saved {
		c.policies[st.Key()] = st
	}
	return c, nil
}

// Overlay follows the config in m and returns m with the policies' weights
// in their routes, and the overrides that say so. A dry-run policy, one
// whose route a canary drives, and one that has not acted change nothing.
func (c *Controller) Overlay(m *model.Mesh) (*model.Mesh, []model.Override) {
	c.mu.Lock()
	c.mesh = m
	c.syncLocked(m)
	var ovs []model.WeightOverlay
	for _, st := range c.policies {
		if st.DryRun || st.HeldBy != "" || st.Route == "" || maps.Equal(st.Weights, st.FileWeights) {
			continue
		}
		ovs = append(ovs, model.WeightOverlay{
			Route: st.Namespace + "/" + st.Route, Weights: maps.Clone(st.Weights),
			By: "SLOPolicy " + st.Key(), Reason: st.Message,
		})
	}
	c.mu.Unlock()
	slices.SortFunc(ovs, func(a, b model.WeightOverlay) int { return cmp.Compare(a.Route, b.Route) })
	return model.OverlayWeights(m, ovs)
}

// syncLocked starts states for new policies, drops those of removed ones,
// and starts a policy over when its route's last rule changed in the file
// (the file wins, as for canaries).
func (c *Controller) syncLocked(m *model.Mesh) {
	seen := map[string]bool{}
	for _, p := range m.Policies {
		key := p.Key()
		seen[key] = true
		st := c.policies[key]
		route, rule := c.routeOf(m, p)
		fp := model.RuleFingerprint(rule)
		if st == nil || st.SLO != p.Spec.SLO || st.Route != route || st.FileRule != fp {
			if st != nil {
				c.logger.Info("SLO policy starts over: its SLO, route or the route's rule changed", "policy", key)
			}
			st = &Status{Namespace: p.Namespace, Name: p.Name, SLO: p.Spec.SLO, Route: route, FileRule: fp,
				Subsets: map[string]SubsetState{}, Message: "watching"}
			st.FileWeights = fileWeights(rule)
			st.Weights = maps.Clone(st.FileWeights)
			c.policies[key] = st
			c.save(st)
		}
		st.DryRun = p.Spec.DryRun
	}
	for key := range c.policies {
		if !seen[key] {
			delete(c.policies, key)
			if err := c.dir.Remove(key); err != nil {
				c.logger.Warn("removing an SLO policy's state failed", "policy", key, "error", err)
			}
		}
	}
}

// routeOf is the name and last rule of the route p shifts, or "" and nil.
func (c *Controller) routeOf(m *model.Mesh, p *model.SLOPolicy) (string, *model.Rule) {
	a := p.ShiftAction()
	if a == nil {
		return "", nil
	}
	r := m.Route(p.Namespace, a.ShiftTraffic.Route)
	if r == nil || len(r.Spec.Rules) == 0 {
		return a.ShiftTraffic.Route, nil
	}
	return r.Name, &r.Spec.Rules[len(r.Spec.Rules)-1]
}

func fileWeights(rule *model.Rule) map[string]uint32 {
	w := map[string]uint32{}
	if rule != nil {
		for _, d := range rule.Destinations {
			w[d.Subset] += d.Weight
		}
	}
	return w
}

// Run evaluates every policy each interval until ctx ends, and calls push
// when served weights changed.
func (c *Controller) Run(ctx context.Context, push func()) error {
	t := time.NewTicker(c.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if c.evaluateAll(ctx) {
			push()
		}
	}
}

// job is one policy's evaluation, copied out of the controller.
type job struct {
	key     string
	policy  *model.SLOPolicy
	slo     *model.SLO
	subsets []Subset
	targets []subsetTarget
	canary  string
}

// evaluateAll evaluates every shifting policy once; it reports whether
// any served weight changed.
func (c *Controller) evaluateAll(ctx context.Context) bool {
	jobs := c.jobs()
	changed := false
	for _, j := range jobs {
		if c.evaluate(ctx, j) {
			changed = true
		}
	}
	return changed
}

func (c *Controller) jobs() []job {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.mesh
	if m == nil {
		return nil
	}
	var out []job
	for _, p := range m.Policies {
		a := p.ShiftAction()
		s := m.SLO(p.Namespace, p.Spec.SLO)
		if a == nil || s == nil {
			continue
		}
		route := m.Route(p.Namespace, a.ShiftTraffic.Route)
		svc := m.Service(p.Namespace, s.Spec.Service)
		if route == nil || svc == nil || len(route.Spec.Rules) == 0 {
			continue
		}
		j := job{key: p.Key(), policy: p, slo: s, canary: c.cfg.CanaryOf(p.Namespace, route.Name)}
		for _, d := range route.Spec.Rules[len(route.Spec.Rules)-1].Destinations {
			sub := route.Subset(d.Subset)
			if sub == nil {
				continue
			}
			j.subsets = append(j.subsets, Subset{Name: d.Subset, FileWeight: d.Weight, Serving: hasEndpoints(m, svc, sub)})
			j.targets = append(j.targets, subsetTarget{name: d.Subset, matchers: slo.SubsetMatchers(m, svc, sub)})
		}
		out = append(out, j)
	}
	return out
}

// hasEndpoints says whether a subset has somewhere to send traffic.
func hasEndpoints(m *model.Mesh, svc *model.Service, sub *model.Subset) bool {
	for _, w := range m.WorkloadsOf(svc, sub.Labels) {
		if len(w.Spec.Endpoints) > 0 {
			return true
		}
	}
	return false
}

// evaluate runs one policy; it reports whether its served weights changed.
func (c *Controller) evaluate(ctx context.Context, j job) bool {
	now := c.cfg.Now()
	a := j.policy.ShiftAction()
	th := Thresholds{Alert: slo.PageBurnRate(j.slo), Quiet: slo.TicketBurnRate(j.slo)}
	if a.When == model.WhenTicket {
		th.Alert = slo.TicketBurnRate(j.slo)
	}
	ev := map[string]Evidence{}
	for _, t := range j.targets {
		e, err := evidenceOf(ctx, c.cfg.Querier, j.slo, a.When, a.ShiftTraffic.MinRequests, c.cfg.Interval, t, th, now)
		if err != nil {
			// No verdict without evidence: the weights stay as they are.
			c.logger.Warn("SLO policy cannot read its burn; weights stay", "policy", j.key, "subset", t.name, "error", err)
			return false
		}
		ev[t.name] = e
	}
	rec := j.policy.Spec.Recovery
	sh := Shift{
		MaxShift: a.ShiftTraffic.MaxShift, MinHealthySubsets: int(a.ShiftTraffic.MinHealthySubsets),
		RecoverAfter: rec.After.Duration, RecoverySteps: rec.Steps, RecoveryInterval: rec.Interval.Duration,
		AlertShortWindow: alertWindows[a.When][0],
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.policies[j.key]
	if st == nil {
		return false
	}
	before := maps.Clone(st.Weights)
	wasServed := !st.DryRun && st.HeldBy == ""
	out := Decide(sh, j.subsets, st.Subsets, ev, now)
	st.HeldBy = j.canary
	if j.canary != "" {
		// The canary owns the weights: record what the policy would do,
		// change nothing.
		for _, ch := range append(out.Changes, out.Held...) {
			c.record(st, j, th, ev, ch, true, before, before, now)
		}
		st.Message = "held: Canary " + j.namespaceName(j.canary) + " drives the route's weights"
		c.save(st)
		return wasServed && !maps.Equal(before, st.FileWeights)
	}
	st.Subsets, st.Weights = out.States, out.Weights
	for _, ch := range out.Changes {
		c.record(st, j, th, ev, ch, false, before, out.Weights, now)
	}
	for _, ch := range out.Held {
		c.record(st, j, th, ev, ch, true, before, out.Weights, now)
	}
	for _, s := range j.subsets {
		c.weight.WithLabelValues(st.Namespace, st.Name, st.Route, s.Name).Set(float64(st.Weights[s.Name]))
	}
	if len(out.Changes) > 0 || len(out.Held) > 0 {
		c.save(st)
	}
	return !st.DryRun && !maps.Equal(before, st.Weights)
}

func (j job) namespaceName(name string) string { return j.policy.Namespace + "/" + name }

// record appends a decision, logs and counts it. Called with c.mu held.
func (c *Controller) record(st *Status, j job, th Thresholds, ev map[string]Evidence, ch Change, held bool,
	before, after map[string]uint32, now time.Time) {
	d := Decision{
		At: now, Subset: ch.Subset, From: ch.From, To: ch.To, Step: ch.Step, Held: held, DryRun: st.DryRun,
		Reason: ch.Reason, WeightsBefore: maps.Clone(before), WeightsAfter: maps.Clone(after),
		SLO: j.slo.Name, Thresholds: th, Evidence: maps.Clone(ev),
	}
	if held {
		d.WeightsAfter = maps.Clone(before)
	}
	st.Decisions = append(st.Decisions, d)
	if n := len(st.Decisions); n > maxDecisions {
		st.Decisions = slices.Delete(st.Decisions, 0, n-maxDecisions)
	}
	action := actionOf(ch, held)
	st.Message = fmt.Sprintf("%s %s: %s", action, ch.Subset, ch.Reason)
	if st.DryRun {
		st.Message = "dry run: would " + st.Message
	}
	c.actions.WithLabelValues(st.Namespace, st.Name, ch.Subset, action, fmt.Sprint(st.DryRun)).Inc()
	c.logger.Info("SLO policy decision", "policy", st.Key(), "subset", ch.Subset, "action", action,
		"dryRun", st.DryRun, "weights", Summary(d.WeightsAfter), "reason", ch.Reason)
}

// actionOf names a change for metrics and messages.
func actionOf(ch Change, held bool) string {
	switch {
	case held:
		return "hold"
	case ch.To == Drained:
		return "drain"
	case ch.To == Recovering:
		return "recover"
	default:
		return "restore"
	}
}

// save writes a policy's state; a failure is logged, the policy goes on.
func (c *Controller) save(st *Status) {
	if err := c.dir.Save(st.Key(), st); err != nil {
		c.logger.Error("saving an SLO policy's state failed; a restart would lose its last decisions", "policy", st.Key(), "error", err)
	}
}

// Frozen says why the canaries of a service may not progress: a policy
// with freezeCanaries (not in dry run) whose SLO of that service has
// spent its error budget. "" when none.
func (c *Controller) Frozen(namespace, service string) string {
	c.mu.Lock()
	m := c.mesh
	c.mu.Unlock()
	if m == nil || c.cfg.Budget == nil {
		return ""
	}
	for _, p := range m.Policies {
		if p.Namespace != namespace || p.Spec.DryRun || !p.FreezesCanaries() {
			continue
		}
		s := m.SLO(p.Namespace, p.Spec.SLO)
		if s == nil || s.Spec.Service != service {
			continue
		}
		if b, ok := c.cfg.Budget(s); ok && b.State == slo.StateExhausted {
			left := ""
			if b.Remaining != nil {
				left = fmt.Sprintf(" (%.1f%% left)", 100**b.Remaining)
			}
			return fmt.Sprintf("SLOPolicy %s: SLO %s's error budget is exhausted%s", p.Key(), s.Name, left)
		}
	}
	return ""
}

// List returns every policy's status, by namespace/name.
func (c *Controller) List() []Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]Status, 0, len(c.policies))
	for _, st := range c.policies {
		out = append(out, clone(st))
	}
	slices.SortFunc(out, func(a, b Status) int { return cmp.Compare(a.Key(), b.Key()) })
	return out
}

// Get returns one policy's status.
func (c *Controller) Get(namespace, name string) (Status, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	st, ok := c.policies[namespace+"/"+name]
	if !ok {
		return Status{}, false
	}
	return clone(st), true
}

func clone(st *Status) Status {
	out := *st
	out.Subsets = maps.Clone(st.Subsets)
	out.FileWeights = maps.Clone(st.FileWeights)
	out.Weights = maps.Clone(st.Weights)
	out.Decisions = slices.Clone(st.Decisions)
	return out
}
