package xds

import (
	"hash/maphash"
	"maps"
	"sync"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
)

// coalescer answers the SotW watches of every stream that subscribes to the
// same names and knows the same versions with one LinearCache watch.
//
// A LinearCache indexes each watch under every name it subscribes to, and a
// change answers each watch on its own: with thousands of clients naming the
// same hundreds of resources (the replicas of a service dial the same
// services), every ACK deletes and re-inserts hundreds of entries in maps of
// thousands of watches under the cache's lock, and every change computes
// the same response thousands of times. Here such streams join one group;
// the group holds the only LinearCache watch, and its one response is
// handed to each member (its resources marshalled once). A member keeps
// only its channel and a request of two fields.
//
// Streams that hold no state yet (the cache answers them at once) and
// wildcard watches go to the LinearCache directly.
type coalescer struct {
	lc *cache.LinearCache

	mu sync.Mutex
	// open holds the groups still waiting for a change, by what their
	// members subscribe to and know (a hash; members are checked exactly).
	open map[groupKey][]*watchGroup
}

func newCoalescer(lc *cache.LinearCache) *coalescer {
	return &coalescer{lc: lc, open: make(map[groupKey][]*watchGroup)}
}

type groupKey struct {
	names, known uint64
	n            int
}

// watchGroup is one LinearCache watch standing for its members.
type watchGroup struct {
	c   *coalescer
	key groupKey
	sub groupSubscription
	// ch receives the LinearCache's one response.
	ch chan cache.Response

	mu      sync.Mutex
	done    bool // answered or abandoned: no member may join
	members map[*groupMember]struct{}
	cancel  func()
}

type groupMember struct {
	req *discovery.DiscoveryRequest
	ch  chan cache.Response
}

// groupSubscription is the group's copy of its members' subscription: when
// a stream's next request drops names, its server deletes them from the
// stream's returned versions in place, while the group lives on for the
// others.
type groupSubscription struct {
	names map[string]struct{}
	known map[string]string
}

func (s groupSubscription) ReturnedResources() map[string]string     { return s.known }
func (s groupSubscription) SubscribedResources() map[string]struct{} { return s.names }
func (s groupSubscription) IsWildcard() bool                         { return false }

var groupSeed = maphash.MakeSeed()

// keyOf hashes what a subscription names and knows, in no order.
func keyOf(sub cache.Subscription) groupKey {
	k := groupKey{n: len(sub.SubscribedResources())}
	for name := range sub.SubscribedResources() {
		k.names += maphash.String(groupSeed, name)
	}
	var h maphash.Hash
	h.SetSeed(groupSeed)
	for name, version := range sub.ReturnedResources() {
		h.Reset()
		h.WriteString(name)
		h.WriteByte(0)
		h.WriteString(version)
		k.known += h.Sum64()
	}
	return k
}

// matches reports whether sub subscribes to and knows exactly what the
// group does.
func (g *watchGroup) matches(sub cache.Subscription) bool {
	names, known := sub.SubscribedResources(), sub.ReturnedResources()
	if len(names) != len(g.sub.names) || len(known) != len(g.sub.known) {
		return false
	}
	for name := range names {
		if _, ok := g.sub.names[name]; !ok {
			return false
		}
	}
	for name, version := range known {
		if v, ok := g.sub.known[name]; !ok || v != version {
			return false
		}
	}
	return true
}

// CreateWatch joins the stream to an open group that subscribes to and
// knows what it does, or opens one.
func (c *coalescer) CreateWatch(req *cache.Request, sub cache.Subscription, ch chan cache.Response) (func(), error) {
	if sub.IsWildcard() || req.GetVersionInfo() == "" {
		return c.lc.CreateWatch(req, sub, ch)
	}
	m := &groupMember{req: &discovery.DiscoveryRequest{TypeUrl: req.GetTypeUrl(), Node: req.GetNode()}, ch: ch}
	key := keyOf(sub)
	c.mu.Lock()
	for _, g := range c.open[key] {
		if g.join(m, sub) {
			c.mu.Unlock()
			return func() { g.leave(m) }, nil
		}
	}
	g := &watchGroup{
		c:   c,
		key: key,
		sub: groupSubscription{
			// A SotW server replaces a stream's names on its next
			// request but never changes the map in place (delta
			// streams do, and do not come here).
			names: sub.SubscribedResources(),
			known: maps.Clone(sub.ReturnedResources()),
		},
		ch:      make(chan cache.Response, 1),
		members: map[*groupMember]struct{}{m: {}},
	}
	c.open[key] = append(c.open[key], g)
	c.mu.Unlock()

	greq := &discovery.DiscoveryRequest{TypeUrl: req.GetTypeUrl(), VersionInfo: req.GetVersionInfo(), Node: req.GetNode()}
	cancel, err := c.lc.CreateWatch(greq, g.sub, g.ch)
	if err != nil {
		// Only a request for another type fails, which the caches never
		// route here.
		c.remove(g)
		g.mu.Lock()
		g.done = true
		g.mu.Unlock()
		return nil, err
	}
	g.mu.Lock()
	g.cancel = cancel
	g.mu.Unlock()
	go c.await(g)
	return func() { g.leave(m) }, nil
}

// join adds m to g if g still waits and m's subscription is g's.
// c.mu is held.
func (g *watchGroup) join(m *groupMember, sub cache.Subscription) bool {
	if !g.matches(sub) {
		return false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.done {
		return false
	}
	g.members[m] = struct{}{}
	return true
}

// leave drops m; the last member to leave cancels the group's watch. Once
// leave returns, m's channel receives nothing more from the group (the
// server drops what it received before).
func (g *watchGroup) leave(m *groupMember) {
	g.mu.Lock()
	delete(g.members, m)
	abandon := !g.done && len(g.members) == 0
	if abandon {
		g.done = true
	}
	cancel := g.cancel
	g.mu.Unlock()
	if abandon {
		g.c.remove(g)
		if cancel != nil {
			cancel()
		}
		// Wakes await; a response sent meanwhile is dropped with it.
		close(g.ch)
	}
}

// await hands the group's response to its members.
func (c *coalescer) await(g *watchGroup) {
	resp, ok := <-g.ch
	c.remove(g)
	if !ok {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.done {
		return
	}
	g.done = true
	// Sent under the group's lock, so a member that leaves (the server
	// closes a watch before it reads its next request) gets nothing after.
	// Each stream has one watch per type, so its channel has room.
	for m := range g.members {
		m.ch <- &memberResponse{Response: resp, req: m.req, known: maps.Clone(resp.GetReturnedResources())}
	}
}

// remove takes g off the open groups.
func (c *coalescer) remove(g *watchGroup) {
	c.mu.Lock()
	defer c.mu.Unlock()
	gs := c.open[g.key]
	for i, o := range gs {
		if o == g {
			gs = append(gs[:i], gs[i+1:]...)
			break
		}
	}
	if len(gs) == 0 {
		delete(c.open, g.key)
	} else {
		c.open[g.key] = gs
	}
}

// memberResponse is the group's response as one member's: its own request,
// its own copy of the versions it now knows (its stream's server changes
// them in place), and a DiscoveryResponse of its own (the server sets the
// stream's nonce on it) sharing the marshalled resources.
type memberResponse struct {
	cache.Response
	req   *discovery.DiscoveryRequest
	known map[string]string
}

func (r *memberResponse) GetRequest() *discovery.DiscoveryRequest { return r.req }

func (r *memberResponse) GetReturnedResources() map[string]string { return r.known }

func (r *memberResponse) GetDiscoveryResponse() (*discovery.DiscoveryResponse, error) {
	d, err := r.Response.GetDiscoveryResponse()
	if err != nil {
		return nil, err
	}
	return &discovery.DiscoveryResponse{
		VersionInfo:  d.GetVersionInfo(),
		Resources:    d.GetResources(),
		Canary:       d.GetCanary(),
		TypeUrl:      d.GetTypeUrl(),
		ControlPlane: d.GetControlPlane(),
	}, nil
}
