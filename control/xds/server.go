// Package xds serves the mesh's Envoy v3 resources over xDS (ADS SotW and
// delta, and the per-type services) to Envoy sidecars and proxyless gRPC
// clients, and reports where each connected proxy stands.
//
// Resources live in go-control-plane LinearCaches: one per type shared by
// every node for what is asked for by name, and one per type and workload
// ("view") for what Envoy sidecars fetch by wildcard. Update diffs each new
// snapshot against the last, so a change reaches only the clients watching
// the resources that changed, once, marshalled once.
package xds

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	clusterservice "github.com/envoyproxy/go-control-plane/envoy/service/cluster/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	endpointservice "github.com/envoyproxy/go-control-plane/envoy/service/endpoint/v3"
	listenerservice "github.com/envoyproxy/go-control-plane/envoy/service/listener/v3"
	routeservice "github.com/envoyproxy/go-control-plane/envoy/service/route/v3"
	secretservice "github.com/envoyproxy/go-control-plane/envoy/service/secret/v3"
	sotw "github.com/envoyproxy/go-control-plane/pkg/server/sotw/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	"github.com/glassmesh/glassmesh/control/translate"
)

// DefaultSendTimeout is Config.SendTimeout's default.
const DefaultSendTimeout = 30 * time.Second

// Config configures a Server.
type Config struct {
	// SendTimeout bounds how long sending one response may block (the
	// client stopped reading) before its stream is cancelled, so it cannot
	// hold memory forever. Zero means DefaultSendTimeout.
	SendTimeout time.Duration
	// Authorize, when set, is asked whether the client of a stream (its
	// context carries the peer and its TLS state) may act as the workload
	// its node names; an error ends the stream with PERMISSION_DENIED and
	// that message. Nil lets every node be whoever it says.
	Authorize func(ctx context.Context, namespace, workload string) error
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	if c.SendTimeout < 0 {
		return fmt.Errorf("xds.send-timeout: must be >= 0, got %s", c.SendTimeout)
	}
	return nil
}

// Server is the xDS control plane: caches, gRPC handlers and proxy status.
type Server struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics
	caches  *caches
	hasher  *hasher
	clock   *pushClock
	tracker *tracker
	xds     serverv3.Server
	cancel  context.CancelFunc

	mu      sync.Mutex // guards stopped and wg.Add
	stopped bool
	wg      sync.WaitGroup
}

// New builds a Server serving an empty mesh until the first Update. A zero or
// negative SendTimeout means DefaultSendTimeout; a nil logger discards, a
// nil reg leaves the metrics unregistered.
func New(cfg Config, logger *slog.Logger, reg prometheus.Registerer) *Server {
	if cfg.SendTimeout <= 0 {
		cfg.SendTimeout = DefaultSendTimeout
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	gcpLog := slogAdapter{l: logger}
	// A prefix unique to this process start: a client that reconnects
	// after a restart presents a version this process never made, and so
	// gets the full state rather than a mistaken "nothing changed".
	prefix := strconv.FormatInt(time.Now().UnixNano(), 36) + "-"
	s := &Server{
		cfg:     cfg,
		log:     logger,
		metrics: newMetrics(reg),
		caches:  newCaches(gcpLog, prefix),
		hasher:  newHasher(),
		clock:   newPushClock(),
	}
	s.tracker = newTracker(s.caches, s.metrics, s.clock)
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.xds = serverv3.NewServer(ctx, s.caches, callbacks{t: s.tracker}, sotw.WithLogger(gcpLog))
	return s
}

// Register adds ADS (SotW and delta) and the LDS, RDS, CDS, EDS and SDS
// services to g.
func (s *Server) Register(g grpc.ServiceRegistrar) {
	discovery.RegisterAggregatedDiscoveryServiceServer(g, adsService{s: s})
	listenerservice.RegisterListenerDiscoveryServiceServer(g, ldsService{s: s})
	routeservice.RegisterRouteDiscoveryServiceServer(g, rdsService{s: s})
	clusterservice.RegisterClusterDiscoveryServiceServer(g, cdsService{s: s})
	endpointservice.RegisterEndpointDiscoveryServiceServer(g, edsService{s: s})
	secretservice.RegisterSecretDiscoveryServiceServer(g, sdsService{s: s})
}

// Update makes snap the served config. Only resources whose encoding changed
// (or that were removed) are pushed, and only to clients watching them. A
// snapshot that breaks the contract (a nil resource, a name that does not
// match its resource, a non-sidecar type in Sidecars) or holds a resource
// that fails translate.Validate is rejected whole and the previous one
// keeps serving; only encodings not served already are validated. Updates
// are serialised.
func (s *Server) Update(snap *translate.Snapshot) error {
	start := time.Now()
	if snap == nil {
		snap = &translate.Snapshot{}
	}
	s.caches.updateMu.Lock()
	defer s.caches.updateMu.Unlock()
	h, err := s.hasher.hashAll(snap)
	if err != nil {
		return fmt.Errorf("xds: snapshot rejected: %w", err)
	}
	checked, err := h.validate()
	if err != nil {
		return fmt.Errorf("xds: snapshot rejected: %w", err)
	}
	stamp := func(version string) { s.clock.stamp(version, start) }
	if err := s.caches.update(snap, h, stamp); err != nil {
		return fmt.Errorf("xds: update: %w", err)
	}
	s.hasher.keep(h)
	s.log.Debug("xds snapshot applied", "new", len(h.added), "validated", checked, "took", time.Since(start))
	return nil
}

// Proxies lists the connected proxies, sorted by node id.
func (s *Server) Proxies() []ProxyStatus {
	return s.tracker.proxies()
}

// Handler serves /api/xds/proxies: {"proxies": [...]} as Proxies returns.
func (s *Server) Handler() http.Handler {
	return proxiesHandler(s.tracker)
}

// Stop ends every open stream and waits for their handlers. Stop the gRPC
// server too (before or after); new streams are refused from now on.
func (s *Server) Stop() {
	s.mu.Lock()
	s.stopped = true
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
}

// enter counts a new stream handler in, unless the server stopped.
func (s *Server) enter() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return false
	}
	s.wg.Add(1)
	return true
}
