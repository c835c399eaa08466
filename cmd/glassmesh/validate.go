package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/glassmesh/glassmesh/control/source"
)

func newValidateCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "validate DIR|FILE",
		Short: "Validate mesh config; print every error as file:line and exit 1 if there is any",
		Long: `Validate reads every *.yaml and *.yml file under DIR (or the one FILE),
checks it the way 'glassmesh run' would, prints each error and warning as
file:line: field.path: message, and exits 1 when there are errors.

DIR may also be a directory of Kubernetes manifests, as 'kubectl apply -f'
takes it: the glassmesh.io kinds mixed with core Services (read as
'--source kubernetes' reads them), Gateway API HTTPRoutes and SMI
TrafficSplits (imported as TrafficRoutes) and 'kind: List' documents;
objects of other kinds (Deployments, ConfigMaps, ...) are skipped and
counted.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, skipped := source.LoadConfig(args[0])
			out := cmd.OutOrStdout()
			for _, d := range r.Errors {
				fmt.Fprintln(out, "error:", d.Error())
			}
			for _, d := range r.Warnings {
				fmt.Fprintln(out, "warning:", d.Error())
			}
			if n := skipped.Total(); n > 0 {
				objects := "objects"
				if n == 1 {
					objects = "object"
				}
				fmt.Fprintf(out, "skipped %d %s of other kinds: %s\n", n, objects, skipped)
			}
			if len(r.Errors) > 0 {
				fmt.Fprintf(out, "%d error(s), %d warning(s) in %d file(s)\n", len(r.Errors), len(r.Warnings), r.Files)
				return exitCode(1)
			}
			fmt.Fprintf(out, "ok: %d file(s), %d service(s), %d workload(s), %d route(s), %d warning(s)\n",
				r.Files, len(r.Mesh.Services), len(r.Mesh.Workloads), len(r.Mesh.Routes), len(r.Warnings))
			return nil
		},
	}
}
