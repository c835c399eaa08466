package topology

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMemoryWindowsCountEachRequestOnce(t *testing.T) {
	now := fixtureNow
	g, err := New(Config{}, nil, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	g.now = func() time.Time { return now }
	g.started = now.Add(-time.Hour)
	ctx := context.Background()
	calls := fixtureCalls()[:1] // 600 requests productpage → reviews-v1, both reporters
	for _, ago := range []time.Duration{50 * time.Minute, 20 * time.Minute, 5 * time.Minute, 30 * time.Second} {
		if err := g.ConsumeRequests(ctx, requests(calls, now.Add(-ago))); err != nil {
			t.Fatal(err)
		}
	}
	rate := func(d time.Duration) float64 {
		rows, _ := g.memoryRows(now, d, false)
		total := 0.0
		for _, r := range rows {
			total += r.val.Requests
		}
		return total * d.Seconds()
	}
	for _, tc := range []struct {
		d    time.Duration
		want float64
	}{{time.Minute, 600}, {10 * time.Minute, 1200}, {30 * time.Minute, 1800}, {time.Hour, 2400}} {
		if got := rate(tc.d); got != tc.want {
			t.Errorf("requests in the last %s = %v, want %v", tc.d, got, tc.want)
		}
	}
	t.Run("thinning keeps the fine window exact and drops nothing recent", func(t *testing.T) {
		g.thin()
		for _, s := range g.series {
			if len(s.snaps) > 4 {
				t.Errorf("%d snaps after thinning", len(s.snaps))
			}
		}
		if got := rate(10 * time.Minute); got != 1200 {
			t.Errorf("last 10m after thinning = %v, want 1200", got)
		}
	})
	t.Run("history older than the max window is forgotten", func(t *testing.T) {
		now = now.Add(2 * time.Hour)
		g.thin()
		if len(g.series) != 0 {
			t.Errorf("%d series left", len(g.series))
		}
	})
}

func TestSeriesLimitDropsNewSeries(t *testing.T) {
	g, err := New(Config{MaxSeries: 2}, nil, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	reqs := requests(fixtureCalls(), time.Now())
	if err := g.ConsumeRequests(context.Background(), reqs); err != nil {
		t.Fatal(err)
	}
	if len(g.series) != 2 {
		t.Errorf("%d series held, want the limit 2", len(g.series))
	}
}

func TestIdleNodesAreSeriesQuietInTheWindow(t *testing.T) {
	now := fixtureNow
	g, err := New(Config{}, nil, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	g.now = func() time.Time { return now }
	g.started = now.Add(-time.Hour)
	calls := fixtureCalls()
	ctx := context.Background()
	if err := g.ConsumeRequests(ctx, requests(calls[6:7], now.Add(-30*time.Minute))); err != nil { // reviews-v1 → mysql, long ago
		t.Fatal(err)
	}
	if err := g.ConsumeRequests(ctx, requests(calls[:1], now.Add(-time.Minute))); err != nil { // productpage → reviews-v1
		t.Fatal(err)
	}
	for _, tc := range []struct {
		query string
		nodes []string
	}{
		{"appenders=idleNode", []string{"wk:mysql-v1(metrics)", "wk:productpage-v1(metrics)", "wk:reviews-v1(metrics)"}},
		{"appenders=deadNode", []string{"wk:productpage-v1(metrics)", "wk:reviews-v1(metrics)"}},
	} {
		t.Run(tc.query, func(t *testing.T) {
			c := buildFixture(t, g, tc.query, pathMemory)
			nodes, edges, byLabel, _ := summary(c)
			if !slices.Equal(nodes, tc.nodes) || len(edges) != 1 {
				t.Fatalf("nodes %q edges %q", nodes, edges)
			}
			if m := byLabel["wk:mysql-v1"]; m != nil && (!m.IsIdle || m.Traffic != nil) {
				t.Errorf("mysql isIdle=%v traffic=%v, want idle without traffic", m.IsIdle, m.Traffic)
			}
			if byLabel["wk:reviews-v1"].IsIdle {
				t.Error("reviews-v1 had traffic in the window but is idle")
			}
		})
	}
}

func TestSameParametersShareOneResultForARefreshInterval(t *testing.T) {
	now := fixtureNow
	g := newFixtureGraph(t, now)
	g.now = func() time.Time { return now }
	o := DefaultOptions()
	ctx := context.Background()
	a, err := g.Build(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	now = now.Add(o.Refresh / 2)
	if b, _ := g.Build(ctx, o); b != a {
		t.Error("a second call within the refresh interval computed again")
	}
	o2 := o
	o2.GraphType = GraphTypeApp
	if c, _ := g.Build(ctx, o2); c == a {
		t.Error("other parameters got the cached graph")
	}
	now = now.Add(o.Refresh)
	if d, _ := g.Build(ctx, o); d == a {
		t.Error("the cache outlived the refresh interval")
	}
}

func TestConfigValidateNamesTheKey(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{BucketWidth: -1}, "topology.bucket-width"},
		{Config{MaxWindow: -1}, "topology.max-window"},
		{Config{MaxSeries: -1}, "topology.max-series"},
		{Config{StreamQueue: -1}, "topology.stream-queue"},
		{Config{MinRefresh: -1}, "topology.min-refresh"},
		{Config{Health: []Tolerance{{Code: "(", Protocol: "http"}}}, "topology.health[0]: code"},
		{Config{Health: []Tolerance{{Code: "5..", Protocol: "http", Degraded: 20, Failure: 10}}}, "topology.health[0]: need"},
	} {
		err := tc.cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want an error naming %s", tc.cfg, err, tc.want)
		}
		if _, err := New(tc.cfg, nil, nil, nil, nil); err == nil {
			t.Errorf("New accepted %+v", tc.cfg)
		}
	}
	if err := (Config{}).Validate(); err != nil {
		t.Errorf("zero config: %v", err)
	}
}

func TestRunThinsUntilCancelled(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	g, err := New(Config{BucketWidth: 10 * time.Millisecond, MaxWindow: 50 * time.Millisecond}, nil, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.ConsumeRequests(context.Background(), requests(fixtureCalls()[:1], time.Time{})); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- g.Run(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		g.mu.Lock()
		n := len(g.series)
		g.mu.Unlock()
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Run never forgot history older than the max window")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestHTTPCallersAndStreamsShareTheEncodedGraph(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	now := fixtureNow
	g := newFixtureGraph(t, now)
	g.now = func() time.Time { return now }
	o := DefaultOptions()
	a, err := g.buildJSON(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	b, err := g.buildJSON(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if &a[0] != &b[0] {
		t.Error("the second caller encoded the graph again")
	}
	// A stream of the same parameters within half a refresh sends the
	// very same bytes as its event's data.
	bc, s := g.subscribe(o)
	m := <-s.ch
	if len(m) != 3 || &m[1][0] != &a[0] || !strings.HasPrefix(string(m[0]), "event: graph\n") {
		t.Errorf("the stream's event does not share the cached JSON: %q", m[0])
	}
	g.unsubscribe(bc, s)
	_ = g.Close()
}
