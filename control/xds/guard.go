package xds

import (
	"context"
	"errors"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	clusterservice "github.com/envoyproxy/go-control-plane/envoy/service/cluster/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	endpointservice "github.com/envoyproxy/go-control-plane/envoy/service/endpoint/v3"
	listenerservice "github.com/envoyproxy/go-control-plane/envoy/service/listener/v3"
	routeservice "github.com/envoyproxy/go-control-plane/envoy/service/route/v3"
	secretservice "github.com/envoyproxy/go-control-plane/envoy/service/secret/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// errSendStalled is the cause a guarded stream is cancelled with.
var errSendStalled = errors.New("xds: sending a response blocked longer than the send timeout")

// deniedError is the cause of a stream cancelled because its node may not
// be who the client is (Config.Authorize); it holds the status to return.
type deniedError struct{ err error }

func (d deniedError) Error() string { return d.err.Error() }

type (
	sotwStream  = grpc.BidiStreamingServer[discovery.DiscoveryRequest, discovery.DiscoveryResponse]
	deltaStream = grpc.BidiStreamingServer[discovery.DeltaDiscoveryRequest, discovery.DeltaDiscoveryResponse]
)

// guardedStream is a server stream whose Send cancels the stream's context
// when it blocks longer than timeout: a client that stops reading fills its
// flow-control window, and from then on its Send would wait forever.
type guardedStream[Req, Resp any] struct {
	grpc.BidiStreamingServer[Req, Resp]
	ctx       context.Context
	cancel    context.CancelCauseFunc
	timeout   time.Duration
	authorize func(ctx context.Context, namespace, workload string) error
}

// Recv receives the next request, refusing a node the client may not act
// as (Config.Authorize): a node is named in the first request and may be
// in any later one.
func (g *guardedStream[Req, Resp]) Recv() (*Req, error) {
	m, err := g.BidiStreamingServer.Recv()
	if err != nil || g.authorize == nil {
		return m, err
	}
	if n, ok := any(m).(interface{ GetNode() *core.Node }); ok && n.GetNode() != nil {
		id := identify(n.GetNode())
		if err := g.authorize(g.ctx, id.namespace, id.workload); err != nil {
			// go-control-plane ends a stream whose Recv fails without a
			// status; the cause carries it to guard, which returns it.
			denied := status.Error(codes.PermissionDenied, err.Error())
			g.cancel(deniedError{denied})
			return nil, denied
		}
	}
	return m, nil
}

// Context returns the stream's context, cancelled by a stalled Send too.
func (g *guardedStream[Req, Resp]) Context() context.Context { return g.ctx }

// Send sends m, cancelling the stream if that takes longer than the timeout.
func (g *guardedStream[Req, Resp]) Send(m *Resp) error {
	t := time.AfterFunc(g.timeout, func() { g.cancel(errSendStalled) })
	defer t.Stop()
	return g.BidiStreamingServer.Send(m)
}

// guard runs handle on a guarded copy of st in its own goroutine and returns
// as soon as a Send stalls: gRPC unblocks the stalled Send only once the
// method handler has returned, and the goroutine then ends on its own (Stop
// waits for it).
func guard[Req, Resp any](s *Server, st grpc.BidiStreamingServer[Req, Resp], handle func(*guardedStream[Req, Resp]) error) error {
	if !s.enter() {
		return status.Error(codes.Unavailable, "xds: server is stopping")
	}
	ctx, cancel := context.WithCancelCause(st.Context())
	defer cancel(nil)
	gs := &guardedStream[Req, Resp]{BidiStreamingServer: st, ctx: ctx, cancel: cancel, timeout: s.cfg.SendTimeout, authorize: s.cfg.Authorize}
	done := make(chan error, 1)
	go func() {
		defer s.wg.Done()
		done <- handle(gs)
	}()
	select {
	case err := <-done:
		if d, ok := context.Cause(ctx).(deniedError); ok {
			return d.err
		}
		return err
	case <-ctx.Done():
	}
	if d, ok := context.Cause(ctx).(deniedError); ok {
		<-done
		s.log.Warn("xds stream refused", "error", d.err)
		return d.err
	}
	if !errors.Is(context.Cause(ctx), errSendStalled) {
		return <-done // the client left or the server stops: ends promptly
	}
	s.metrics.stalled.Inc()
	addr := ""
	if p, ok := peer.FromContext(st.Context()); ok {
		addr = p.Addr.String()
	}
	s.log.Warn("xds stream cancelled: client is not reading", "peer", addr, "timeout", s.cfg.SendTimeout)
	return status.Error(codes.Unavailable, errSendStalled.Error())
}

func (s *Server) sotw(st sotwStream, typeURL string) error {
	return guard(s, st, func(gs *guardedStream[discovery.DiscoveryRequest, discovery.DiscoveryResponse]) error {
		return s.xds.StreamHandler(gs, typeURL)
	})
}

func (s *Server) delta(st deltaStream, typeURL string) error {
	return guard(s, st, func(gs *guardedStream[discovery.DeltaDiscoveryRequest, discovery.DeltaDiscoveryResponse]) error {
		return s.xds.DeltaStreamHandler(gs, typeURL)
	})
}

// The gRPC services, each a thin shell over the guarded handlers. Fetch
// (REST-over-gRPC) methods stay unimplemented.
type (
	adsService struct {
		discovery.UnimplementedAggregatedDiscoveryServiceServer
		s *Server
	}
	ldsService struct {
		listenerservice.UnimplementedListenerDiscoveryServiceServer
		s *Server
	}
	rdsService struct {
		routeservice.UnimplementedRouteDiscoveryServiceServer
		s *Server
	}
	cdsService struct {
		clusterservice.UnimplementedClusterDiscoveryServiceServer
		s *Server
	}
	edsService struct {
		endpointservice.UnimplementedEndpointDiscoveryServiceServer
		s *Server
	}
	sdsService struct {
		secretservice.UnimplementedSecretDiscoveryServiceServer
		s *Server
	}
)

// StreamAggregatedResources serves SotW ADS.
func (a adsService) StreamAggregatedResources(st sotwStream) error {
	return a.s.sotw(st, resource.AnyType)
}

// DeltaAggregatedResources serves delta ADS.
func (a adsService) DeltaAggregatedResources(st deltaStream) error {
	return a.s.delta(st, resource.AnyType)
}

// StreamListeners serves SotW LDS.
func (l ldsService) StreamListeners(st sotwStream) error { return l.s.sotw(st, resource.ListenerType) }

// DeltaListeners serves delta LDS.
func (l ldsService) DeltaListeners(st deltaStream) error { return l.s.delta(st, resource.ListenerType) }

// StreamRoutes serves SotW RDS.
func (r rdsService) StreamRoutes(st sotwStream) error { return r.s.sotw(st, resource.RouteType) }

// DeltaRoutes serves delta RDS.
func (r rdsService) DeltaRoutes(st deltaStream) error { return r.s.delta(st, resource.RouteType) }

// StreamClusters serves SotW CDS.
func (c cdsService) StreamClusters(st sotwStream) error { return c.s.sotw(st, resource.ClusterType) }

// DeltaClusters serves delta CDS.
func (c cdsService) DeltaClusters(st deltaStream) error { return c.s.delta(st, resource.ClusterType) }

// StreamEndpoints serves SotW EDS.
func (e edsService) StreamEndpoints(st sotwStream) error { return e.s.sotw(st, resource.EndpointType) }

// DeltaEndpoints serves delta EDS.
func (e edsService) DeltaEndpoints(st deltaStream) error { return e.s.delta(st, resource.EndpointType) }

// StreamSecrets serves SotW SDS.
func (x sdsService) StreamSecrets(st sotwStream) error { return x.s.sotw(st, resource.SecretType) }

// DeltaSecrets serves delta SDS.
func (x sdsService) DeltaSecrets(st deltaStream) error { return x.s.delta(st, resource.SecretType) }
