package xds

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
)

// bigEndpoints is a one-service mesh whose load assignment (~120 KB) is
// larger than a stream's flow-control window; gen changes every endpoint.
func bigEndpoints(gen int) mesh {
	return mesh{Services: 1, Endpoints: 4000, Port: 8080, Address: func(_, j int) (string, uint32) {
		return fmt.Sprintf("10.1.%d.%d", j/250, j%250), uint32(9000 + gen)
	}}
}

func TestStalledClientsDoNotBlockOthers(t *testing.T) {
	const stalled = 20
	// A push held up by the stalled streams would wait for the timeout;
	// one that is not takes milliseconds. The gap is wide so that a busy
	// machine (and -race) cannot close it.
	const timeout = 10 * time.Second
	s, _, addr := newTestServer(t, Config{SendTimeout: timeout})
	if err := s.Update(bigEndpoints(0).snapshot()); err != nil {
		t.Fatal(err)
	}
	cla := bigEndpoints(0).clusterName(0)

	// The stalled client never reads. A fixed window (no BDP growth) makes
	// its streams fill up after a response or two.
	slow := dial(t, addr, grpc.WithInitialWindowSize(65535), grpc.WithInitialConnWindowSize(65535))
	streams := make([]grpc.BidiStreamingClient[discovery.DiscoveryRequest, discovery.DiscoveryResponse], stalled)
	for i := range streams {
		st, err := discovery.NewAggregatedDiscoveryServiceClient(slow).StreamAggregatedResources(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		streams[i] = st
		req := &discovery.DiscoveryRequest{Node: proxylessNode(fmt.Sprintf("stalled-%02d", i)), TypeUrl: resource.EndpointType, ResourceNames: []string{cla}}
		if err := st.Send(req); err != nil {
			t.Fatal(err)
		}
	}
	good := newADSClient(t, dial(t, addr), proxylessNode("good"))
	good.subscribe(resource.EndpointType, cla)
	good.ack(good.recv())
	waitFor(t, func() bool { return len(s.Proxies()) == stalled+1 })

	for gen := 1; gen <= 6; gen++ {
		// Acknowledge blindly (nonces count from 1 on each stream), as a
		// client that pipelines requests but stopped reading would.
		for _, st := range streams {
			_ = st.Send(&discovery.DiscoveryRequest{TypeUrl: resource.EndpointType, ResourceNames: []string{cla}, ResponseNonce: strconv.Itoa(gen)})
		}
		start := time.Now()
		if err := s.Update(bigEndpoints(gen).snapshot()); err != nil {
			t.Fatal(err)
		}
		r := good.recvType(resource.EndpointType)
		if d := time.Since(start); d > timeout/2 {
			t.Fatalf("push %d took %s to reach the good client", gen, d)
		}
		good.ack(r)
		time.Sleep(300 * time.Millisecond)
	}

	// The stalled streams are cut once their sends have blocked for the
	// timeout.
	for deadline := time.Now().Add(3 * timeout); testutil.ToFloat64(s.metrics.stalled) != stalled || len(s.Proxies()) != 1; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%v stalled streams cut, %d proxies left; want %d cut, 1 left", testutil.ToFloat64(s.metrics.stalled), len(s.Proxies()), stalled)
		}
	}
	if err := s.Update(bigEndpoints(99).snapshot()); err != nil {
		t.Fatal(err)
	}
	good.ack(good.recvType(resource.EndpointType))
}
