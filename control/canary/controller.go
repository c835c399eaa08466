// Package canary is the progressive-delivery controller. A Canary moves the
// weight of a TrafficRoute's last rule from a stable subset to a canary
// subset step by step, as long as every gate passes on the canary's own
// traffic; a failing gate rolls it back at once, without waiting for the
// interval to end. The config files are never rewritten: the controller's
// weights are an overlay on the loaded mesh (source.Store.SetOverlay), and
// every change is pushed over xDS and recorded with its evidence.
package canary

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/glassmesh/glassmesh/control/model"

	"github.com/prometheus/prometheus/rules"
)

// Config configures a Controller.
type Config struct {
	// DataDir holds one state file per canary, so a restarted controller
	// resumes; empty keeps state in memory only. Ignored when Store is set.
	DataDir string
	// Store, when set, persists the states instead of DataDir: the Canary
	// objects' status when several replicas share the Kubernetes API.
	Store StateStore
	// Follower starts the controller as a follower (see Follow): with
	// several replicas, each starts so until it wins the leader election.
	Follower bool
	// Querier runs the gates' PromQL (instant queries, as Prometheus's
	// rules manager runs them): over the local engine
	// (rules.EngineQueryFunc), or a shared store's API with several
	// replicas, so gates judge all the canary's traffic. Required.
	Querier rules.QueryFunc
	// Tick is how often running canaries are checked for a failing gate
	// between interval ends (the fast rollback path). Default 1s.
	Tick time.Duration
	// MaxDecisions bounds the records kept per canary (oldest go first).
	// Default 500.
	MaxDecisions int
	// LeaseValid, when set, says whether this replica's lead is current:
	// its leader lease was renewed recently. While it says false a leading
	// controller decides nothing, starts no canary and refuses actions
	// (ErrNotLeader): a leader cut off from the API server could not
	// persist them, and the replica that takes its lease over would never
	// know of them. It must not block. nil: always current.
	LeaseValid func() bool
	// ServeSaved makes a leader serve the canaries' states as Store holds
	// them, as its followers do, instead of as it decided them: a decision
	// moves traffic only once it is persisted, so no replica serves a step
	// the next leader would not resume from. For a Store that replicas
	// share (ObjectStore on Kubernetes).
	ServeSaved bool
	// Frozen says why the canaries of a service may not progress (an
	// error-budget policy: the service's SLO budget is spent), or "".
	// While it says so, a progressing canary of the service pauses and
	// promote or resume is refused (ErrConflict, with the reason); once
	// it says "" again, the canaries it paused resume. It must not block.
	// nil: never frozen.
	Frozen func(namespace, service string) string
}

// Validate reports a config the controller cannot run with.
func (c Config) Validate() error {
	if c.Querier == nil {
		return errors.New("canary.querier: must be set")
	}
	if c.Tick < 0 || c.MaxDecisions < 0 {
		return errors.New("canary.tick, canary.max-decisions: must be >= 0")
	}
	return nil
}

// Controller runs every Canary of the mesh config.
type Controller struct {
	cfg     Config
	logger  *slog.Logger
	metrics *metrics
	store   StateStore
	wake    chan struct{}

	mu       sync.Mutex
	leading  bool        // decides, evaluates and saves; else follows the store
	takeOver bool        // leading, but the saved states are to be adopted with the first config
	resync   bool        // leading, but the latest config came while the lease was not current
	loaded   bool        // a config has arrived (Overlay)
	mesh     *model.Mesh // the latest loaded (file) mesh
	canaries map[string]*canary
}

// canary is one canary's state; gen changes with every transition, so an
// evaluation that raced with one is discarded.
type canary struct {
	st   Status
	spec *model.CanarySpec // nil once the Canary is gone from the config
	gen  uint64
}

// New returns a controller with the states saved in cfg.DataDir.
func New(cfg Config, logger *slog.Logger, reg prometheus.Registerer) (*Controller, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Tick == 0 {
		cfg.Tick = time.Second
	}
	if cfg.MaxDecisions == 0 {
		cfg.MaxDecisions = 500
	}
	if cfg.Store == nil {
		cfg.Store = DirStore{cfg.DataDir}
	}
	c := &Controller{
		cfg: cfg, logger: logger, metrics: newMetrics(reg), store: cfg.Store, leading: !cfg.Follower,
		wake: make(chan struct{}, 1), mesh: model.Empty(), canaries: map[string]*canary{},
	}
	if err := c.adopt(); err != nil {
		return nil, err
	}
	return c, nil
}

// adopt replaces the canaries' states with the saved ones. Called with
// c.mu held (or before c is shared).
func (c *Controller) adopt() error {
	saved, err := c.store.Load()
	if err != nil {
		return err
	}
	keep := map[string]*canary{}
	for _, st := range saved {
		cur := &canary{st: *st}
		if old := c.canaries[st.Key()]; old != nil {
			cur.gen = old.gen + 1
		}
		keep[st.Key()] = cur
		c.metrics.set(st)
	}
	for key, old := range c.canaries {
		if keep[key] == nil {
			c.metrics.forget(&old.st)
		}
	}
	c.canaries = keep
	c.attachSpecs()
	return nil
}

// attachSpecs points each state at its Canary in the latest mesh. Called
// with c.mu held.
func (c *Controller) attachSpecs() {
	for _, cur := range c.canaries {
		cur.spec = nil
	}
	for _, obj := range c.mesh.Canaries {
		if cur := c.canaries[obj.Key()]; cur != nil {
			spec := obj.Spec
			cur.spec = &spec
		}
	}
}

// Lead makes this controller the one that decides: it takes the saved
// states (the last leader's decisions), follows the config from them and
// evaluates from now on. Called when this replica wins the election. Before
// the first config arrived the saved states may not be readable yet (an
// informer still syncing), so the take-over waits for it.
func (c *Controller) Lead() error {
	c.mu.Lock()
	var err error
	if c.loaded {
		if err = c.adopt(); err == nil {
			c.syncIfCurrent(c.mesh)
		}
	} else {
		c.takeOver = true
	}
	if err == nil {
		c.leading = true
		c.logger.Info("canary controller leading", "canaries", len(c.canaries), "waitingForConfig", c.takeOver)
	}
	c.mu.Unlock()
	c.poke()
	return err
}

// Follow stops deciding: the overlay serves the saved states (the
// leader's), read again whenever the config or the store changes.
// Called when this replica loses the election.
func (c *Controller) Follow() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.leading {
		c.logger.Info("canary controller following the leader's decisions")
	}
	c.leading, c.takeOver, c.resync = false, false, false
}

// current says whether a leader may decide now (Config.LeaseValid).
// Called with c.mu held.
func (c *Controller) current() bool {
	return c.cfg.LeaseValid == nil || c.cfg.LeaseValid()
}

// syncIfCurrent follows config m when the lease is current; else it only
// takes m in, and Run syncs once the lease is current again. Called with
// c.mu held, while leading.
func (c *Controller) syncIfCurrent(m *model.Mesh) {
	if !c.current() {
		c.mesh, c.resync = m, true
		c.attachSpecs()
		return
	}
	c.sync(m, time.Now())
	c.resync = false
}

// catchUp syncs the config that came while the lease was not current, and
// reports whether it did (weights may have changed).
func (c *Controller) catchUp() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.leading || !c.resync || !c.current() {
		return false
	}
	c.syncIfCurrent(c.mesh)
	return true
}

// Leading reports whether this controller decides.
func (c *Controller) Leading() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.leading
}

// Overlay is a source.Overlay: it takes the loaded mesh's Canaries into
// account (starting new ones, following changed ones) and returns the mesh
// with the canaries' weights.
func (c *Controller) Overlay(m *model.Mesh) (*model.Mesh, []model.Override) {
	c.mu.Lock()
	c.loaded = true
	if c.takeOver {
		c.mesh = m
		if err := c.adopt(); err != nil {
			c.logger.Error("reading the last leader's canary states failed; canaries start over", "error", err)
		}
		c.takeOver = false
	}
	if c.leading {
		c.syncIfCurrent(m)
	} else {
		c.mesh = m
		if err := c.adopt(); err != nil {
			c.logger.Error("reading the leader's canary states failed; serving the last ones read", "error", err)
			c.attachSpecs()
		}
	}
	ovs := c.servedOverlays(m)
	c.mu.Unlock()
	c.poke()
	return model.OverlayWeights(m, ovs)
}

// sync follows the config: a Canary that is new, or whose route, stable or
// canary subset changed, starts; one that is gone stops (its weights stay
// only if it had ended).
func (c *Controller) sync(m *model.Mesh, now time.Time) {
	c.mesh = m
	inConfig := map[string]bool{}
	for _, obj := range m.Canaries {
		key := obj.Key()
		inConfig[key] = true
		route := m.Route(obj.Namespace, obj.Spec.Route)
		rule := lastRule(route)
		cur := c.canaries[key]
		if cur == nil || cur.st.Route != obj.Spec.Route || cur.st.Stable != obj.Spec.Stable || cur.st.Canary != obj.Spec.Canary {
			c.start(obj, rule, now)
			continue
		}
		spec := obj.Spec
		cur.spec = &spec
		cur.st.Steps = slices.Clone(spec.Steps)
		if !cur.st.State.Done() {
			c.follow(cur, rule)
		}
	}
	for key, cur := range c.canaries {
		if inConfig[key] {
			continue
		}
		cur.spec = nil
		if !cur.st.State.Done() || m.Route(cur.st.Namespace, cur.st.Route) == nil {
			c.logger.Info("canary removed from the config; its route gets the file's weights", "canary", key)
			delete(c.canaries, key)
			c.metrics.forget(&cur.st)
			c.save(nil, key)
		}
	}
}

// start begins a canary at its first step.
func (c *Controller) start(obj *model.Canary, rule *model.Rule, now time.Time) {
	spec := obj.Spec
	total := fileWeight(rule, spec.Stable) + fileWeight(rule, spec.Canary)
	cur := &canary{spec: &spec, st: Status{
		Namespace: obj.Namespace, Name: obj.Name, Route: spec.Route, Stable: spec.Stable, Canary: spec.Canary,
		Steps: slices.Clone(spec.Steps), State: Progressing, Step: 1, TotalWeight: total,
		StepStartedAt: now, NextEvaluationAt: now.Add(spec.Interval.Duration), FileRule: model.RuleFingerprint(rule),
	}}
	if old := c.canaries[obj.Key()]; old != nil {
		cur.gen = old.gen + 1
	}
	c.canaries[obj.Key()] = cur
	before := map[string]uint32{spec.Stable: total - fileWeight(rule, spec.Canary), spec.Canary: fileWeight(rule, spec.Canary)}
	if total == 0 {
		cur.st.State, cur.st.Weights = Aborted, before
		c.record(cur, Decision{At: now, Verdict: Abort, WeightsBefore: before, By: "controller",
			Reason: fmt.Sprintf("subsets %s and %s have no weight in the route's last rule: there is nothing to shift", spec.Stable, spec.Canary)})
		return
	}
	cur.st.Weights = weightsAt(spec.Stable, spec.Canary, total, spec.Steps[0])
	c.record(cur, Decision{At: now, Verdict: Start, WeightsBefore: before, By: "controller",
		Reason: fmt.Sprintf("canary started: step 1 of %d gives %s %d%% of the %d that %s and %s hold in the route's last rule",
			len(spec.Steps), spec.Canary, spec.Steps[0], total, spec.Stable, spec.Canary)})
}

// follow applies a config change to a running canary: the steps may have
// changed, and other destinations' weights may have changed its total.
func (c *Controller) follow(cur *canary, rule *model.Rule) {
	st := &cur.st
	if fp := model.RuleFingerprint(rule); fp != st.FileRule {
		c.logger.Warn("the file changed the weights of a route a canary drives; the canary keeps them until it ends",
			"canary", st.Key(), "route", st.Route)
	}
	total := fileWeight(rule, st.Stable) + fileWeight(rule, st.Canary)
	if total == 0 || total == st.TotalWeight {
		return
	}
	st.TotalWeight = total
	st.Step = min(st.Step, len(st.Steps))
	st.Weights = weightsAt(st.Stable, st.Canary, total, st.Steps[st.Step-1])
	c.save(cur, st.Key())
}

// servedOverlays is the weights to serve: the states decided here, or, for
// a leader with Config.ServeSaved, the states as saved. Called with c.mu
// held.
func (c *Controller) servedOverlays(m *model.Mesh) []model.WeightOverlay {
	if c.leading && c.cfg.ServeSaved {
		saved, err := c.store.Load()
		if err == nil {
			return overlaysOf(m, saved)
		}
		c.logger.Error("reading the saved canary states failed; serving the states decided here", "error", err)
	}
	states := make([]*Status, 0, len(c.canaries))
	for _, cur := range c.canaries {
		states = append(states, &cur.st)
	}
	return overlaysOf(m, states)
}

// overlaysOf is the weights the states set: running canaries always, ended
// ones while the file's rule is the one they started from.
func overlaysOf(m *model.Mesh, states []*Status) []model.WeightOverlay {
	var out []model.WeightOverlay
	for _, st := range states {
		route := m.Route(st.Namespace, st.Route)
		if route == nil {
			continue
		}
		if st.State.Done() && model.RuleFingerprint(lastRule(route)) != st.FileRule {
			continue // the file's rule changed since: it wins
		}
		out = append(out, model.WeightOverlay{
			Route: route.Key(), Weights: cloneWeights(st.Weights),
			By:     "Canary " + st.Key(),
			Reason: fmt.Sprintf("%s at step %d of %d: %s", st.State, st.Step, len(st.Steps), st.Message),
		})
	}
	slices.SortFunc(out, func(a, b model.WeightOverlay) int { return cmp.Compare(a.Route, b.Route) })
	return out
}

// record appends a decision, updates the message, metrics and log, and
// saves the state. Called with c.mu held.
func (c *Controller) record(cur *canary, d Decision) {
	st := &cur.st
	d.Step = st.Step
	if d.WeightsAfter == nil {
		d.WeightsAfter = cloneWeights(st.Weights)
	}
	st.Decisions = append(st.Decisions, d)
	if n := len(st.Decisions) - c.cfg.MaxDecisions; n > 0 {
		st.Decisions = slices.Delete(st.Decisions, 0, n)
	}
	st.Message = d.Reason
	cur.gen++
	c.metrics.decision(st, d.Verdict)
	c.metrics.set(st)
	level := slog.LevelInfo
	if d.Verdict == Rollback || d.Verdict == Abort {
		level = slog.LevelWarn
	}
	c.logger.Log(context.Background(), level, "canary decision", "canary", st.Key(), "verdict", d.Verdict,
		"step", d.Step, "weights", d.WeightsAfter, "requests", d.Requests, "reason", d.Reason)
	c.save(cur, st.Key())
}

// save persists one canary's state, or removes it when cur is nil.
func (c *Controller) save(cur *canary, key string) {
	if !c.leading {
		return // the leader's store is not ours to write
	}
	var err error
	if cur == nil {
		err = c.store.Remove(key)
	} else {
		err = c.store.Save(&cur.st)
	}
	if err != nil {
		c.metrics.saveErrors.Inc()
		c.logger.Error("saving canary state failed; a restart would lose its last decisions", "canary", key, "error", err)
	}
}

// poke wakes Run to look at the canaries now.
func (c *Controller) poke() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// List returns every canary's status, by namespace/name.
func (c *Controller) List() []Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]Status, 0, len(c.canaries))
	for _, cur := range c.canaries {
		out = append(out, cur.st.clone())
	}
	slices.SortFunc(out, func(a, b Status) int { return cmp.Compare(a.Key(), b.Key()) })
	return out
}

// StateOf returns one canary's state, "" when there is no such canary:
// what the service graph shows beside the canary's nodes.
func (c *Controller) StateOf(namespace, name string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cur := c.canaries[namespace+"/"+name]; cur != nil {
		return string(cur.st.State)
	}
	return ""
}

// Get returns one canary's status.
func (c *Controller) Get(namespace, name string) (Status, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cur := c.canaries[namespace+"/"+name]
	if cur == nil {
		return Status{}, false
	}
	return cur.st.clone(), true
}
