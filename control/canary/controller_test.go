package canary

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql"

	"github.com/glassmesh/glassmesh/control/model"

	"github.com/prometheus/prometheus/rules"
)

func TestAHealthyCanaryWalksEveryStepAndIsPromoted(t *testing.T) {
	db := newTSDB(t)
	newTraffic(db).drive(t, 5, func() float64 { return 0 })
	c, pushed := newController(t, t.TempDir(), db.querier(), loadMesh(t, meshYAML))

	if got, want := pushed(), map[string]uint32{"v1": 60, "v2": 20, "v3": 20}; !maps.Equal(got, want) {
		t.Errorf("weights at the first step = %v, want %v (25%% of the 80 v1 and v3 hold)", got, want)
	}
	st := waitState(t, c, Succeeded, 30*time.Second)
	if got, none := c.StateOf("default", "reviews"), c.StateOf("default", "nope"); got != "succeeded" || none != "" {
		t.Errorf("StateOf = %q for the canary, %q for none; want succeeded and empty", got, none)
	}
	var verdicts []string
	for _, d := range st.Decisions {
		verdicts = append(verdicts, string(d.Verdict))
	}
	if got := strings.Join(verdicts, ","); got != "start,advance,advance,promote" {
		t.Errorf("verdicts = %s, want start,advance,advance,promote\n%s", got, describe(st))
	}
	waitWeights(t, pushed, map[string]uint32{"v2": 20, "v3": 80})
	last := st.Decisions[len(st.Decisions)-1]
	if len(last.Gates) != 1 || last.Gates[0].Verdict != GatePass || last.Gates[0].Value == nil || *last.Gates[0].Value != 0 {
		t.Errorf("promotion gates = %+v, want the SLO gate passing with burn 0", last.Gates)
	}
	if last.Requests < 20 {
		t.Errorf("promotion counted %v canary requests, want at least minRequests", last.Requests)
	}
}

func TestAFailingCanaryIsRolledBackBeforeItsIntervalEnds(t *testing.T) {
	db := newTSDB(t)
	var failing atomic.Bool
	newTraffic(db).drive(t, 5, func() float64 {
		if failing.Load() {
			return 0.5
		}
		return 0
	})
	// A long interval: only the fast path can roll back in time.
	m := loadMesh(t, strings.Replace(meshYAML, "interval: 1s", "interval: 1h", 1))
	c, pushed := newController(t, t.TempDir(), db.querier(), m)
	time.Sleep(500 * time.Millisecond)
	failing.Store(true)
	start := time.Now()
	st := waitState(t, c, RolledBack, 30*time.Second)
	t.Logf("rolled back %s after the canary started failing", time.Since(start).Round(time.Millisecond))
	waitWeights(t, pushed, map[string]uint32{"v1": 80, "v2": 20})
	d := st.Decisions[len(st.Decisions)-1]
	if d.Verdict != Rollback || len(d.Gates) != 1 {
		t.Fatalf("last decision = %+v", d)
	}
	g := d.Gates[0]
	if g.Gate != "slo reviews-availability" || g.Verdict != GateFail || g.Value == nil || *g.Value <= g.Threshold || g.Threshold != 14.4 {
		t.Errorf("failing gate = %+v, want the SLO gate over its page burn rate 14.4", g)
	}
	if !strings.Contains(d.Reason, `gate "slo reviews-availability" failed`) || !strings.Contains(g.Query, `destination_workload=~"reviews-v3"`) {
		t.Errorf("the record does not explain itself: reason %q, query %q", d.Reason, g.Query)
	}
	if d.WeightsBefore["v3"] != 20 || d.WeightsAfter["v3"] != 0 {
		t.Errorf("weights before/after = %v/%v", d.WeightsBefore, d.WeightsAfter)
	}
}

func TestACanaryWithTooLittleTrafficHoldsThenAborts(t *testing.T) {
	db := newTSDB(t)
	newTraffic(db).drive(t, 0.1, func() float64 { return 0 }) // ~1 request/s: under minRequests 20
	c, pushed := newController(t, t.TempDir(), db.querier(), loadMesh(t, meshYAML))
	st := waitState(t, c, Aborted, 30*time.Second)
	var holds int
	for _, d := range st.Decisions {
		switch d.Verdict {
		case Hold:
			holds++
			if !strings.Contains(d.Reason, "fewer than minRequests 20") {
				t.Errorf("hold reason = %q", d.Reason)
			}
		case Advance, Rollback, Promote:
			t.Errorf("a canary without enough traffic got a verdict: %+v", d)
		}
	}
	if holds != 2 || st.Step != 1 {
		t.Errorf("holds = %d at step %d, want 2 holds at step 1 before the 3rd inconclusive interval aborts\n%s", holds, st.Step, describe(st))
	}
	waitWeights(t, pushed, map[string]uint32{"v1": 80, "v2": 20})
}

// While the metrics cannot be read (the shared store down) a canary gets
// no verdict: it holds, the intervals do not count towards maxInconclusive
// (3 here), and it goes on when the store answers again.
func TestACanaryHoldsWithoutAVerdictWhileItsMetricsCannotBeRead(t *testing.T) {
	db := newTSDB(t)
	newTraffic(db).drive(t, 5, func() float64 { return 0 })
	var down atomic.Bool
	down.Store(true)
	q := db.querier()
	flaky := func(ctx context.Context, expr string, ts time.Time) (promql.Vector, error) {
		if down.Load() {
			return nil, errors.New("metrics store http://prometheus:9090: connection refused")
		}
		return q(ctx, expr, ts)
	}
	c, _ := newController(t, t.TempDir(), flaky, loadMesh(t, meshYAML))
	deadline := time.Now().Add(30 * time.Second)
	var st Status
	for {
		st, _ = c.Get("default", "reviews")
		holds := 0
		for _, d := range st.Decisions {
			if d.Verdict == Hold {
				holds++
			}
		}
		if holds >= 5 { // more than maxInconclusive intervals
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no holds in 30s\n%s", describe(st))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if st.State != Progressing || st.Inconclusive != 0 || st.Step != 1 {
		t.Fatalf("with the store down the canary is %s at step %d, %d inconclusive; want progressing, step 1, 0\n%s",
			st.State, st.Step, st.Inconclusive, describe(st))
	}
	if d := st.Decisions[len(st.Decisions)-1]; !strings.Contains(d.Reason, "no verdict") || !strings.Contains(d.Reason, "metrics store http://prometheus:9090") {
		t.Errorf("hold reason %q does not say the metrics store failed", d.Reason)
	}
	down.Store(false)
	waitState(t, c, Succeeded, 30*time.Second)
}

func TestARestartedControllerResumesWhereItWas(t *testing.T) {
	db := newTSDB(t)
	dir := t.TempDir()
	m := loadMesh(t, strings.Replace(meshYAML, "interval: 1s", "interval: 1h", 1))
	c1, err := New(Config{DataDir: dir, Querier: db.querier()}, discard(), nil)
	if err == nil {
		c1.Overlay(m)
		if _, _, err = c1.Act("default", "reviews", Pause, "maintenance"); err == nil {
			_, _, err = c1.Act("default", "reviews", Resume, "")
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	before, _ := c1.Get("default", "reviews")

	c2, err := New(Config{DataDir: dir, Querier: db.querier()}, discard(), nil)
	if err != nil {
		t.Fatal(err)
	}
	mesh, _ := c2.Overlay(m)
	after, _ := c2.Get("default", "reviews")
	if after.State != Progressing || after.Step != before.Step || !after.StepStartedAt.Equal(before.StepStartedAt) || len(after.Decisions) != 3 {
		t.Errorf("after restart: %+v\nwant the state before it: %+v", after, before)
	}
	if got := weightsOf(mesh, nil); got["v3"] != 20 {
		t.Errorf("weights after restart = %v, want the canary's 20 for v3", got)
	}
}

func TestOperatorActions(t *testing.T) {
	db := newTSDB(t)
	m := loadMesh(t, meshYAML)
	c, err := New(Config{Querier: db.querier()}, discard(), nil)
	if err != nil {
		t.Fatal(err)
	}
	c.Overlay(m)
	if _, _, err := c.Act("default", "reviews", Resume, ""); err == nil {
		t.Error("resume of a progressing canary succeeded")
	}
	if _, _, err := c.Act("default", "nope", Promote, ""); err != ErrNotFound {
		t.Errorf("promote of a missing canary: %v", err)
	}
	if _, _, err := c.Act("default", "reviews", "jump", ""); err == nil || !strings.Contains(err.Error(), "unknown action") {
		t.Errorf("unknown action: %v", err)
	}
	st, changed, err := c.Act("default", "reviews", Promote, "looks good")
	if err != nil || !changed || st.State != Succeeded || st.Weights["v3"] != 80 || st.Decisions[1].By != "api" || st.Decisions[1].Reason != "looks good" {
		t.Errorf("promote: %v %v %+v", err, changed, st)
	}
	if _, _, err := c.Act("default", "reviews", Abort, ""); err == nil {
		t.Error("abort of a succeeded canary succeeded")
	}
}

func TestAnEndedCanarysWeightsStayUntilTheFilesRuleChanges(t *testing.T) {
	db := newTSDB(t)
	m := loadMesh(t, meshYAML)
	c, err := New(Config{Querier: db.querier()}, discard(), nil)
	if err != nil {
		t.Fatal(err)
	}
	c.Overlay(m)
	if _, _, err := c.Act("default", "reviews", Promote, ""); err != nil {
		t.Fatal(err)
	}
	// The Canary object is deleted: a promoted canary's weights stay.
	noCanary := loadMesh(t, meshYAML[:strings.LastIndex(meshYAML, "---")])
	served, overrides := c.Overlay(noCanary)
	if got := weightsOf(served, nil); got["v3"] != 80 || len(overrides) != 1 || overrides[0].By != "Canary default/reviews" {
		t.Errorf("after deleting the promoted Canary: weights %v, overrides %+v", got, overrides)
	}
	// The file's rule changes: the file wins.
	edited := loadMesh(t, strings.Replace(meshYAML[:strings.LastIndex(meshYAML, "---")], "weight: 80}, {subset: v2, weight: 20}", "weight: 70}, {subset: v2, weight: 30}", 1))
	served, overrides = c.Overlay(edited)
	if got := weightsOf(served, nil); got["v1"] != 70 || got["v3"] != 0 || len(overrides) != 0 {
		t.Errorf("after editing the rule: weights %v, overrides %+v", got, overrides)
	}
}

func TestApplyLeavesTheLoadedMeshAlone(t *testing.T) {
	m := loadMesh(t, meshYAML)
	served, overrides := model.OverlayWeights(m, []model.WeightOverlay{{Route: "default/reviews", By: "Canary default/reviews", Weights: map[string]uint32{"v1": 0, "v3": 80}}})
	if got := weightsOf(m, nil); !maps.Equal(got, map[string]uint32{"v1": 80, "v2": 20}) {
		t.Errorf("loaded mesh changed: %v", got)
	}
	if got := weightsOf(served, nil); !maps.Equal(got, map[string]uint32{"v2": 20, "v3": 80}) {
		t.Errorf("served = %v", got)
	}
	if len(overrides) != 1 || overrides[0].Path != "spec.rules[0].destinations" {
		t.Errorf("overrides = %+v", overrides)
	}
	if _, _, errs := model.Validate(model.Objects{Services: served.Services, Workloads: served.Workloads, Routes: served.Routes}); len(errs) > 0 {
		t.Errorf("the overlaid mesh is not valid: %v", errs)
	}
}

// Two replicas share the canaries' states (here a directory; the Canary
// objects' status on Kubernetes): the follower serves the leader's weights
// and refuses actions; when the leader goes, the follower leads and finishes
// the canary from the recorded step instead of starting it again.
func TestAFollowerServesTheLeadersWeightsAndTakesOver(t *testing.T) {
	t.Run("states in a directory", func(t *testing.T) { followerTakesOver(t, DirStore{t.TempDir()}) })
	t.Run("states in objects (Kubernetes status)", func(t *testing.T) { followerTakesOver(t, newObjects().store()) })
}

func followerTakesOver(t *testing.T, store StateStore) {
	db := newTSDB(t)
	tr := newTraffic(db)
	tr.drive(t, 10, func() float64 { return 0 })
	m := loadMesh(t, strings.Replace(meshYAML, "steps: [25, 50, 100]", "steps: [10, 20, 30, 40, 50, 100]", 1))

	leader, err := New(Config{Store: store, Querier: db.querier(), Tick: 100 * time.Millisecond}, discard(), nil)
	if err != nil {
		t.Fatal(err)
	}
	leader.Overlay(m)
	ctx, stopLeader := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = leader.Run(ctx, func() { leader.Overlay(m) }) }()
	t.Cleanup(func() { stopLeader(); <-done })

	follower, err := New(Config{Store: store, Querier: db.querier(), Tick: 100 * time.Millisecond, Follower: true}, discard(), nil)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = follower.Run(t.Context(), func() {}) }()

	// Wait for the leader to reach step 3, then compare what each serves.
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, _ := leader.Get("default", "reviews")
		if st.Step >= 3 && st.State == Progressing {
			break
		}
		if time.Now().After(deadline) || st.State.Done() {
			t.Fatalf("leader at step %d (%s), want step 3 progressing; decisions:\n%s", st.Step, st.State, describe(st))
		}
		time.Sleep(20 * time.Millisecond)
	}
	stopLeader()
	<-done
	served := weightsOf(leader.Overlay(m))
	leader.Follow()
	led, _ := leader.Get("default", "reviews")
	if got := weightsOf(follower.Overlay(m)); !maps.Equal(got, served) || got["v3"] == 0 {
		t.Errorf("follower serves %v, the leader %v", got, served)
	}
	if _, _, err := follower.Act("default", "reviews", Pause, ""); !errors.Is(err, ErrNotLeader) {
		t.Errorf("an action on the follower: err = %v, want ErrNotLeader", err)
	}
	if len(follower.List()) != 1 {
		t.Errorf("follower lists %d canaries, want 1", len(follower.List()))
	}

	if err := follower.Lead(); err != nil {
		t.Fatal(err)
	}
	st := waitState(t, follower, Succeeded, 30*time.Second)
	if st.Decisions[0].Verdict != Start || countVerdicts(st, Start) != 1 {
		t.Errorf("the new leader started the canary again; decisions:\n%s", describe(st))
	}
	if n := countVerdicts(st, Advance); n != 5 {
		t.Errorf("%d advances over both leaders, want 5 (steps 10→…→100); decisions:\n%s", n, describe(st))
	}
	if len(st.Decisions) < len(led.Decisions) || !st.Decisions[len(led.Decisions)-1].At.Equal(led.Decisions[len(led.Decisions)-1].At) {
		t.Errorf("the new leader's history does not continue the old one's; decisions:\n%s", describe(st))
	}
	if _, _, err := leader.Act("default", "reviews", Pause, ""); !errors.Is(err, ErrNotLeader) {
		t.Errorf("an action on the old leader: err = %v, want ErrNotLeader", err)
	}
}

func countVerdicts(st Status, v Verdict) int {
	n := 0
	for _, d := range st.Decisions {
		if d.Verdict == v {
			n++
		}
	}
	return n
}

// A query function of plain vectors (how gates read a remote store's
// Prometheus API) judges like the engine: here over the same engine's
// vectors, a failing canary is rolled back and a query with no data is not
// zero.
func TestVectorQueriesJudgeLikeTheEngine(t *testing.T) {
	db := newTSDB(t)
	newTraffic(db).drive(t, 5, func() float64 { return 0.5 })
	vq := rules.QueryFunc(func(ctx context.Context, q string, ts time.Time) (promql.Vector, error) {
		qry, err := db.eng.PromQL().NewInstantQuery(ctx, db.st.Queryable(), nil, q, ts)
		if err != nil {
			return nil, err
		}
		defer qry.Close()
		return qry.Exec(ctx).Vector()
	})
	if _, ok, err := query(t.Context(), vq, `absent_metric_xyz`, time.Now()); ok || err != nil {
		t.Errorf("no data: ok %v err %v, want not ok", ok, err)
	}
	c, _ := newController(t, t.TempDir(), vq, loadMesh(t, meshYAML))
	st := waitState(t, c, RolledBack, 30*time.Second)
	if d := st.Decisions[len(st.Decisions)-1]; d.Verdict != Rollback || d.Requests < 20 {
		t.Errorf("last decision %+v, want a rollback on at least minRequests", d)
	}
}

// objects stands in for the API server's objects: each canary's state as
// JSON, changed by JSON merge patches of top-level fields (RFC 7386, which
// is all ObjectStore sends).
type objects struct {
	mu   sync.Mutex
	docs map[string]map[string]any
}

func newObjects() *objects { return &objects{docs: map[string]map[string]any{}} }

func (o *objects) store() ObjectStore {
	return ObjectStore{
		List: func() (map[string][]byte, error) {
			o.mu.Lock()
			defer o.mu.Unlock()
			out := map[string][]byte{}
			for k, d := range o.docs {
				b, err := json.Marshal(d)
				if err != nil {
					return nil, err
				}
				out[k] = b
			}
			return out, nil
		},
		Patch: func(ns, name string, patch []byte) error {
			var p map[string]any
			if err := json.Unmarshal(patch, &p); err != nil {
				return err
			}
			o.mu.Lock()
			defer o.mu.Unlock()
			d := o.docs[ns+"/"+name]
			if d == nil {
				d = map[string]any{"conditions": []any{"kept"}} // someone else's field
				o.docs[ns+"/"+name] = d
			}
			for k, v := range p {
				if v == nil {
					delete(d, k)
				} else {
					d[k] = v
				}
			}
			return nil
		},
	}
}

func TestObjectStoreRoundTrip(t *testing.T) {
	objs := newObjects()
	s := objs.store()
	at := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	st := &Status{Namespace: "shop", Name: "reviews", Route: "reviews", Stable: "v1", Canary: "v2", Steps: []uint32{10, 100},
		State: Progressing, Step: 1, Weights: map[string]uint32{"v1": 90, "v2": 10}, TotalWeight: 100,
		StepStartedAt: at, NextEvaluationAt: at.Add(time.Minute)}
	for i := range MaxObjectDecisions + 20 {
		st.Decisions = append(st.Decisions, Decision{At: at.Add(time.Duration(i) * time.Second), Verdict: Hold})
	}
	if err := s.Save(st); err != nil {
		t.Fatal(err)
	}
	got, err := s.Load()
	if err != nil || len(got) != 1 {
		t.Fatalf("load: %v %v", got, err)
	}
	g := got[0]
	if g.Key() != "shop/reviews" || g.Step != 1 || g.Weights["v2"] != 10 || !g.NextEvaluationAt.Equal(st.NextEvaluationAt) {
		t.Errorf("read back %+v", g)
	}
	if len(g.Decisions) != MaxObjectDecisions || !g.Decisions[0].At.Equal(st.Decisions[20].At) {
		t.Errorf("%d decisions from %v, want the last %d", len(g.Decisions), g.Decisions[0].At, MaxObjectDecisions)
	}
	// Ended: nextEvaluationAt is removed, not left behind by the patch.
	st.State, st.NextEvaluationAt = Succeeded, time.Time{}
	if err := s.Save(st); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Load(); got[0].State != Succeeded || !got[0].NextEvaluationAt.IsZero() {
		t.Errorf("after the end: %s, next evaluation %v", got[0].State, got[0].NextEvaluationAt)
	}
	if objs.docs["shop/reviews"]["conditions"] == nil {
		t.Error("the patch removed a field it does not own")
	}
	objs.docs["shop/broken"] = map[string]any{"state": 7}
	if _, err := s.Load(); err == nil || !strings.Contains(err.Error(), "shop/broken") {
		t.Errorf("a state that does not decode: err = %v, want one naming it", err)
	}
}
