package topology

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/glassmesh/glassmesh/tracing/store"
)

// A span call between two services that metrics drew between other
// versions of them is that metrics edge, not a new edge from whichever
// version the name picked.
func TestSpanCallJoinsTheVersionsMetricsDrew(t *testing.T) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	g, err := New(Config{}, nil, &fakeSpans{deps: []store.Dependency{{Parent: "reviews", Child: "ratings", CallCount: 300}}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	g.now = func() time.Time { return now }
	g.started = now.Add(-time.Hour)
	if err := g.ConsumeRequests(context.Background(), requests(fixtureCalls(), now.Add(-30*time.Second))); err != nil {
		t.Fatal(err)
	}
	o := DefaultOptions()
	o.GraphType = GraphTypeVersionedApp
	out, err := g.Build(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	nodes := map[string]NodeData{}
	for _, n := range out.Elements.Nodes {
		nodes[n.Data.ID] = *n.Data
	}
	toRatings := 0
	for _, e := range out.Elements.Edges {
		src, dst := nodes[e.Data.Source], nodes[e.Data.Target]
		if dst.App != "ratings" {
			continue
		}
		toRatings++
		if src.App != "reviews" || src.Version != "v2" {
			t.Errorf("edge %s %s -> ratings: only reviews v2 calls ratings", src.App, src.Version)
		}
		if e.Data.DataSource != "both" {
			t.Errorf("reviews v2 -> ratings dataSource = %q, want both", e.Data.DataSource)
		}
	}
	if toRatings != 1 {
		t.Fatalf("%d edges into ratings, want 1", toRatings)
	}
}

// TestGraphSaysWhenTheSharedTraceStoreFails: without the span edges the
// graph would be silently partial; it answers 503 naming the store.
func TestGraphSaysWhenTheSharedTraceStoreFails(t *testing.T) {
	down := fmt.Errorf("trace store http://jaeger:16686: GET /api/dependencies: connection refused: %w", store.ErrUnavailable)
	g, err := New(Config{}, nil, &fakeSpans{err: down}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	g.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	code, body := get(t, srv.URL+PathGraph)
	if code != http.StatusServiceUnavailable || !strings.Contains(string(body), "trace store http://jaeger:16686") {
		t.Fatalf("graph = %d %s, want 503 naming the store", code, body)
	}
}
