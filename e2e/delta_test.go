package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/glassmesh/glassmesh/control/naming"
)

// deltaClient is a raw delta ADS stream, as a proxyless node would open.
type deltaClient struct {
	t      *testing.T
	stream discoveryv3.AggregatedDiscoveryService_DeltaAggregatedResourcesClient
	node   *corev3.Node
}

func newDeltaClient(t *testing.T, addr, workload string) *deltaClient {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	st, err := discoveryv3.NewAggregatedDiscoveryServiceClient(cc).DeltaAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	meta, _ := structpb.NewStruct(map[string]any{
		naming.NodeMetaNamespace: "default", naming.NodeMetaWorkloadName: workload, naming.NodeMetaGenerator: naming.GeneratorGRPC,
	})
	node := &corev3.Node{Id: naming.NodeID("127.0.0.1", workload+"-0", "default"), Metadata: meta}
	return &deltaClient{t: t, stream: st, node: node}
}

func (c *deltaClient) send(req *discoveryv3.DeltaDiscoveryRequest) {
	c.t.Helper()
	req.Node = c.node
	if err := c.stream.Send(req); err != nil {
		c.t.Fatal(err)
	}
}

// recv waits for the next response, or fails after d.
func (c *deltaClient) recv(d time.Duration) *discoveryv3.DeltaDiscoveryResponse {
	c.t.Helper()
	type result struct {
		r   *discoveryv3.DeltaDiscoveryResponse
		err error
	}
	ch := make(chan result, 1)
	go func() { r, err := c.stream.Recv(); ch <- result{r, err} }()
	select {
	case res := <-ch:
		if res.err != nil {
			c.t.Fatal(res.err)
		}
		return res.r
	case <-time.After(d):
		c.t.Fatalf("no delta response within %s", d)
		return nil
	}
}

func TestDeltaXDS(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "services.yaml"), reviewsService)
	writeFile(t, filepath.Join(dir, "workloads.yaml"), reviewsWorkloads(1001, 1002))
	routePath := filepath.Join(dir, "route.yaml")
	writeFile(t, routePath, reviewsRoute(80, 20))
	gm := start(t, dir)

	const routeName = "reviews.default.svc.cluster.local:9080"
	cl := []string{"outbound|9080|v1|reviews.default.svc.cluster.local", "outbound|9080|v2|reviews.default.svc.cluster.local"}
	c := newDeltaClient(t, gm.GRPCAddr, "delta-client")
	c.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resource.RouteType, ResourceNamesSubscribe: []string{routeName}})
	c.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resource.EndpointType, ResourceNamesSubscribe: cl})

	got := map[string]*discoveryv3.DeltaDiscoveryResponse{}
	for len(got) < 2 {
		r := c.recv(10 * time.Second)
		got[r.TypeUrl] = r
		c.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: r.TypeUrl, ResponseNonce: r.Nonce}) // ACK
	}
	if n := len(got[resource.EndpointType].Resources); n != 2 {
		t.Fatalf("subscribed to 2 load assignments, got %d", n)
	}
	t.Run("an update sends only the changed resource", func(t *testing.T) {
		writeFile(t, routePath, reviewsRoute(50, 50))
		r := c.recv(10 * time.Second)
		if r.TypeUrl != resource.RouteType || len(r.Resources) != 1 || r.Resources[0].Name != routeName {
			t.Fatalf("want one RouteConfiguration %s, got %s with %d resources", routeName, r.TypeUrl, len(r.Resources))
		}
		var rc routev3.RouteConfiguration
		if err := r.Resources[0].Resource.UnmarshalTo(&rc); err != nil {
			t.Fatal(err)
		}
		var weights []uint32
		for _, vh := range rc.VirtualHosts {
			for _, rt := range vh.Routes {
				for _, wc := range rt.GetRoute().GetWeightedClusters().GetClusters() {
					weights = append(weights, wc.GetWeight().GetValue())
				}
			}
		}
		if fmt.Sprint(weights) != "[50 50]" {
			t.Fatalf("route weights %v, want the new [50 50]:\n%s", weights, protojson.Format(&rc))
		}
		// NACK it: the error must show in /api/xds/proxies, and nothing is re-sent.
		c.send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: r.TypeUrl, ResponseNonce: r.Nonce,
			ErrorDetail: &statuspb.Status{Code: 3, Message: "test client rejects weights"}})
		eventually(t, 10*time.Second, func() error {
			var px proxies
			gm.getJSON(t, "/api/xds/proxies", &px)
			for _, p := range px.Proxies {
				if p.Workload != "delta-client" {
					continue
				}
				st := p.Types[resource.RouteType]
				if st.Nack == nil || st.Nack.Nonce != r.Nonce || !strings.Contains(st.Nack.Error, "test client rejects weights") {
					return fmt.Errorf("route status %+v: want the NACK of nonce %s", st, r.Nonce)
				}
				return nil
			}
			return fmt.Errorf("delta-client not listed")
		})
	})
	t.Run("a NACKed version is not re-sent", func(t *testing.T) {
		ch := make(chan error, 1)
		go func() { _, err := c.stream.Recv(); ch <- err }()
		select {
		case err := <-ch:
			t.Fatalf("got another response after the NACK (err %v)", err)
		case <-time.After(2 * time.Second):
		}
	})
}

func TestSidecarBootstrapCommand(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "services.yaml"), reviewsService)
	writeFile(t, filepath.Join(dir, "workloads.yaml"), reviewsWorkloads(1001, 1002))
	out, err := exec.Command(binary, "sidecar", "bootstrap", "--workload", "default/reviews-v2", "--config", dir, "--xds-addr", "10.0.0.1:15010").Output()
	if err != nil {
		t.Fatalf("envoy bootstrap: %v", err)
	}
	var bs bootstrapv3.Bootstrap
	if err := protojson.Unmarshal(out, &bs); err != nil {
		t.Fatalf("envoy bootstrap is not a Bootstrap: %v\n%s", err, out)
	}
	if err := bs.ValidateAll(); err != nil {
		t.Errorf("envoy bootstrap does not validate: %v", err)
	}
	if got := bs.GetNode().GetMetadata().GetFields()[naming.NodeMetaWorkloadName].GetStringValue(); got != "reviews-v2" {
		t.Errorf("node WORKLOAD_NAME = %q", got)
	}
	if !strings.HasPrefix(bs.GetNode().GetId(), "sidecar~127.0.0.1~reviews-v2") {
		t.Errorf("node id = %q", bs.GetNode().GetId())
	}
	for _, want := range []string{`"glassmesh-telemetry"`, `10.0.0.1`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("envoy bootstrap lacks %s:\n%s", want, out)
		}
	}
	out, err = exec.Command(binary, "sidecar", "bootstrap", "--proxyless", "--workload", "default/reviews-v2", "--config", dir).Output()
	if err != nil {
		t.Fatalf("proxyless bootstrap: %v", err)
	}
	for _, want := range []string{`"GENERATOR"`, `"grpc"`, `127.0.0.1:15010`, `grpc/server?xds.resource.listening_address=%s`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("proxyless bootstrap lacks %s:\n%s", want, out)
		}
	}
	if _, err := exec.Command(binary, "sidecar", "bootstrap", "--workload", "default/nope", "--config", dir).Output(); err == nil {
		t.Error("a workload not in the config: want an error")
	}
}
