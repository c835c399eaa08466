//go:build faults

package faults

import (
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// sampleEvery is how often the soak samples glassmesh.
const sampleEvery = 10 * time.Second

// soakDuration is GLASSMESH_SOAK (a Go duration) or the hour.
func soakDuration(t *testing.T) time.Duration {
	v := os.Getenv("GLASSMESH_SOAK")
	if v == "" {
		return time.Hour
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 4*time.Minute {
		t.Fatalf("GLASSMESH_SOAK=%q: want a Go duration of at least 4m (a 2m warm-up, then the measure)", v)
	}
	return d
}

// soakPlan sizes the retentions to the run: short enough that the data
// dir reaches its steady state (blocks cut, then deleted) within the
// warm-up, so that what grows after it grows without bound.
type soakPlan struct {
	run, retention, block, warm time.Duration
}

func planSoak(run time.Duration) soakPlan {
	// Five minutes for the hour; a minute for a short run.
	retention := min(max(run/12, time.Minute), 5*time.Minute).Round(time.Second)
	// The metrics head must span at least 4 flushes (--metrics.interval 5s)
	// so late zero samples stay appendable (metrics.StorageConfig).
	block := max(retention/5, 20*time.Second)
	// Blocks live a retention after their last sample, which is a block
	// after their first: two retentions cover the first block's life.
	return soakPlan{run: run, retention: retention, block: block, warm: 2 * retention}
}

// sample is one reading of glassmesh and its data dir.
type sample struct {
	at                               time.Duration // since the traffic started
	rss, heap, goroutines, fds, disk float64
	spansWritten, requestsConsumed   float64
}

// series names the columns of a sample that must stay flat, each with
// how much growth over the measured window is tolerated: a fraction of its
// warm level plus an absolute slack (for small counts).
var series = []struct {
	name, unit string
	get        func(sample) float64
	frac, abs  float64
}{
	{"rss", "MB", func(s sample) float64 { return s.rss / 1e6 }, 0.10, 0},
	{"live heap", "MB", func(s sample) float64 { return s.heap / 1e6 }, 0.10, 0},
	{"goroutines", "", func(s sample) float64 { return s.goroutines }, 0.05, 10},
	{"open fds", "", func(s sample) float64 { return s.fds }, 0.05, 5},
	{"data dir", "MB", func(s sample) float64 { return s.disk / 1e6 }, 0.10, 1},
}

// TestSoak runs `glassmesh demo` (its Bookinfo-like mesh of proxyless
// apps and its traffic generator) with retentions of minutes for
// GLASSMESH_SOAK [1h], sampling glassmesh's RSS, live heap, goroutines,
// open files and data dir every 10 s. After the warm-up, a least-squares
// line through each series must not climb more than its tolerance over the
// rest of the run: a leak fails. The samples go to a CSV and an SVG curve
// (GLASSMESH_SOAK_OUT, else a temporary directory; the path is logged).
func TestSoak(t *testing.T) {
	p := planSoak(soakDuration(t))
	t.Logf("soak %s: retention %s, block duration %s, warm-up %s", p.run, p.retention, p.block, p.warm)
	ret := strconv.Itoa(int(p.retention.Seconds())) + "s"
	g := startCommand(t, "demo", "--config", t.TempDir(),
		"--retention.metrics", ret, "--retention.traces", ret,
		"--metrics.block-duration", p.block.String(), "--traces.block-duration", p.block.String())
	dataDir := dataDirOf(t, g)

	eventually(t, 2*time.Minute, "demo traffic reaches glassmesh", func() error {
		if n := g.metric(t, "glassmesh_metrics_requests_consumed_total"); n == 0 {
			return fmt.Errorf("no requests reported yet")
		}
		return nil
	})
	out := soakOut(t)
	csv := filepath.Join(out, "soak.csv")
	t.Logf("samples go to %s", csv)
	var samples []sample
	begin := time.Now()
	tick := time.NewTicker(sampleEvery)
	defer tick.Stop()
	for {
		s := g.sample(t, dataDir)
		s.at = time.Since(begin)
		samples = append(samples, s)
		if n := len(samples); n > 1 {
			requireTraffic(t, samples[n-2], s)
		}
		// Rewritten every time, so an aborted soak still leaves its curve.
		if err := writeCSV(csv, samples); err != nil {
			t.Fatal(err)
		}
		if len(samples)%30 == 1 {
			t.Logf("%s: rss %.0f MB, live heap %.0f MB, %.0f goroutines, %.0f fds, data dir %.1f MB, %.0f spans, %.0f requests",
				s.at.Round(time.Second), s.rss/1e6, s.heap/1e6, s.goroutines, s.fds, s.disk/1e6, s.spansWritten, s.requestsConsumed)
		}
		if s.at >= p.run {
			break
		}
		<-tick.C
	}
	if err := os.WriteFile(filepath.Join(out, "soak.svg"), soakSVG(samples, p), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("curve: %s", filepath.Join(out, "soak.svg"))
	checkFlat(t, samples, p)
}

// dataDirOf is the --data-dir startCommand gave g.
func dataDirOf(t *testing.T, g *glassmesh) string {
	args := g.cmd.Args
	for i, a := range args[:len(args)-1] {
		if a == "--data-dir" {
			return args[i+1]
		}
	}
	t.Fatal("no --data-dir")
	return ""
}

// sample reads glassmesh's process (from /proc), its own metrics and its
// data dir.
func (g *glassmesh) sample(t *testing.T, dataDir string) sample {
	t.Helper()
	pid := g.cmd.Process.Pid
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatalf("glassmesh gone? %v", err)
	}
	return sample{
		rss:              vmRSS(t, pid),
		heap:             g.liveHeap(t),
		goroutines:       g.metric(t, "go_goroutines"),
		fds:              float64(len(fds)),
		disk:             diskUse(t, dataDir),
		spansWritten:     g.metric(t, "glassmesh_trace_store_spans_written_total"),
		requestsConsumed: g.metric(t, "glassmesh_metrics_requests_consumed_total"),
	}
}

// vmRSS is the resident set of process pid in bytes.
func vmRSS(t *testing.T, pid int) float64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb * 1024
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// diskUse is what dir takes on disk, as du counts it: allocated blocks,
// each inode once (a trace block hard-links its WAL segments).
func diskUse(t *testing.T, dir string) float64 {
	t.Helper()
	seen := map[uint64]bool{}
	var total int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			// Retention deletes blocks while we walk.
			if os.IsNotExist(err) {
				return nil
			}
			return err
		}
		fi, err := d.Info()
		if err != nil {
			if os.IsNotExist(err) {
				return nil
			}
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		if !seen[st.Ino] {
			seen[st.Ino] = true
			total += st.Blocks * 512
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return float64(total)
}

// requireTraffic fails unless the demo's traffic went on between two
// samples: a soak without load proves nothing.
func requireTraffic(t *testing.T, prev, cur sample) {
	t.Helper()
	if cur.spansWritten <= prev.spansWritten || cur.requestsConsumed <= prev.requestsConsumed {
		t.Fatalf("%s: no demo traffic in the last %s (spans %.0f -> %.0f, requests %.0f -> %.0f)",
			cur.at.Round(time.Second), sampleEvery, prev.spansWritten, cur.spansWritten, prev.requestsConsumed, cur.requestsConsumed)
	}
}

// soakOut is where the CSV and SVG go: GLASSMESH_SOAK_OUT, or a
// temporary directory kept after the test.
func soakOut(t *testing.T) string {
	if d := os.Getenv("GLASSMESH_SOAK_OUT"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	d, err := os.MkdirTemp("", "glassmesh-soak-")
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// fit is a least-squares line y = a + b·x through points.
func fit(xs, ys []float64) (a, b float64) {
	n := float64(len(xs))
	var sx, sy, sxx, sxy float64
	for i := range xs {
		sx, sy, sxx, sxy = sx+xs[i], sy+ys[i], sxx+xs[i]*xs[i], sxy+xs[i]*ys[i]
	}
	den := n*sxx - sx*sx
	if den == 0 {
		return sy / n, 0
	}
	b = (n*sxy - sx*sy) / den
	return (sy - b*sx) / n, b
}

// measured are the samples after the warm-up: hours since the start, and
// get of each.
func measured(samples []sample, p soakPlan, get func(sample) float64) (xs, ys []float64) {
	for _, s := range samples {
		if s.at >= p.warm {
			xs, ys = append(xs, s.at.Hours()), append(ys, get(s))
		}
	}
	return xs, ys
}

// checkFlat fits a line to each series after the warm-up and fails if it
// climbs more than the series' tolerance over that window. It logs a
// Markdown table (fitted levels, slope, growth) for RELIABILITY.md.
func checkFlat(t *testing.T, samples []sample, p soakPlan) {
	t.Helper()
	table, errs := flatness(samples, p)
	t.Log(table)
	for _, err := range errs {
		t.Error(err)
	}
}

// flatness is checkFlat's table and its failures.
func flatness(samples []sample, p soakPlan) (string, []error) {
	xs, _ := measured(samples, p, func(sample) float64 { return 0 })
	if len(xs) < 10 {
		return "", []error{fmt.Errorf("only %d samples after the %s warm-up", len(xs), p.warm)}
	}
	window := xs[len(xs)-1] - xs[0]
	var (
		table strings.Builder
		errs  []error
	)
	fmt.Fprintf(&table, "\n| series | at %s (fit) | at %s (fit) | slope per hour | growth over %s | allowed |\n| --- | ---: | ---: | ---: | ---: | ---: |\n",
		p.warm, samples[len(samples)-1].at.Round(time.Second), time.Duration(window*float64(time.Hour)).Round(time.Second))
	for _, s := range series {
		xs, ys := measured(samples, p, s.get)
		a, b := fit(xs, ys)
		warm, end := a+b*xs[0], a+b*xs[len(xs)-1]
		growth := b * window
		allowed := s.frac*warm + s.abs
		fmt.Fprintf(&table, "| %s | %.1f %s | %.1f %s | %+.2f %s | %+.1f%% | %.1f %s |\n",
			s.name, warm, s.unit, end, s.unit, b, s.unit, 100*growth/warm, allowed, s.unit)
		if growth > allowed {
			errs = append(errs, fmt.Errorf("%s grows: %.1f -> %.1f %s over %.0f min after the warm-up (%+.2f %s/h), more than the %.1f %s allowed: a leak",
				s.name, warm, end, s.unit, window*60, b, s.unit, allowed, s.unit))
		}
	}
	return table.String(), errs
}

// writeCSV writes the samples, one row each.
func writeCSV(path string, samples []sample) error {
	var b strings.Builder
	b.WriteString("seconds,rss_bytes,live_heap_bytes,goroutines,open_fds,data_dir_bytes,spans_written,requests_consumed\n")
	for _, s := range samples {
		fmt.Fprintf(&b, "%.0f,%.0f,%.0f,%.0f,%.0f,%.0f,%.0f,%.0f\n", s.at.Seconds(), s.rss, s.heap, s.goroutines, s.fds, s.disk, s.spansWritten, s.requestsConsumed)
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// soakSVG draws each series in its own panel, from zero to a little above
// its maximum, with the fitted line over the measured window and the end
// of the warm-up dashed: a hand-written SVG, viewable anywhere.
func soakSVG(samples []sample, p soakPlan) []byte {
	const w, ph, left, right, top, gap = 720.0, 110.0, 70.0, 20.0, 46.0, 30.0
	h := top + float64(len(series))*(ph+gap)
	span := max(samples[len(samples)-1].at.Seconds(), 1)
	x := func(sec float64) float64 { return left + (w-left-right)*sec/span }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" font-family="sans-serif" font-size="11">`+"\n", w, h)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/><text x="%.0f" y="18" font-size="13">glassmesh demo soak: %s, retention %s, sampled every %s; dashed: end of warm-up</text>`+"\n",
		left, p.run, p.retention, sampleEvery)
	for i, s := range series {
		y0 := top + float64(i)*(ph+gap)
		hi := 0.0
		for _, smp := range samples {
			hi = max(hi, s.get(smp))
		}
		hi = niceCeil(hi * 1.1)
		y := func(v float64) float64 { return y0 + ph - ph*v/hi }
		fmt.Fprintf(&b, `<rect x="%.0f" y="%.0f" width="%.0f" height="%.0f" fill="none" stroke="#ccc"/>`+"\n", left, y0, w-left-right, ph)
		fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" text-anchor="end">%g</text><text x="%.0f" y="%.0f" text-anchor="end">0</text>`+"\n", left-4, y0+10, hi, left-4, y0+ph)
		fmt.Fprintf(&b, `<text x="%.0f" y="%.0f">%s %s</text>`+"\n", left, y0-4, s.name, s.unit)
		var pts strings.Builder
		for _, smp := range samples {
			fmt.Fprintf(&pts, "%.1f,%.1f ", x(smp.at.Seconds()), y(s.get(smp)))
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="#1f77b4" stroke-width="1.2" points="%s"/>`+"\n", strings.TrimSpace(pts.String()))
		if xs, ys := measured(samples, p, s.get); len(xs) > 1 {
			a, k := fit(xs, ys)
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#d62728" stroke-width="1.5"/>`+"\n",
				x(xs[0]*3600), y(a+k*xs[0]), x(xs[len(xs)-1]*3600), y(a+k*xs[len(xs)-1]))
		}
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.0f" x2="%.1f" y2="%.0f" stroke="#888" stroke-dasharray="4 3"/>`+"\n", x(p.warm.Seconds()), y0, x(p.warm.Seconds()), y0+ph)
	}
	fmt.Fprintf(&b, `<text x="%.0f" y="%.0f">0</text><text x="%.0f" y="%.0f" text-anchor="end">%s</text>`+"\n",
		left, h-gap+14, w-right, h-gap+14, time.Duration(span*float64(time.Second)).Round(time.Second))
	b.WriteString("</svg>\n")
	return []byte(b.String())
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	e := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*e >= v {
			return m * e
		}
	}
	return 10 * e
}

// TestSoakVerdict checks the soak's verdict on made-up curves (it runs in
// no time): flat series with noise and a sawtooth pass, and a slow leak
// in any one series fails.
func TestSoakVerdict(t *testing.T) {
	p := planSoak(time.Hour)
	curve := func(leak int) []sample {
		var out []sample
		for i := 0; time.Duration(i)*sampleEvery <= p.run; i++ {
			at := time.Duration(i) * sampleEvery
			saw := float64(i%6) / 6 // retention's cut-and-delete cycle
			s := sample{at: at, rss: 200e6 + 10e6*saw, heap: 80e6 + 5e6*float64(i%3), goroutines: 210 + float64(i%4),
				fds: 72 + float64(i%2), disk: 20e6 + 4e6*saw}
			grow := at.Hours() / p.run.Hours() // 0 -> 1 over the run
			switch leak {
			case 0:
				s.rss += 40e6 * grow
			case 1:
				s.heap += 15e6 * grow
			case 2:
				s.goroutines += 30 * grow
			case 3:
				s.fds += 12 * grow
			case 4:
				s.disk += 5e6 * grow
			}
			out = append(out, s)
		}
		return out
	}
	if table, errs := flatness(curve(-1), p); len(errs) > 0 {
		t.Errorf("flat curves fail: %v\n%s", errs, table)
	}
	for i, s := range series {
		if _, errs := flatness(curve(i), p); len(errs) != 1 {
			t.Errorf("a leak in %s: %d failures, want 1: %v", s.name, len(errs), errs)
		}
	}
	if svg := soakSVG(curve(0), p); !strings.Contains(string(svg), "<polyline") {
		t.Errorf("no curve drawn:\n%s", svg)
	}
}
