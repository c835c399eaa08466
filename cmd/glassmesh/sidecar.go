package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/glassmesh/glassmesh/control/source"
	sidecarconfig "github.com/glassmesh/glassmesh/sidecar-config"
)

func newSidecarCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sidecar",
		Short: "Configure one workload's sidecar or proxyless gRPC app",
	}
	cmd.AddCommand(newSidecarBootstrapCmd(), newSidecarCertsCmd(), newSidecarInjectCmd())
	return cmd
}

func newSidecarBootstrapCmd() *cobra.Command {
	var (
		workload, xdsAddr, configPath, server, certsDir, xdsCA, xdsToken, ip, instance, out string
		proxyless                                                                           bool
		certsRefresh                                                                        time.Duration
		labels                                                                              map[string]string
	)
	cmd := &cobra.Command{
		Use:   "bootstrap",
		Short: "Print an Envoy bootstrap (or, with --proxyless, a grpc-go xDS bootstrap) for one workload",
		Long: `bootstrap prints the bootstrap one workload needs to reach glassmesh: an
Envoy v3 bootstrap (node identity, ADS to glassmesh, the glassmesh-telemetry
cluster for access logs and traces, admin on 127.0.0.1:15000), or with
--proxyless the JSON a grpc-go app reads from GRPC_XDS_BOOTSTRAP(_CONFIG).
The workload's address and labels come from the mesh config (--config), from
a running glassmesh (--server), or, as injected pods do, from --ip,
--instance and --label.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ns, name, ok := strings.Cut(workload, "/")
			if !ok || ns == "" || name == "" {
				return fmt.Errorf("--workload: want NAMESPACE/NAME, got %q", workload)
			}
			var node sidecarconfig.NodeInfo
			switch {
			case ip != "":
				node = sidecarconfig.NodeInfo{IP: ip, Instance: instance, Namespace: ns, Workload: name, Labels: labels}
				if node.Instance == "" {
					node.Instance = name
				}
			case server != "":
				m, err := source.FetchMesh(cmd.Context(), server)
				if err != nil {
					return fmt.Errorf("--server: %w", err)
				}
				if node, err = sidecarconfig.NodeFor(m, ns, name); err != nil {
					return err
				}
			default:
				r, _ := source.LoadConfig(configPath)
				if len(r.Errors) > 0 {
					return fmt.Errorf("--config %s: %d error(s), first: %s", configPath, len(r.Errors), r.Errors[0].Error())
				}
				var err error
				if node, err = sidecarconfig.NodeFor(r.Mesh, ns, name); err != nil {
					return err
				}
			}
			opts := sidecarconfig.BootstrapOptions{XDSAddr: xdsAddr, CertsDir: certsDir, CertsRefresh: certsRefresh, XDSCA: xdsCA, XDSTokenFile: xdsToken}
			var b []byte
			if proxyless {
				var err error
				if b, err = sidecarconfig.ProxylessBootstrapFor(node, opts); err != nil {
					return err
				}
			} else {
				bs, err := sidecarconfig.EnvoyBootstrapFor(node, opts)
				if err != nil {
					return err
				}
				if b, err = (protojson.MarshalOptions{Multiline: true, Indent: "  "}).Marshal(bs); err != nil {
					return err
				}
				b = append(b, '\n')
			}
			if out != "" {
				return os.WriteFile(out, b, 0o644)
			}
			_, err := cmd.OutOrStdout().Write(b)
			return err
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&workload, "workload", "", "the workload, as NAMESPACE/NAME (required)")
	fs.BoolVar(&proxyless, "proxyless", false, "print a grpc-go xDS bootstrap instead of an Envoy one")
	fs.StringVar(&xdsAddr, "xds-addr", "127.0.0.1:15010", "where the workload reaches glassmesh's xDS server")
	fs.StringVar(&configPath, "config", "./mesh", "mesh config dir or file to read the workload from")
	fs.StringVar(&server, "server", "", "read the workload from a running glassmesh at this URL instead of --config")
	fs.StringVar(&ip, "ip", "", "the instance's address: identify it by --ip, --instance and --label instead of reading the config (injected pods)")
	fs.StringVar(&instance, "instance", "", "with --ip: the instance name (a pod's name) [the workload's name]")
	fs.StringToStringVar(&labels, "label", nil, "with --ip: the workload's labels, key=value (repeatable)")
	fs.StringVar(&out, "out", "", "write the bootstrap to this file instead of standard output")
	fs.StringVar(&certsDir, "certs-dir", "", "directory of the workload's certificate files (for mTLS, when enabled)")
	fs.StringVar(&xdsCA, "xds-ca", "", "PEM CA of glassmesh's --grpc-tls-cert: the sidecar or app then speaks TLS to --xds-addr (a proxyless app with the --certs-dir certificate as its client certificate)")
	fs.StringVar(&xdsToken, "xds-token-file", "", "with --xds-ca: file holding the workload's credential (a projected service-account token or a glassmesh workload token), "+
		"sent with every xDS request: grpc-go's jwt_token_file call credentials (run the app with GRPC_EXPERIMENTAL_XDS_BOOTSTRAP_CALL_CREDS=true), "+
		"or for Envoy the ADS stream's initial metadata, read once (give Envoy a long-lived glassmesh workload token)")
	fs.DurationVar(&certsRefresh, "certs-refresh", sidecarconfig.DefaultCertsRefresh, "with --proxyless --certs-dir: how often grpc-go reads the certificate files again (well under half of --cert-ttl)")
	_ = cmd.MarkFlagRequired("workload")
	return cmd
}
