package canary

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// An error-budget policy (Config.Frozen) pauses a progressing canary of
// its service and refuses promote and resume while the budget is spent;
// when the budget is back, the canary it paused resumes.
func TestAFrozenServicePausesItsCanaries(t *testing.T) {
	db := newTSDB(t)
	newTraffic(db).drive(t, 5, func() float64 { return 0 })
	m := loadMesh(t, meshYAML)
	var frozen atomic.Value
	frozen.Store("")
	c, err := New(Config{DataDir: t.TempDir(), Querier: db.querier(), Tick: 100 * time.Millisecond,
		Frozen: func(namespace, service string) string {
			if namespace != "default" || service != "reviews" {
				t.Errorf("Frozen asked about %s/%s, want default/reviews", namespace, service)
			}
			return frozen.Load().(string)
		}}, discard(), nil)
	if err != nil {
		t.Fatal(err)
	}
	c.Overlay(m)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(ctx, func() { c.Overlay(m) }) }()
	t.Cleanup(func() { cancel(); <-done })
	waitState(t, c, Progressing, 10*time.Second)

	reason := "SLOPolicy default/reviews: SLO avail's error budget is exhausted (-3.0% left)"
	frozen.Store(reason)
	st := waitState(t, c, Paused, 10*time.Second)
	if d := st.Decisions[len(st.Decisions)-1]; d.Verdict != Pause || d.By != ByPolicy || d.Reason != reason || st.Frozen != reason {
		t.Errorf("pause record %+v, frozen %q", d, st.Frozen)
	}
	for _, action := range []Verdict{Promote, Resume} {
		if _, _, err := c.Act("default", "reviews", action, ""); !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), reason) {
			t.Errorf("%s while frozen: %v, want a conflict naming the policy's reason", action, err)
		}
	}

	frozen.Store("")
	st = waitState(t, c, Progressing, 10*time.Second)
	if d := st.Decisions[len(st.Decisions)-1]; d.Verdict != Resume || d.By != ByPolicy || !strings.Contains(d.Reason, "the error budget is back") || st.Frozen != "" {
		t.Errorf("resume record %+v, frozen %q", d, st.Frozen)
	}
}
