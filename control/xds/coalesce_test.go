package xds

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/envoyproxy/go-control-plane/pkg/server/stream/v3"
)

// coalesceStream is one client's state as go-control-plane's SotW server
// keeps it: its subscription and the version it last ACKed.
type coalesceStream struct {
	sub     stream.Subscription
	version string
	ch      chan cache.Response
	cancel  func()
}

func routes(version string, names ...string) map[string]types.Resource {
	out := map[string]types.Resource{}
	for _, n := range names {
		out[n] = &route.RouteConfiguration{Name: n, ValidateClusters: nil, InternalOnlyHeaders: []string{version}}
	}
	return out
}

// watch opens the stream's next watch, as the server does after an ACK.
func (s *coalesceStream) watch(t *testing.T, c *coalescer, node string) {
	t.Helper()
	req := &discovery.DiscoveryRequest{TypeUrl: resource.RouteType, VersionInfo: s.version, Node: &core.Node{Id: node}}
	cancel, err := c.CreateWatch(req, s.sub, s.ch)
	if err != nil {
		t.Fatal(err)
	}
	s.cancel = cancel
}

// receive takes the stream's response and ACKs it as the server does.
func (s *coalesceStream) receive(t *testing.T) *discovery.DiscoveryResponse {
	t.Helper()
	select {
	case r := <-s.ch:
		d, err := r.GetDiscoveryResponse()
		if err != nil {
			t.Fatal(err)
		}
		s.sub.SetReturnedResources(r.GetReturnedResources())
		s.version = r.GetResponseVersion()
		d.Nonce = fmt.Sprint(time.Now().UnixNano()) // the server's write
		return d
	case <-time.After(5 * time.Second):
		t.Fatal("no response")
		return nil
	}
}

func (s *coalesceStream) quiet(t *testing.T) {
	t.Helper()
	select {
	case r := <-s.ch:
		d, _ := r.GetDiscoveryResponse()
		t.Fatalf("unexpected response: version %s, %d resources", d.GetVersionInfo(), len(d.GetResources()))
	case <-time.After(50 * time.Millisecond):
	}
}

func newStreams(n int, names ...string) []*coalesceStream {
	out := make([]*coalesceStream, n)
	for i := range out {
		out[i] = &coalesceStream{sub: stream.NewSotwSubscription(names, false), ch: make(chan cache.Response, 1)}
	}
	return out
}

// Streams that subscribe to the same names and know the same versions
// share one LinearCache watch; a change answers each of them with what it
// changed, on a response of its own.
func TestCoalescerOneWatchForStreamsThatKnowTheSame(t *testing.T) {
	lc := cache.NewLinearCache(resource.RouteType, cache.WithVersionPrefix("p-"), cache.WithInitialResources(routes("1", "a", "b", "c")))
	c := newCoalescer(lc)
	streams := newStreams(50, "a", "b")
	for i, s := range streams {
		s.watch(t, c, fmt.Sprint("node-", i)) // first request: answered at once
		if d := s.receive(t); len(d.GetResources()) != 2 {
			t.Fatalf("first response holds %d routes, want 2", len(d.GetResources()))
		}
		s.watch(t, c, fmt.Sprint("node-", i)) // ACK
	}
	if got := lc.NumCacheWatches(); got != 1 {
		t.Fatalf("50 streams that know the same hold %d cache watches, want 1", got)
	}
	// A change to a route none of them names answers nobody.
	if err := lc.UpdateResource("c", routes("2", "c")["c"]); err != nil {
		t.Fatal(err)
	}
	streams[0].quiet(t)
	if err := lc.UpdateResource("b", routes("2", "b")["b"]); err != nil {
		t.Fatal(err)
	}
	seen := map[*discovery.DiscoveryResponse]bool{}
	for _, s := range streams {
		d := s.receive(t)
		if seen[d] {
			t.Fatal("two streams were handed the same DiscoveryResponse (the server writes its nonce into it)")
		}
		seen[d] = true
		if len(d.GetResources()) != 1 || d.GetVersionInfo() != "p-2" {
			t.Fatalf("response: version %s with %d routes, want p-2 with only b", d.GetVersionInfo(), len(d.GetResources()))
		}
		if v := s.sub.ReturnedResources()["b"]; v != "p-2" {
			t.Fatalf("the stream knows b at %q, want p-2", v)
		}
	}
	if v := streams[0].sub.ReturnedResources()["a"]; v != "p-0" {
		t.Fatalf("the stream knows a at %q, want p-0 (unchanged)", v)
	}
	// Each stream's versions are its own: one changing them leaves the
	// others alone.
	delete(streams[0].sub.ReturnedResources(), "a")
	if _, ok := streams[1].sub.ReturnedResources()["a"]; !ok {
		t.Fatal("streams share one map of returned versions")
	}
}

// Streams that know different versions are answered from what each knows.
func TestCoalescerSeparatesStreamsThatKnowDifferentVersions(t *testing.T) {
	lc := cache.NewLinearCache(resource.RouteType, cache.WithVersionPrefix("p-"), cache.WithInitialResources(routes("1", "a", "b")))
	c := newCoalescer(lc)
	old, cur := newStreams(1, "a", "b")[0], newStreams(1, "a", "b")[0]
	old.watch(t, c, "old")
	old.receive(t)
	old.watch(t, c, "old")
	if err := lc.UpdateResource("a", routes("2", "a")["a"]); err != nil {
		t.Fatal(err)
	}
	old.receive(t) // knows a@p-1 now but does not ACK yet
	cur.watch(t, c, "cur")
	cur.receive(t)
	cur.watch(t, c, "cur")
	if err := lc.UpdateResource("b", routes("2", "b")["b"]); err != nil {
		t.Fatal(err)
	}
	if d := cur.receive(t); len(d.GetResources()) != 1 {
		t.Fatalf("the up-to-date stream got %d routes, want b only", len(d.GetResources()))
	}
	// The stream that had not ACKed opens its watch now, knowing a@p-1 but
	// not b's change: it is answered at once, with b.
	old.watch(t, c, "old")
	if d := old.receive(t); len(d.GetResources()) != 1 || d.GetResources()[0] == nil {
		t.Fatalf("the late stream got %d routes, want b only", len(d.GetResources()))
	}
}

// A stream that leaves its group gets nothing more; the last to leave
// closes the group's cache watch.
func TestCoalescerLeave(t *testing.T) {
	lc := cache.NewLinearCache(resource.RouteType, cache.WithVersionPrefix("p-"), cache.WithInitialResources(routes("1", "a")))
	c := newCoalescer(lc)
	streams := newStreams(3, "a")
	for i, s := range streams {
		s.watch(t, c, fmt.Sprint(i))
		s.receive(t)
		s.watch(t, c, fmt.Sprint(i))
	}
	streams[0].cancel()
	if err := lc.UpdateResource("a", routes("2", "a")["a"]); err != nil {
		t.Fatal(err)
	}
	streams[1].receive(t)
	streams[2].receive(t)
	streams[0].quiet(t)
	for i, s := range streams[1:] {
		s.watch(t, c, fmt.Sprint(i+1))
	}
	if got := lc.NumCacheWatches(); got != 1 {
		t.Fatalf("%d cache watches, want 1", got)
	}
	streams[1].cancel()
	streams[2].cancel()
	if got := lc.NumCacheWatches(); got != 0 {
		t.Fatalf("no stream left, %d cache watches remain", got)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.open) != 0 {
		t.Fatalf("%d open groups remain", len(c.open))
	}
}

// Streams join, ACK and leave while routes change: every stream ends with
// the last version of every route it names (run with -race).
func TestCoalescerConcurrentChurn(t *testing.T) {
	names := []string{"a", "b", "c", "d"}
	lc := cache.NewLinearCache(resource.RouteType, cache.WithVersionPrefix("p-"), cache.WithInitialResources(routes("0", names...)))
	c := newCoalescer(lc)
	const updates = 200
	var wg sync.WaitGroup
	done := make(chan struct{})
	finalVersion := ""
	wg.Go(func() {
		defer close(done)
		for i := range updates {
			n := names[i%len(names)]
			if err := lc.UpdateResource(n, routes(fmt.Sprint(i+1), n)[n]); err != nil {
				t.Error(err)
				return
			}
		}
		finalVersion = fmt.Sprint("p-", updates)
	})
	for i := range 20 {
		sub := names[:2+i%3]
		wg.Go(func() {
			s := &coalesceStream{sub: stream.NewSotwSubscription(sub, false), ch: make(chan cache.Response, 1)}
			node := fmt.Sprint("n-", i)
			ack := func(r cache.Response) {
				s.sub.SetReturnedResources(r.GetReturnedResources())
				s.version = r.GetResponseVersion()
				s.cancel()
				s.watch(t, c, node)
			}
			s.watch(t, c, node)
			for {
				select {
				case r := <-s.ch:
					ack(r)
				case <-done:
					// Drain what the last updates sent.
					for {
						select {
						case r := <-s.ch:
							ack(r)
						case <-time.After(200 * time.Millisecond):
							s.cancel()
							// Update u (from 0) made names[u%4] version p-(u+1).
							for j, n := range sub {
								want := fmt.Sprint("p-", updates-len(names)+j+1)
								if got := s.sub.ReturnedResources()[n]; got != want {
									t.Errorf("stream %d knows %s at %q, want %q", i, n, got, want)
								}
							}
							return
						}
					}
				}
			}
		})
	}
	wg.Wait()
	if finalVersion == "" {
		t.Fatal("updates did not finish")
	}
	if got := lc.NumCacheWatches(); got != 0 {
		t.Errorf("%d cache watches remain", got)
	}
}

// Coalescing answers no watch more often than the LinearCache alone: the
// same streams (each its own names, as the clients of different services
// are) get the same responses either way.
func TestCoalescerSendsWhatTheCacheSends(t *testing.T) {
	names := make([]string, 100)
	for i := range names {
		names[i] = fmt.Sprint("r", i)
	}
	type watcher interface {
		CreateWatch(*cache.Request, cache.Subscription, chan cache.Response) (func(), error)
	}
	run := func(typeURL string, coalesce bool) (responses int, resources int) {
		lc := cache.NewLinearCache(typeURL, cache.WithVersionPrefix("p-"), cache.WithInitialResources(routes("0", names...)))
		var w watcher = lc
		if coalesce {
			w = newCoalescer(lc)
		}
		streams := make([]*coalesceStream, 50)
		for i := range streams {
			streams[i] = &coalesceStream{sub: stream.NewSotwSubscription(names[i:i+10], false), ch: make(chan cache.Response, 1)}
		}
		watch := func(i int) {
			s := streams[i]
			req := &discovery.DiscoveryRequest{TypeUrl: typeURL, VersionInfo: s.version, Node: &core.Node{Id: fmt.Sprint(i)}}
			cancel, err := w.CreateWatch(req, s.sub, s.ch)
			if err != nil {
				t.Fatal(err)
			}
			s.cancel = cancel
		}
		drain := func() {
			for {
				got := false
				for i, s := range streams {
					select {
					case r := <-s.ch:
						got = true
						responses++
						d, _ := r.GetDiscoveryResponse()
						resources += len(d.GetResources())
						s.sub.SetReturnedResources(r.GetReturnedResources())
						s.version = r.GetResponseVersion()
						s.cancel()
						watch(i)
					default:
					}
				}
				if !got {
					time.Sleep(20 * time.Millisecond)
					if !slices.ContainsFunc(streams, func(s *coalesceStream) bool { return len(s.ch) > 0 }) {
						return
					}
				}
			}
		}
		for i := range streams {
			watch(i)
		}
		drain()
		responses, resources = 0, 0
		for round := range 30 {
			update := map[string]types.Resource{}
			for j := range 5 {
				n := names[(round*7+j*13)%len(names)]
				update[n] = routes(fmt.Sprint(round+1), n)[n]
			}
			if err := lc.UpdateResources(update, nil); err != nil {
				t.Fatal(err)
			}
			drain()
		}
		for _, s := range streams {
			s.cancel()
		}
		return responses, resources
	}
	// EDS answers with what changed, CDS with every subscribed cluster.
	for _, typeURL := range []string{resource.EndpointType, resource.ClusterType} {
		directResp, directRes := run(typeURL, false)
		coalescedResp, coalescedRes := run(typeURL, true)
		if coalescedResp != directResp || coalescedRes != directRes {
			t.Errorf("%s coalesced: %d responses with %d resources; the LinearCache alone: %d with %d", typeURL, coalescedResp, coalescedRes, directResp, directRes)
		}
		t.Logf("%s: %d responses, %d resources", typeURL, directResp, directRes)
	}
}
