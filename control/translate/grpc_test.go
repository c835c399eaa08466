package translate

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/xds"

	"github.com/glassmesh/glassmesh/control/model"
)

// staticADS answers state-of-the-world ADS requests from fixed resources:
// each time a stream asks for a new set of names of a type, it sends those
// it has. NACKs are reported on nacks.
type staticADS struct {
	discoveryv3.UnimplementedAggregatedDiscoveryServiceServer
	res   Resources
	nacks chan string
}

func (a *staticADS) StreamAggregatedResources(s discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesServer) error {
	sent := map[string][]string{}
	for nonce := 0; ; {
		req, err := s.Recv()
		if err != nil {
			return nil
		}
		if req.ErrorDetail != nil {
			select {
			case a.nacks <- req.TypeUrl + ": " + req.ErrorDetail.GetMessage():
			default:
			}
			continue
		}
		names := slices.Sorted(slices.Values(req.ResourceNames))
		if prev, ok := sent[req.TypeUrl]; ok && slices.Equal(prev, names) {
			continue // an ACK
		}
		sent[req.TypeUrl] = names
		nonce++
		resp := &discoveryv3.DiscoveryResponse{TypeUrl: req.TypeUrl, VersionInfo: "1", Nonce: strconv.Itoa(nonce)}
		for _, n := range names {
			if r, ok := a.res[req.TypeUrl][n]; ok {
				resp.Resources = append(resp.Resources, mustAny(r))
			}
		}
		if err := s.Send(resp); err != nil {
			return nil
		}
	}
}

// backend is a gRPC server with the health service that counts its calls.
type backend struct {
	port  uint32
	calls atomic.Int64
}

func serve(t *testing.T, srv *grpc.Server) uint32 {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return uint32(lis.Addr().(*net.TCPAddr).Port)
}

func startBackend(t *testing.T) *backend {
	b := &backend{}
	srv := grpc.NewServer(grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		b.calls.Add(1)
		return h(ctx, req)
	}))
	healthpb.RegisterHealthServer(srv, health.NewServer())
	b.port = serve(t, srv)
	return b
}

// TestGRPCClientUsesTranslation serves a translation to grpc-go's own xDS
// client and calls real backends through it: every resource the client asks
// for must be accepted (no NACK), and the route's header match and fault
// injection must act as configured.
func TestGRPCClientUsesTranslation(t *testing.T) {
	v1, v2 := startBackend(t), startBackend(t)
	route := reviewsRoute()
	route.Spec.Rules = append([]model.Rule{{
		Match:        &model.Match{Headers: map[string]model.StringMatch{"x-fault": {Exact: "abort"}}},
		Destinations: []model.Destination{{Subset: "v1", Weight: 100}},
		Fault:        &model.Fault{Abort: &model.FaultAbort{Percent: 100, GRPCStatus: "RESOURCE_EXHAUSTED"}},
	}}, route.Spec.Rules...)
	route.Spec.Rules[1].Match.Path.Prefix = "/grpc.health.v1.Health/"
	route.Spec.Rules[2].Fault.Abort.Percent = 0 // keep plain calls certain to pass
	m := model.NewMesh(model.Objects{
		Services: []*model.Service{grpcService("default", "reviews", 9080)},
		Workloads: []*model.Workload{
			workload("default", "reviews", "v1", "127.0.0.1", map[string]uint32{"grpc": v1.port}),
			workload("default", "reviews", "v2", "127.0.0.1", map[string]uint32{"grpc": v2.port}),
		},
		Routes: []*model.TrafficRoute{route},
	})
	s := mustTranslate(t, m)

	ads := &staticADS{res: s.ByName, nacks: make(chan string, 1)}
	adsSrv := grpc.NewServer()
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(adsSrv, ads)
	adsPort := serve(t, adsSrv)
	bootstrap := fmt.Sprintf(`{
		"xds_servers": [{"server_uri": "127.0.0.1:%d", "channel_creds": [{"type": "insecure"}], "server_features": ["xds_v3"]}],
		"node": {"id": "sidecar~127.0.0.1~productpage-v1.default~default.svc.cluster.local", "metadata": {"GENERATOR": "grpc"}}
	}`, adsPort)
	resolver, err := xds.NewXDSResolverWithConfigForTesting([]byte(bootstrap))
	if err != nil {
		t.Fatal(err)
	}

	for _, target := range ProxylessListenerNames(m.Services[0], 9080) {
		t.Run("dialling "+target, func(t *testing.T) {
			cc, err := grpc.NewClient("xds:///"+target, grpc.WithResolvers(resolver), grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = cc.Close() })
			client := healthpb.NewHealthClient(cc)
			check := func(kv ...string) error {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				ctx = metadata.AppendToOutgoingContext(ctx, kv...)
				select {
				case nack := <-ads.nacks:
					t.Fatalf("grpc-go rejected a resource: %s", nack)
				default:
				}
				_, err := client.Check(ctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(true))
				return err
			}

			if err := check(); err != nil {
				t.Fatalf("plain call: %v", err)
			}
			before := v2.calls.Load()
			for range 3 {
				if err := check("x-user", "tester"); err != nil {
					t.Fatalf("tester call: %v", err)
				}
			}
			if got := v2.calls.Load() - before; got != 3 {
				t.Errorf("v2 got %d of 3 testers' calls", got)
			}
			calls := v1.calls.Load() + v2.calls.Load()
			if err := check("x-fault", "abort"); status.Code(err) != codes.ResourceExhausted {
				t.Errorf("faulted call: %v, want the injected RESOURCE_EXHAUSTED", err)
			}
			if v1.calls.Load()+v2.calls.Load() != calls {
				t.Error("an aborted call reached a backend")
			}
		})
	}
	select {
	case nack := <-ads.nacks:
		t.Fatalf("grpc-go rejected a resource: %s", nack)
	default:
	}
}
