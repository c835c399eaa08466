//go:build faults

package faults

import (
	"context"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
)

const (
	kills      = 20
	k9Clients  = 1000
	k9Conns    = 32
	k9Services = 20
	// k9Interval is --metrics.interval: what a kill may lose of access-log counts.
	k9Interval = time.Second
	// alsSlack is what may be in flight besides the interval: sent by the
	// client, not yet read by glassmesh.
	alsSlack = 500 * time.Millisecond
)

var kill9Seed = flag.Uint64("kill9.seed", 0, "seed of the kill -9 moments (0: from the clock; the seed is logged)")

// TestKill9UnderMixedLoad: glassmesh takes OTLP/gRPC and Zipkin spans,
// remote-write samples and Envoy access logs, and serves 1,000 xDS
// clients, while it is killed with SIGKILL 20 times at random moments and
// started again on the same data dir and ports. Every acknowledged span and
// sample must be read back after each restart and at the end; the
// access-log counts (istio_requests_total) may lose at most one
// --metrics.interval per kill; every xDS client gets its config again after
// every restart.
func TestKill9UnderMixedLoad(t *testing.T) {
	seed := *kill9Seed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (rerun with -args -kill9.seed=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 9))

	cfg := t.TempDir()
	if err := os.WriteFile(filepath.Join(cfg, "mesh.yaml"), meshYAML(k9Services, 50), 0o644); err != nil {
		t.Fatal(err)
	}
	n := newNode(t, t.TempDir(), "--config", cfg, "--metrics.interval", k9Interval.String())
	n.start(t)

	l := newLedger()
	f := &fleet{services: k9Services}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	dial := func() *grpc.ClientConn {
		// Reconnect quickly, as Envoy does (its xDS retry starts at 500 ms);
		// grpc-go's default backoff starts at 1 s and grows to 2 minutes.
		cc, err := grpc.NewClient(n.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithConnectParams(grpc.ConnectParams{Backoff: backoff.Config{BaseDelay: 100 * time.Millisecond,
				Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second}, MinConnectTimeout: time.Second}))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cc.Close() })
		return cc
	}
	conns := make([]*grpc.ClientConn, k9Conns)
	for i := range conns {
		conns[i] = dial()
	}
	for c := range k9Clients {
		wg.Go(func() { reconnecting(ctx, conns[c%k9Conns], f, c) })
	}
	telemetry := dial()
	wg.Go(func() { sendOTLP(ctx, telemetry, l) })
	wg.Go(func() { sendALS(ctx, telemetry, l) })
	wg.Go(func() { sendZipkin(ctx, "http://"+n.zipkin+"/api/v2/spans", l) })
	wg.Go(func() { sendRemoteWrite(ctx, "http://"+n.http+"/api/v1/write", l) })

	synced := int64(0)
	waitRecovered(t, n, f, l, &synced, time.Now().Add(-time.Hour))
	killedAt := map[int]time.Time{}
	var readyTimes []time.Duration
	for k := range kills {
		wait := time.Duration(300+rng.IntN(2700)) * time.Millisecond
		time.Sleep(wait)
		l.mu.Lock()
		killedAt[l.epoch] = time.Now()
		l.mu.Unlock()
		n.kill(t)
		l.mu.Lock()
		l.epoch++
		l.mu.Unlock()
		l.mark()
		began := time.Now()
		ready := n.start(t)
		readyTimes = append(readyTimes, ready)
		recovered := waitRecovered(t, n, f, l, &synced, began)
		traces, samples := readBack(t, n, l, false)
		t.Logf("kill %d of %d, %s after the last check: ready in %s; %s; read back the epoch's %d acknowledged traces and all %d acknowledged samples",
			k+1, kills, wait, ready.Round(time.Millisecond), recovered, traces, samples)
	}
	cancel()
	wg.Wait()
	time.Sleep(3 * k9Interval) // the last interval's access-log counts are flushed
	traces, samples := readBack(t, n, l, true)
	slices.Sort(readyTimes)
	t.Logf("%d kills: every one of %d acknowledged traces (%d spans) and %d samples read back; time to ready p50 %s, max %s",
		kills, traces, l.spanCount(), samples, readyTimes[len(readyTimes)/2].Round(time.Millisecond), readyTimes[len(readyTimes)-1].Round(time.Millisecond))
	checkALS(t, n, l, killedAt)
}

// reconnecting runs one raw ADS client, opening a new stream whenever the
// last one ended (waiting for the server to come back).
func reconnecting(ctx context.Context, cc *grpc.ClientConn, f *fleet, id int) {
	for ctx.Err() == nil {
		st, err := discovery.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(ctx, grpc.WaitForReady(true))
		if err != nil {
			time.Sleep(100 * time.Millisecond) // ctx ended; WaitForReady waits out the rest
			continue
		}
		f.client(st, id, false)
	}
}

// waitRecovered waits until every xDS client has its config again and
// every kind of ingest was acknowledged after began, and says how long
// each took.
func waitRecovered(t *testing.T, n *node, f *fleet, l *ledger, synced *int64, began time.Time) string {
	t.Helper()
	var firsts []string
	for _, kind := range []string{"otlp", "zipkin", "remote-write", "als"} {
		eventually(t, time.Minute, kind+" acknowledged after the restart", func() error {
			if !l.acked(kind, began) {
				return fmt.Errorf("not yet")
			}
			return nil
		})
		firsts = append(firsts, fmt.Sprintf("%s %s", kind, l.firstAck(kind).Sub(began).Round(10*time.Millisecond)))
	}
	want := *synced + k9Clients
	eventually(t, 2*time.Minute, "every xDS client has its config again", func() error {
		if got := f.ready.Load(); got < want {
			return fmt.Errorf("%d of %d", got-*synced, k9Clients)
		}
		return nil
	})
	*synced = want
	return fmt.Sprintf("first acks by %v; %d xDS clients synced %s after the start",
		firsts, k9Clients, time.Since(began).Round(10*time.Millisecond))
}

// readBack reads back the traces acknowledged since the last call (all of
// them when all is set) and every acknowledged sample; any one missing
// fails the test.
func readBack(t *testing.T, n *node, l *ledger, all bool) (traces, samples int) {
	t.Helper()
	l.mu.Lock()
	ids := l.fresh
	if all {
		ids = make([]string, 0, len(l.traces))
		for id := range l.traces {
			ids = append(ids, id)
		}
	}
	l.fresh = nil
	want := make(map[string][]string, len(ids))
	for _, id := range ids {
		want[id] = l.traces[id]
	}
	acked := slices.Clone(l.samples)
	l.mu.Unlock()

	var lost atomic.Int64
	parallel(8, ids, func(id string) {
		got := n.traceSpans(t, id)
		for _, s := range want[id] {
			if !slices.Contains(got, s) {
				lost.Add(1)
				t.Errorf("acknowledged span %s of trace %s not read back (%d spans found)", s, id, len(got))
			}
		}
	})
	stored := map[rwSample]bool{}
	for _, s := range n.query(t, `k9_rw[1h]`) {
		for _, v := range s.Values {
			ts := int64(math.Round(v[0].(float64) * 1000))
			stored[rwSample{series: s.Metric["series"], ts: ts, value: promFloat(t, v[1])}] = true
		}
	}
	for _, s := range acked {
		if !stored[s] {
			lost.Add(1)
			t.Errorf("acknowledged sample %+v not read back", s)
		}
	}
	if lost.Load() > 0 {
		t.FailNow()
	}
	return len(ids), len(acked)
}

// parallel calls f on every item from w goroutines.
func parallel(w int, items []string, f func(string)) {
	ch := make(chan string)
	var wg sync.WaitGroup
	for range w {
		wg.Go(func() {
			for it := range ch {
				f(it)
			}
		})
	}
	for _, it := range items {
		ch <- it
	}
	close(ch)
	wg.Wait()
}

func (l *ledger) spanCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, s := range l.traces {
		n += len(s)
	}
	return n
}

// checkALS compares each epoch's istio_requests_total with the entries
// its stream sent: never more (a count applied twice), and at most what
// was sent in the last metrics interval (and what was in flight) before
// the kill that ended it; the last epoch, never killed, loses nothing.
func checkALS(t *testing.T, n *node, l *ledger, killedAt map[int]time.Time) {
	t.Helper()
	stored := map[string]float64{}
	for _, s := range n.query(t, `sum by (source_workload) (istio_requests_total{source_workload=~"k9-als-.+"})`) {
		stored[s.Metric["source_workload"]] = promFloat(t, s.Value[1])
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	var worst, total float64
	for e := 0; e <= l.epoch; e++ {
		var sent, safe float64 // safe: sent before the kill's last interval
		kill, killed := killedAt[e]
		if len(l.als[e]) == 0 {
			continue
		}
		for _, s := range l.als[e] {
			sent += float64(s.entries)
			if !killed || s.at.Before(kill.Add(-k9Interval-alsSlack)) {
				safe += float64(s.entries)
			}
		}
		got := stored[alsWorkload(e)]
		lost := sent - got
		total += max(lost, 0)
		rate := sent / max(l.als[e][len(l.als[e])-1].at.Sub(l.als[e][0].at).Seconds(), 0.001)
		t.Logf("ALS epoch %d: %.0f entries sent, %.0f counted, %.0f lost (%.2f s of its rate)", e, sent, got, lost, lost/rate)
		worst = max(worst, lost/rate)
		if got > sent {
			t.Errorf("ALS epoch %d: %.0f requests counted, only %.0f sent", e, got, sent)
		}
		if got < safe {
			t.Errorf("ALS epoch %d: %.0f requests counted, but %.0f were sent more than %s before the kill", e, got, safe, k9Interval+alsSlack)
		}
	}
	t.Logf("ALS: %.0f entries lost over %d kills, at most %.2f s of an epoch's traffic (the interval is %s)", total, kills, worst, k9Interval)
}
