package sidecarconfig

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strconv"

	"github.com/glassmesh/glassmesh/control/model"
	"github.com/glassmesh/glassmesh/control/naming"
)

// ServerListenerTemplate names the listener a proxyless gRPC server asks
// for; grpc-go fills in the exact address it listens on.
const ServerListenerTemplate = "grpc/server?xds.resource.listening_address=%s"

// CertificateProvider is the name of the certificate provider of a proxyless
// bootstrap, which translated security configs refer to.
const CertificateProvider = "default"

// Istio's file names, as `glassmesh sidecar certs` writes them.
const (
	CertChainFile = "cert-chain.pem"
	KeyFile       = "key.pem"
	RootCertFile  = "root-cert.pem"
)

// grpcBootstrap is the subset of grpc-go's bootstrap format glassmesh
// writes (gRFC A27, with A29's certificate providers).
type grpcBootstrap struct {
	XDSServers                         []xdsServer                    `json:"xds_servers"`
	Node                               grpcNode                       `json:"node"`
	ServerListenerResourceNameTemplate string                         `json:"server_listener_resource_name_template"`
	CertificateProviders               map[string]certificateProvider `json:"certificate_providers,omitempty"`
}

type xdsServer struct {
	ServerURI      string         `json:"server_uri"`
	ChannelCreds   []channelCreds `json:"channel_creds"`
	CallCreds      []callCreds    `json:"call_creds,omitempty"`
	ServerFeatures []string       `json:"server_features"`
}

type callCreds struct {
	Type   string `json:"type"`
	Config struct {
		JWTTokenFile string `json:"jwt_token_file"`
	} `json:"config"`
}

type channelCreds struct {
	Type   string             `json:"type"`
	Config *fileWatcherConfig `json:"config,omitempty"`
}

type grpcNode struct {
	ID       string         `json:"id"`
	Cluster  string         `json:"cluster"`
	Metadata map[string]any `json:"metadata"`
	Locality struct{}       `json:"locality"`
}

type certificateProvider struct {
	PluginName string            `json:"plugin_name"`
	Config     fileWatcherConfig `json:"config"`
}

type fileWatcherConfig struct {
	CertificateFile   string `json:"certificate_file,omitempty"`
	PrivateKeyFile    string `json:"private_key_file,omitempty"`
	CACertificateFile string `json:"ca_certificate_file,omitempty"`
	RefreshInterval   string `json:"refresh_interval,omitempty"`
}

// ProxylessBootstrap is the grpc-go xDS bootstrap (GRPC_XDS_BOOTSTRAP) of a
// proxyless app running as the workload namespace/name.
func ProxylessBootstrap(m *model.Mesh, namespace, name string, opts BootstrapOptions) ([]byte, error) {
	node, err := NodeFor(m, namespace, name)
	if err != nil {
		return nil, err
	}
	return ProxylessBootstrapFor(node, opts)
}

// ProxylessBootstrapFor is ProxylessBootstrap for an identity given
// directly, for apps and tests that have no mesh config at hand. It speaks
// xDS v3 to opts.XDSAddr: in plaintext, or with opts.XDSCA over TLS (gRFC
// A65), presenting the workload's certificate from opts.CertsDir when set.
func ProxylessBootstrapFor(node NodeInfo, opts BootstrapOptions) ([]byte, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	var dir string
	if opts.CertsDir != "" {
		if dir, err = filepath.Abs(opts.CertsDir); err != nil {
			return nil, fmt.Errorf("certs dir: %w", err)
		}
	}
	refresh := strconv.FormatFloat(opts.CertsRefresh.Seconds(), 'f', -1, 64) + "s"
	creds := channelCreds{Type: "insecure"}
	if opts.XDSCA != "" {
		ca, err := filepath.Abs(opts.XDSCA)
		if err != nil {
			return nil, fmt.Errorf("xDS CA: %w", err)
		}
		creds = channelCreds{Type: "tls", Config: &fileWatcherConfig{CACertificateFile: ca, RefreshInterval: refresh}}
		if dir != "" {
			creds.Config.CertificateFile = filepath.Join(dir, CertChainFile)
			creds.Config.PrivateKeyFile = filepath.Join(dir, KeyFile)
		}
	}
	var call []callCreds
	if opts.XDSTokenFile != "" {
		f, err := filepath.Abs(opts.XDSTokenFile)
		if err != nil {
			return nil, fmt.Errorf("xDS token file: %w", err)
		}
		c := callCreds{Type: "jwt_token_file"}
		c.Config.JWTTokenFile = f
		call = append(call, c)
	}
	b := grpcBootstrap{
		XDSServers: []xdsServer{{
			ServerURI:      opts.XDSAddr,
			ChannelCreds:   []channelCreds{creds},
			CallCreds:      call,
			ServerFeatures: []string{"xds_v3"},
		}},
		Node: grpcNode{
			ID:       node.ID(),
			Cluster:  node.Cluster(),
			Metadata: node.metadata(naming.GeneratorGRPC),
		},
		ServerListenerResourceNameTemplate: ServerListenerTemplate,
	}
	if dir != "" {
		b.CertificateProviders = map[string]certificateProvider{CertificateProvider: {
			PluginName: "file_watcher",
			Config: fileWatcherConfig{
				CertificateFile:   filepath.Join(dir, CertChainFile),
				PrivateKeyFile:    filepath.Join(dir, KeyFile),
				CACertificateFile: filepath.Join(dir, RootCertFile),
				RefreshInterval:   refresh,
			},
		}}
	}
	out, err := json.MarshalIndent(b, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("proxyless bootstrap: %w", err)
	}
	return append(out, '\n'), nil
}
