package main

import (
	"io"
	"os"

	"github.com/spf13/cobra"

	sidecarconfig "github.com/glassmesh/glassmesh/sidecar-config"
)

func newSidecarInjectCmd() *cobra.Command {
	var (
		file string
		cfg  = sidecarconfig.DefaultInjectConfig()
	)
	cmd := &cobra.Command{
		Use:   "inject",
		Short: "Add glassmesh to the pods of Kubernetes manifests offline, as the injection webhook does",
		Long: `inject reads Kubernetes manifests (-f FILE, or - for standard input) and
prints them with glassmesh added to every Pod and pod template (Deployment,
StatefulSet, DaemonSet, ReplicaSet, Job, CronJob), like istioctl kube-inject:
an Envoy sidecar with traffic capture, or, for pods annotated
glassmesh.io/proxyless: "true", the grpc-go bootstrap and
'glassmesh sidecar certs --watch'. Other objects pass through unchanged.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var in io.Reader = cmd.InOrStdin()
			if file != "-" {
				f, err := os.Open(file)
				if err != nil {
					return err
				}
				defer f.Close()
				in = f
			}
			out, err := sidecarconfig.InjectManifests(in, cfg)
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(out)
			return err
		},
	}
	fs := cmd.Flags()
	fs.StringVarP(&file, "filename", "f", "", "manifest file to inject, or - for standard input (required)")
	fs.StringVar(&cfg.Image, "image", cfg.Image, "glassmesh's image (bootstrap and certificate containers)")
	fs.StringVar(&cfg.EnvoyImage, "envoy-image", cfg.EnvoyImage, "the sidecar proxy's image")
	fs.StringVar(&cfg.ProxyInitImage, "proxy-init-image", cfg.ProxyInitImage, "image with iptables that captures the pod's traffic")
	fs.StringVar(&cfg.XDSAddr, "xds-addr", cfg.XDSAddr, "glassmesh's gRPC address as pods reach it")
	fs.StringVar(&cfg.XDSTLSAddr, "xds-tls-addr", "", "glassmesh's attested xDS listener (run --xds-tls-addr) as pods reach it: proxyless pods then take xDS there over TLS with their projected token")
	fs.StringVar(&cfg.ServerURL, "server", cfg.ServerURL, "glassmesh's HTTP API as pods reach it (the CA)")
	_ = cmd.MarkFlagRequired("filename")
	return cmd
}
