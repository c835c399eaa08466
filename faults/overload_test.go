//go:build faults

package faults

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alecthomas/units"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

var (
	overloadDuration = flag.Duration("overload.duration", envDuration("OVERLOAD_DURATION", time.Minute),
		"how long TestOverload drives every ingest path at once ($OVERLOAD_DURATION)")
	overloadLimit = flag.String("overload.limit", "512MiB",
		"the --memory.limit TestOverload asserts under: one this machine's load presses against")
	overloadDefault = flag.Bool("overload.default", true, "also run TestOverload with the default --memory.limit (2GiB) and report it")
)

func envDuration(name string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(os.Getenv(name)); err == nil {
		return d
	}
	return def
}

const (
	sustainableClients = 2  // per path: the baseline, and the recovery probe
	overloadClients    = 64 // per path: 32× the baseline's, none backing off
	baselineFor        = 5 * time.Second
	recoveryTarget     = 5 * time.Second
	recoveryDeadline   = 25 * time.Second
	recoveredShare     = 0.8 // of the baseline rate, in a one-second window
)

// TestOverload drives every ingest path (OTLP/gRPC traces, Zipkin, ALS,
// remote-write, OTLP/HTTP metrics) at once far beyond what glassmesh can
// take, with clients that never back off, and checks that glassmesh
// refuses what it cannot take with 429 + Retry-After or RESOURCE_EXHAUSTED
// + RetryInfo (never a 5xx, another error or a hang), stays under its
// --memory.limit, keeps what it acknowledged, and is back to full
// throughput soon after the load stops.
func TestOverload(t *testing.T) {
	t.Run("limit "+*overloadLimit, func(t *testing.T) { overload(t, *overloadLimit) })
	if *overloadDefault {
		t.Run("default limit 2GiB", func(t *testing.T) { overload(t, "2GiB") })
	}
}

// run is one glassmesh under test and the paths into it.
type overloadRun struct {
	g     *glassmesh
	paths []path
	acks  map[string]*ackLog
	als   atomic.Int64 // ALS entries of streams that ended OK
}

func overload(t *testing.T, limit string) {
	budget, err := units.ParseBase2Bytes(limit)
	if err != nil {
		t.Fatal(err)
	}
	otlpHTTP, zipkinAddr := freeAddr(t), freeAddr(t)
	r := &overloadRun{acks: map[string]*ackLog{}}
	r.g = start(t, "--memory.limit", limit, "--otlp-http-addr", otlpHTTP, "--zipkin-addr", zipkinAddr, "--metrics.interval", "1s")
	r.paths = r.newPaths(t, otlpHTTP, zipkinAddr)
	rss := sampleRSS(t, r.g.cmd.Process.Pid)

	base := measure(t, r.paths, sustainableClients, baselineFor)
	for i, p := range r.paths {
		t.Logf("%-13s sustainable (%d clients per path, all paths at once): %8.0f %s/s, %d refused, %d failed",
			p.name, sustainableClients, base[i].rate, p.unit, base[i].c.refused.Load(), base[i].c.failed.Load())
	}

	t.Logf("overload: %d clients per path, %s", overloadClients, *overloadDuration)
	load := measure(t, r.paths, overloadClients, *overloadDuration)
	stopped := time.Now()
	for i, p := range r.paths {
		c := load[i].c
		offered := float64(c.offeredUnits.Load()) / overloadDuration.Seconds()
		t.Logf("%-13s offered %9.0f %s/s (%5.1f× sustainable), accepted %8.0f/s; requests: %d accepted, %d refused, %d failed",
			p.name, offered, p.unit, offered/base[i].rate, load[i].rate, c.accepted.Load(), c.refused.Load(), c.failed.Load())
		if n := c.failed.Load(); n > 0 {
			t.Errorf("%s: %d requests neither accepted nor refused with a retry delay; the first: %s", p.name, n, *c.firstFailure.Load())
		}
		if c.accepted.Load() == 0 {
			t.Errorf("%s: nothing accepted under overload", p.name)
		}
		// ALS is pushed back by HTTP/2 flow control (a stream's sender
		// blocks while glassmesh is busy); only the memory budget or the
		// stream cap refuse it. Every unary path must have refused.
		if p.name != "als" && c.refused.Load() == 0 {
			t.Errorf("%s: nothing refused: the load did not overload it", p.name)
		}
	}
	r.logRefusals(t)

	recovered := recovery(t, r.paths, base, stopped)
	peak := rss.stop()
	t.Logf("peak RSS %s (anon %s, file %s) under --memory.limit %s", mib(peak.rss), mib(peak.anon), mib(peak.file), limit)
	if peak.rss > int64(budget) {
		t.Errorf("peak RSS %s over --memory.limit %s", mib(peak.rss), limit)
	}
	t.Logf("recovery to %.0f%% of the sustainable rate on every path: %s (target %s)", recoveredShare*100, recovered.Round(100*time.Millisecond), recoveryTarget)
	r.checkQueryable(t)
}

// newPaths builds the five paths' clients, each with its own connection.
func (r *overloadRun) newPaths(t *testing.T, otlpHTTP, zipkinAddr string) []path {
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4 * overloadClients}}
	dial := func() *grpc.ClientConn {
		conn, err := grpc.NewClient(r.g.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return conn
	}
	for _, name := range []string{"otlp-traces", "zipkin", "remote-write", "otlp-metrics"} {
		r.acks[name] = &ackLog{}
	}
	otlpBodies, otlpIDs := newOTLPTraceBodies()
	zipkinBodies, zipkinIDs := newZipkinBodies()
	return []path{
		{name: "otlp-traces", unit: "spans", newCl: func(id int) client {
			return &otlpTraces{conn: dial(), bodies: otlpBodies, ids: otlpIDs, n: id, acks: r.acks["otlp-traces"]}
		}},
		{name: "zipkin", unit: "spans", newCl: func(id int) client {
			return &zipkin{url: "http://" + zipkinAddr + "/api/v2/spans", hc: hc, bodies: zipkinBodies, ids: zipkinIDs, n: id, acks: r.acks["zipkin"]}
		}},
		{name: "als", unit: "entries", newCl: func(id int) client {
			first, next := newALSMessages(id)
			return &als{conn: dial(), first: first, next: next, ackedUnits: &r.als}
		}},
		{name: "remote-write", unit: "samples", newCl: func(id int) client {
			return newRemoteWrite("http://"+r.g.httpAddr+"/api/v1/write", hc, nextClientID(), r.acks["remote-write"])
		}},
		{name: "otlp-metrics", unit: "points", newCl: func(id int) client {
			return &otlpMetrics{url: "http://" + otlpHTTP + "/v1/metrics", hc: hc, id: nextClientID(), acks: r.acks["otlp-metrics"]}
		}},
	}
}

// clientIDs keep every metrics client's series its own across phases,
// so that no two send the same series out of order.
var clientIDs atomic.Int64

func nextClientID() int { return int(clientIDs.Add(1)) }

// result is one path's counts over a phase and its accepted units/s.
type result struct {
	c    *counts
	rate float64
}

// measure drives every path with n clients each for d and returns each
// path's counts and accepted rate.
func measure(t *testing.T, paths []path, n int, d time.Duration) []result {
	t.Helper()
	clients := make([][]client, len(paths))
	for i, p := range paths {
		for j := range n {
			clients[i] = append(clients[i], p.newCl(j))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	out := make([]result, len(paths))
	var wgs []*sync.WaitGroup
	began := time.Now()
	for i := range paths {
		out[i].c = &counts{}
		wgs = append(wgs, drive(ctx, clients[i], out[i].c))
	}
	for _, wg := range wgs {
		wg.Wait()
	}
	took := time.Since(began).Seconds()
	for i := range out {
		out[i].rate = float64(out[i].c.units.Load()) / took
	}
	return out
}

// recovery probes every path with the baseline's clients in one-second
// windows from the moment the load stopped until each path's window rate
// is back to recoveredShare of its baseline, and returns how long that
// took for the slowest path. It fails the test past recoveryDeadline.
func recovery(t *testing.T, paths []path, base []result, stopped time.Time) time.Duration {
	t.Helper()
	back := make([]time.Duration, len(paths))
	for time.Since(stopped) < recoveryDeadline {
		w := measure(t, paths, sustainableClients, time.Second)
		done := true
		for i := range paths {
			if back[i] == 0 && w[i].rate >= recoveredShare*base[i].rate {
				back[i] = time.Since(stopped)
			}
			done = done && back[i] > 0
		}
		if done {
			break
		}
	}
	var slowest time.Duration
	for i, p := range paths {
		if back[i] == 0 {
			t.Errorf("%s: not back to %.0f%% of %0.f %s/s within %s of the load stopping", p.name, recoveredShare*100, base[i].rate, p.unit, recoveryDeadline)
			continue
		}
		t.Logf("%-13s back to full throughput %s after the load stopped", p.name, back[i].Round(100*time.Millisecond))
		slowest = max(slowest, back[i])
	}
	return slowest
}

// logRefusals logs glassmesh's own count of refusals by reason.
func (r *overloadRun) logRefusals(t *testing.T) {
	t.Helper()
	resp, err := http.Get("http://" + r.g.httpAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 1<<20)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	for _, l := range strings.Split(b.String(), "\n") {
		for _, m := range []string{"glassmesh_ingest_memory_refused_total", "glassmesh_ingest_rejected_requests_total", "glassmesh_receiver_refused_spans_total",
			"glassmesh_receiver_streams_ended_total", "glassmesh_traces_overloaded_total"} {
			if strings.HasPrefix(l, m) {
				t.Logf("glassmesh: %s", l)
			}
		}
	}
}

// checkQueryable reads back some of what was acknowledged on each path.
func (r *overloadRun) checkQueryable(t *testing.T) {
	t.Helper()
	for _, name := range []string{"otlp-traces", "zipkin"} {
		ids := r.acks[name].list()
		for _, id := range ids[:min(5, len(ids))] {
			resp, err := http.Get("http://" + r.g.httpAddr + "/api/traces/" + id)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("%s: acknowledged trace %s: %s", name, id, resp.Status)
			}
		}
	}
	for _, name := range []string{"remote-write", "otlp-metrics"} {
		acked := r.acks[name].list()
		for _, a := range acked[:min(5, len(acked))] {
			sel, v, _ := strings.Cut(a, " ")
			want, _ := strconv.ParseFloat(v, 64)
			eventually(t, 10*time.Second, name+" "+a, func() error {
				got, err := promQuery(r.g.httpAddr, "max_over_time("+sel+"[1h])")
				if err != nil {
					return err
				}
				if got < want {
					return fmt.Errorf("%s: %g, acknowledged %g", sel, got, want)
				}
				return nil
			})
		}
	}
	acked := float64(r.als.Load())
	eventually(t, 15*time.Second, "ALS entries counted", func() error {
		got, err := promQuery(r.g.httpAddr, "sum(istio_requests_total)")
		if err != nil {
			return err
		}
		if got < acked {
			return fmt.Errorf("istio_requests_total %g < %g entries of streams that ended OK", got, acked)
		}
		return nil
	})
}

func mib(n int64) string { return fmt.Sprintf("%d MiB", n>>20) }

// rssPeak is the most a process held, from /proc/PID/status.
type rssPeak struct{ rss, anon, file int64 }

// rssSampler reads a process's resident memory every second.
type rssSampler struct {
	stopCh chan struct{}
	done   chan rssPeak
}

// sampleRSS starts sampling pid's VmRSS, RssAnon and RssFile every second.
func sampleRSS(t *testing.T, pid int) *rssSampler {
	s := &rssSampler{stopCh: make(chan struct{}), done: make(chan rssPeak, 1)}
	go func() {
		var peak rssPeak
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
			if err == nil {
				cur := parseStatus(string(b))
				peak = rssPeak{max(peak.rss, cur.rss), max(peak.anon, cur.anon), max(peak.file, cur.file)}
			}
			select {
			case <-tick.C:
			case <-s.stopCh:
				s.done <- peak
				return
			}
		}
	}()
	t.Cleanup(func() {
		select {
		case <-s.stopCh:
		default:
			s.stop()
		}
	})
	return s
}

// stop ends sampling and returns the peaks.
func (s *rssSampler) stop() rssPeak {
	close(s.stopCh)
	return <-s.done
}

// parseStatus reads the resident sizes of a /proc/PID/status.
func parseStatus(status string) rssPeak {
	var p rssPeak
	for _, l := range strings.Split(status, "\n") {
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			continue
		}
		switch k {
		case "VmRSS":
			p.rss = kb << 10
		case "RssAnon":
			p.anon = kb << 10
		case "RssFile":
			p.file = kb << 10
		}
	}
	return p
}
