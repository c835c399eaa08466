package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/glassmesh/glassmesh/control/model"
	"github.com/glassmesh/glassmesh/control/source"
	sidecarconfig "github.com/glassmesh/glassmesh/sidecar-config"
)

func newSidecarCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sidecar",
		Short: "Configure one workload's sidecar or proxyless gRPC app",
	}
	cmd.AddCommand(newSidecarBootstrapCmd(), newSidecarCertsCmd())
	return cmd
}

func newSidecarBootstrapCmd() *cobra.Command {
	var (
		workload, xdsAddr, configPath, server, certsDir, xdsCA string
		proxyless                                              bool
		certsRefresh                                           time.Duration
	)
	cmd := &cobra.Command{
		Use:   "bootstrap",
		Short: "Print an Envoy bootstrap (or, with --proxyless, a grpc-go xDS bootstrap) for one workload",
		Long: `bootstrap prints the bootstrap one workload needs to reach glassmesh: an
Envoy v3 bootstrap (node identity, ADS to glassmesh, the glassmesh-telemetry
cluster for access logs and traces, admin on 127.0.0.1:15000), or with
--proxyless the JSON a grpc-go app reads from GRPC_XDS_BOOTSTRAP(_CONFIG).
The workload's address and labels come from the mesh config (--config) or
from a running glassmesh (--server).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ns, name, ok := strings.Cut(workload, "/")
			if !ok || ns == "" || name == "" {
				return fmt.Errorf("--workload: want NAMESPACE/NAME, got %q", workload)
			}
			var m *model.Mesh
			if server != "" {
				var err error
				if m, err = source.FetchMesh(cmd.Context(), server); err != nil {
					return fmt.Errorf("--server: %w", err)
				}
			} else {
				r := model.Load(configPath)
				if len(r.Errors) > 0 {
					return fmt.Errorf("--config %s: %d error(s), first: %s", configPath, len(r.Errors), r.Errors[0].Error())
				}
				m = r.Mesh
			}
			opts := sidecarconfig.BootstrapOptions{XDSAddr: xdsAddr, CertsDir: certsDir, CertsRefresh: certsRefresh, XDSCA: xdsCA}
			if proxyless {
				b, err := sidecarconfig.ProxylessBootstrap(m, ns, name, opts)
				if err != nil {
					return err
				}
				_, err = fmt.Fprintln(cmd.OutOrStdout(), string(b))
				return err
			}
			bs, err := sidecarconfig.EnvoyBootstrap(m, ns, name, opts)
			if err != nil {
				return err
			}
			b, err := protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(bs)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), string(b))
			return err
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&workload, "workload", "", "the workload, as NAMESPACE/NAME (required)")
	fs.BoolVar(&proxyless, "proxyless", false, "print a grpc-go xDS bootstrap instead of an Envoy one")
	fs.StringVar(&xdsAddr, "xds-addr", "127.0.0.1:15010", "where the workload reaches glassmesh's xDS server")
	fs.StringVar(&configPath, "config", "./mesh", "mesh config dir or file to read the workload from")
	fs.StringVar(&server, "server", "", "read the workload from a running glassmesh at this URL instead of --config")
	fs.StringVar(&certsDir, "certs-dir", "", "directory of the workload's certificate files (for mTLS, when enabled)")
	fs.StringVar(&xdsCA, "xds-ca", "", "with --proxyless: PEM CA of glassmesh's --grpc-tls-cert; the app then speaks TLS to --xds-addr (with the --certs-dir certificate as its client certificate)")
	fs.DurationVar(&certsRefresh, "certs-refresh", sidecarconfig.DefaultCertsRefresh, "with --proxyless --certs-dir: how often grpc-go reads the certificate files again (well under half of --cert-ttl)")
	_ = cmd.MarkFlagRequired("workload")
	return cmd
}
