// Package sidecarconfig generates what a workload's proxy needs to join the
// mesh: the Envoy bootstrap of a sidecar, the grpc-go xDS bootstrap of a
// proxyless app, and the node identity both present to the control plane.
package sidecarconfig

import (
	"fmt"
	"net"
	"sort"
	"time"

	"github.com/glassmesh/glassmesh/control/model"
	"github.com/glassmesh/glassmesh/control/naming"
)

// DefaultXDSAddr is where glassmesh serves xDS (and ALS, OTLP) by default.
const DefaultXDSAddr = "127.0.0.1:15010"

// BootstrapOptions are the settings of a bootstrap that do not come from the
// mesh.
type BootstrapOptions struct {
	// XDSAddr is glassmesh's gRPC address, host:port; "" means
	// DefaultXDSAddr.
	XDSAddr string
	// CertsDir holds the workload's cert-chain.pem, key.pem and
	// root-cert.pem (as `glassmesh sidecar certs` writes them). When set, a
	// proxyless bootstrap gets a file_watcher certificate provider named
	// "default" over them; "" means none.
	CertsDir string
	// CertsRefresh is how often grpc-go reads those files again; 0 means
	// DefaultCertsRefresh. It must be well under half the certificates'
	// lifetime, when `sidecar certs --watch` renews them.
	CertsRefresh time.Duration
	// XDSCA is a PEM CA file: when set, a bootstrap speaks TLS to the xDS
	// server (glassmesh's --grpc-tls-*), trusting that CA; a proxyless one
	// with the workload certificate of CertsDir as its client certificate.
	XDSCA string
	// XDSTokenFile, with XDSCA, is a file holding the workload's
	// credential (a projected service-account token or a glassmesh
	// workload token, both JWTs), so glassmesh serves the client only the
	// config of the workload it proves. grpc-go sends it with every xDS
	// request as jwt_token_file call credentials (gRFC A97; the app needs
	// GRPC_EXPERIMENTAL_XDS_BOOTSTRAP_CALL_CREDS=true), re-reading the
	// file; an Envoy bootstrap carries its content, read once, as the ADS
	// stream's initial metadata.
	XDSTokenFile string
}

// DefaultCertsRefresh is BootstrapOptions.CertsRefresh's default.
const DefaultCertsRefresh = 10 * time.Second

func (o BootstrapOptions) withDefaults() (BootstrapOptions, error) {
	if o.XDSAddr == "" {
		o.XDSAddr = DefaultXDSAddr
	}
	if o.CertsRefresh == 0 {
		o.CertsRefresh = DefaultCertsRefresh
	}
	if o.XDSTokenFile != "" && o.XDSCA == "" {
		return o, fmt.Errorf("an xDS token file needs TLS to the xDS server (an xDS CA): grpc-go sends call credentials only over TLS")
	}
	if o.CertsRefresh < 0 {
		return o, fmt.Errorf("certificate refresh interval %s: must be positive", o.CertsRefresh)
	}
	host, port, err := net.SplitHostPort(o.XDSAddr)
	if err != nil || port == "" {
		return o, fmt.Errorf("xds address %q: want host:port", o.XDSAddr)
	}
	if host == "" {
		o.XDSAddr = net.JoinHostPort("127.0.0.1", port)
	}
	return o, nil
}

// NodeInfo is who a proxy says it is to the control plane.
type NodeInfo struct {
	// IP is the workload instance's address.
	IP string
	// Instance names the instance (a pod name in Kubernetes; the workload
	// name in file config).
	Instance string
	// Namespace and Workload name the workload.
	Namespace string
	Workload  string
	// Labels are the workload's labels (app, version, ...).
	Labels map[string]string
}

// ID is the xDS node id, in the shape naming.NodeID gives.
func (n NodeInfo) ID() string { return naming.NodeID(n.IP, n.Instance, n.Namespace) }

// Cluster is the node's cluster as Istio names it: <app>.<namespace>, with
// the workload name when there is no app label.
func (n NodeInfo) Cluster() string {
	app := n.Labels["app"]
	if app == "" {
		app = n.Workload
	}
	return app + "." + n.Namespace
}

// metadata is the node metadata of DESIGN.md; generator is "" for Envoy.
func (n NodeInfo) metadata(generator string) map[string]any {
	labels := map[string]any{}
	for _, k := range sortedKeys(n.Labels) {
		labels[k] = n.Labels[k]
	}
	md := map[string]any{
		naming.NodeMetaNamespace:    n.Namespace,
		naming.NodeMetaWorkloadName: n.Workload,
		naming.NodeMetaLabels:       labels,
	}
	if generator != "" {
		md[naming.NodeMetaGenerator] = generator
	}
	return md
}

// NodeFor is the identity of the workload namespace/name of a mesh: its
// first endpoint's address, and its name as the instance.
func NodeFor(m *model.Mesh, namespace, name string) (NodeInfo, error) {
	w := m.Workload(namespace, name)
	if w == nil {
		return NodeInfo{}, fmt.Errorf("workload %s/%s is not in the mesh config", namespace, name)
	}
	if len(w.Spec.Endpoints) == 0 || w.Spec.Endpoints[0].Address == "" {
		return NodeInfo{}, fmt.Errorf("workload %s/%s has no endpoint address to identify it by", namespace, name)
	}
	return NodeInfo{
		IP:        w.Spec.Endpoints[0].Address,
		Instance:  w.Name,
		Namespace: w.Namespace,
		Workload:  w.Name,
		Labels:    w.Labels,
	}, nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
