package topology

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"strings"
	"sync"
	"time"

	"github.com/glassmesh/glassmesh/tracing/store"
)

// Build returns the graph for o, from the in-memory aggregates when they
// hold the window, else from the Querier: the served JSON decoded into
// Kiali's types. Calls with the same options within one refresh interval
// share one computation and its result; the result must not be modified.
func (g *Graph) Build(ctx context.Context, o Options) (*Cytoscape, error) {
	e, err := g.cached(ctx, o, o.Refresh)
	if err != nil {
		return nil, err
	}
	return e.graph()
}

// buildJSON is the graph for o as served (Kiali's JSON and a newline).
// Every caller of the same options within one refresh interval, HTTP and
// stream alike, shares one computation and its bytes, which must not be
// modified.
func (g *Graph) buildJSON(ctx context.Context, o Options) ([]byte, error) {
	e, err := g.cached(ctx, o, o.Refresh)
	if err != nil {
		return nil, err
	}
	return e.body, nil
}

// cached is the cache entry of o, computed when there is none younger
// than ttl.
func (g *Graph) cached(ctx context.Context, o Options, ttl time.Duration) (*cacheEntry, error) {
	// The computation outlives the caller that started it: others may be
	// waiting for it. The Querier's own timeout bounds it.
	bctx := context.WithoutCancel(ctx)
	return g.cache.entry(ctx, o.key(), g.now(), ttl, func() ([]byte, error) { return g.build(bctx, o) })
}

// pathMode picks where a graph's traffic comes from.
type pathMode int

const (
	pathAuto pathMode = iota
	pathMemory
	pathPromQL
)

func (g *Graph) build(ctx context.Context, o Options) ([]byte, error) {
	return g.buildFrom(ctx, o, pathAuto)
}

// buildFrom builds the graph for o from the given path, as JSON.
func (g *Graph) buildFrom(ctx context.Context, o Options, mode pathMode) ([]byte, error) {
	start := time.Now()
	at := o.QueryTime
	if at.IsZero() {
		at = g.now()
	}
	if mode == pathAuto {
		mode = pathMemory
		if g.q != nil && (g.cfg.PreferQuerier || g.external.Load() || !g.memoryCovers(at.Add(-o.Duration), at)) {
			mode = pathPromQL
		}
	}
	b := newBuilder(&o)
	label := "memory"
	if mode == pathPromQL {
		label = "promql"
		rows, err := g.promRows(ctx, &o, at)
		if err != nil {
			return nil, err
		}
		b.addRows(rows)
	} else {
		rows, old := g.memoryRows(at, o.Duration, o.Appenders[AppenderIdleNode])
		b.addRows(rows)
		b.addIdle(old)
	}
	if g.spans != nil {
		deps, err := g.spans.Dependencies(ctx, at.Add(-o.Duration), at)
		if err != nil {
			return nil, err
		}
		b.addSpans(deps, o.Duration)
	}
	ix := g.registry.index(g.cfg.RegistryCluster)
	b.addRegistry(ix, g.cfg.RegistryCluster, b.ap.dead, b.ap.idle)
	b.addRoutes(ix, g.registry.canaryStates())
	out := b.emit(g.health, at)
	g.m.buildDuration.WithLabelValues(label).Observe(time.Since(start).Seconds())
	return out, nil
}

// addSpans adds the span service graph: a span service is the node of the
// same app (or workload, or service) name when metrics drew one, else a
// new app node; calls between them become http edges rated by call count.
func (b *builder) addSpans(deps []store.Dependency, d time.Duration) {
	byName := b.nodesByName()
	for _, dep := range deps {
		if !b.spanWanted(byName, dep.Parent) && !b.spanWanted(byName, dep.Child) {
			continue
		}
		src, dst := b.spanNode(byName, dep.Parent), b.spanNode(byName, dep.Child)
		if src == nil || dst == nil || src == dst {
			continue
		}
		es := b.findPath(src, dst)
		if es == nil {
			// The span call may be drawn between other nodes of the same
			// names (in versioned graphs, a version the name did not pick).
			es = b.edgesBetween(dep.Parent, dep.Child)
		}
		if es != nil {
			for _, e := range es {
				e.spans = true
				e.src.spans, e.dst.spans = true, true
			}
			continue
		}
		src.spans, dst.spans = true, true
		r := float64(dep.CallCount) / d.Seconds()
		b.edges[edgeKey{src, dst, "http"}] = &edge{src: src, dst: dst, proto: "http", rate: r, spans: true}
		src.out[pHTTP] += r
		dst.in[pHTTP] += r
		dst.hasIn = true
	}
}

// edgesBetween is every metrics edge from a node named parent to a node
// named child (span service names: "name" or "name.namespace").
func (b *builder) edgesBetween(parent, child string) []*edge {
	var out []*edge
	for _, e := range b.edges {
		if spanNamed(e.src, parent) && spanNamed(e.dst, child) {
			out = append(out, e)
		}
	}
	return out
}

// spanNamed reports whether a node is the one a span service name means.
func spanNamed(n *node, svc string) bool {
	name, ns, _ := strings.Cut(svc, ".")
	if ns != "" && n.data.Namespace != ns {
		return false
	}
	return name != "" && (n.data.App == name || n.data.Workload == name || n.data.Service == name)
}

// findPath is the edge src→dst, or the two edges through an injected
// service node, that metrics drew for a span call.
func (b *builder) findPath(src, dst *node) []*edge {
	for _, p := range []string{"http", "grpc", "tcp"} {
		if e := b.edges[edgeKey{src, dst, p}]; e != nil {
			return []*edge{e}
		}
	}
	for k, e := range b.edges {
		if k.src != src || e.dst.data.NodeType != NodeTypeService {
			continue
		}
		if e2 := b.edges[edgeKey{e.dst, dst, k.proto}]; e2 != nil {
			return []*edge{e, e2}
		}
	}
	return nil
}

// nodesByName indexes the metrics nodes by app, workload and service name,
// first one (apps and workloads before services, then nameOrder)
// winning.
func (b *builder) nodesByName() map[string]*node {
	m := map[string]*node{}
	for _, n := range b.nodes {
		for _, name := range []string{n.data.App, n.data.Workload, n.data.Service} {
			if name == "" || name == "unknown" {
				continue
			}
			if cur := m[name]; cur == nil || spanRank(n) < spanRank(cur) ||
				(spanRank(n) == spanRank(cur) && nameOrder(n) < nameOrder(cur)) {
				m[name] = n
			}
		}
	}
	return m
}

// spanWanted reports whether a span service belongs in a namespace-
// filtered graph: it is drawn already, or named in a requested namespace.
func (b *builder) spanWanted(byName map[string]*node, svc string) bool {
	if b.nsSet == nil {
		return true
	}
	if n := byName[svc]; n != nil {
		return !n.data.IsOutside && b.nsSet[n.data.Namespace]
	}
	name, ns, _ := strings.Cut(svc, ".")
	if n := byName[name]; n != nil {
		return b.nsSet[n.data.Namespace]
	}
	return b.nsSet[ns]
}

// nameOrder breaks ties between nodes of one name by what a reader sees
// (namespace, workload, version), so the choice survives id changes.
func nameOrder(n *node) string {
	return n.data.Namespace + "\x00" + n.data.Workload + "\x00" + n.data.Version + "\x00" + n.data.Service
}

// spanRank prefers the nodes that run code (apps, workloads) to
// services when a span service name matches both.
func spanRank(n *node) int {
	if n.data.NodeType == NodeTypeService {
		return 1
	}
	return 0
}

// spanNode is the node of a span service name ("name" or "name.namespace").
func (b *builder) spanNode(byName map[string]*node, svc string) *node {
	if n := byName[svc]; n != nil {
		return n
	}
	name, ns, _ := strings.Cut(svc, ".")
	if ns == "" {
		ns = "unknown"
	}
	if n := byName[name]; n != nil {
		return n
	}
	n := b.getNode(nodeKey{"span", "", ns, name, ""}, func() NodeData {
		return NodeData{NodeType: NodeTypeApp, Cluster: "unknown", Namespace: ns, App: name}
	})
	byName[svc] = n
	return n
}

// resultCache shares one computation per key among concurrent callers and
// keeps its result for one refresh interval.
type resultCache struct {
	mu sync.Mutex
	m  map[string]*cacheEntry
}

// cacheEntry is one computed graph: its JSON, and what is derived from
// it at most once, when first asked for.
type cacheEntry struct {
	done chan struct{}
	at   time.Time
	body []byte // Kiali's JSON and a newline
	err  error

	graphOnce sync.Once
	res       *Cytoscape
	resErr    error

	gzipOnce sync.Once
	gz       []byte
}

// graph is the entry's JSON decoded into Kiali's types.
func (e *cacheEntry) graph() (*Cytoscape, error) {
	e.graphOnce.Do(func() {
		e.res = new(Cytoscape)
		e.resErr = json.Unmarshal(e.body, e.res)
	})
	return e.res, e.resErr
}

// gzipped is the entry's JSON gzip-compressed at the fastest level: the
// time is paid on the request path (~150 ms for the 37 MB of a
// 10,000-service graph, which shrinks ~6×).
func (e *cacheEntry) gzipped() []byte {
	e.gzipOnce.Do(func() {
		var buf bytes.Buffer
		buf.Grow(len(e.body) / 5)
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
		_, _ = zw.Write(e.body)
		_ = zw.Close()
		e.gz = buf.Bytes()
	})
	return e.gz
}

// entry returns the cached entry of key if younger than ttl, else
// computes it once for every waiting caller; its err is nil.
func (c *resultCache) entry(ctx context.Context, key string, now time.Time, ttl time.Duration, f func() ([]byte, error)) (*cacheEntry, error) {
	c.mu.Lock()
	if c.m == nil {
		c.m = map[string]*cacheEntry{}
	}
	for k, e := range c.m { // bounded: drop stale entries as we go
		if isDone(e.done) && now.Sub(e.at) >= ttl {
			delete(c.m, k)
		}
	}
	e := c.m[key]
	if e == nil || (isDone(e.done) && (now.Sub(e.at) >= ttl || e.err != nil)) {
		e = &cacheEntry{done: make(chan struct{}), at: now}
		c.m[key] = e
		c.mu.Unlock()
		e.body, e.err = f()
		close(e.done)
		if e.err != nil {
			return nil, e.err
		}
		return e, nil
	}
	c.mu.Unlock()
	select {
	case <-e.done:
		if e.err != nil {
			return nil, e.err
		}
		return e, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func isDone(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
