package topology

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// message is one server-sent event, already framed.
type message []byte

func frame(event string, data []byte) message {
	var b bytes.Buffer
	b.Grow(len(data) + len(event) + 16)
	fmt.Fprintf(&b, "event: %s\ndata: ", event)
	b.Write(data)
	b.WriteString("\n\n")
	return b.Bytes()
}

// broadcaster computes the graph of one parameter set every refresh and
// sends it to every subscriber when it changed. It stops when its last
// subscriber leaves.
type broadcaster struct {
	g    *Graph
	key  string
	o    Options
	subs map[*subscriber]struct{} // guarded by g.streamMu
	last message                  // the newest graph event, for new subscribers
	stop chan struct{}
	done chan struct{}
}

// subscriber is one stream client: a bounded queue and a signal that it
// was dropped as too slow.
type subscriber struct {
	ch      chan message
	dropped chan struct{}
}

// streams holds the running broadcasters.
type streams struct {
	mu sync.Mutex
	m  map[string]*broadcaster
	wg sync.WaitGroup
}

// subscribe joins (or starts) the broadcaster of o.
func (g *Graph) subscribe(o Options) (*broadcaster, *subscriber) {
	s := &subscriber{ch: make(chan message, g.cfg.StreamQueue), dropped: make(chan struct{})}
	g.streams.mu.Lock()
	defer g.streams.mu.Unlock()
	if g.streams.m == nil {
		g.streams.m = map[string]*broadcaster{}
	}
	key := o.key()
	b := g.streams.m[key]
	if b == nil {
		b = &broadcaster{g: g, key: key, o: o, subs: map[*subscriber]struct{}{}, stop: make(chan struct{}), done: make(chan struct{})}
		g.streams.m[key] = b
		g.streams.wg.Add(1)
		go b.run()
	}
	if b.last != nil {
		s.ch <- b.last
	}
	b.subs[s] = struct{}{}
	g.m.streams.Inc()
	return b, s
}

// unsubscribe leaves b, stopping it when s was the last subscriber.
func (g *Graph) unsubscribe(b *broadcaster, s *subscriber) {
	g.streams.mu.Lock()
	defer g.streams.mu.Unlock()
	if _, ok := b.subs[s]; !ok {
		return
	}
	delete(b.subs, s)
	g.m.streams.Dec()
	if len(b.subs) == 0 {
		delete(g.streams.m, b.key)
		close(b.stop)
	}
}

// run computes the graph every refresh until stopped.
func (b *broadcaster) run() {
	defer b.g.streams.wg.Done()
	defer close(b.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-b.stop
		cancel()
	}()
	t := time.NewTicker(b.o.Refresh)
	defer t.Stop()
	var canon []byte
	for {
		canon = b.tick(ctx, canon)
		select {
		case <-t.C:
		case <-b.stop:
			return
		}
	}
}

// tick builds the graph and publishes it when its canonical form (the
// JSON without the timestamp) changed, or an error event.
func (b *broadcaster) tick(ctx context.Context, prev []byte) []byte {
	// A cache entry younger than half a refresh is shared with HTTP
	// callers; an older one would delay the change by a whole interval.
	bctx := context.WithoutCancel(ctx)
	res, err := b.g.cache.get(ctx, b.key, b.g.now(), b.o.Refresh/2, func() (*Cytoscape, error) { return b.g.build(bctx, b.o) })
	if err != nil {
		if ctx.Err() != nil {
			return prev
		}
		data, _ := json.Marshal(errorBody{Error: err.Error()})
		b.publish(frame("error", data), false)
		return prev
	}
	c := *res
	c.Timestamp = 0
	canon := c.appendJSON(make([]byte, 0, max(len(prev)+len(prev)/8, c.encodedSize())))
	if bytes.Equal(canon, prev) {
		return prev
	}
	// The event is the canonical form with the real timestamp: one
	// encoding instead of two.
	const zero = `{"timestamp":0`
	data := append([]byte(`{"timestamp":`+strconv.FormatInt(res.Timestamp, 10)), canon[len(zero):]...)
	b.publish(frame("graph", data), true)
	return canon
}

// publish queues m to every subscriber; one whose queue is full is
// dropped (it is told through its dropped channel) instead of waiting.
func (b *broadcaster) publish(m message, keep bool) {
	g := b.g
	g.streams.mu.Lock()
	defer g.streams.mu.Unlock()
	if keep {
		b.last = m
	}
	for s := range b.subs {
		select {
		case s.ch <- m:
		default:
			delete(b.subs, s)
			close(s.dropped)
			g.m.streams.Dec()
			g.m.slowDropped.Inc()
		}
	}
	if len(b.subs) == 0 && g.streams.m[b.key] == b {
		delete(g.streams.m, b.key)
		close(b.stop)
	}
}

// serveStream is GET /api/graph/stream: server-sent events of the graph.
// Bad parameters are a 400 with Kiali's error JSON, or, for a client that
// accepts only event streams (an EventSource), one "error" event.
func (g *Graph) serveStream(w http.ResponseWriter, r *http.Request) {
	o, err := g.parse(r)
	if err != nil && !strings.Contains(r.Header.Get("Accept"), "text/event-stream") {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	fl, ok := w.(http.Flusher)
	if !ok {
		writeError(w, http.StatusInternalServerError, fmt.Errorf("streaming unsupported"))
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if err != nil {
		// An EventSource cannot read an error status: tell it in the
		// stream, and ask it not to come back soon with the same URL.
		data, _ := json.Marshal(errorBody{Error: err.Error()})
		_, _ = w.Write(append([]byte("retry: 60000\n"), frame("error", data)...))
		return
	}
	fl.Flush()
	b, s := g.subscribe(o)
	defer g.unsubscribe(b, s)
	for {
		select {
		case m := <-s.ch:
			if _, err := w.Write(m); err != nil {
				return
			}
			fl.Flush()
		case <-s.dropped:
			return
		case <-r.Context().Done():
			return
		}
	}
}

// Close ends every stream (their handlers return) and stops the
// broadcasters, waiting for them. Call it before shutting the HTTP server
// down, which would otherwise wait for the streams.
func (g *Graph) Close() error {
	g.streams.mu.Lock()
	for k, b := range g.streams.m {
		delete(g.streams.m, k)
		for s := range b.subs {
			delete(b.subs, s)
			close(s.dropped)
			g.m.streams.Dec()
		}
		close(b.stop)
	}
	g.streams.mu.Unlock()
	g.streams.wg.Wait()
	return nil
}
