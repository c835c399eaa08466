package e2e

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// The subtests of TestUI that need more than a few lines: each takes the
// shared browser and the demo instance.

// graphAPI is the graph the UI's versionedApp page asks for, over dur.
func graphAPI(dur string) string {
	return "/api/namespaces/graph?namespaces=default&graphType=versionedApp&duration=" + dur
}

// uiEdgeChartRates opens the side panel of every edge of 1 rps or more and
// compares the rate chart's latest point with the edge's rate that the
// graph API answers for the same window (queryTime at that point).
func uiEdgeChartRates(t *testing.T, b *browser, gm *instance) {
	b.open(t, "/graph?ns=default&type=versionedApp&dur=1m&view=table")
	pollUI[bool](t, b, 30*time.Second, `document.querySelectorAll("#edges-table tbody tr").length >= 7`)
	var g kialiGraph
	gm.getJSON(t, graphAPI("1m"), &g)
	checked := 0
	for _, e := range g.Elements.Edges {
		if e.Data.rps() < 1 {
			continue
		}
		id := e.Data.ID
		pollUI[bool](t, b, 20*time.Second, fmt.Sprintf(`(() => { const b = document.querySelector('#edges-table button[data-focus="' + CSS.escape(%q) + '"]'); b?.click(); return !!b; })()`, "pick:"+id))
		last := pollUI[[]string](t, b, 20*time.Second, `(() => {
			const h = [...document.querySelectorAll("#graph-side h3")].find(h => h.textContent === "Request rate");
			const c = h?.nextElementSibling;
			return c?.dataset.last ? [c.dataset.lastAt, c.dataset.last, document.querySelector("#panel-title").textContent] : null;
		})()`)
		var at kialiGraph
		gm.getJSON(t, graphAPI("60s")+"&queryTime="+last[0], &at)
		api := -1.0
		for _, ae := range at.Elements.Edges {
			if ae.Data.ID == id {
				api = ae.Data.rps()
			}
		}
		chart, _ := strconv.ParseFloat(last[1], 64)
		t.Logf("%s: the chart ends on %.3f rps, the API's edge at %s has %.3f", last[2], chart, last[0], api)
		if api <= 0 || chart < api*0.95 || chart > api*1.05 {
			t.Errorf("%s: the panel's rate chart ends on %.3f rps at %s; the graph API's edge has %.3f", last[2], chart, last[0], api)
		}
		checked++
	}
	if checked < 4 {
		t.Errorf("only %d edges of 1 rps or more in %d edges", checked, len(g.Elements.Edges))
	}
}

// uiTraceRangeFits checks the Traces form's custom From/To fields at the
// browser's 1366×768: inside the form and the window, and as wide as the
// date-times with seconds need.
func uiTraceRangeFits(t *testing.T, b *browser) {
	end := time.Now().UnixMilli()
	b.open(t, fmt.Sprintf("/traces?service=ratings&lookback=custom&start=%d&end=%d", end-600_000, end))
	boxes := pollUI[[]string](t, b, 10*time.Second, `(() => {
		const form = document.querySelector("#trace-search").getBoundingClientRect();
		return ["#tr-start", "#tr-end"].map(id => {
			const el = document.querySelector(id);
			const r = el.getBoundingClientRect();
			// What the input needs: a copy of it at its own width.
			const probe = el.cloneNode();
			probe.style.cssText = "width:auto;position:absolute;visibility:hidden";
			document.body.append(probe);
			const need = probe.getBoundingClientRect().width;
			probe.remove();
			const inside = r.width > 0 && r.left >= form.left && r.right <= form.right && r.right <= innerWidth && r.bottom <= innerHeight;
			return id + ": " + (inside ? "inside" : "outside") + (r.width + 0.5 >= need ? " fits" : " cut") +
				" (" + Math.round(r.left) + ".." + Math.round(r.right) + " of " + Math.round(form.left) + ".." + Math.round(form.right) + ", needs " + Math.round(need) + ")";
		});
	})()`)
	b.shot(t, "traces-custom-range")
	for _, box := range boxes {
		if !strings.Contains(box, ": inside fits") {
			t.Errorf("at 1366×768 the custom range field %s", box)
		}
	}
}

// uiCanaryLive pauses the canary page's live refresh, checks that it stays
// paused (across a reload too: the URL keeps it), resumes it and sets its
// interval.
func uiCanaryLive(t *testing.T, b *browser) {
	b.open(t, "/canaries/default/reviews")
	updates := func() int {
		return pollUI[int](t, b, 20*time.Second, `+(document.querySelector("#canaries").dataset.updates ?? 0)`)
	}
	pollUI[bool](t, b, 20*time.Second, `+(document.querySelector("#canaries").dataset.updates ?? 0) >= 2`)
	b.do(t, 10*time.Second, chromedp.Click(chromedp.CSS(`#canary-pause`)))
	n := updates()
	loc := b.location(t)
	if !strings.Contains(loc, "paused=1") {
		t.Errorf("the URL does not keep the pause: %s", loc)
	}
	time.Sleep(11 * time.Second) // two refreshes
	if got := updates(); got != n {
		t.Errorf("the paused canary page was redrawn %d times", got-n)
	}
	// Reloaded from its URL, the page loads once and stays paused.
	b.open(t, strings.TrimPrefix(loc, b.base))
	if got := pollUI[string](t, b, 10*time.Second, `document.querySelector("#canary-pause").getAttribute("aria-pressed")`); got != "true" {
		t.Errorf("reloaded with paused=1, the pause button is aria-pressed=%s", got)
	}
	updates()
	time.Sleep(11 * time.Second)
	if got := updates(); got != 1 {
		t.Errorf("the page opened paused was drawn %d times", got)
	}
	if state := pollUI[string](t, b, 5*time.Second, `document.querySelector("#canary-live").textContent`); !strings.HasPrefix(state, "paused") {
		t.Errorf("the paused page says %q", state)
	}
	b.do(t, 10*time.Second, chromedp.Click(chromedp.CSS(`#canary-pause`)))
	pollUI[bool](t, b, 20*time.Second, `+document.querySelector("#canaries").dataset.updates >= 3`)
	if loc := b.location(t); strings.Contains(loc, "paused") {
		t.Errorf("resumed, the URL still says paused: %s", loc)
	}
	pollUI[bool](t, b, 5*time.Second, `(() => { const s = document.querySelector("#canary-refresh"); s.value = "10s"; s.dispatchEvent(new Event("change")); return true; })()`)
	if loc := b.location(t); !strings.Contains(loc, "refresh=10s") {
		t.Errorf("the URL does not keep the refresh: %s", loc)
	}
	// Every 10 s now: one more update within 10 s after the last (and not a
	// burst of them).
	n = updates()
	start := time.Now()
	pollUI[bool](t, b, 25*time.Second, fmt.Sprintf(`+document.querySelector("#canaries").dataset.updates > %d`, n))
	if d := time.Since(start); d < 4*time.Second {
		t.Errorf("at every 10s the page was redrawn %v after the change", d)
	}
	pollUI[bool](t, b, 5*time.Second, `document.querySelector("#canary-live").textContent.startsWith("live · updated")`)
}

// label names a node as the UI's versionedApp and workload graphs do.
func (n *kialiNode) label() string {
	switch {
	case n.IsBox != "" && n.App != "":
		return n.App
	case n.IsBox != "":
		return n.Namespace
	case n.NodeType == "service":
		return n.Service
	case n.NodeType == "unknown":
		return "unknown"
	case n.NodeType == "workload":
		return n.Workload
	case n.Version != "":
		return n.App + " " + n.Version
	}
	return n.App
}

// edgeRates are the graph's edges as "from → to protocol" with their rate.
func (g *kialiGraph) edgeRates() map[string]float64 {
	label := map[string]string{}
	for _, n := range g.Elements.Nodes {
		label[n.Data.ID] = n.Data.label()
	}
	out := map[string]float64{}
	for _, e := range g.Elements.Edges {
		out[label[e.Data.Source]+" → "+label[e.Data.Target]+" "+e.Data.Traffic.Protocol] = e.Data.rps()
	}
	return out
}

// uiReplayAt waits until the graph page draws the instant at (unix seconds).
func uiReplayAt(t *testing.T, b *browser, at int64) {
	t.Helper()
	pollUI[bool](t, b, 30*time.Second, fmt.Sprintf(`document.querySelector("#graph-cy")?.dataset.at === "%d"`, at))
}

// uiTableMatchesAPI compares the edge table's rates with the graph API's
// answer for the window ending at at: the same edges, the same numbers
// (to the table's rounding).
func uiTableMatchesAPI(t *testing.T, b *browser, gm *instance, at int64) {
	t.Helper()
	rows := pollUI[map[string]string](t, b, 20*time.Second, `(() => {
		const r = [...document.querySelectorAll("#edges-table tbody tr")].map(tr => [tr.cells[0].textContent + " → " + tr.cells[1].textContent + " " + tr.cells[2].textContent, tr.cells[3].textContent]);
		return r.length ? Object.fromEntries(r) : null;
	})()`)
	var g kialiGraph
	gm.getJSON(t, graphAPI("1m")+fmt.Sprintf("&responseTime=95&queryTime=%d", at), &g)
	api := g.edgeRates()
	if len(rows) != len(api) {
		t.Errorf("replaying %d the table lists %d edges, the API %d:\n%v\n%v", at, len(rows), len(api), rows, api)
	}
	for k, v := range api {
		shown, ok := rows[k]
		ui, err := strconv.ParseFloat(shown, 64)
		// The table rounds to 2 decimals below 10, 1 below 1,000.
		if !ok || err != nil || ui < v-0.051 || ui > v+0.051 {
			t.Errorf("replaying %d, %s: the table shows %q, the API answers %.3f", at, k, shown, v)
		}
	}
}

// uiGraphReplay replays a past window, steps one window back, checks the
// table and an edge's chart against the graph API at those instants, and
// goes back to live.
func uiGraphReplay(t *testing.T, b *browser, gm *instance) {
	// The windows replayed here reach three minutes back.
	eventually(t, 4*time.Minute, func() error {
		var g kialiGraph
		gm.getJSON(t, graphAPI("1m")+fmt.Sprintf("&queryTime=%d", time.Now().Add(-3*time.Minute).Unix()), &g)
		if len(g.Elements.Edges) < 5 {
			time.Sleep(2 * time.Second)
			return fmt.Errorf("three minutes ago the graph had %d edges", len(g.Elements.Edges))
		}
		return nil
	})
	b.open(t, "/graph?ns=default&type=versionedApp&dur=1m&view=table")
	// The rolled-back canary's edges may have left the live graph.
	pollUI[bool](t, b, 30*time.Second, `document.querySelectorAll("#edges-table tbody tr").length >= 5`)
	b.do(t, 10*time.Second, chromedp.Click(chromedp.CSS(`#graph-replay`)))
	start, err := strconv.ParseInt(pollUI[string](t, b, 10*time.Second, `new URLSearchParams(location.search).get("replay") ?? ""`), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	uiReplayAt(t, b, start+60)
	uiTableMatchesAPI(t, b, gm, start+60)
	shown := pollUI[string](t, b, 5*time.Second, `document.querySelector("#graph-replay-time").textContent`)
	for _, at := range []int64{start, start + 60} {
		if hms := time.Unix(at, 0).Format("15:04:05"); !strings.Contains(shown, hms) {
			t.Errorf("the replay says %q, not the window's %s", shown, hms)
		}
	}
	if got := pollUI[string](t, b, 5*time.Second, `String(document.querySelector("#graph-pause").disabled) + " " + document.querySelector("#graph-live").textContent`); !strings.HasPrefix(got, "true replay") {
		t.Errorf("while replaying the live controls say %q", got)
	}
	n := pollUI[int](t, b, 5*time.Second, `+document.querySelector("#graph-cy").dataset.updates`)
	time.Sleep(6 * time.Second) // a live refresh
	if got := pollUI[int](t, b, 5*time.Second, `+document.querySelector("#graph-cy").dataset.updates`); got != n {
		t.Errorf("the replayed graph was redrawn %d times", got-n)
	}

	b.do(t, 10*time.Second, chromedp.Click(chromedp.CSS(`#graph-replay-back`)))
	if loc := b.location(t); !strings.Contains(loc, fmt.Sprintf("replay=%d", start-60)) {
		t.Errorf("one window back, the URL is %s, want replay=%d", loc, start-60)
	}
	uiReplayAt(t, b, start)
	uiTableMatchesAPI(t, b, gm, start)
	b.shot(t, "graph-replay")

	// An edge's charts end where the replayed window does.
	b.do(t, 10*time.Second, chromedp.Click(chromedp.CSS(`#edges-table tbody tr:first-child button`)))
	last := pollUI[[]string](t, b, 20*time.Second, `(() => {
		const h = [...document.querySelectorAll("#graph-side h3")].find(h => h.textContent === "Request rate");
		const c = h?.nextElementSibling;
		return c?.dataset.last ? [c.dataset.lastAt, c.dataset.last, document.querySelector("#panel-title").textContent + " " + document.querySelector("#graph-side .muted").textContent.replace(" edge", "")] : null;
	})()`)
	if last[0] != strconv.FormatInt(start, 10) {
		t.Errorf("replaying the window to %d, %s's chart ends at %s", start, last[2], last[0])
	}
	var g kialiGraph
	gm.getJSON(t, graphAPI("1m")+fmt.Sprintf("&responseTime=95&queryTime=%d", start), &g)
	chart, _ := strconv.ParseFloat(last[1], 64)
	if api := g.edgeRates()[last[2]]; api <= 0 || chart < api*0.95 || chart > api*1.05 {
		t.Errorf("replaying to %d, %s's chart ends on %.3f rps, the API's edge has %.3f", start, last[2], chart, api)
	}
	if href := pollUI[string](t, b, 5*time.Second, `document.querySelector("#panel-traces")?.getAttribute("href") ?? ""`); !strings.Contains(href, fmt.Sprintf("end=%d000", start)) {
		t.Errorf("the replayed edge's traces link %q does not search the replayed window", href)
	}

	b.do(t, 10*time.Second, chromedp.Click(chromedp.CSS(`#graph-replay`)))
	if loc := b.location(t); strings.Contains(loc, "replay=") {
		t.Errorf("back to live, the URL still replays: %s", loc)
	}
	pollUI[bool](t, b, 30*time.Second, `document.querySelector("#graph-live").textContent.startsWith("live · updated") && !document.querySelector("#graph-pause").disabled`)
}

// uiFindAndHide types find and hide expressions on a replayed graph (so the
// UI and the API see the same numbers) and compares what is marked, drawn
// and counted with what the API's graph says they must match.
func uiFindAndHide(t *testing.T, b *browser, gm *instance) {
	start := time.Now().Add(-2*time.Minute).Unix() / 60 * 60
	at := start + 60
	b.open(t, fmt.Sprintf("/graph?ns=default&type=versionedApp&dur=1m&replay=%d", start))
	uiReplayAt(t, b, at)
	var g kialiGraph
	gm.getJSON(t, graphAPI("1m")+fmt.Sprintf("&responseTime=95&queryTime=%d", at), &g)
	var nodes []kialiNode
	for _, n := range g.Elements.Nodes {
		if n.Data.IsBox == "" {
			nodes = append(nodes, n.Data)
		}
	}
	countNodes := func(f func(n kialiNode) bool) (k int) {
		for _, n := range nodes {
			if f(n) {
				k++
			}
		}
		return k
	}
	countEdges := func(f func(e kialiEdge) bool) (k int) {
		for _, e := range g.Elements.Edges {
			if f(e.Data) {
				k++
			}
		}
		return k
	}
	pctOf := func(s string) float64 {
		if s == "" {
			return -1 // unknown: no comparison holds
		}
		v, _ := strconv.ParseFloat(s, 64)
		return v
	}
	isReviews := func(n kialiNode) bool { return n.App == "reviews" || n.Service == "reviews" || n.Workload == "reviews" }
	for _, c := range []struct {
		expr, kind string
		want       int
	}{
		{"rps > 1", "edge", countEdges(func(e kialiEdge) bool { return e.rps() > 1 })},
		{"errors > 0", "edge", countEdges(func(e kialiEdge) bool { return pctOf(e.Traffic.Rates[e.Traffic.Protocol+"PercentErr"]) > 0 })},
		{"mtls < 100", "edge", countEdges(func(e kialiEdge) bool { v := pctOf(e.IsMTLS); return v >= 0 && v < 100 })},
		{"protocol = grpc and rps <= 5", "edge", countEdges(func(e kialiEdge) bool { return e.Traffic.Protocol == "grpc" && e.rps() <= 5 })},
		{"name = reviews", "node", countNodes(isReviews)},
		{"name = reviews or name = DETAILS", "node", countNodes(func(n kialiNode) bool { return isReviews(n) || n.App == "details" })},
		{"!healthy", "node", countNodes(func(n kialiNode) bool { return n.HealthStatus != "Healthy" })},
		{"not (healthy or version = v1)", "node", countNodes(func(n kialiNode) bool { return n.HealthStatus != "Healthy" && n.Version != "v1" })},
		{"reviews", "node", countNodes(func(n kialiNode) bool { return strings.Contains(n.label(), "reviews") })},
	} {
		got := pollUI[string](t, b, 5*time.Second, fmt.Sprintf(`(() => {
			const i = document.querySelector("#graph-find"); i.value = %q; i.dispatchEvent(new Event("input"));
			const d = document.querySelector("#graph-cy").dataset;
			return d.found + " " + d.foundKind + " | " + document.querySelector("#graph-found").textContent + " | " + document.querySelector("#graph-find-error").textContent;
		})()`, c.expr))
		plural := map[bool]string{true: "", false: "s"}[c.want == 1]
		if want := fmt.Sprintf("%d %s | %d %s%s found | ", c.want, c.kind, c.want, c.kind, plural); got != want {
			t.Errorf("find %q: the page says %q, want %q (from the API's graph)", c.expr, got, want)
		}
	}
	if loc := b.location(t); !strings.Contains(loc, "find=reviews") {
		t.Errorf("the URL does not keep the find expression: %s", loc)
	}
	for expr, want := range map[string]string{
		"rps >":                      "find: a value after rps > is missing at the end",
		"speed > 1":                  `find: unknown field "speed"`,
		"rps > fast":                 `find: rps is a number; "fast" is not`,
		"name < 3":                   "find: name is text: compare it with = != *= ^= $=",
		"name = reviews and rps > 1": "find: rps is an edge field: an expression is about nodes or about edges, not both",
		"(healthy":                   "find: a closing ) is missing at the end",
	} {
		got := pollUI[string](t, b, 5*time.Second, fmt.Sprintf(`(() => {
			const i = document.querySelector("#graph-find"); i.value = %q; i.dispatchEvent(new Event("input"));
			return i.getAttribute("aria-invalid") + " " + document.querySelector("#graph-find-error").textContent;
		})()`, expr))
		if !strings.HasPrefix(got, "true "+want) {
			t.Errorf("find %q: the page says %q, want an error starting %q", expr, got, want)
		}
	}
	pollUI[bool](t, b, 5*time.Second, `(() => { const i = document.querySelector("#graph-find"); i.value = ""; i.dispatchEvent(new Event("input")); return true; })()`)
	b.shot(t, "graph-find")

	// Hide: what matches goes, with the edges of hidden nodes and the nodes
	// left without an edge.
	for _, c := range []struct {
		expr     string
		node     func(n kialiNode) bool
		edge     func(e kialiEdge) bool
		wantNode bool
	}{
		{"name = reviews", isReviews, nil, true},
		{"rps < 1", nil, func(e kialiEdge) bool { return e.rps() < 1 }, false},
	} {
		gone := map[string]bool{}
		for _, n := range nodes {
			if c.node != nil && c.node(n) {
				gone[n.ID] = true
			}
		}
		had, linked := map[string]bool{}, map[string]bool{}
		hiddenEdges := 0
		for _, e := range g.Elements.Edges {
			had[e.Data.Source], had[e.Data.Target] = true, true
			if gone[e.Data.Source] || gone[e.Data.Target] || (c.edge != nil && c.edge(e.Data)) {
				hiddenEdges++
				continue
			}
			linked[e.Data.Source], linked[e.Data.Target] = true, true
		}
		var shown []string
		for _, n := range nodes {
			if had[n.ID] && !linked[n.ID] {
				gone[n.ID] = true
			}
			if !gone[n.ID] {
				shown = append(shown, n.label())
			}
		}
		slices.Sort(shown)
		got := pollUI[string](t, b, 10*time.Second, fmt.Sprintf(`(() => {
			const i = document.querySelector("#graph-hide"); i.value = %q; i.dispatchEvent(new Event("input"));
			return document.querySelector("#graph-cy").dataset.nodes + " | " + document.querySelector("#graph-hidden").textContent;
		})()`, c.expr))
		want := fmt.Sprintf("%s | %d node%s and %d edge%s hidden", strings.Join(shown, ","), len(gone), map[bool]string{true: "", false: "s"}[len(gone) == 1],
			hiddenEdges, map[bool]string{true: "", false: "s"}[hiddenEdges == 1])
		if got != want {
			t.Errorf("hide %q: the page draws %q, want %q (from the API's graph)", c.expr, got, want)
		}
	}
	// The URL keeps it: a reload hides the same.
	loc := b.location(t)
	if !strings.Contains(loc, "hide=rps") {
		t.Errorf("the URL does not keep the hide expression: %s", loc)
	}
	before := pollUI[string](t, b, 5*time.Second, `document.querySelector("#graph-cy").dataset.nodes`)
	b.open(t, strings.TrimPrefix(loc, b.base))
	uiReplayAt(t, b, at)
	if after := pollUI[string](t, b, 5*time.Second, `document.querySelector("#graph-cy").dataset.nodes`); after != before {
		t.Errorf("reloaded, the page draws %q, before %q", after, before)
	}
	all := pollUI[string](t, b, 5*time.Second, `(() => { const i = document.querySelector("#graph-hide"); i.value = ""; i.dispatchEvent(new Event("input")); return document.querySelector("#graph-cy").dataset.nodes; })()`)
	if n := len(strings.Split(all, ",")); n != len(nodes) {
		t.Errorf("with nothing hidden the page draws %d nodes (%s), the API has %d", n, all, len(nodes))
	}
}

// uiGraphBoxes draws the graph boxed by each choice and compares the boxes
// (kind, name and members) with the API's answer for the same boxBy.
func uiGraphBoxes(t *testing.T, b *browser, gm *instance) {
	start := time.Now().Add(-2*time.Minute).Unix() / 60 * 60
	at := start + 60
	for _, c := range []struct{ graphType, box, boxBy string }{
		{"workload", "app", "app"},
		{"versionedApp", "", ""},
		{"versionedApp", "namespace", "namespace"},
		{"versionedApp", "none", ""},
	} {
		b.open(t, fmt.Sprintf("/graph?ns=default&type=%s&dur=1m&replay=%d&box=%s", c.graphType, start, c.box))
		uiReplayAt(t, b, at)
		got := pollUI[string](t, b, 5*time.Second, `"[" + document.querySelector("#graph-cy").dataset.boxes + "]"`)
		var g kialiGraph
		gm.getJSON(t, fmt.Sprintf("/api/namespaces/graph?namespaces=default&graphType=%s&duration=1m&responseTime=95&queryTime=%d&boxBy=%s", c.graphType, at, c.boxBy), &g)
		members := map[string]int{}
		for _, n := range g.Elements.Nodes {
			members[n.Data.Parent]++
		}
		var want []string
		for _, n := range g.Elements.Nodes {
			if n.Data.IsBox != "" && c.box != "none" {
				want = append(want, fmt.Sprintf("%s:%s=%d", n.Data.IsBox, n.Data.label(), members[n.Data.ID]))
			}
		}
		slices.Sort(want)
		if w := "[" + strings.Join(want, ",") + "]"; got != w {
			t.Errorf("%s graph boxed by %q: the page draws boxes %s, the API's boxBy=%s %s", c.graphType, c.box, got, c.boxBy, w)
		}
		if c.box == "app" && !strings.Contains(got, "app:reviews=") {
			t.Errorf("boxed by app, the workload graph has boxes %s, want one of reviews' workloads", got)
		}
		if c.box == "none" && got != "[]" {
			t.Errorf("boxed by none, the page draws boxes %s", got)
		}
	}
	b.shot(t, "graph-boxes")
}

// apiBadges are the route and canary marks the graph API gives a graph's
// nodes, as the UI writes them: "id=route+canary", sorted.
func apiBadges(g *kialiGraph) []string {
	var out []string
	for _, n := range g.Elements.Nodes {
		d := &n.Data
		if d.IsBox != "" {
			continue
		}
		var b []string
		if d.HasVS != nil {
			b = append(b, "route")
		}
		if d.Canary != nil {
			b = append(b, "canary")
		}
		if b != nil {
			out = append(out, d.ID+"="+strings.Join(b, "+"))
		}
	}
	slices.Sort(out)
	return out
}

// uiGraphBadges checks the route and canary badges against the graph API
// at the instant the page drew (the demo's reviews has a route and a
// canary): in the drawing of the service and versioned-app graphs and in
// the nodes table; the canary badge of the panel and the table opens the
// canary's page.
func uiGraphBadges(t *testing.T, b *browser, gm *instance) {
	// The window covers the demo's start, when reviews v3 had the canary's
	// traffic (it was rolled back since).
	for _, tc := range []struct{ graphType, api string }{
		{"service", "&graphType=service&injectServiceNodes=true"},
		{"versionedApp", "&graphType=versionedApp"},
	} {
		b.open(t, "/graph?ns=default&dur=30m&type="+tc.graphType)
		got := pollUI[[]string](t, b, 60*time.Second, `(() => {
			const el = document.querySelector("#graph-cy");
			return el?.dataset.badges && el.dataset.at ? [el.dataset.at, el.dataset.badges] : null;
		})()`)
		var g kialiGraph
		gm.getJSON(t, "/api/namespaces/graph?namespaces=default&duration=30m&queryTime="+got[0]+tc.api, &g)
		want := apiBadges(&g)
		t.Logf("%s graph at %s: the UI badges %s", tc.graphType, got[0], got[1])
		if got[1] != strings.Join(want, ",") {
			t.Errorf("%s graph at %s: the drawing badges\n%s\nthe API marks\n%s", tc.graphType, got[0], got[1], strings.Join(want, ","))
		}
		// The demo's reviews is routed and canaried: its service node
		// carries both, and reviews v3 (the canary subset) the canary.
		var names []string
		for _, n := range g.Elements.Nodes {
			if d := n.Data; d.Canary != nil {
				names = append(names, d.label())
				if d.Canary.Namespace != "default" || d.Canary.Name != "reviews" || d.Canary.State == "" {
					t.Errorf("%s names canary %+v, want default/reviews with its state", d.label(), *d.Canary)
				}
			}
		}
		wantNode := map[string]string{"service": "reviews", "versionedApp": "reviews v3"}[tc.graphType]
		if !slices.Contains(names, wantNode) {
			t.Errorf("%s graph: the API names the canary on %q, not on %s", tc.graphType, names, wantNode)
		}
	}

	// The table lists the same badges; its canary badge opens the canary.
	b.open(t, "/graph?ns=default&dur=30m&type=service&view=table")
	got := pollUI[[]string](t, b, 60*time.Second, `(() => {
		const cells = [...document.querySelectorAll("#nodes-table .node-badges")].filter(c => c.dataset.badges);
		const at = document.querySelector("#graph-cy")?.dataset.at;
		return cells.length && at ? [at, cells.map(c => c.dataset.node + "=" + c.dataset.badges).sort().join(",")] : null;
	})()`)
	var g kialiGraph
	gm.getJSON(t, "/api/namespaces/graph?namespaces=default&graphType=service&injectServiceNodes=true&duration=30m&queryTime="+got[0], &g)
	if want := strings.Join(apiBadges(&g), ","); got[1] != want {
		t.Errorf("the nodes table at %s badges\n%s\nthe API marks\n%s", got[0], got[1], want)
	}
	var reviews string
	for _, n := range g.Elements.Nodes {
		if n.Data.NodeType == "service" && n.Data.Service == "reviews" {
			reviews = n.Data.ID
			if !n.Data.HasTrafficShifting {
				t.Errorf("the reviews service node has no hasTrafficShifting; its route splits v1 and v2")
			}
		}
	}
	if reviews == "" {
		t.Fatal("no reviews service node in the service graph")
	}
	// The panel of the reviews service: its route, and its canary linked.
	panel := pollUI[[]string](t, b, 20*time.Second, fmt.Sprintf(`(() => {
		document.querySelector('#nodes-table button[data-focus="' + CSS.escape(%q) + '"]')?.click();
		const r = document.querySelector("#panel-route"), c = document.querySelector("#panel-canary");
		return r && c ? [r.textContent, c.getAttribute("href"), c.textContent] : null;
	})()`, "pick:"+reviews))
	t.Logf("reviews panel: %q", panel)
	if !strings.Contains(panel[0], "traffic shifting") || !strings.Contains(panel[0], "reviews.default.svc.cluster.local") {
		t.Errorf("the panel's route says %q", panel[0])
	}
	if panel[1] != "/canaries/default/reviews" {
		t.Errorf("the panel's canary badge links to %q", panel[1])
	}
	// The table's canary badge of the reviews row opens the canary's page.
	text := pollUI[string](t, b, 10*time.Second, fmt.Sprintf(`(() => {
		const a = document.querySelector('#nodes-table a.badge.canary[data-focus="' + CSS.escape(%q) + '"]');
		if (!a) return "";
		const text = a.textContent;
		a.click();
		return text;
	})()`, "canary:"+reviews))
	pollUI[bool](t, b, 20*time.Second, `location.pathname === "/canaries/default/reviews" && !!document.querySelector("#canary-state")?.textContent`)
	var st struct{ State string }
	gm.getJSON(t, "/api/canaries/default/reviews", &st)
	state := pollUI[string](t, b, 10*time.Second, `document.querySelector("#canary-state").textContent`)
	if state != st.State || !strings.HasSuffix(text, "· "+st.State) {
		t.Errorf("the badge %q opened a canary page in state %q; the API says %q", text, state, st.State)
	}
}
