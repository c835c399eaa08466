package xds

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/xds"
)

// TestGRPCXDSClientReachesABackend has grpc-go's own xDS client resolve a
// service through this server and call a backend, with the bootstrap passed
// in (not read from the environment), so it does not bind the process.
func TestGRPCXDSClientReachesABackend(t *testing.T) {
	backend := grpc.NewServer()
	healthpb.RegisterHealthServer(backend, health.NewServer())
	backendAddr, stop := serve(t, backend)
	t.Cleanup(stop)
	host, portStr, _ := net.SplitHostPort(backendAddr)
	port, _ := strconv.Atoi(portStr)

	m := mesh{Services: 1, Endpoints: 1, Port: 8080, Address: func(int, int) (string, uint32) { return host, uint32(port) }}
	s, _, addr := newTestServer(t, Config{})
	if err := s.Update(m.snapshot()); err != nil {
		t.Fatal(err)
	}
	bootstrap := fmt.Sprintf(`{
		"xds_servers": [{"server_uri": %q, "channel_creds": [{"type": "insecure"}], "server_features": ["xds_v3"]}],
		"node": {"id": "smoke", "metadata": {"GENERATOR": "grpc", "NAMESPACE": "default", "WORKLOAD_NAME": "client"}}
	}`, addr)
	rb, err := xds.NewXDSResolverWithConfigForTesting([]byte(bootstrap))
	if err != nil {
		t.Fatal(err)
	}
	cc, err := grpc.NewClient("xds:///"+m.listenerName(0), grpc.WithResolvers(rb), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(true))
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health %v", resp.GetStatus())
	}
	waitFor(t, func() bool {
		p := statusOf(t, s, "smoke")
		for _, typ := range allTypes {
			if ts := p.Types[typ]; ts.Acked == "" || ts.Acked != ts.Sent || ts.NACK != nil {
				return false
			}
		}
		return p.Flavour == FlavourProxyless && p.Workload == "client"
	})
}
