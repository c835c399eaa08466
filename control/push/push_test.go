package push

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resource "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/glassmesh/glassmesh/control/ca"
	"github.com/glassmesh/glassmesh/control/model"
	"github.com/glassmesh/glassmesh/control/naming"
	"github.com/glassmesh/glassmesh/control/translate"
	"github.com/glassmesh/glassmesh/control/xds"
)

const config = `apiVersion: glassmesh.io/v1alpha1
kind: Service
metadata: {name: reviews}
spec:
  ports: [{name: grpc, port: 9080, protocol: GRPC}]
  selector: {app: reviews}
---
apiVersion: glassmesh.io/v1alpha1
kind: Workload
metadata: {name: reviews-v1, labels: {app: reviews}}
spec:
  serviceAccount: reviews
  endpoints: [{address: 10.0.0.1, ports: {grpc: 9080}}]
`

func meshOf(t *testing.T, yaml string) *model.Mesh {
	t.Helper()
	objs, errs := model.Parse("mesh.yaml", []byte(yaml))
	m, verrs, _ := model.Validate(objs)
	if len(errs)+len(verrs) > 0 {
		t.Fatal(errs, verrs)
	}
	return m
}

// serve runs an xDS server on loopback and returns it and an ADS stream
// of a proxyless node.
func serve(t *testing.T) (*xds.Server, discovery.AggregatedDiscoveryService_StreamAggregatedResourcesClient) {
	t.Helper()
	s := xds.New(xds.Config{}, nil, nil)
	g := grpc.NewServer()
	s.Register(g)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go g.Serve(lis)
	t.Cleanup(func() { s.Stop(); g.Stop() })
	cc, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	stream, err := discovery.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return s, stream
}

func TestPushServesTheMeshAndRunsTheReloadersFirst(t *testing.T) {
	s, stream := serve(t)
	var order []string
	fail := errors.New("rules do not parse")
	var failing atomic.Bool
	p := New(Config{XDS: s, Reloaders: []Reloader{
		{Name: "first", Apply: func(*model.Mesh) error { order = append(order, "first"); return nil }},
		{Name: "SLO rules", Apply: func(*model.Mesh) error {
			order = append(order, "SLO rules")
			if failing.Load() {
				return fail
			}
			return nil
		}},
	}}, slog.New(slog.DiscardHandler))
	if err := p.Push(meshOf(t, config)); err != nil {
		t.Fatal(err)
	}
	if strings.Join(order, ",") != "first,SLO rules" {
		t.Errorf("reloaders ran %v", order)
	}
	name := "reviews.default.svc.cluster.local:9080"
	if err := stream.Send(&discovery.DiscoveryRequest{TypeUrl: resource.ListenerType, ResourceNames: []string{name},
		Node: &corev3.Node{Id: "productpage-0", Metadata: &structpb.Struct{Fields: map[string]*structpb.Value{
			naming.NodeMetaGenerator: structpb.NewStringValue(naming.GeneratorGRPC),
		}}}}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var l listenerv3.Listener
	if len(resp.Resources) != 1 || resp.Resources[0].UnmarshalTo(&l) != nil || l.Name != name {
		t.Fatalf("response %v", resp)
	}

	failing.Store(true)
	err = p.Push(meshOf(t, config))
	if !errors.Is(err, fail) || !strings.HasPrefix(err.Error(), "SLO rules: ") {
		t.Errorf("a failing reloader: %v", err)
	}
}

func TestPushGivesEachSidecarItsSecrets(t *testing.T) {
	c, err := ca.New(ca.Config{DataDir: t.TempDir()}, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	p := New(Config{XDS: xds.New(xds.Config{}, nil, nil), CA: c}, nil)
	m := meshOf(t, config)
	snap, err := translate.Translate(m, p.cfg.Translate)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.addSecrets(snap, m); err != nil {
		t.Fatal(err)
	}
	secrets := snap.Sidecars["default/reviews-v1"][resource.SecretType]
	if len(secrets) != 2 || secrets["default"] == nil || secrets["ROOTCA"] == nil {
		t.Errorf("secrets %v, want the workload's certificate and the root", secrets)
	}
	if p.cfg.Translate.TrustDomain != c.TrustDomain() {
		t.Errorf("trust domain %q", p.cfg.Translate.TrustDomain)
	}
}

// The sidecar certificates are pushed again at half their lifetime.
func TestRenewSecretsPushesAgainAtHalfLife(t *testing.T) {
	c, err := ca.New(ca.Config{DataDir: t.TempDir(), TTL: ca.MinTTL}, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	p := New(Config{XDS: xds.New(xds.Config{}, nil, nil), CA: c}, nil)
	if err := p.Push(meshOf(t, config)); err != nil {
		t.Fatal(err)
	}
	issued := time.Now()
	repushed := make(chan time.Time, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go p.RenewSecrets(ctx, func() {
		select {
		case repushed <- time.Now():
		default:
		}
	})
	select {
	case at := <-repushed:
		if half := ca.MinTTL / 2; at.Sub(issued) < half-time.Second {
			t.Errorf("pushed again %s after issuing, before half the lifetime (%s)", at.Sub(issued), half)
		}
	case <-time.After(5 * ca.MinTTL):
		t.Fatal("no renewal push")
	}
}
