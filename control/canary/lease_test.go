package canary

import (
	"context"
	"errors"
	"maps"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// A leader cut off from the API server keeps its lease (client-go tells it
// late) but cannot renew it: while Config.LeaseValid says so, it starts no
// canary, decides nothing and refuses actions; once the lease is current
// again it catches up with the config it was given meanwhile.
func TestALeaderWhoseLeaseLapsedDecidesNothing(t *testing.T) {
	db := newTSDB(t)
	newTraffic(db).drive(t, 5, func() float64 { return 0 })
	m := loadMesh(t, meshYAML)
	var valid atomic.Bool
	c, err := New(Config{DataDir: t.TempDir(), Querier: db.querier(), Tick: 100 * time.Millisecond, LeaseValid: valid.Load}, discard(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	pushed := weightsOf(c.Overlay(m))
	if len(c.List()) != 0 || pushed["v3"] != 0 {
		t.Fatalf("the canary started on a lapsed lease: %+v, weights %v", c.List(), pushed)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = c.Run(ctx, func() {
			mu.Lock()
			defer mu.Unlock()
			pushed = weightsOf(c.Overlay(m))
		})
	}()
	t.Cleanup(func() { cancel(); <-done })
	last := func() map[string]uint32 {
		mu.Lock()
		defer mu.Unlock()
		return maps.Clone(pushed)
	}

	// Current: the canary starts at once, from the config given before.
	valid.Store(true)
	waitWeights(t, last, map[string]uint32{"v1": 60, "v2": 20, "v3": 20})

	// Lapsed: three intervals pass without a decision.
	valid.Store(false)
	time.Sleep(3500 * time.Millisecond)
	st, _ := c.Get("default", "reviews")
	if st.Step != 1 || len(st.Decisions) != 1 {
		t.Errorf("at step %d after %d decisions on a lapsed lease, want step 1 and only the start:\n%s", st.Step, len(st.Decisions), describe(st))
	}
	if _, _, err := c.Act("default", "reviews", Pause, ""); !errors.Is(err, ErrNotLeader) {
		t.Errorf("an action on a lapsed lease: err = %v, want ErrNotLeader", err)
	}

	valid.Store(true)
	st = waitState(t, c, Succeeded, 30*time.Second)
	if countVerdicts(st, Advance) != 2 {
		t.Errorf("decisions once current again:\n%s", describe(st))
	}
}

// heldObjects is an ObjectStore whose writes can be held back, as the API
// server's are when a partition stands between it and the leader.
type heldObjects struct {
	*objects
	mu      sync.Mutex
	holding bool
	queued  [][3]string // namespace, name, patch
}

func (h *heldObjects) store() ObjectStore {
	s := h.objects.store()
	patch := s.Patch
	s.Patch = func(ns, name string, p []byte) error {
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.holding {
			h.queued = append(h.queued, [3]string{ns, name, string(p)})
			return nil
		}
		return patch(ns, name, p)
	}
	return s
}

func (h *heldObjects) hold(on bool) {
	h.mu.Lock()
	h.holding = on
	q := h.queued
	h.queued = nil
	h.mu.Unlock()
	if !on {
		patch := h.objects.store().Patch
		for _, w := range q {
			_ = patch(w[0], w[1], []byte(w[2]))
		}
	}
}

// With ServeSaved a leader serves a decision only once its store holds
// it: a leader whose writes do not arrive never moves traffic that the
// next leader would not resume from, and serves the same weights when it
// steps down as before.
func TestALeaderServesOnlyWhatItsStoreHolds(t *testing.T) {
	db := newTSDB(t)
	newTraffic(db).drive(t, 5, func() float64 { return 0 })
	m := loadMesh(t, meshYAML)
	objs := &heldObjects{objects: newObjects()}
	objs.hold(true)
	c, err := New(Config{Store: objs.store(), ServeSaved: true, Querier: db.querier(), Tick: 100 * time.Millisecond}, discard(), nil)
	if err != nil {
		t.Fatal(err)
	}
	file := map[string]uint32{"v1": 80, "v2": 20}
	if got := weightsOf(c.Overlay(m)); !maps.Equal(got, file) {
		t.Errorf("serves %v before the start is saved, want the file's %v", got, file)
	}
	objs.hold(false)
	step1 := map[string]uint32{"v1": 60, "v2": 20, "v3": 20}
	if got := weightsOf(c.Overlay(m)); !maps.Equal(got, step1) {
		t.Errorf("serves %v once the start is saved, want step 1's %v", got, step1)
	}

	objs.hold(true)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(ctx, func() {}) }()
	t.Cleanup(func() { cancel(); <-done })
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if st, _ := c.Get("default", "reviews"); st.Step >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no advance")
		}
	}
	if got := weightsOf(c.Overlay(m)); !maps.Equal(got, step1) {
		t.Errorf("serves %v after an advance its store does not hold, want step 1's %v", got, step1)
	}
	cancel()
	<-done
	c.Follow()
	if got := weightsOf(c.Overlay(m)); !maps.Equal(got, step1) {
		t.Errorf("serves %v on stepping down, want step 1's %v, as before", got, step1)
	}
}
