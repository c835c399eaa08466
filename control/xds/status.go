package xds

import (
	"cmp"
	"encoding/json"
	"net/http"
	"slices"
	"sync"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
)

// ProxyStatus is one connected proxy as /api/xds/proxies reports it.
type ProxyStatus struct {
	// ID is the node id.
	ID string `json:"id"`
	// Namespace and Workload come from the node metadata, or its id.
	Namespace string `json:"namespace"`
	Workload  string `json:"workload"`
	// Flavour is FlavourEnvoy or FlavourProxyless.
	Flavour string `json:"flavour"`
	// ConnectedAt is when the proxy's oldest open stream opened.
	ConnectedAt time.Time `json:"connectedAt"`
	// Types holds the state of each resource type the proxy asked for, by
	// type URL.
	Types map[string]TypeStatus `json:"types"`
}

// TypeStatus is where one proxy stands for one resource type.
type TypeStatus struct {
	// Sent is the version of the last response sent.
	Sent string `json:"sent"`
	// Acked is the version of the last response the proxy accepted.
	Acked string `json:"acked"`
	// NACK is the last response the proxy rejected, if any.
	NACK *NACKStatus `json:"nack,omitempty"`
}

// NACKStatus describes a rejected response.
type NACKStatus struct {
	// Version is the rejected response's version.
	Version string `json:"version"`
	// Nonce is the rejected response's nonce.
	Nonce string `json:"nonce"`
	// Error is the message of the proxy's error_detail.
	Error string `json:"error"`
	// At is when the rejection arrived.
	At time.Time `json:"at"`
}

// maxPending bounds the unanswered responses remembered per stream and type;
// a client answers the latest, so a few are plenty.
const maxPending = 8

type sentResponse struct{ nonce, version string }

// typeState is TypeStatus plus what is needed to match answers to responses.
type typeState struct {
	TypeStatus
	pending   []sentResponse
	requestAt time.Time
}

// answered removes the response with nonce, and any older, from pending.
func (ts *typeState) answered(nonce string) (version string, ok bool) {
	for i, p := range ts.pending {
		if p.nonce == nonce {
			ts.pending = slices.Delete(ts.pending, 0, i+1)
			return p.version, true
		}
	}
	return "", false
}

// streamKey names a stream: SotW and delta servers number theirs apart.
type streamKey struct {
	delta bool
	id    int64
}

type streamState struct {
	mu          sync.Mutex
	connectedAt time.Time
	// typeURL is the stream's type, "" on ADS streams.
	typeURL    string
	identified bool
	id         identity
	types      map[string]*typeState
}

func (st *streamState) typeState(typeURL string) *typeState {
	ts, ok := st.types[typeURL]
	if !ok {
		ts = &typeState{}
		st.types[typeURL] = ts
	}
	return ts
}

type nodeRef struct {
	flavour string
	streams int
}

// tracker follows every stream through go-control-plane's callbacks: who
// the node is, what was sent, acknowledged and rejected.
type tracker struct {
	caches  *caches
	metrics *metrics
	clock   *pushClock

	mu      sync.RWMutex
	streams map[streamKey]*streamState
	nodes   map[string]*nodeRef
}

func newTracker(c *caches, m *metrics, clock *pushClock) *tracker {
	return &tracker{
		caches:  c,
		metrics: m,
		clock:   clock,
		streams: make(map[streamKey]*streamState),
		nodes:   make(map[string]*nodeRef),
	}
}

func (t *tracker) open(k streamKey, typeURL string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.streams[k] = &streamState{connectedAt: time.Now().UTC(), typeURL: typeURL, types: make(map[string]*typeState)}
}

func (t *tracker) stream(k streamKey) *streamState {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.streams[k]
}

func (t *tracker) closed(k streamKey) {
	t.mu.Lock()
	st := t.streams[k]
	delete(t.streams, k)
	t.mu.Unlock()
	if st == nil {
		return
	}
	st.mu.Lock()
	identified, id := st.identified, st.id
	st.mu.Unlock()
	if !identified {
		return
	}
	if id.flavour == FlavourEnvoy {
		t.caches.release(id.viewKey())
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if n := t.nodes[id.id]; n != nil {
		if n.streams--; n.streams == 0 {
			delete(t.nodes, id.id)
			t.metrics.connected.WithLabelValues(n.flavour).Dec()
		}
	}
}

// identifyOnce records the node of a stream's first request that has one.
// Even an empty node counts: the caches route by the same node, so the view
// it is served from must be the one acquired.
func (t *tracker) identifyOnce(st *streamState, node *core.Node) {
	if node == nil {
		return
	}
	st.mu.Lock()
	if st.identified {
		st.mu.Unlock()
		return
	}
	st.identified, st.id = true, identify(node)
	id := st.id
	st.mu.Unlock()
	if id.flavour == FlavourEnvoy {
		t.caches.acquire(id.viewKey())
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	n := t.nodes[id.id]
	if n == nil {
		n = &nodeRef{flavour: id.flavour}
		t.nodes[id.id] = n
		t.metrics.connected.WithLabelValues(n.flavour).Inc()
	}
	n.streams++
}

// request classifies a request: the first of a type carries no nonce; later
// ones answer the response with that nonce, rejecting it when they carry an
// error_detail (the same rule for SotW and delta).
func (t *tracker) request(k streamKey, node *core.Node, typeURL, nonce string, detail *rpcstatus.Status) {
	st := t.stream(k)
	if st == nil {
		return
	}
	t.identifyOnce(st, node)
	now := time.Now() // monotonic, for comparing with pushClock
	st.mu.Lock()
	defer st.mu.Unlock()
	if typeURL == "" {
		typeURL = st.typeURL
	}
	ts := st.typeState(typeURL)
	ts.requestAt = now
	if nonce == "" {
		return
	}
	version, ok := ts.answered(nonce)
	if !ok {
		return // stale: an answer to a response already superseded
	}
	if detail != nil {
		ts.NACK = &NACKStatus{Version: version, Nonce: nonce, Error: detail.GetMessage(), At: now.UTC()}
		t.metrics.nacks.WithLabelValues(typeLabel(typeURL)).Inc()
		return
	}
	ts.Acked = version
	t.metrics.acks.WithLabelValues(typeLabel(typeURL)).Inc()
}

// response records a response about to be sent and times it from the Update
// that caused it, if an Update (not the request) did.
func (t *tracker) response(k streamKey, typeURL, nonce, version string) {
	now := time.Now()
	label := typeLabel(typeURL)
	t.metrics.pushes.WithLabelValues(label).Inc()
	st := t.stream(k)
	if st == nil {
		return
	}
	st.mu.Lock()
	ts := st.typeState(typeURL)
	ts.Sent = version
	if len(ts.pending) == maxPending {
		ts.pending = slices.Delete(ts.pending, 0, 1)
	}
	ts.pending = append(ts.pending, sentResponse{nonce: nonce, version: version})
	requestAt := ts.requestAt
	st.mu.Unlock()
	if at, ok := t.clock.when(version); ok && at.After(requestAt) {
		t.metrics.pushLatency.WithLabelValues(label).Observe(now.Sub(at).Seconds())
	}
}

// proxies merges the streams of each node (a node may use one stream per
// type) into one entry; for a type on two streams the newer stream wins.
func (t *tracker) proxies() []ProxyStatus {
	t.mu.RLock()
	states := make([]*streamState, 0, len(t.streams))
	for _, st := range t.streams {
		states = append(states, st)
	}
	t.mu.RUnlock()
	byID := make(map[string]*ProxyStatus)
	type snap struct {
		at    time.Time
		id    identity
		types map[string]TypeStatus
	}
	snaps := make([]snap, 0, len(states))
	for _, st := range states {
		st.mu.Lock()
		if st.identified {
			s := snap{at: st.connectedAt, id: st.id, types: make(map[string]TypeStatus, len(st.types))}
			for u, ts := range st.types {
				s.types[u] = ts.TypeStatus
			}
			snaps = append(snaps, s)
		}
		st.mu.Unlock()
	}
	slices.SortFunc(snaps, func(a, b snap) int { return a.at.Compare(b.at) })
	for _, s := range snaps {
		p, ok := byID[s.id.id]
		if !ok {
			p = &ProxyStatus{ID: s.id.id, Namespace: s.id.namespace, Workload: s.id.workload,
				Flavour: s.id.flavour, ConnectedAt: s.at, Types: map[string]TypeStatus{}}
			byID[s.id.id] = p
		}
		for u, ts := range s.types {
			p.Types[u] = ts
		}
	}
	out := make([]ProxyStatus, 0, len(byID))
	for _, p := range byID {
		out = append(out, *p)
	}
	slices.SortFunc(out, func(a, b ProxyStatus) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// proxiesHandler serves {"proxies": [...]}.
func proxiesHandler(t *tracker) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(struct {
			Proxies []ProxyStatus `json:"proxies"`
		}{t.proxies()})
	})
}
