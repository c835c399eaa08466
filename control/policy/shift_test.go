package policy

import (
	"strings"
	"testing"
	"time"
)

var shift = Shift{
	MaxShift: 100, MinHealthySubsets: 1,
	RecoverAfter: 10 * time.Second, RecoverySteps: []uint32{25, 50, 100}, RecoveryInterval: 5 * time.Second,
}

func fiftyFifty() []Subset {
	return []Subset{{Name: "v1", FileWeight: 50, Serving: true}, {Name: "v2", FileWeight: 50, Serving: true}}
}

func burning(why string) Evidence {
	return Evidence{Requests: 100, BurnRates: map[string]float64{"10s": 40}, Burning: true, FastBurning: true, Why: why}
}

var quiet = Evidence{Requests: 100, BurnRates: map[string]float64{"10s": 0}, Quiet: true}

// run feeds evidence through Decide once a second from t0 and returns the
// last outcome.
type run struct {
	t      *testing.T
	sh     Shift
	subs   []Subset
	states map[string]SubsetState
	now    time.Time
	last   Outcome
}

func newRun(t *testing.T, sh Shift, subs []Subset) *run {
	return &run{t: t, sh: sh, subs: subs, now: time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)}
}

func (r *run) step(ev map[string]Evidence) Outcome {
	r.now = r.now.Add(time.Second)
	r.last = Decide(r.sh, r.subs, r.states, ev, r.now)
	r.states = r.last.States
	return r.last
}

func (r *run) wantWeights(want string) {
	r.t.Helper()
	if got := Summary(r.last.Weights); got != want {
		r.t.Fatalf("at %s: weights %s, want %s (states %+v)", r.now.Format(time.TimeOnly), got, want, r.states)
	}
}

func TestABurningSubsetIsDrainedAndComesBackInSteps(t *testing.T) {
	r := newRun(t, shift, fiftyFifty())
	r.step(map[string]Evidence{"v1": quiet, "v2": quiet})
	r.wantWeights("v1=50 v2=50")

	out := r.step(map[string]Evidence{"v1": quiet, "v2": burning("v2 burns 40x")})
	r.wantWeights("v1=100 v2=0")
	if len(out.Changes) != 1 || out.Changes[0].Subset != "v2" || out.Changes[0].To != Drained || out.Changes[0].Reason != "v2 burns 40x" {
		t.Fatalf("changes %+v, want v2 drained with the evidence's reason", out.Changes)
	}
	// No traffic now reaches v2, so it is quiet; recovery waits for
	// RecoverAfter of quiet.
	for range 10 {
		r.step(map[string]Evidence{"v1": quiet, "v2": {Quiet: true}})
	}
	if st := r.states["v2"]; st.Phase != Drained {
		t.Fatalf("v2 %+v after 9 s of quiet, want still drained", st)
	}
	r.step(map[string]Evidence{"v1": quiet, "v2": {Quiet: true}})
	if st := r.states["v2"]; st.Phase != Recovering || st.Step != 0 {
		t.Fatalf("v2 %+v after 10 s of quiet, want recovering at step 0", st)
	}
	r.wantWeights("v1=88 v2=12") // 25% of v2's 50, rounded down
	for _, want := range []string{"v1=75 v2=25", "v1=50 v2=50"} {
		for range 5 {
			r.step(map[string]Evidence{"v1": quiet, "v2": quiet})
		}
		r.wantWeights(want)
	}
	if r.states["v2"].Phase != Recovering {
		t.Fatalf("v2 %+v: the last step (100%%) is held for an interval too", r.states["v2"])
	}
	for range 5 {
		r.step(map[string]Evidence{"v1": quiet, "v2": quiet})
	}
	if r.states["v2"].Phase != Healthy {
		t.Fatalf("v2 %+v, want healthy after every step held", r.states["v2"])
	}
	r.wantWeights("v1=50 v2=50")
}

func TestBurningAgainDuringRecoveryDrainsAtOnce(t *testing.T) {
	r := newRun(t, shift, fiftyFifty())
	r.step(map[string]Evidence{"v1": quiet, "v2": burning("bad")})
	for range 12 {
		r.step(map[string]Evidence{"v1": quiet, "v2": quiet})
	}
	if r.states["v2"].Phase != Recovering {
		t.Fatalf("v2 %+v, want recovering", r.states["v2"])
	}
	out := r.step(map[string]Evidence{"v1": quiet, "v2": burning("bad again")})
	r.wantWeights("v1=100 v2=0")
	if len(out.Changes) != 1 || !strings.HasPrefix(out.Changes[0].Reason, "burned again during recovery step 1") {
		t.Fatalf("changes %+v", out.Changes)
	}
	// A blip of noise while drained restarts the quiet clock.
	r.step(map[string]Evidence{"v1": quiet, "v2": quiet})
	r.step(map[string]Evidence{"v1": quiet, "v2": {Requests: 3, BurnRates: map[string]float64{"5m": 5}}})
	if !r.states["v2"].QuietSince.IsZero() {
		t.Fatalf("v2 %+v: not quiet, so no quiet time", r.states["v2"])
	}
}

func TestNothingIsDrainedBelowMinHealthySubsets(t *testing.T) {
	r := newRun(t, shift, fiftyFifty())
	out := r.step(map[string]Evidence{"v1": burning("v1 burns"), "v2": burning("v2 burns")})
	r.wantWeights("v1=50 v2=50")
	if len(out.Changes) != 0 || len(out.Held) != 2 {
		t.Fatalf("changes %+v held %+v: want both held", out.Changes, out.Held)
	}
	if !strings.Contains(out.Held[0].Reason, "would leave 0 healthy subset(s) with weight and endpoints, fewer than minHealthySubsets 1") {
		t.Errorf("held reason %q", out.Held[0].Reason)
	}

	// Three subsets, two burning, the worse one first: one drains, the
	// other is held as one must stay healthy... with two healthy required.
	three := []Subset{{Name: "a", FileWeight: 40, Serving: true}, {Name: "b", FileWeight: 30, Serving: true}, {Name: "c", FileWeight: 30, Serving: true}}
	sh := shift
	sh.MinHealthySubsets = 1
	r = newRun(t, sh, three)
	worse := burning("b worse")
	worse.BurnRates = map[string]float64{"10s": 90}
	out = r.step(map[string]Evidence{"a": quiet, "b": worse, "c": burning("c bad")})
	if len(out.Changes) != 2 {
		t.Fatalf("changes %+v: a stays healthy, so both b and c may go", out.Changes)
	}
	r.wantWeights("a=100 b=0 c=0")
	sh.MinHealthySubsets = 2
	r = newRun(t, sh, three)
	out = r.step(map[string]Evidence{"a": quiet, "b": worse, "c": burning("c bad")})
	if len(out.Changes) != 0 || len(out.Held) != 2 {
		t.Fatalf("changes %+v held %+v: with two required and c burning, draining b leaves only a", out.Changes, out.Held)
	}
}

func TestWeightNeverGoesToAnEmptySubset(t *testing.T) {
	subs := []Subset{{Name: "v1", FileWeight: 50, Serving: false}, {Name: "v2", FileWeight: 50, Serving: true}}
	r := newRun(t, shift, subs)
	out := r.step(map[string]Evidence{"v1": {Quiet: true}, "v2": burning("v2 burns")})
	if len(out.Held) != 1 || len(out.Changes) != 0 {
		t.Fatalf("changes %+v held %+v: v1 has no endpoints, so v2 stays", out.Changes, out.Held)
	}
	r.wantWeights("v1=50 v2=50")
}

func TestMaxShiftCapsTheMovedWeight(t *testing.T) {
	sh := shift
	sh.MaxShift = 30
	subs := []Subset{{Name: "v1", FileWeight: 60, Serving: true}, {Name: "v2", FileWeight: 20, Serving: true}, {Name: "v3", FileWeight: 20, Serving: true}}
	r := newRun(t, sh, subs)
	r.step(map[string]Evidence{"v1": burning("v1 burns"), "v2": quiet, "v3": quiet})
	// v1 would give 60; 30 may move, split between v2 and v3 by their
	// file weights.
	r.wantWeights("v1=30 v2=35 v3=35")
	var total uint32
	for _, w := range r.last.Weights {
		total += w
	}
	if total != 100 {
		t.Errorf("total %d, want the file's 100", total)
	}
}

func TestStatesAreNotModified(t *testing.T) {
	states := map[string]SubsetState{"v2": {Phase: Healthy}}
	Decide(shift, fiftyFifty(), states, map[string]Evidence{"v1": quiet, "v2": burning("x")}, time.Now())
	if states["v2"].Phase != Healthy {
		t.Error("Decide changed its input")
	}
}

// The alert's windows still hold the errors from before a drain for a
// while; they must not drain the subset again once it is back, unless
// its fresh traffic burns too.
func TestStaleAlertWindowsDoNotDrainARecoveredSubset(t *testing.T) {
	sh := shift
	sh.AlertShortWindow = 5 * time.Minute
	r := newRun(t, sh, fiftyFifty())
	r.step(map[string]Evidence{"v1": quiet, "v2": burning("bad")})
	stale := Evidence{Requests: 100, BurnRates: map[string]float64{"300s": 20, "3600s": 20}, Burning: true, AlertBurning: true, Quiet: true}
	for range 12 {
		r.step(map[string]Evidence{"v1": quiet, "v2": stale})
	}
	if st := r.states["v2"]; st.Phase != Recovering {
		t.Fatalf("v2 %+v: stale alert windows drained it again", st)
	}
	// A subset healthy for longer than the short window does drain on
	// the alert's windows alone.
	r = newRun(t, sh, fiftyFifty())
	r.step(map[string]Evidence{"v1": quiet, "v2": quiet})
	r.now = r.now.Add(5 * time.Minute)
	r.step(map[string]Evidence{"v1": quiet, "v2": stale})
	if st := r.states["v2"]; st.Phase != Drained {
		t.Fatalf("v2 %+v: a slow burn on both alert windows drains", st)
	}
}
