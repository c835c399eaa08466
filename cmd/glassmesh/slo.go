package main

import (
	"context"
	"fmt"

	"github.com/prometheus/prometheus/rules"
	"github.com/spf13/cobra"

	"github.com/glassmesh/glassmesh/control/source"
	"github.com/glassmesh/glassmesh/telemetry/slo"
)

func newSLOCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "slo",
		Short: "Work with the SLOs of a mesh config",
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "rules DIR|FILE",
		Short: "Print the Prometheus rule groups generated for the SLOs of a mesh config",
		Long: `Rules reads the mesh config at DIR (or the one FILE) like 'glassmesh
validate', and prints the recording and alerting rules that 'glassmesh run'
evaluates for its SLOs, as a Prometheus rule file (Sloth's series names and
labels), for use in another Prometheus or with 'promtool check rules'. Config
errors and warnings go to stderr as file:line; errors exit 1.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, _ := source.LoadConfig(args[0])
			errOut := cmd.ErrOrStderr() // stdout is the rule file
			for _, d := range r.Errors {
				fmt.Fprintln(errOut, "error:", d.Error())
			}
			for _, d := range r.Warnings {
				fmt.Fprintln(errOut, "warning:", d.Error())
			}
			if len(r.Errors) > 0 {
				fmt.Fprintf(errOut, "%d error(s), %d warning(s) in %d file(s)\n", len(r.Errors), len(r.Warnings), r.Files)
				return exitCode(1)
			}
			out, err := slo.RuleFile(slo.Generate(r.Mesh.SLOs))
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(out)
			return err
		},
	})
	return cmd
}

// newSLOEngine runs the incremental SLO engine beside the SLO rules: it
// counts events with query (the shared store's when there is one) and
// keeps its rollups in the local TSDB, so they survive restarts like the
// rest of the metrics. It serves the budget reports and feeds /api/slos;
// its rounds start once the TSDB has opened (the reports answer from the
// opening store until then, which refuses with its reason).
func (a *app) newSLOEngine(mg *slo.Manager, query rules.QueryFunc) error {
	f := a.flags.telemetry
	e, err := slo.NewEngine(slo.EngineConfig{Step: f.sloStep, Delay: f.metricsInterval},
		query, a.tel.metrics, a.tel.metrics, a.logger.With("component", "slo-engine"), a.reg)
	if err != nil {
		return fmt.Errorf("--slo.step: %w", err)
	}
	mg.UseEngine(e)
	a.sloEngine = e
	e.RegisterReports(a.mux)
	ctx, cancel := context.WithCancel(context.Background())
	a.actors = append(a.actors, actor{
		execute: func() error {
			// Its rounds read and write the local TSDB: start once it is open.
			select {
			case <-a.tel.metrics.Ready():
			case <-ctx.Done():
				return nil
			}
			return e.Run(ctx)
		},
		interrupt: func(error) { cancel() },
	})
	return nil
}
