// Command glassmesh is an observability-centric service mesh: an xDS control
// plane for Envoy sidecars and proxyless gRPC with a built-in telemetry
// backend. This package only wires the parts together.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// Set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := newRootCmd()
	if err := root.ExecuteContext(ctx); err != nil {
		var ec exitCode
		if errors.As(err, &ec) {
			os.Exit(int(ec))
		}
		fmt.Fprintln(os.Stderr, "glassmesh:", err)
		os.Exit(1)
	}
}

// exitCode ends the program with a status and no further message.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "glassmesh",
		Short: "An observability-centric service mesh: xDS control plane + telemetry, traces, graph and SLOs in one binary",
		Long: `glassmesh is an xDS control plane for Envoy sidecars and proxyless gRPC
with a built-in telemetry backend. Start with 'glassmesh demo', then open the
UI at http://localhost:20001.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(
		newRunCmd(),
		newDemoCmd(),
		newValidateCmd(),
		newSLOCmd(),
		newSidecarCmd(),
		newCACmd(),
		newCanaryCmd(),
		newVersionCmd(),
		newDemoAppCmd(),
	)
	return root
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the glassmesh version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintln(cmd.OutOrStdout(), "glassmesh", version)
		},
	}
}
