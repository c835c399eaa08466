//go:build faults

package faults

import (
	"fmt"
	"strings"
	"sync/atomic"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/glassmesh/glassmesh/control/naming"
)

// endpoints is the number of endpoints of each subset of a generated mesh.
const endpoints = 10

// meshYAML is a mesh of services services, each two versions of endpoints
// endpoints and a route giving v1 weight w.
func meshYAML(services, w int) []byte {
	var b strings.Builder
	for i := range services {
		fmt.Fprintf(&b, `apiVersion: glassmesh.io/v1alpha1
kind: Service
metadata: {name: svc-%[1]d}
spec:
  ports: [{name: grpc, port: 9080, protocol: GRPC}]
  selector: {app: svc-%[1]d}
---
apiVersion: glassmesh.io/v1alpha1
kind: TrafficRoute
metadata: {name: svc-%[1]d}
spec:
  service: svc-%[1]d
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
  rules: [{destinations: [{subset: v1, weight: %[2]d}, {subset: v2, weight: %[3]d}]}]
`, i, w, 100-w)
		for _, v := range []string{"v1", "v2"} {
			fmt.Fprintf(&b, "---\napiVersion: glassmesh.io/v1alpha1\nkind: Workload\nmetadata: {name: svc-%d-%s, labels: {app: svc-%d, version: %s}}\nspec:\n  endpoints:\n", i, v, i, v)
			for j := range endpoints {
				fmt.Fprintf(&b, "    - {address: 10.%d.%d.%d, ports: {grpc: 9080}}\n", i/250, i%250, j+map[string]int{"v1": 1, "v2": 101}[v])
			}
		}
		b.WriteString("---\n")
	}
	return []byte(b.String())
}

// names are what every client of a mesh of services services subscribes
// to, as grpc-go does when it dials every service.
func names(services int) map[string][]string {
	out := map[string][]string{}
	for i := range services {
		fqdn := fmt.Sprintf("svc-%d.default.svc.cluster.local", i)
		out[resource.ListenerType] = append(out[resource.ListenerType], fqdn+":9080")
		out[resource.RouteType] = append(out[resource.RouteType], fqdn+":9080")
		for _, s := range []string{"", "v1", "v2"} {
			c := fmt.Sprintf("outbound|9080|%s|%s", s, fqdn)
			out[resource.ClusterType] = append(out[resource.ClusterType], c)
			out[resource.EndpointType] = append(out[resource.EndpointType], c)
		}
	}
	return out
}

var types = []string{resource.ListenerType, resource.RouteType, resource.ClusterType, resource.EndpointType}

// fleet counts what the healthy clients ACK.
type fleet struct {
	services  int          // of the mesh the clients subscribe to
	rds       atomic.Int64 // RDS responses the healthy clients ACKed
	responses atomic.Int64
	ready     atomic.Int64
}

// client subscribes, then syncs and ACKs; a stuck one never reads.
func (f *fleet) client(st grpc.BidiStreamingClient[discovery.DiscoveryRequest, discovery.DiscoveryResponse], id int, isStuck bool) {
	n := names(f.services)
	for i, typ := range types {
		req := &discovery.DiscoveryRequest{TypeUrl: typ, ResourceNames: n[typ]}
		if i == 0 {
			req.Node = &corev3.Node{Id: fmt.Sprintf("fault-%05d", id), Metadata: &structpb.Struct{Fields: map[string]*structpb.Value{
				naming.NodeMetaGenerator: structpb.NewStringValue(naming.GeneratorGRPC)}}}
		}
		if st.Send(req) != nil {
			return
		}
	}
	if isStuck {
		<-st.Context().Done() // holds the stream open, reading nothing
		return
	}
	seen := map[string]bool{}
	for {
		r, err := st.Recv()
		if err != nil {
			return
		}
		typ := r.GetTypeUrl()
		if st.Send(&discovery.DiscoveryRequest{TypeUrl: typ, ResourceNames: n[typ], VersionInfo: r.GetVersionInfo(), ResponseNonce: r.GetNonce()}) != nil {
			return
		}
		f.responses.Add(1)
		if !seen[typ] {
			if seen[typ] = true; len(seen) == len(types) {
				f.ready.Add(1)
			}
		}
		if typ == resource.RouteType {
			f.rds.Add(1)
		}
	}
}
