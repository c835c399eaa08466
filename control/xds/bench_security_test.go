package xds

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/glassmesh/glassmesh/control/ca"
	"github.com/glassmesh/glassmesh/control/model"
	"github.com/glassmesh/glassmesh/control/naming"
	"github.com/glassmesh/glassmesh/control/translate"
)

// securityBenchMesh is 100 gRPC services of 10 workloads each (v1 and v2,
// five of each), every workload with its own service account and address,
// and a route per service splitting v1/v2 by weight(i). secure adds a
// mesh-wide STRICT PeerAuthentication and, per service, an ALLOW policy for
// two callers and a DENY policy for one method: what mTLS and RBAC add to
// the resources.
func securityBenchMesh(secure bool, weight func(i int) uint32) *model.Mesh {
	var objs model.Objects
	for i := range fanoutServices {
		name := fmt.Sprintf("svc-%d", i)
		objs.Services = append(objs.Services, &model.Service{
			Meta: model.Meta{Namespace: "default", Name: name},
			Spec: model.ServiceSpec{Ports: []model.ServicePort{{Name: "grpc", Port: 8080, Protocol: model.ProtocolGRPC}}, Selector: map[string]string{"app": name}},
		})
		for j := range fanoutEndpoints {
			version := []string{"v1", "v2"}[j%2]
			objs.Workloads = append(objs.Workloads, &model.Workload{
				Meta: model.Meta{Namespace: "default", Name: fmt.Sprintf("%s-%d", name, j), Labels: map[string]string{"app": name, "version": version}},
				Spec: model.WorkloadSpec{ServiceAccount: fmt.Sprintf("%s-%d", name, j), Endpoints: []model.Endpoint{{
					Address: fmt.Sprintf("10.%d.%d.%d", i/250, i%250, j+1), Ports: map[string]uint32{"grpc": 9080},
				}}},
			})
		}
		w := weight(i)
		objs.Routes = append(objs.Routes, &model.TrafficRoute{
			Meta: model.Meta{Namespace: "default", Name: name},
			Spec: model.TrafficRouteSpec{
				Service: name,
				Subsets: []model.Subset{{Name: "v1", Labels: map[string]string{"version": "v1"}}, {Name: "v2", Labels: map[string]string{"version": "v2"}}},
				Rules:   []model.Rule{{Destinations: []model.Destination{{Subset: "v1", Weight: w}, {Subset: "v2", Weight: 100 - w}}}},
			},
		})
		if secure {
			caller := func(k int) string { return fmt.Sprintf("cluster.local/ns/default/sa/svc-%d-0", (i+k)%fanoutServices) }
			objs.AuthzPols = append(objs.AuthzPols,
				&model.AuthorizationPolicy{Meta: model.Meta{Namespace: "default", Name: name + "-callers"}, Spec: model.AuthorizationPolicySpec{
					Selector: map[string]string{"app": name}, Action: model.ActionAllow,
					Rules: []model.AuthzRule{{From: []model.AuthzSource{{Principals: []string{caller(1), caller(2)}}}}},
				}},
				&model.AuthorizationPolicy{Meta: model.Meta{Namespace: "default", Name: name + "-admin"}, Spec: model.AuthorizationPolicySpec{
					Selector: map[string]string{"app": name}, Action: model.ActionDeny,
					Rules: []model.AuthzRule{{To: []model.AuthzOperation{{Paths: []string{"/" + name + ".Admin/*"}}}}},
				}},
			)
		}
	}
	if secure {
		objs.PeerAuths = []*model.PeerAuthentication{{Meta: model.Meta{Namespace: model.MeshNamespace, Name: "default"}, Spec: model.PeerAuthenticationSpec{MTLS: model.MTLSStrict}}}
	}
	return model.NewMesh(objs)
}

// BenchmarkFanoutSecurity is BenchmarkFanout's weight change on a
// translated mesh, with and without mTLS and RBAC: 1,000 proxyless
// clients, each one workload, subscribe to every service's listener,
// route, clusters and endpoints and to their own server listener.
func BenchmarkFanoutSecurity(b *testing.B) {
	for _, secure := range []bool{false, true} {
		b.Run(fmt.Sprintf("mtls-rbac=%t/clients=1000", secure), func(b *testing.B) {
			benchFanoutSecurity(b, secure, fanoutServices*fanoutEndpoints)
		})
	}
}

func benchFanoutSecurity(b *testing.B, secure bool, n int) {
	weights := make([]uint32, fanoutServices)
	for i := range weights {
		weights[i] = 50
	}
	weight := func(i int) uint32 { return weights[i] }
	translateAt := func() (*translate.Snapshot, time.Duration) {
		start := time.Now()
		snap, err := translate.Translate(securityBenchMesh(secure, weight), translate.Options{})
		if err != nil {
			b.Fatal(err)
		}
		return snap, time.Since(start)
	}
	snap, _ := translateAt()
	s := New(Config{}, nil, nil)
	if err := s.Update(snap); err != nil {
		b.Fatal(err)
	}
	shared := map[string][]string{}
	for _, typ := range allTypes {
		for name := range snap.ByName[typ] {
			if typ != resource.ListenerType || !isServerListener(name) {
				shared[typ] = append(shared[typ], name)
			}
		}
	}
	// Each client also asks for the Listener of its own server.
	m := securityBenchMesh(secure, weight)
	nodes := make([]string, n)
	names := make([]map[string][]string, n)
	for i, w := range m.Workloads[:n] {
		nodes[i] = naming.NodeID(w.Spec.Endpoints[0].Address, w.Name, w.Namespace)
		names[i] = map[string][]string{}
		for typ, ns := range shared {
			names[i][typ] = ns
		}
		names[i][resource.ListenerType] = append(append([]string(nil), shared[resource.ListenerType]...),
			translate.ServerListenerName(w.Spec.Endpoints[0].Address+":9080"))
	}
	g := grpc.NewServer()
	s.Register(g)
	addr, stop := serve(b, g)
	defer func() { s.Stop(); stop() }()
	c, disconnect := connectFanout(b, addr, nodes, func(i int) map[string][]string { return names[i] }, true)
	defer disconnect()
	syncBytes := c.bytes.Load()

	b.ResetTimer()
	var updates, translating time.Duration
	for i := range b.N {
		weights[i%fanoutServices] = uint32(1 + (i/fanoutServices)%99)
		updates += timeUpdate(b, c, n, func() error {
			snap, took := translateAt()
			translating += took
			return s.Update(snap)
		})
	}
	b.StopTimer()
	b.ReportMetric(float64(updates.Microseconds())/1000/float64(b.N), "ms/update")
	b.ReportMetric(float64(translating.Microseconds())/1000/float64(b.N), "translate-ms")
	b.ReportMetric(float64(syncBytes)/float64(n)/1024, "sync-KiB/client")
	b.ReportMetric(float64(n), "clients")
}

func isServerListener(name string) bool {
	return len(name) > len(translate.ServerListenerPrefix) && name[:len(translate.ServerListenerPrefix)] == translate.ServerListenerPrefix
}

// BenchmarkRotationWave renews the certificates of 1,000 workloads (each
// its own service account) at once, as happens when a CA's TTL comes due
// for a fleet started together: issuing them, and pushing the new SDS
// secrets until each of 1,000 connected sidecars has ACKed its own.
func BenchmarkRotationWave(b *testing.B) {
	const n = 1000
	authority, err := ca.New(ca.Config{DataDir: b.TempDir(), TTL: time.Hour}, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		b.Fatal(err)
	}
	ids := make([]string, n)
	nodes := make([]string, n)
	for i := range ids {
		ids[i] = authority.ID("default", fmt.Sprintf("sa-%d", i))
		nodes[i] = naming.NodeID(fmt.Sprintf("10.0.%d.%d", i/250, i%250+1), fmt.Sprintf("w-%d", i), "default")
	}
	root := authority.RootSecret()
	// wave issues a certificate for every identity and builds the views.
	wave := func() (*translate.Snapshot, time.Duration) {
		start := time.Now()
		snap := &translate.Snapshot{ByName: translate.Resources{}, Sidecars: map[string]translate.Resources{}}
		for i, id := range ids {
			c, err := authority.Issue(id)
			if err != nil {
				b.Fatal(err)
			}
			snap.Sidecars[fmt.Sprintf("default/w-%d", i)] = translate.Resources{resource.SecretType: map[string]types.Resource{
				ca.SecretCert: ca.CertSecret(c), ca.SecretRoot: root,
			}}
		}
		return snap, time.Since(start)
	}
	snap, _ := wave()
	s := New(Config{}, nil, nil)
	if err := s.Update(snap); err != nil {
		b.Fatal(err)
	}
	g := grpc.NewServer()
	s.Register(g)
	addr, stop := serve(b, g)
	defer func() { s.Stop(); stop() }()

	var acks atomic.Int64
	want := atomic.Int64{}
	want.Store(n)
	done := make(chan struct{}, 1)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithInitialConnWindowSize(1<<24))
	if err != nil {
		b.Fatal(err)
	}
	defer cc.Close()
	for i := range n {
		st, err := discovery.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(ctx)
		if err != nil {
			b.Fatal(err)
		}
		wg.Go(func() {
			node := envoyNode("default", fmt.Sprintf("w-%d", i))
			node.Id = nodes[i]
			names := []string{translate.SDSCertName, translate.SDSRootName}
			if st.Send(&discovery.DiscoveryRequest{Node: node, TypeUrl: resource.SecretType, ResourceNames: names}) != nil {
				return
			}
			for {
				r, err := st.Recv()
				if err != nil {
					return
				}
				if st.Send(&discovery.DiscoveryRequest{TypeUrl: resource.SecretType, ResourceNames: names, VersionInfo: r.GetVersionInfo(), ResponseNonce: r.GetNonce()}) != nil {
					return
				}
				if acks.Add(1) == want.Load() {
					done <- struct{}{}
				}
			}
		})
	}
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		b.Fatalf("only %d of %d sidecars got their secrets", acks.Load(), n)
	}

	b.ResetTimer()
	var issuing, pushing time.Duration
	for range b.N {
		want.Add(n)
		snap, took := wave()
		issuing += took
		start := time.Now()
		if err := s.Update(snap); err != nil {
			b.Fatal(err)
		}
		select {
		case <-done:
		case <-time.After(2 * time.Minute):
			b.Fatalf("only %d of %d sidecars ACKed the new secrets", acks.Load()-(want.Load()-n), n)
		}
		pushing += time.Since(start)
	}
	b.StopTimer()
	b.ReportMetric(float64(issuing.Microseconds())/1000/float64(b.N), "issue-ms")
	b.ReportMetric(float64(pushing.Microseconds())/1000/float64(b.N), "push-ms")
	b.ReportMetric(float64(n)/(issuing+pushing).Seconds()*float64(b.N), "workloads/s")
}
