package e2e

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/glassmesh/glassmesh/dashboards"
	"github.com/glassmesh/glassmesh/topology"
)

// meshUIServer serves the embedded UI and the live graph API of a
// topology.Graph holding the synthetic mesh of n services: the same
// handlers glassmesh mounts, without the rest of the process. fresh adds
// another minute's traffic, so the 1m window never empties.
func meshUIServer(b testing.TB, n int) (url string, fresh func()) {
	b.Helper()
	// One-minute buckets so that a graph just created covers the page's
	// 1m window from memory (glassmesh's own path for a running mesh).
	g, err := topology.New(topology.Config{BucketWidth: time.Minute}, nil, nil, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	fresh = func() {
		if err := g.ConsumeRequests(context.Background(), topology.SyntheticRequests(n, 0, time.Now().Add(-time.Second))); err != nil {
			b.Fatal(err)
		}
	}
	fresh()
	mux := http.NewServeMux()
	g.Register(mux)
	mux.Handle("/", dashboards.Handler())
	srv := httptest.NewServer(mux)
	b.Cleanup(srv.Close)
	return srv.URL, fresh
}

// BenchmarkUIGraph opens the graph page of a 1,000-service mesh in headless
// Chromium with the browser cache off, and measures the time from
// navigation start until cytoscape has painted every node (the canvas's
// first "render" event after the layout); data-ms is when the graph
// reached the canvas (assets, stream, JSON and model before it) and
// layout-ms the layout alone. It also reports the gzip -9
// sizes of the built UI: the app shell, what the graph page loaded, and
// every asset.
func BenchmarkUIGraph(b *testing.B) {
	const services = 1000
	base, fresh := meshUIServer(b, services) // closed after the browser, which holds a stream open
	br := newBrowser(b)
	br.base = base
	br.do(b, 10*time.Second, chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, network.SetCacheDisabled, network.SetCacheDisabledParams{CacheDisabled: true})
		return err
	}))
	var ns []string
	for i := range 10 {
		ns = append(ns, "ns"+strconv.Itoa(i))
	}
	var loaded []string
	for _, c := range []struct {
		typ   string
		nodes int
	}{{"app", services}, {"versionedApp", 2 * services}} {
		b.Run(fmt.Sprintf("type=%s/services=%d", c.typ, services), func(b *testing.B) {
			var lat, layout, data []float64
			for range b.N {
				br.do(b, 30*time.Second, chromedp.Navigate("about:blank"))
				fresh()
				br.do(b, 60*time.Second, chromedp.Navigate(br.base+"/graph?type="+c.typ+"&dur=1m&ns="+strings.Join(ns, ",")))
				ms := pollUI[float64](b, br, 120*time.Second, fmt.Sprintf(
					`(() => { const d = document.querySelector("#graph-cy")?.dataset; return d && +d.drawnNodes === %d ? +d.drawnAt : 0; })()`, c.nodes))
				lat = append(lat, ms)
				d := pollUI[map[string]string](b, br, time.Second, `({...document.querySelector("#graph-cy").dataset})`)
				layout = append(layout, num(b, d["layoutMs"]))
				data = append(data, num(b, d["drawStartAt"]))
				if l := pollUI[string](b, br, time.Second, `document.querySelector("#graph-cy").dataset.layout`); l != "breadthfirst" {
					b.Fatalf("%d nodes drawn with the %s layout, want breadthfirst", c.nodes, l)
				}
			}
			b.ReportMetric(median(lat), "p50-ms")
			b.ReportMetric(slices.Max(lat), "max-ms")
			b.ReportMetric(median(data), "p50-data-ms")
			b.ReportMetric(median(layout), "p50-layout-ms")
			b.ReportMetric(float64(c.nodes), "nodes")
			loaded = pollUI[[]string](b, br, time.Second,
				`performance.getEntriesByType("resource").map(e => new URL(e.name).pathname).filter(p => p.startsWith("/assets/"))`)
		})
	}
	b.Run("bundle", func(b *testing.B) {
		dist := filepath.Join("..", "dashboards", "dist")
		shell := []string{"index.html"}
		html, err := os.ReadFile(filepath.Join(dist, "index.html"))
		if err != nil {
			b.Fatal(err)
		}
		all, err := filepath.Glob(filepath.Join(dist, "assets", "*"))
		if err != nil || len(all) == 0 {
			b.Fatalf("no assets in %s: %v", dist, err)
		}
		for i, p := range all {
			all[i] = "assets/" + filepath.Base(p)
			if bytes.Contains(html, []byte("/"+all[i])) {
				shell = append(shell, all[i])
			}
		}
		page := []string{"index.html"}
		for _, p := range loaded {
			page = append(page, strings.TrimPrefix(p, "/"))
		}
		var kb [3]float64
		for range b.N {
			kb = [3]float64{gzipKB(b, dist, shell), gzipKB(b, dist, page), gzipKB(b, dist, append(all, "index.html"))}
		}
		b.ReportMetric(kb[0], "gzip-kB-shell")
		b.ReportMetric(kb[1], "gzip-kB-graph-page")
		b.ReportMetric(kb[2], "gzip-kB-all")
		b.Logf("graph page loaded %s", strings.Join(page, " "))
	})
}

func num(b *testing.B, s string) float64 {
	b.Helper()
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		b.Fatal(err)
	}
	return f
}

func median(v []float64) float64 {
	slices.Sort(v)
	return v[len(v)/2]
}

// gzipKB is the sum of the files' gzip -9 sizes in kB (1000 bytes).
func gzipKB(b *testing.B, dir string, files []string) float64 {
	b.Helper()
	total := 0
	for _, f := range files {
		body, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			b.Fatal(err)
		}
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		_, _ = zw.Write(body)
		_ = zw.Close()
		total += buf.Len()
	}
	return float64(total) / 1000
}
