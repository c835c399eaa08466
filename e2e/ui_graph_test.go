package e2e

import (
	"fmt"
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
