package xds

import (
	"errors"
	"fmt"
	"hash/maphash"
	"maps"
	"sync"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"google.golang.org/protobuf/proto"

	"github.com/glassmesh/glassmesh/control/translate"
)

// resourceHashes maps each resource object of one snapshot to a hash of its
// deterministic encoding (and where it was first seen). Keyed by object, so
// a listener shared by a hundred views is encoded once per Update, and an
// object the previous snapshot held too is not encoded again (resources
// are never modified once translated).
type resourceHashes map[types.Resource]hashed

type hashed struct {
	sum     uint64
	typeURL string
	name    string
	where   string // "" for ByName, else the sidecar view's key
}

// hasher encodes resources deterministically and hashes the bytes. Hashes
// are compared only within one process, so a per-process seed is fine.
type hasher struct {
	seed maphash.Seed
	opts proto.MarshalOptions
	buf  []byte
	prev resourceHashes // the last successful hashAll's
}

func newHasher() *hasher {
	return &hasher{seed: maphash.MakeSeed(), opts: proto.MarshalOptions{Deterministic: true}}
}

// hashAll hashes every resource of snap and checks the snapshot's shape:
// names match the resources, and sidecar views hold only sidecar types.
func (h *hasher) hashAll(snap *translate.Snapshot) (resourceHashes, error) {
	out := make(resourceHashes, len(h.prev))
	if err := h.add(out, "", snap.ByName); err != nil {
		return nil, err
	}
	for key, res := range snap.Sidecars {
		for t := range res {
			if !sidecarTypes[t] {
				return nil, fmt.Errorf("sidecars[%q]: type %s is not served per workload", key, t)
			}
		}
		if err := h.add(out, key, res); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// keep remembers out for the next hashAll, once it is served.
func (h *hasher) keep(out resourceHashes) { h.prev = out }

func (h *hasher) add(out resourceHashes, view string, res translate.Resources) error {
	for t, byName := range res {
		for name, r := range byName {
			if r == nil {
				return fmt.Errorf("%s%s %q is nil", where(view), t, name)
			}
			if _, done := out[r]; done {
				continue
			}
			if got := cache.GetResourceName(r); got != name {
				return fmt.Errorf("%s%s %q is named %q inside", where(view), t, name, got)
			}
			if old, ok := h.prev[r]; ok && old.typeURL == t && old.name == name {
				out[r] = old
				continue
			}
			b, err := h.opts.MarshalAppend(h.buf[:0], r)
			if err != nil {
				return fmt.Errorf("%s%s %q: %w", where(view), t, name, err)
			}
			h.buf = b
			out[r] = hashed{sum: maphash.Bytes(h.seed, b), typeURL: t, name: name, where: view}
		}
	}
	return nil
}

// where names a sidecar view in errors; "" is ByName.
func where(view string) string {
	if view == "" {
		return ""
	}
	return fmt.Sprintf("sidecars[%q]: ", view)
}

// hashesOf picks the hashes of res out of h, per type and name.
func hashesOf(res translate.Resources, h resourceHashes) map[string]map[string]uint64 {
	out := make(map[string]map[string]uint64, len(res))
	for t, byName := range res {
		m := make(map[string]uint64, len(byName))
		for name, r := range byName {
			m[name] = h[r].sum
		}
		out[t] = m
	}
	return out
}

// update makes every cache hold what snap says. stamp runs with each new
// cache version just before clients can see it. updateMu must be held.
func (c *caches) update(snap *translate.Snapshot, h resourceHashes, stamp func(string)) error {
	byName, views := c.plan(snap, h)
	var errs []error
	for t, tc := range byName {
		errs = append(errs, tc.apply(snap.ByName[t], h, stamp))
	}
	for _, v := range views {
		res, ok := snap.Sidecars[v.key]
		if !ok {
			res = snap.Sidecars[""]
		}
		for t, tc := range v.caches {
			errs = append(errs, tc.apply(res[t], h, stamp))
		}
	}
	return errors.Join(errs...)
}

// plan creates the caches and views snap needs, already filled, drops views
// that neither snap nor any stream needs, and returns what update must
// bring up to date. updateMu must be held.
func (c *caches) plan(snap *translate.Snapshot, h resourceHashes) (map[string]*typedCache, []*view) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.fallback = snap.Sidecars[""]
	c.fallbackHashes = hashesOf(c.fallback, h)
	for t, res := range snap.ByName {
		if _, ok := c.byName[t]; !ok {
			c.byName[t] = c.newTypedCache(t, res, hashesOf(translate.Resources{t: res}, h)[t], 1)
		}
	}
	for key, res := range snap.Sidecars {
		if _, ok := c.views[key]; !ok {
			c.views[key] = c.newView(key, res, hashesOf(res, h))
		}
	}
	views := make([]*view, 0, len(c.views))
	for key, v := range c.views {
		if _, ok := snap.Sidecars[key]; !ok && key != "" && v.refs == 0 {
			delete(c.views, key)
			continue
		}
		views = append(views, v)
	}
	return maps.Clone(c.byName), views
}

// pushClockSize bounds how many recent versions pushClock remembers.
const pushClockSize = 1 << 14

// pushClock remembers when each recent cache version was created, so a
// response can be timed from the Update that caused it.
type pushClock struct {
	mu   sync.Mutex
	at   map[string]time.Time
	ring [pushClockSize]string
	next int
}

func newPushClock() *pushClock {
	return &pushClock{at: make(map[string]time.Time)}
}

// stamp records that version was created at t, forgetting the oldest.
func (p *pushClock) stamp(version string, t time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if old := p.ring[p.next]; old != "" {
		delete(p.at, old)
	}
	p.ring[p.next] = version
	p.next = (p.next + 1) % pushClockSize
	p.at[version] = t
}

// when tells when version was created, if it is recent.
func (p *pushClock) when(version string) (time.Time, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	t, ok := p.at[version]
	return t, ok
}
