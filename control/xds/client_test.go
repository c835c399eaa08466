package xds

import (
	"context"
	"net"
	"slices"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// serve runs g on a new loopback listener; stop ends it and waits.
func serve(t testing.TB, g *grpc.Server) (addr string, stop func()) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = g.Serve(lis)
	}()
	return lis.Addr().String(), func() {
		g.Stop()
		<-served
	}
}

// startServer runs s's gRPC services on a loopback port until the test ends.
func startServer(t testing.TB, s *Server) string {
	t.Helper()
	g := grpc.NewServer()
	s.Register(g)
	addr, stop := serve(t, g)
	t.Cleanup(func() {
		s.Stop()
		stop()
	})
	return addr
}

func dial(t testing.TB, addr string, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	opts = append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))
	cc, err := grpc.NewClient(addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// adsClient is a raw SotW ADS client that remembers, per type, the names it
// asked for and the version it last accepted, as Envoy and grpc-go do.
type adsClient struct {
	t        testing.TB
	node     *corev3.Node
	stream   grpc.BidiStreamingClient[discovery.DiscoveryRequest, discovery.DiscoveryResponse]
	resps    chan *discovery.DiscoveryResponse
	names    map[string][]string
	accepted map[string]string
	sentNode *bool
}

func newADSClient(t testing.TB, cc *grpc.ClientConn, node *corev3.Node) *adsClient {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	st, err := discovery.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(ctx)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	c := &adsClient{t: t, node: node, stream: st, resps: make(chan *discovery.DiscoveryResponse, 64),
		names: map[string][]string{}, accepted: map[string]string{}, sentNode: new(bool)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			r, err := st.Recv()
			if err != nil {
				return
			}
			c.resps <- r
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return c
}

// on returns c reporting failures to t, for use inside a subtest.
func (c *adsClient) on(t testing.TB) *adsClient {
	cp := *c
	cp.t = t
	return &cp
}

// send sends req, with the node on the stream's first request only, as
// Envoy and grpc-go do.
func (c *adsClient) send(req *discovery.DiscoveryRequest) {
	c.t.Helper()
	if !*c.sentNode {
		req.Node, *c.sentNode = c.node, true
	}
	if err := c.stream.Send(req); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

// subscribe asks for names of typeURL (none: wildcard).
func (c *adsClient) subscribe(typeURL string, names ...string) {
	c.t.Helper()
	c.names[typeURL] = names
	c.send(&discovery.DiscoveryRequest{TypeUrl: typeURL, ResourceNames: names, VersionInfo: c.accepted[typeURL]})
}

// ack accepts r.
func (c *adsClient) ack(r *discovery.DiscoveryResponse) {
	c.t.Helper()
	c.accepted[r.GetTypeUrl()] = r.GetVersionInfo()
	c.send(&discovery.DiscoveryRequest{TypeUrl: r.GetTypeUrl(), ResourceNames: c.names[r.GetTypeUrl()],
		VersionInfo: r.GetVersionInfo(), ResponseNonce: r.GetNonce()})
}

// nack rejects r, repeating the version last accepted.
func (c *adsClient) nack(r *discovery.DiscoveryResponse, msg string) {
	c.t.Helper()
	c.send(&discovery.DiscoveryRequest{TypeUrl: r.GetTypeUrl(), ResourceNames: c.names[r.GetTypeUrl()],
		VersionInfo: c.accepted[r.GetTypeUrl()], ResponseNonce: r.GetNonce(), ErrorDetail: &status.Status{Code: 3, Message: msg}})
}

// recv waits for the next response.
func (c *adsClient) recv() *discovery.DiscoveryResponse {
	c.t.Helper()
	select {
	case r := <-c.resps:
		return r
	case <-time.After(5 * time.Second):
		c.t.Fatal("no response within 5s")
		return nil
	}
}

// recvType waits for the next response and checks its type.
func (c *adsClient) recvType(typeURL string) *discovery.DiscoveryResponse {
	c.t.Helper()
	r := c.recv()
	if r.GetTypeUrl() != typeURL {
		c.t.Fatalf("got a %s response, want %s", r.GetTypeUrl(), typeURL)
	}
	return r
}

// recvEach waits for one response of each of types, in any order.
func (c *adsClient) recvEach(types ...string) map[string]*discovery.DiscoveryResponse {
	c.t.Helper()
	out := make(map[string]*discovery.DiscoveryResponse, len(types))
	for range types {
		r := c.recv()
		if _, dup := out[r.GetTypeUrl()]; dup || !slices.Contains(types, r.GetTypeUrl()) {
			c.t.Fatalf("unexpected %s response, want one each of %v", r.GetTypeUrl(), types)
		}
		out[r.GetTypeUrl()] = r
	}
	return out
}

// quiet checks that nothing arrives for d.
func (c *adsClient) quiet(d time.Duration) {
	c.t.Helper()
	select {
	case r := <-c.resps:
		c.t.Fatalf("unexpected %s response version %s with %d resources", r.GetTypeUrl(), r.GetVersionInfo(), len(r.GetResources()))
	case <-time.After(d):
	}
}

// deltaClient is a raw delta ADS client.
type deltaClient struct {
	t        testing.TB
	node     *corev3.Node
	stream   grpc.BidiStreamingClient[discovery.DeltaDiscoveryRequest, discovery.DeltaDiscoveryResponse]
	resps    chan *discovery.DeltaDiscoveryResponse
	sentNode *bool
}

func newDeltaClient(t testing.TB, cc *grpc.ClientConn, node *corev3.Node) *deltaClient {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	st, err := discovery.NewAggregatedDiscoveryServiceClient(cc).DeltaAggregatedResources(ctx)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	c := &deltaClient{t: t, node: node, stream: st, resps: make(chan *discovery.DeltaDiscoveryResponse, 64), sentNode: new(bool)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			r, err := st.Recv()
			if err != nil {
				return
			}
			c.resps <- r
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return c
}

// on returns c reporting failures to t, for use inside a subtest.
func (c *deltaClient) on(t testing.TB) *deltaClient {
	cp := *c
	cp.t = t
	return &cp
}

func (c *deltaClient) send(req *discovery.DeltaDiscoveryRequest) {
	c.t.Helper()
	if !*c.sentNode {
		req.Node, *c.sentNode = c.node, true
	}
	if err := c.stream.Send(req); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

func (c *deltaClient) recv() *discovery.DeltaDiscoveryResponse {
	c.t.Helper()
	select {
	case r := <-c.resps:
		return r
	case <-time.After(5 * time.Second):
		c.t.Fatal("no delta response within 5s")
		return nil
	}
}

func (c *deltaClient) quiet(d time.Duration) {
	c.t.Helper()
	select {
	case r := <-c.resps:
		c.t.Fatalf("unexpected delta %s response: %d resources, removed %v", r.GetTypeUrl(), len(r.GetResources()), r.GetRemovedResources())
	case <-time.After(d):
	}
}

// ack accepts r.
func (c *deltaClient) ack(r *discovery.DeltaDiscoveryResponse) {
	c.t.Helper()
	c.send(&discovery.DeltaDiscoveryRequest{TypeUrl: r.GetTypeUrl(), ResponseNonce: r.GetNonce()})
}
