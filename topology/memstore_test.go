package topology

import (
	"context"
	"testing"
	"time"
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
