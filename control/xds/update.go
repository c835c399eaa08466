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

// hasher encodes resources deterministically and hashes the bytes, and
// remembers what the served snapshot holds: every resource object (keyed
// by object: a listener shared by a thousand views is encoded once, and an
// object served before is never encoded again, as resources are never
// modified once translated), the per-type maps it came in, and the
// encodings validated. A snapshot's maps that are the very maps served
// now (translation hands unchanged views over as the same maps) are not
// walked at all: an update costs the maps that changed, not the mesh.
// Hashes are compared only within one process, so a per-process seed is
// fine.
type hasher struct {
	seed maphash.Seed
	opts proto.MarshalOptions
	buf  []byte

	// What the served snapshot holds; changed only by keep.
	served map[types.Resource]*servedResource
	maps   map[uintptr]map[string]types.Resource // its per-type maps, by identity (held, so no address is reused)
	valid  map[validKey]int                      // its encodings (all validated), counted
}

// servedResource is a served resource's hash and how many served maps hold it.
type servedResource struct {
	hashed
	maps int
}

type hashed struct {
	sum     uint64
	typeURL string
	name    string
	where   string // "" for ByName, else the sidecar view's key
}

func newHasher() *hasher {
	return &hasher{seed: maphash.MakeSeed(), opts: proto.MarshalOptions{Deterministic: true},
		served: map[types.Resource]*servedResource{}, maps: map[uintptr]map[string]types.Resource{}, valid: map[validKey]int{}}
}

// resourceHashes is what hashAll found of one snapshot: the hashes of its
// resources, those new to it (added) on top of those served.
type resourceHashes struct {
	h     *hasher
	added map[types.Resource]hashed
	maps  map[uintptr]map[string]types.Resource // every per-type map of the snapshot
	fresh []uintptr                             // those not served now
}

// sum is the hash of r, a resource of the snapshot.
func (rh *resourceHashes) sum(r types.Resource) uint64 {
	if x, ok := rh.added[r]; ok {
		return x.sum
	}
	if x, ok := rh.h.served[r]; ok {
		return x.sum
	}
	return 0
}

// hashAll hashes the resources of snap that are in maps not served now and
// checks their shape: names match the resources, and sidecar views hold
// only sidecar types. Nothing changes until keep.
func (h *hasher) hashAll(snap *translate.Snapshot) (*resourceHashes, error) {
	rh := &resourceHashes{h: h, added: map[types.Resource]hashed{}, maps: make(map[uintptr]map[string]types.Resource, len(h.maps))}
	if err := h.add(rh, "", snap.ByName); err != nil {
		return nil, err
	}
	for key, res := range snap.Sidecars {
		for t := range res {
			if !sidecarTypes[t] {
				return nil, fmt.Errorf("sidecars[%q]: type %s is not served per workload", key, t)
			}
		}
		if err := h.add(rh, key, res); err != nil {
			return nil, err
		}
	}
	return rh, nil
}

func (h *hasher) add(rh *resourceHashes, view string, res translate.Resources) error {
	for t, byName := range res {
		if byName == nil {
			continue
		}
		id := translate.MapID(byName)
		if _, ok := rh.maps[id]; ok {
			continue // the same map twice in one snapshot
		}
		rh.maps[id] = byName
		if _, ok := h.maps[id]; ok {
			continue
		}
		rh.fresh = append(rh.fresh, id)
		for name, r := range byName {
			if r == nil {
				return fmt.Errorf("%s%s %q is nil", where(view), t, name)
			}
			if got := cache.GetResourceName(r); got != name {
				return fmt.Errorf("%s%s %q is named %q inside", where(view), t, name, got)
			}
			if _, ok := rh.added[r]; ok {
				continue
			}
			if old, ok := h.served[r]; ok && old.typeURL == t && old.name == name {
				continue
			}
			b, err := h.opts.MarshalAppend(h.buf[:0], r)
			if err != nil {
				return fmt.Errorf("%s%s %q: %w", where(view), t, name, err)
			}
			h.buf = b
			rh.added[r] = hashed{sum: maphash.Bytes(h.seed, b), typeURL: t, name: name, where: view}
		}
	}
	return nil
}

// keep makes rh's snapshot the served one: the resources of its new maps
// are counted in, those of the maps it no longer holds out.
func (h *hasher) keep(rh *resourceHashes) {
	for _, id := range rh.fresh {
		for _, r := range rh.maps[id] {
			x, ok := h.served[r]
			if !ok {
				x = &servedResource{hashed: rh.added[r]}
				h.served[r] = x
				h.valid[validKey{x.typeURL, x.sum}]++
			}
			x.maps++
		}
	}
	for id, m := range h.maps {
		if _, ok := rh.maps[id]; ok {
			continue
		}
		for _, r := range m {
			x := h.served[r]
			if x.maps--; x.maps == 0 {
				delete(h.served, r)
				k := validKey{x.typeURL, x.sum}
				if h.valid[k]--; h.valid[k] == 0 {
					delete(h.valid, k)
				}
			}
		}
	}
	h.maps = rh.maps
}

// where names a sidecar view in errors; "" is ByName.
func where(view string) string {
	if view == "" {
		return ""
	}
	return fmt.Sprintf("sidecars[%q]: ", view)
}

// hashesOf picks the hashes of res out of h, per type and name.
func hashesOf(res translate.Resources, h *resourceHashes) map[string]map[string]uint64 {
	out := make(map[string]map[string]uint64, len(res))
	for t, byName := range res {
		m := make(map[string]uint64, len(byName))
		for name, r := range byName {
			m[name] = h.sum(r)
		}
		out[t] = m
	}
	return out
}

// update makes every cache hold what snap says. stamp runs with each new
// cache version just before clients can see it. updateMu must be held.
func (c *caches) update(snap *translate.Snapshot, h *resourceHashes, stamp func(string)) error {
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
func (c *caches) plan(snap *translate.Snapshot, h *resourceHashes) (map[string]*typedCache, []*view) {
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
