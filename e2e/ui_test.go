package e2e

import (
	"context"
	"fmt"
	"maps"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/trace"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"

	"github.com/glassmesh/glassmesh/dashboards"
)

// TestUI drives the web UI in headless Chromium against `glassmesh demo`:
// the pages a user opens first must show the demo's live data. Screenshots
// of every page go to the test's artifact directory (go test -artifacts).
func TestUI(t *testing.T) {
	b := newBrowser(t)
	dir := filepath.Join(t.TempDir(), "demo-mesh")
	// --bad-canary: reviews-v3 starts failing 25 s in, so the demo's canary
	// rolls back on its own while the other pages are checked.
	gm := startCmd(t, "demo", dir, t.TempDir(), "--traffic-rps", "20", "--bad-canary")
	b.base = "http://" + gm.HTTPAddr

	t.Run("the graph page draws the demo's nodes from the live stream", func(t *testing.T) {
		b.open(t, "/graph?ns=default&type=versionedApp&dur=1m")
		// Every demo app; failing canary calls may add nodes of their own.
		want := "details v1,productpage v1,ratings v1,reviews v1,reviews v2,reviews v3,traffic-generator v1"
		got := pollUI[string](t, b, 60*time.Second, fmt.Sprintf(
			`(() => { const el = document.querySelector("#graph-cy"); const n = (el?.dataset.nodes ?? "").split(","); return %q.split(",").every(w => n.includes(w)) && +el.dataset.edges >= 7 ? n.join(",") : ""; })()`, want))
		t.Logf("graph nodes: %s", got)
		// The stream sends a new graph when the traffic's numbers change.
		pollUI[bool](t, b, 20*time.Second, `+document.querySelector("#graph-cy").dataset.updates >= 2`)
		b.shot(t, "graph")
	})
	t.Run("the graph pauses and resumes, and its refresh can be set", func(t *testing.T) {
		b.do(t, 10*time.Second, chromedp.Click(chromedp.CSS(`#graph-pause`)))
		n := pollUI[int](t, b, 5*time.Second, `+document.querySelector("#graph-cy").dataset.updates`)
		time.Sleep(11 * time.Second) // two refreshes
		if got := pollUI[int](t, b, 5*time.Second, `+document.querySelector("#graph-cy").dataset.updates`); got != n {
			t.Errorf("the paused graph was redrawn %d times", got-n)
		}
		if state := pollUI[string](t, b, 5*time.Second, `document.querySelector("#graph-live").textContent`); !strings.HasPrefix(state, "paused") {
			t.Errorf("the paused graph says %q", state)
		}
		b.do(t, 10*time.Second, chromedp.Click(chromedp.CSS(`#graph-pause`)))
		pollUI[bool](t, b, 20*time.Second, fmt.Sprintf(`+document.querySelector("#graph-cy").dataset.updates > %d`, n))
		pollUI[bool](t, b, 5*time.Second, `(() => { const s = document.querySelector("#graph-refresh"); s.value = "10s"; s.dispatchEvent(new Event("change")); return true; })()`)
		if loc := b.location(t); !strings.Contains(loc, "refresh=10s") {
			t.Errorf("the URL does not keep the refresh: %s", loc)
		}
		pollUI[bool](t, b, 30*time.Second, `document.querySelector("#graph-live").textContent.startsWith("live · updated")`)
	})
	t.Run("find marks the nodes whose name matches, across updates", func(t *testing.T) {
		b.do(t, 10*time.Second, chromedp.SendKeys(chromedp.CSS(`#graph-find`), "reviews"))
		found := pollUI[string](t, b, 10*time.Second, `document.querySelector("#graph-cy").dataset.found ?? ""`)
		want := pollUI[string](t, b, 5*time.Second, `String(document.querySelector("#graph-cy").dataset.nodes.split(",").filter(n => n.includes("reviews")).length)`)
		if found != want || found == "0" {
			t.Errorf("find reviews marked %s nodes, the graph has %s reviews nodes", found, want)
		}
		n := pollUI[int](t, b, 5*time.Second, `+document.querySelector("#graph-cy").dataset.updates`)
		pollUI[bool](t, b, 30*time.Second, fmt.Sprintf(`+document.querySelector("#graph-cy").dataset.updates > %d`, n))
		if got := pollUI[string](t, b, 5*time.Second, `document.querySelector("#graph-cy").dataset.found ?? "none"`); got != want {
			t.Errorf("after an update find marks %s nodes, want %s", got, want)
		}
		b.do(t, 10*time.Second, chromedp.Click(chromedp.CSS(`#graph-fit`)))
		// Clear: every node shows again.
		pollUI[bool](t, b, 5*time.Second, `(() => { const i = document.querySelector("#graph-find"); i.value = ""; i.dispatchEvent(new Event("input")); return true; })()`)
		pollUI[bool](t, b, 5*time.Second, `document.querySelector("#graph-cy").dataset.found === undefined`)
	})
	t.Run("the graph's nodes can be reached and opened by keyboard", func(t *testing.T) {
		b.do(t, 10*time.Second, chromedp.Focus(chromedp.CSS(`#graph-cy`)))
		// Two steps from the start, so the order is not only a first pick.
		b.do(t, 10*time.Second, chromedp.KeyEvent(kb.ArrowRight), chromedp.KeyEvent(kb.ArrowRight))
		node := pollUI[string](t, b, 5*time.Second, `document.querySelector("#graph-cy").dataset.focused ?? ""`)
		if got := pollUI[string](t, b, 5*time.Second, `document.querySelector("#graph-focus").textContent`); !strings.Contains(got, node) {
			t.Errorf("the focus announcement %q does not name %q", got, node)
		}
		b.do(t, 10*time.Second, chromedp.KeyEvent(kb.Enter))
		title := pollUI[string](t, b, 10*time.Second, `document.querySelector("#graph-side:not([hidden]) #panel-title")?.textContent ?? ""`)
		if title != node {
			t.Fatalf("Enter on %q opened the panel of %q", node, title)
		}
		if loc := b.location(t); !strings.Contains(loc, "sel=") {
			t.Errorf("the URL does not keep the selection: %s", loc)
		}
		b.shot(t, "graph-keyboard")
		b.do(t, 10*time.Second, chromedp.KeyEvent(kb.Escape))
		pollUI[bool](t, b, 5*time.Second, `document.querySelector("#graph-side").hidden && document.activeElement?.id === "graph-cy"`)
	})
	t.Run("the table view lists the edges with their rates", func(t *testing.T) {
		b.do(t, 10*time.Second, chromedp.Click(chromedp.CSS(`button[data-view="table"]`)))
		rows := pollUI[[]string](t, b, 20*time.Second,
			`(() => { const r = [...document.querySelectorAll("#edges-table tbody tr")].map(tr => [...tr.cells].slice(0, 4).map(c => c.textContent).join(" | ")); return r.length >= 7 ? r : null; })()`)
		if !containsPrefix(rows, "productpage v1 | details v1 | grpc | ") {
			t.Fatalf("no productpage -> details row in %q", rows)
		}
		if !strings.Contains(b.location(t), "view=table") {
			t.Errorf("the URL does not keep the table view: %s", b.location(t))
		}
		b.shot(t, "graph-table")
	})
	t.Run("the table shows each edge's mTLS and share as the API does", func(t *testing.T) {
		// Columns: From, To, Protocol, Requests/s, Share, Errors, p95, mTLS.
		row := pollUI[[]string](t, b, 60*time.Second, `(() => {
			const tr = [...document.querySelectorAll("#edges-table tbody tr")].find(tr => tr.cells[0].textContent === "productpage v1" && tr.cells[1].textContent === "details v1");
			const cells = tr ? [...tr.cells].map(c => c.textContent) : null;
			return cells && cells[7] === "🔒 100%" ? cells : null;
		})()`)
		var g kialiGraph
		gm.getJSON(t, "/api/namespaces/graph?namespaces=default&graphType=versionedApp&duration=1m", &g)
		id := map[string]string{}
		for _, n := range g.Elements.Nodes {
			id[n.Data.App+" "+n.Data.Version] = n.Data.ID
		}
		for _, e := range g.Elements.Edges {
			if e.Data.Source != id["productpage v1"] || e.Data.Target != id["details v1"] {
				continue
			}
			var ui, api float64
			fmt.Sscanf(row[4], "%f%%", &ui)
			fmt.Sscanf(e.Data.Traffic.Rates["grpcPercentReq"], "%f", &api)
			if e.Data.IsMTLS != "100" || ui < api-2 || ui > api+2 {
				t.Errorf("table row %q; the API's edge: isMTLS %q, grpcPercentReq %q", row, e.Data.IsMTLS, e.Data.Traffic.Rates["grpcPercentReq"])
			}
			return
		}
		t.Fatalf("no productpage v1 -> details v1 edge in the API's graph")
	})
	t.Run("the table keeps the user's sort and focus across live updates", func(t *testing.T) {
		b.do(t, 10*time.Second, chromedp.Click(chromedp.CSS(`#edges-table button[data-focus="sort:err"]`)))
		pollUI[bool](t, b, 5*time.Second, `document.querySelector("#edges-table th[aria-sort=descending] button")?.dataset.focus === "sort:err"`)
		focus := pollUI[string](t, b, 5*time.Second, `(() => { const el = document.querySelector("#edges-table tbody tr:nth-child(2) button"); el.focus(); return el.dataset.focus; })()`)
		n := pollUI[int](t, b, 5*time.Second, `+document.querySelector("#graph-cy").dataset.updates`)
		pollUI[bool](t, b, 60*time.Second, fmt.Sprintf(`+document.querySelector("#graph-cy").dataset.updates >= %d`, n+2))
		if got := pollUI[string](t, b, 5*time.Second, `document.querySelector("#edges-table th:not([aria-sort=none]) button")?.dataset.focus ?? "none"`); got != "sort:err" {
			t.Errorf("after two updates the edges are sorted by %s, want the user's sort:err", got)
		}
		if got := pollUI[string](t, b, 5*time.Second, `document.activeElement?.dataset.focus ?? document.activeElement?.tagName`); got != focus {
			t.Errorf("after two updates the focus is on %s, want %s", got, focus)
		}
		// Back to the busiest edges first, for the next test.
		b.do(t, 10*time.Second, chromedp.Click(chromedp.CSS(`#edges-table button[data-focus="sort:rps"]`)))
	})
	t.Run("an edge's side panel charts its traffic and shows the PromQL", func(t *testing.T) {
		b.do(t, 10*time.Second, chromedp.Click(chromedp.CSS(`#edges-table tbody tr:first-child button`)))
		pollUI[bool](t, b, 20*time.Second, `document.querySelectorAll("#graph-side .uplot").length >= 1`)
		q := pollUI[string](t, b, 5*time.Second, `document.querySelector("#graph-side .promql code")?.textContent ?? ""`)
		if !strings.Contains(q, "istio_requests_total") {
			t.Fatalf("panel PromQL %q", q)
		}
		// Exemplars link the edge's slowest requests to their traces.
		pollUI[bool](t, b, 10*time.Second, `!!document.querySelector("#panel-exemplars a[href^='/traces/']")`)
		// The same exemplars are points on the latency chart that open their trace.
		// Marks may overlap: take one that is on top at its own centre.
		href := pollUI[string](t, b, 10*time.Second, `(() => {
			for (const a of document.querySelectorAll("#graph-side .uplot a.mark[href^='/traces/']:not([hidden])")) {
				a.scrollIntoView({ block: "center" });
				const r = a.getBoundingClientRect();
				if (document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2) === a) return a.getAttribute("href");
			}
			return "";
		})()`)
		b.shot(t, "graph-panel")
		b.do(t, 10*time.Second, chromedp.Click(chromedp.CSS(`#graph-side .uplot a.mark[href="`+href+`"]`)))
		pollUI[bool](t, b, 20*time.Second, fmt.Sprintf(`location.pathname === %q && document.querySelectorAll("#trace-gantt .row").length > 0`, href))
	})
	t.Run("a healthy edge charts 0% errors, not no data", func(t *testing.T) {
		b.open(t, "/graph?ns=default&type=versionedApp&dur=1m&view=table")
		pollUI[bool](t, b, 30*time.Second, `[...document.querySelectorAll("#edges-table tbody tr")].some(tr => tr.textContent.startsWith("productpage v1details v1"))`)
		pollUI[bool](t, b, 10*time.Second, `(() => { [...document.querySelectorAll("#edges-table tbody tr")].find(tr => tr.textContent.startsWith("productpage v1details v1")).querySelector("button").click(); return true; })()`)
		got := pollUI[string](t, b, 20*time.Second, `(() => {
			const h = [...document.querySelectorAll("#graph-side h3")].find(h => h.textContent === "Error rate");
			const chart = h?.nextElementSibling;
			if (!chart || chart.querySelector(".loading")) return "";
			return chart.querySelector(".uplot") ? "chart" : chart.textContent;
		})()`)
		if got != "chart" {
			t.Fatalf("the healthy productpage -> details edge's error chart shows %q, want a chart (of 0%%)", got)
		}
		// The security view: both ends' SPIFFE identities.
		facts := pollUI[string](t, b, 10*time.Second, `document.querySelector("#graph-side .panel-facts")?.textContent ?? ""`)
		for _, want := range []string{"mutual TLS100% of requests", "spiffe://cluster.local/ns/default/sa/productpage", "spiffe://cluster.local/ns/default/sa/details"} {
			if !strings.Contains(facts, want) {
				t.Errorf("the edge's facts %q lack %q", facts, want)
			}
		}
	})
	t.Run("every busy edge's panel charts the rate the graph API gives the edge", func(t *testing.T) {
		uiEdgeChartRates(t, b, gm)
	})
	t.Run("a graph window opens a trace search over the same window", func(t *testing.T) {
		b.open(t, "/traces?service=ratings&lookback=10m&run=1")
		if got := pollUI[string](t, b, 10*time.Second, `document.querySelector("#tr-lookback")?.value ?? ""`); got != "10m" {
			t.Fatalf("the lookback menu shows %q for lookback=10m", got)
		}
		// The custom range's fields show only for a custom range.
		if display := pollUI[string](t, b, 5*time.Second, `getComputedStyle(document.querySelector("#tr-range")).display`); display != "none" {
			t.Errorf("the From/To fields show (display %s) without a custom range", display)
		}
		pollUI[bool](t, b, 30*time.Second, `!!document.querySelector("#trace-list .trace-item")`)
		if loc := b.location(t); !strings.Contains(loc, "lookback=10m") {
			t.Errorf("the search ran with %s, want lookback=10m", loc)
		}
	})
	t.Run("the custom trace range's date fields fit at 1366 px", func(t *testing.T) {
		uiTraceRangeFits(t, b)
	})
	t.Run("a trace whose parent spans are missing is listed as incomplete", func(t *testing.T) {
		exp, err := otlptracegrpc.New(context.Background(), otlptracegrpc.WithEndpoint(gm.GRPCAddr), otlptracegrpc.WithInsecure())
		if err != nil {
			t.Fatal(err)
		}
		// A child whose parent (a remote span) never arrives, and a whole trace.
		parent := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{0xab, 1}, SpanID: trace.SpanID{0xcd, 1},
			TraceFlags: trace.FlagsSampled, Remote: true})
		_, orphan := tracer(t, "orphanage", exp).Start(trace.ContextWithRemoteSpanContext(context.Background(), parent), "child")
		orphan.End()
		_, whole := tracer(t, "orphanage", exp).Start(context.Background(), "root")
		whole.End()
		b.open(t, "/traces?service=orphanage&lookback=15m&run=1")
		got := pollUI[map[string]string](t, b, 30*time.Second, `(() => {
			const items = [...document.querySelectorAll("#trace-list .trace-item")];
			return items.length === 2 ? Object.fromEntries(items.map(a => [a.dataset.traceId, a.dataset.incomplete + ":" + (a.querySelector(".incomplete")?.textContent ?? "")])) : null;
		})()`)
		orphanID, wholeID := orphan.SpanContext().TraceID().String(), whole.SpanContext().TraceID().String()
		if !strings.HasPrefix(got[orphanID], "true:") || !strings.Contains(got[orphanID], "1 span's parent missing") || got[wholeID] != "false:" {
			t.Fatalf("list marks %v; want %s incomplete and %s not", got, orphanID, wholeID)
		}
	})
	t.Run("a trace search finds traces and a trace shows every span", func(t *testing.T) {
		b.open(t, "/traces?service=ratings&lookback=15m&run=1")
		id := pollUI[string](t, b, 30*time.Second, `document.querySelector("#trace-list .trace-item")?.dataset.traceId ?? ""`)
		b.shot(t, "traces")
		// Every service its own colour, and none a health colour.
		colours := pollUI[[]string](t, b, 5*time.Second, `[...document.querySelectorAll("#trace-list .svc-chip")].map(c => c.textContent.replace(/ \(\d+\)$/, "") + "=" + getComputedStyle(c).borderColor)`)
		byService, byColour := map[string]string{}, map[string]string{}
		for _, sc := range colours {
			svc, col, _ := strings.Cut(sc, "=")
			if other := byColour[col]; other != "" && other != svc {
				t.Errorf("%s and %s share the colour %s", svc, other, col)
			}
			if col == "rgb(220, 38, 38)" || col == "rgb(217, 119, 6)" || col == "rgb(22, 163, 74)" {
				t.Errorf("%s has a health colour %s", svc, col)
			}
			byService[svc], byColour[col] = col, svc
		}
		if len(byService) < 2 {
			t.Errorf("service chips %q", colours)
		}
		b.do(t, 10*time.Second, chromedp.Click(chromedp.CSS(`#trace-list .trace-item`)))
		// The newest trace may still be receiving spans: reload until the
		// timeline and the API agree.
		for try := 0; ; try++ {
			rows := pollUI[int](t, b, 20*time.Second, `document.querySelectorAll("#trace-gantt .row").length`)
			var tr jaegerTrace
			gm.getJSON(t, "/api/traces/"+id, &tr)
			if len(tr.Data) == 1 && rows == len(tr.Data[0].Spans) && rows >= 5 {
				break
			}
			if try == 5 {
				t.Fatalf("trace %s: %d timeline rows, the API has %d traces with %v spans", id, rows, len(tr.Data), spanCounts(tr))
			}
			time.Sleep(time.Second)
			b.open(t, "/traces/"+id)
		}
		// The trace's service graph has a node for every service it crossed.
		var tr jaegerTrace
		gm.getJSON(t, "/api/traces/"+id, &tr)
		services := map[string]bool{}
		for _, s := range tr.Data[0].Spans {
			services[tr.Data[0].Processes[s.ProcessID].ServiceName] = true
		}
		want := slices.Sorted(maps.Keys(services))
		nodes := pollUI[string](t, b, 20*time.Second, `document.querySelector("#trace-graph")?.dataset.nodes ?? ""`)
		if nodes != strings.Join(want, ",") {
			t.Errorf("trace graph nodes %q, the trace's services %q", nodes, want)
		}
		if edges := pollUI[string](t, b, 5*time.Second, `document.querySelector("#trace-graph").dataset.edges`); edges == "0" && len(want) > 1 {
			t.Errorf("no edges between the trace's %d services", len(want))
		}
		b.do(t, 10*time.Second, chromedp.Click(chromedp.CSS(`#trace-gantt .row`)))
		pollUI[bool](t, b, 5*time.Second, `!!document.querySelector("#trace-gantt .detail table")`)
		b.shot(t, "trace")
	})
	t.Run("a PromQL query renders a table of series", func(t *testing.T) {
		b.open(t, "/query?q="+url.QueryEscape(`sum by (destination_workload) (rate(istio_requests_total{reporter="source"}[1m]))`))
		rows := pollUI[[]string](t, b, 20*time.Second,
			`(() => { const r = [...document.querySelectorAll("#promql-table tbody tr td:first-child")].map(td => td.textContent); return r.length ? r : null; })()`)
		if !containsPrefix(rows, `{destination_workload="reviews-v1"}`) {
			t.Fatalf("rows %q", rows)
		}
		b.shot(t, "metrics")
		// A range result lists each sample on its own line.
		b.open(t, "/query?q="+url.QueryEscape(`istio_requests_total{reporter="source"}[30s]`))
		n := pollUI[int](t, b, 20*time.Second, `document.querySelectorAll("#promql-table tbody tr:first-child ul.samples li").length`)
		if n < 2 {
			t.Errorf("the range result's first series shows %d sample lines", n)
		}
		// Health is said in the graph's legend by a mark too, not colour alone.
		b.open(t, "/graph?ns=default&type=versionedApp&dur=1m")
		if legend := pollUI[string](t, b, 20*time.Second, `document.querySelector(".legend")?.textContent ?? ""`); !strings.Contains(legend, "Failure ✖") || !strings.Contains(legend, "Degraded ⚠") {
			t.Errorf("legend %q", legend)
		}
	})
	t.Run("the proxies page lists every xDS client", func(t *testing.T) {
		b.open(t, "/proxies")
		// Every demo app is a proxyless xDS client (they serve with xDS credentials).
		want := "details-v1,productpage-v1,ratings-v1,reviews-v1,reviews-v2,reviews-v3,traffic-generator"
		got := pollUI[string](t, b, 20*time.Second, `(() => { const w = [...document.querySelectorAll("#proxies-table tbody tr td:first-child")].map(td => td.textContent).sort(); return w.length >= 7 ? w.join(",") : ""; })()`)
		if got != want {
			t.Fatalf("proxies %q, want %q", got, want)
		}
		b.shot(t, "proxies")
	})
	t.Run("the proxies page highlights a NACK with its error", func(t *testing.T) {
		c := newDeltaClient(t, gm.GRPCAddr, "nacking-client") // disconnects when this subtest ends
		c.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resource.RouteType, ResourceNamesSubscribe: []string{"reviews.default.svc.cluster.local:9080"}})
		r := c.recv(10 * time.Second)
		c.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: r.TypeUrl, ResponseNonce: r.Nonce,
			ErrorDetail: &statuspb.Status{Code: 3, Message: "ui test rejects this route"}})
		b.open(t, "/proxies")
		row := pollUI[string](t, b, 20*time.Second, `document.querySelector("#proxies-table tr.bad")?.innerText ?? ""`)
		if !strings.Contains(row, "nacking-client") || !strings.Contains(row, "ui test rejects this route") {
			t.Fatalf("NACK row %q", row)
		}
		pollUI[bool](t, b, 5*time.Second, `!!document.querySelector("#proxies [role=alert]")`)
		b.shot(t, "proxies-nack")
	})
	t.Run("the proxies page lists an object set aside as the API does", func(t *testing.T) {
		bad := filepath.Join(dir, "ui-test-broken.yaml")
		writeFile(t, bad, "apiVersion: glassmesh.io/v1alpha1\nkind: SLO\nmetadata: {name: broken, namespace: default}\n"+
			"spec: {service: nope, objective: 99.9, indicator: {availability: {}}}\n")
		defer os.Remove(bad)
		var st containStatus
		eventually(t, 20*time.Second, func() error {
			gm.getJSON(t, "/api/mesh/config", &st)
			if len(st.InvalidObjects) == 0 {
				return fmt.Errorf("nothing set aside yet")
			}
			return nil
		})
		b.open(t, "/proxies")
		rows := pollUI[[]string](t, b, 20*time.Second, `(() => { const r = [...document.querySelectorAll("#config-set-aside tbody tr")].map(r => [...r.cells].slice(0, 2).map(c => c.textContent).join(" | ")); return r.length ? r : null; })()`)
		var want []string
		for _, o := range st.InvalidObjects {
			serving := map[string]string{"lastGood": "last good version", "none": "none"}[o.Serving]
			want = append(want, o.Kind+" "+o.Namespace+"/"+o.Name+" | "+serving)
		}
		if strings.Join(rows, "\n") != strings.Join(want, "\n") || !strings.Contains(strings.Join(rows, ""), "SLO default/broken | none") {
			t.Fatalf("set-aside rows %q, want %q (the API's)", rows, want)
		}
		alert := pollUI[string](t, b, 5*time.Second, `[...document.querySelectorAll("main [role=alert]")].map(e => e.textContent).join(" ")`)
		if !strings.Contains(alert, "set aside") {
			t.Errorf("alert %q", alert)
		}
	})
	t.Run("the Grafana dashboards' queries answer on demo data", func(t *testing.T) {
		qs, err := dashboards.GrafanaQueries()
		if err != nil {
			t.Fatal(err)
		}
		vars := map[string]string{"namespace": "default", "service": "reviews", "workload": "reviews-v2", "reporter": "source", "slo": ".*"}
		core := 0
		for _, q := range qs {
			expr := q.Expand(vars, "1m")
			res := gm.query(t, expr) // fails the test on a query error
			// Core panels: the mesh, service and workload traffic panels
			// (error-only, TCP and SLO panels may rightly be empty here).
			if strings.Contains(expr, "istio_request") && !strings.Contains(expr, `response_code=~"5.."`) && q.Dashboard != "slo.json" {
				core++
				if len(res) == 0 {
					t.Errorf("%s / %s: empty result on demo data:\n%s", q.Dashboard, q.Panel, expr)
				}
			}
		}
		if core < 20 {
			t.Errorf("only %d core panel queries", core)
		}
	})
	t.Run("the SLO page shows the demo's SLOs", func(t *testing.T) {
		b.open(t, "/slos")
		names := pollUI[string](t, b, 20*time.Second, `[...document.querySelectorAll("article.slo h2")].map(e => e.textContent).sort().join(",")`)
		if names != "productpage-latency,reviews-availability" {
			t.Fatalf("SLOs %q", names)
		}
		b.shot(t, "slos")
	})
	t.Run("the canary page shows the rolled-back canary and its failing gate", func(t *testing.T) {
		b.open(t, "/canaries")
		b.do(t, 20*time.Second, chromedp.Click(chromedp.CSS(`#canaries-table a[href="/canaries/default/reviews"]`)))
		pollUI[bool](t, b, 90*time.Second, `document.querySelector("#canary-state")?.textContent === "rolled-back"`)
		gate := pollUI[string](t, b, 10*time.Second, `document.querySelector(".decision.rollback tr.bad td")?.textContent ?? ""`)
		if gate == "" {
			t.Fatal("no failing gate in the rollback decision")
		}
		t.Logf("failing gate: %s", gate)
		// Every destination of the route's rule, in shares that sum to 100
		// and are what /api/mesh/config serves.
		var cfg struct {
			Resources struct {
				TrafficRoutes []struct {
					Metadata struct{ Name, Namespace string }
					Spec     struct {
						Rules []struct {
							Destinations []struct {
								Subset string
								Weight float64
							}
						}
					}
				}
			}
		}
		gm.getJSON(t, "/api/mesh/config", &cfg)
		want := map[string]float64{}
		for _, r := range cfg.Resources.TrafficRoutes {
			if r.Metadata.Namespace == "default" && r.Metadata.Name == "reviews" {
				total := 0.0
				last := r.Spec.Rules[len(r.Spec.Rules)-1]
				for _, d := range last.Destinations {
					total += d.Weight
				}
				for _, d := range last.Destinations {
					want[d.Subset] = 100 * d.Weight / total
				}
			}
		}
		text := pollUI[string](t, b, 10*time.Second, `document.querySelector("#canary-weights")?.textContent ?? ""`)
		got := map[string]float64{}
		sum := 0.0
		for _, part := range strings.Split(strings.TrimPrefix(text, "traffic "), " · ") {
			var subset string
			var pct float64
			if _, err := fmt.Sscanf(part, "%s %f%%", &subset, &pct); err != nil {
				t.Fatalf("canary weights %q: %v", text, err)
			}
			got[subset], sum = pct, sum+pct
		}
		nonzero := 0
		for _, v := range got {
			if v > 0 {
				nonzero++
			}
		}
		// The served rule leaves out a destination of weight 0 (the
		// rolled-back canary's), which the page shows at 0%.
		if nonzero != len(want) || len(got) < 3 || sum < 99.8 || sum > 100.2 {
			t.Fatalf("the canary page shows %q (sum %.1f); /api/mesh/config serves %v", text, sum, want)
		}
		for k, v := range want {
			if got[k] < v-0.1 || got[k] > v+0.1 {
				t.Errorf("%s: the page shows %.1f%%, /api/mesh/config serves %.1f%%", k, got[k], v)
			}
		}
		b.shot(t, "canary")
	})
	t.Run("the canary page pauses and resumes its refresh, kept in the URL", func(t *testing.T) {
		uiCanaryLive(t, b)
	})
	t.Run("the SLO page shows the version burn the canary's gate saw, the thresholds and the canary", func(t *testing.T) {
		b.open(t, "/slos")
		card := `document.querySelector('article.slo[data-slo="default/reviews-availability"]')`
		pollUI[bool](t, b, 30*time.Second, card+`?.querySelector('.slo-canaries a[href="/canaries/default/reviews"]') !== null`)
		if th := pollUI[string](t, b, 5*time.Second, card+`?.querySelector(".slo-thresholds")?.textContent ?? ""`); !strings.Contains(th, "page 14.4× over 1h and 5m") {
			t.Errorf("thresholds %q", th)
		}
		ui := pollUI[string](t, b, 30*time.Second, card+`?.querySelector('.slo-versions tr[data-version="v3"] td')?.textContent ?? ""`)
		var a struct {
			SLOs []struct {
				Name             string
				VersionBurnRates map[string]map[string]float64
			}
		}
		gm.getJSON(t, "/api/slos?namespace=default", &a)
		for _, s := range a.SLOs {
			if s.Name != "reviews-availability" {
				continue
			}
			var shown float64
			fmt.Sscanf(ui, "%f×", &shown)
			api := s.VersionBurnRates["v3"]["5m"]
			if shown < api*0.95-0.02 || shown > api*1.05+0.02 || api <= 0 {
				t.Errorf("v3's 5m burn: the page shows %q, the API answers %v", ui, api)
			}
			return
		}
		t.Fatal("no reviews-availability in /api/slos")
	})
	t.Run("the graph badges the nodes the API marks with a route or canary, and the canary badge opens the canary", func(t *testing.T) {
		uiGraphBadges(t, b, gm)
	})
	// Replays look a few minutes back: these run last, when the demo has
	// that much history.
	t.Run("replay draws past windows as the graph API answers for them, and goes back to live", func(t *testing.T) {
		uiGraphReplay(t, b, gm)
	})
	t.Run("find and hide expressions mark and take out what the API's numbers match", func(t *testing.T) {
		uiFindAndHide(t, b, gm)
	})
	t.Run("the graph draws the boxes the API sends for each box-by choice", func(t *testing.T) {
		uiGraphBoxes(t, b, gm)
	})
	b.checkErrors(t)
}

// browser is one headless Chromium tab.
type browser struct {
	ctx  context.Context
	base string

	mu   sync.Mutex
	errs []string // uncaught JavaScript exceptions
}

// newBrowser starts Debian's chromium, or skips the test without it.
func newBrowser(t testing.TB) *browser {
	t.Helper()
	var path string
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		t.Skip("no chromium on PATH (.ci/run installs Debian's chromium)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.WindowSize(1366, 768),
		chromedp.Flag("disable-dev-shm-usage", true))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	b := &browser{}
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithListener(func(ev any) {
		if e, ok := ev.(*runtime.EventExceptionThrown); ok && e.ExceptionDetails != nil {
			d := e.ExceptionDetails
			msg := d.Text
			if d.Exception != nil && d.Exception.Description != "" {
				msg = d.Exception.Description
			}
			b.mu.Lock()
			b.errs = append(b.errs, fmt.Sprintf("%s:%d: %s", d.URL, d.LineNumber+1, msg))
			b.mu.Unlock()
		}
	}))
	t.Cleanup(func() { cancel(); cancelAlloc() })
	// The first run starts the browser; it must not carry a timeout.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting %s: %v", path, err)
	}
	b.ctx = ctx
	return b
}

// do runs steps with a timeout.
func (b *browser) do(t testing.TB, d time.Duration, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, d)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.shot(t, "failed")
		t.Fatal(err)
	}
}

// open loads a page of the UI and waits for its nav bar.
func (b *browser) open(t testing.TB, path string) {
	t.Helper()
	b.do(t, 20*time.Second, chromedp.Navigate(b.base+path), chromedp.WaitVisible(chromedp.CSS(`header.top nav`)))
}

func (b *browser) location(t testing.TB) string {
	t.Helper()
	loc, err := chromedp.Run(b.ctx, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// pollUI waits until the JavaScript expression is truthy and returns its value.
func pollUI[T any](t testing.TB, b *browser, d time.Duration, expr string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, d+5*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Poll[T](expr, chromedp.WithPollingTimeout(d), chromedp.WithPollingInterval(100*time.Millisecond)))
	if err != nil {
		b.shot(t, "failed")
		text, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.querySelector("main")?.innerText.slice(0, 2000) ?? ""`))
		t.Fatalf("waiting for %s: %v\npage %s shows:\n%s", expr, err, b.location(t), text)
	}
	return v
}

// shot saves a screenshot of the viewport under the test's artifact directory.
func (b *browser) shot(t testing.TB, name string) {
	t.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Logf("screenshot %s: %v", name, err)
		return
	}
	path := filepath.Join(t.ArtifactDir(), name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Logf("screenshot %s: %v", name, err)
	}
}

// checkErrors fails the test on any uncaught exception in the pages.
func (b *browser) checkErrors(t testing.TB) {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.errs) > 0 {
		t.Errorf("uncaught JavaScript exceptions:\n%s", strings.Join(b.errs, "\n"))
	}
}

func containsPrefix(list []string, prefix string) bool {
	for _, s := range list {
		if strings.HasPrefix(s, prefix) {
			return true
		}
	}
	return false
}

func spanCounts(tr jaegerTrace) []int {
	var n []int
	for _, d := range tr.Data {
		n = append(n, len(d.Spans))
	}
	return n
}
