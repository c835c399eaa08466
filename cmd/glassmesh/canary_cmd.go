package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/glassmesh/glassmesh/control/canary"
)

// apiClient calls a running glassmesh's HTTP API.
type apiClient struct {
	server, tokenFile string
	jsonOut           bool
}

func (c *apiClient) register(cmd *cobra.Command) {
	cmd.PersistentFlags().StringVar(&c.server, "server", "http://127.0.0.1:20001", "URL of a running glassmesh's HTTP API")
	cmd.PersistentFlags().StringVar(&c.tokenFile, "token-file", "", "file holding the bearer token of --api-token-file, for promote, abort, pause and resume")
	cmd.PersistentFlags().BoolVarP(&c.jsonOut, "json", "j", false, "print the API's JSON instead of a table")
}

// do sends a request and decodes a 2xx JSON answer into out; other answers
// become an error with the server's message.
func (c *apiClient) do(cmd *cobra.Command, method, path string, body any, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	url := strings.TrimSuffix(c.server, "/") + path
	req, err := http.NewRequestWithContext(cmd.Context(), method, url, rd)
	if err != nil {
		return err
	}
	if c.tokenFile != "" {
		tok, err := os.ReadFile(c.tokenFile)
		if err != nil {
			return fmt.Errorf("--token-file: %w", err)
		}
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, e.Error)
		}
		return fmt.Errorf("%s %s: %s", method, path, resp.Status)
	}
	if c.jsonOut {
		_, err := cmd.OutOrStdout().Write(b)
		return err
	}
	return json.Unmarshal(b, out)
}

func newCanaryCmd() *cobra.Command {
	c := &apiClient{}
	cmd := &cobra.Command{
		Use:   "canary",
		Short: "List, inspect and steer the canaries of a running glassmesh",
	}
	c.register(cmd)
	cmd.AddCommand(&cobra.Command{
		Use:   "list",
		Short: "List every canary with its state, step and weights",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var list struct {
				Canaries []canary.Status `json:"canaries"`
			}
			if err := c.do(cmd, http.MethodGet, "/api/canaries", nil, &list); err != nil || c.jsonOut {
				return err
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "NAMESPACE\tNAME\tSTATE\tSTEP\tWEIGHTS\tLAST DECISION")
			for _, st := range list.Canaries {
				fmt.Fprintf(w, "%s\t%s\t%s\t%d/%d\t%s\t%s\n", st.Namespace, st.Name, st.State, st.Step, len(st.Steps), weights(st), lastDecision(st))
			}
			return w.Flush()
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "status NAMESPACE/NAME",
		Short: "Show one canary and every decision it made, with its evidence",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var st canary.Status
			if err := c.do(cmd, http.MethodGet, "/api/canaries/"+args[0], nil, &st); err != nil || c.jsonOut {
				return err
			}
			printStatus(cmd.OutOrStdout(), st)
			return nil
		},
	})
	for _, a := range []struct{ verb, short string }{
		{"promote", "Give the canary all traffic now and end it as succeeded"},
		{"abort", "Give the stable subset all traffic now and end the canary as aborted"},
		{"pause", "Hold the canary at its step until resumed"},
		{"resume", "Continue a paused canary (its step's interval starts again)"},
	} {
		var reason string
		sub := &cobra.Command{
			Use:   a.verb + " NAMESPACE/NAME",
			Short: a.short,
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				var st canary.Status
				body := map[string]string{"reason": reason}
				if err := c.do(cmd, http.MethodPost, "/api/canaries/"+args[0]+"/"+a.verb, body, &st); err != nil || c.jsonOut {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s: %s, weights %s\n", st.Namespace+"/"+st.Name, st.State, weights(st))
				return nil
			},
		}
		sub.Flags().StringVar(&reason, "reason", "", "why, recorded with the decision")
		cmd.AddCommand(sub)
	}
	return cmd
}

func weights(st canary.Status) string {
	return fmt.Sprintf("%s=%d %s=%d", st.Stable, st.Weights[st.Stable], st.Canary, st.Weights[st.Canary])
}

func lastDecision(st canary.Status) string {
	if len(st.Decisions) == 0 {
		return ""
	}
	d := st.Decisions[len(st.Decisions)-1]
	return fmt.Sprintf("%s %s ago", d.Verdict, time.Since(d.At).Round(time.Second))
}

func printStatus(out io.Writer, st canary.Status) {
	fmt.Fprintf(out, "Canary %s/%s: route %s, %s -> %s\n", st.Namespace, st.Name, st.Route, st.Stable, st.Canary)
	fmt.Fprintf(out, "State:   %s at step %d of %d %v\n", st.State, st.Step, len(st.Steps), st.Steps)
	fmt.Fprintf(out, "Weights: %s (of %d)\n", weights(st), st.TotalWeight)
	fmt.Fprintf(out, "Message: %s\n\nDecisions:\n", st.Message)
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "TIME\tSTEP\tVERDICT\tREQUESTS\tWEIGHTS\tREASON")
	for _, d := range st.Decisions {
		fmt.Fprintf(w, "%s\t%d\t%s\t%.0f\t%s=%d %s=%d\t%s\n", d.At.Local().Format(time.TimeOnly), d.Step, d.Verdict, d.Requests,
			st.Stable, d.WeightsAfter[st.Stable], st.Canary, d.WeightsAfter[st.Canary], d.Reason)
		for _, g := range d.Gates {
			v := "no data"
			if g.Value != nil {
				v = fmt.Sprintf("%.4g", *g.Value)
			}
			fmt.Fprintf(w, "\t\t  %s\t\t%s (max %.4g)\t%s\n", g.Verdict, v, g.Threshold, g.Gate)
		}
	}
	_ = w.Flush()
}
