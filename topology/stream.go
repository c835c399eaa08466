package topology

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// message is one server-sent event, already framed, in parts written in
// order: a graph event's data is the shared cached JSON itself.
type message [][]byte

func frame(event string, data []byte) message {
	return message{[]byte("event: " + event + "\ndata: "), data, []byte("\n\n")}
}

// size is the event's length in bytes.
func (m message) size() int {
	n := 0
	for _, p := range m {
		n += len(p)
	}
	return n
}

// write writes the event to w.
func (m message) write(w io.Writer) error {
	for _, p := range m {
		if _, err := w.Write(p); err != nil {
			return err
		}
	}
	return nil
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
	var last []byte
	for {
		last = b.tick(ctx, last)
		select {
		case <-t.C:
		case <-b.stop:
			return
		}
	}
}

// tick builds the graph and publishes it when it changed (anything but
// its timestamp), or an error event. It returns the JSON of the newest
// published graph.
func (b *broadcaster) tick(ctx context.Context, prev []byte) []byte {
	// A cache entry younger than half a refresh is shared with HTTP
	// callers; an older one would delay the change by a whole interval.
	e, err := b.g.cached(ctx, b.o, b.o.Refresh/2)
	if err != nil {
		if ctx.Err() != nil {
			return prev
		}
		data, _ := json.Marshal(errorBody{Error: err.Error()})
		b.publish(frame("error", data), false)
		return prev
	}
	if prev != nil && bytes.Equal(sansTimestamp(e.body), sansTimestamp(prev)) {
		return prev
	}
	b.publish(frame("graph", bytes.TrimSuffix(e.body, []byte("\n"))), true)
	return e.body
}

// sansTimestamp is a graph's JSON after its leading timestamp: the part
// that says whether the graph changed.
func sansTimestamp(body []byte) []byte {
	if i := bytes.IndexByte(body, ','); i >= 0 {
		return body[i:]
	}
	return body
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
		if _, err := io.WriteString(w, "retry: 60000\n"); err == nil {
			_ = frame("error", data).write(w)
		}
		return
	}
	fl.Flush()
	b, s := g.subscribe(o)
	defer g.unsubscribe(b, s)
	for {
		select {
		case m := <-s.ch:
			if err := m.write(w); err != nil {
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
