package xds

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"maps"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	gcplog "github.com/envoyproxy/go-control-plane/pkg/log"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"

	"github.com/glassmesh/glassmesh/control/translate"
)

// byNameTypes always have a shared cache, so a node may subscribe before the
// first Update. Other types get one when a snapshot first holds them.
var byNameTypes = []string{resource.ListenerType, resource.RouteType, resource.ClusterType, resource.EndpointType}

// sidecarTypes are served to Envoy sidecars from their workload's view: the
// wildcard listeners and clusters, and (with SDS) the workload's own secrets.
var sidecarTypes = map[string]bool{resource.ListenerType: true, resource.ClusterType: true, resource.SecretType: true}

// typedCache is a LinearCache (or several holding the same resources) and
// the hashes of what it holds. Only Update (serialised by caches.updateMu)
// touches version and hashes after creation.
//
// A LinearCache keeps, under one lock, an index of every watch by every
// name it subscribes to: with thousands of clients each naming hundreds of
// resources, one change answers and re-indexes thousands of watches
// there. The by-name caches are therefore shards, each the same
// resources and versions, every node served by one of them (by its id):
// a change is answered on every core at once, and an ACK waits only for
// the clients of its own shard.
type typedCache struct {
	typeURL string
	prefix  string
	shards  []*cache.LinearCache
	// watchers answer each shard's SotW watches, coalesced.
	watchers []*coalescer
	// version mirrors the LinearCache's counter: its versions are prefix+N,
	// N counting UpdateResources calls, and only apply calls it.
	version uint64
	hashes  map[string]uint64
	// last is the map the cache was last made to hold (kept, so its
	// address is not reused): translations hand an unchanged view over as
	// the very same map (its resources are never modified), which needs
	// no diff.
	last map[string]types.Resource
}

// nextVersion is the version the LinearCache gives its next update.
func (c *typedCache) nextVersion() string {
	return c.prefix + strconv.FormatUint(c.version+1, 10)
}

// diff lists what must change for the cache to hold res.
func (c *typedCache) diff(res map[string]types.Resource, h *resourceHashes) (map[string]types.Resource, []string) {
	var update map[string]types.Resource
	for name, r := range res {
		if old, ok := c.hashes[name]; !ok || old != h.sum(r) {
			if update == nil {
				update = make(map[string]types.Resource)
			}
			update[name] = r
		}
	}
	var del []string
	for name := range c.hashes {
		if _, ok := res[name]; !ok {
			del = append(del, name)
		}
	}
	return update, del
}

// apply makes the cache hold exactly res, telling the LinearCache only about
// the names whose content changed, so only watches on those are answered.
// before runs with the version the change will carry, before any watch can
// see it.
func (c *typedCache) apply(res map[string]types.Resource, h *resourceHashes, before func(version string)) error {
	if res != nil && translate.MapID(res) == translate.MapID(c.last) {
		return nil
	}
	c.last = res
	update, del := c.diff(res, h)
	if len(update) == 0 && len(del) == 0 {
		return nil
	}
	before(c.nextVersion())
	c.version++
	for name, r := range update {
		c.hashes[name] = h.sum(r)
	}
	for _, name := range del {
		delete(c.hashes, name)
	}
	errs := make([]error, len(c.shards))
	var wg sync.WaitGroup
	for i, lc := range c.shards {
		wg.Go(func() { errs[i] = lc.UpdateResources(update, del) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%s: %w", c.typeURL, err)
	}
	return nil
}

// shard is the index of the LinearCache that serves node id.
func (c *typedCache) shard(id string) int {
	if len(c.shards) == 1 {
		return 0
	}
	return int(maphash.String(shardSeed, id) % uint64(len(c.shards)))
}

// shardSeed spreads node ids over shards; any seed does.
var shardSeed = maphash.MakeSeed()

// view holds the resources Envoy sidecars of one workload fetch by wildcard.
type view struct {
	key    string
	caches map[string]*typedCache
	// refs counts the streams this view serves; a view outside the
	// snapshot is dropped once it serves none. Guarded by caches.mu.
	refs int
}

// caches implements cache.Cache over shared by-name caches and per-workload
// views, routing each request by type and node flavour.
type caches struct {
	log        gcplog.Logger
	basePrefix string
	seq        atomic.Uint64

	// updateMu serialises Update.
	updateMu sync.Mutex

	// mu guards the maps below (not the caches' contents).
	mu     sync.RWMutex
	byName map[string]*typedCache
	views  map[string]*view
	// fallback is the content of views for workloads not in the snapshot
	// (Sidecars[""]) and its hashes; replaced, never modified.
	fallback       translate.Resources
	fallbackHashes map[string]map[string]uint64
}

var _ cache.Cache = (*caches)(nil)

func newCaches(log gcplog.Logger, basePrefix string) *caches {
	c := &caches{
		log:            log,
		basePrefix:     basePrefix,
		byName:         make(map[string]*typedCache),
		views:          make(map[string]*view),
		fallbackHashes: map[string]map[string]uint64{},
	}
	for _, t := range byNameTypes {
		c.byName[t] = c.newTypedCache(t, nil, nil, byNameShards)
	}
	c.views[""] = c.newView("", nil, nil)
	return c
}

// byNameShards is how many LinearCaches hold each by-name type: one per
// core, at least two, at most four (each shard encodes what it sends
// once, so more shards cost more memory for little: at 1,000 clients, 2
// shards took a change from 276 to 191 ms, 8 to 200 ms).
var byNameShards = min(4, max(2, runtime.GOMAXPROCS(0)))

// newTypedCache gives every typed cache its own version prefix, so versions
// from different caches, or from a view dropped and created again, or from
// an earlier process, never look alike to a client. Its shards share the
// prefix and count their updates alike, so they answer the same versions.
func (c *caches) newTypedCache(typeURL string, initial map[string]types.Resource, hashes map[string]uint64, shards int) *typedCache {
	prefix := c.basePrefix + strconv.FormatUint(c.seq.Add(1), 36) + "-"
	if hashes == nil {
		hashes = make(map[string]uint64)
	}
	tc := &typedCache{typeURL: typeURL, prefix: prefix, hashes: hashes}
	for range shards {
		lc := cache.NewLinearCache(typeURL, cache.WithVersionPrefix(prefix),
			cache.WithLogger(c.log), cache.WithInitialResources(initial))
		tc.shards = append(tc.shards, lc)
		tc.watchers = append(tc.watchers, newCoalescer(lc))
	}
	return tc
}

// newView builds a view already holding res, so no client ever sees it
// empty before the first Update reaches it.
func (c *caches) newView(key string, res translate.Resources, hashes map[string]map[string]uint64) *view {
	v := &view{key: key, caches: make(map[string]*typedCache, len(sidecarTypes))}
	for t := range sidecarTypes {
		v.caches[t] = c.newTypedCache(t, res[t], maps.Clone(hashes[t]), 1)
	}
	return v
}

// viewLocked returns the view for key, creating it from the fallback
// content when the snapshot has no entry for it. c.mu must be held.
func (c *caches) viewLocked(key string) *view {
	v, ok := c.views[key]
	if !ok {
		v = c.newView(key, c.fallback, c.fallbackHashes)
		c.views[key] = v
	}
	return v
}

// acquire marks a stream as served by the view for key.
func (c *caches) acquire(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.viewLocked(key).refs++
}

// release undoes acquire.
func (c *caches) release(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if v, ok := c.views[key]; ok && v.refs > 0 {
		v.refs--
	}
}

// lookup picks the cache that answers a request of typeURL from node.
func (c *caches) lookup(typeURL string, id identity) (*typedCache, error) {
	if id.flavour == FlavourEnvoy && sidecarTypes[typeURL] {
		c.mu.RLock()
		v, ok := c.views[id.viewKey()]
		c.mu.RUnlock()
		if !ok {
			c.mu.Lock()
			v = c.viewLocked(id.viewKey())
			c.mu.Unlock()
		}
		return v.caches[typeURL], nil
	}
	c.mu.RLock()
	tc, ok := c.byName[typeURL]
	c.mu.RUnlock()
	if ok {
		return tc, nil
	}
	// A type we know but have no resources of gets an empty cache, so
	// the client hears "none" instead of losing its whole ADS stream;
	// types nobody knows are refused, so clients cannot make caches.
	if cache.GetResponseType(typeURL) == types.UnknownType {
		return nil, fmt.Errorf("unknown resource type %q", typeURL)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if tc, ok = c.byName[typeURL]; !ok {
		tc = c.newTypedCache(typeURL, nil, nil, 1)
		c.byName[typeURL] = tc
	}
	return tc, nil
}

// CreateWatch implements cache.ConfigWatcher for SotW streams.
func (c *caches) CreateWatch(req *cache.Request, sub cache.Subscription, ch chan cache.Response) (func(), error) {
	tc, err := c.lookup(req.GetTypeUrl(), identify(req.GetNode()))
	if err != nil {
		return nil, err
	}
	// A client that rejected its first response of a type repeats an empty
	// version_info. The LinearCache takes a version without its prefix to
	// mean "no state" and answers at once, which, NACKed again, loops.
	// A request carrying a nonce always follows a response whose state
	// the subscription already holds, so tell the cache the client has a
	// version of ours: it then answers only real changes.
	if req.GetResponseNonce() != "" && !strings.HasPrefix(req.GetVersionInfo(), tc.prefix) {
		req = proto.CloneOf(req)
		req.VersionInfo = tc.prefix
	}
	return tc.watchers[tc.shard(req.GetNode().GetId())].CreateWatch(req, sub, ch)
}

// CreateDeltaWatch implements cache.ConfigWatcher for delta streams.
func (c *caches) CreateDeltaWatch(req *cache.DeltaRequest, sub cache.Subscription, ch chan cache.DeltaResponse) (func(), error) {
	tc, err := c.lookup(req.GetTypeUrl(), identify(req.GetNode()))
	if err != nil {
		return nil, err
	}
	return tc.shards[tc.shard(req.GetNode().GetId())].CreateDeltaWatch(req, sub, ch)
}

// Fetch implements cache.ConfigFetcher; REST polling is not served.
func (c *caches) Fetch(context.Context, *cache.Request) (cache.Response, error) {
	return nil, errors.New("xds: fetch (REST) is not supported, use a stream")
}
