package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const reviewsSLOs = `apiVersion: glassmesh.io/v1alpha1
kind: SLO
metadata: {name: reviews-availability, namespace: default}
spec:
  service: reviews
  objective: 99.9
  indicator:
    availability: {}
---
apiVersion: glassmesh.io/v1alpha1
kind: SLO
metadata: {name: reviews-latency, namespace: default}
spec:
  service: reviews
  objective: 99
  window: 7d
  indicator:
    latency: {thresholdMs: 250}
---
apiVersion: glassmesh.io/v1alpha1
kind: SLO
metadata: {name: reviews-ratio, namespace: default}
spec:
  service: reviews
  objective: 95
  window: 28d
  indicator:
    ratio:
      errorQuery: sum(rate(app_errors_total{service="$service"}[$window]))
      totalQuery: sum(rate(app_requests_total{service="$service"}[$window]))
`

func TestSLORulesCommand(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "services.yaml"), reviewsService)
	writeFile(t, filepath.Join(dir, "slos.yaml"), reviewsSLOs)

	t.Run("it prints a rule file that promtool accepts", func(t *testing.T) {
		var stdout, stderr bytes.Buffer
		cmd := exec.Command(binary, "slo", "rules", dir)
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("slo rules: %v\n%s", err, stderr.Bytes())
		}
		out := stdout.String()
		for _, want := range []string{
			"name: glassmesh-slo-default-reviews-availability", "record: slo:sli_error:ratio_rate30d",
			"record: slo:sli_error:ratio_rate7d", "record: slo:sli_error:ratio_rate28d",
			"record: slo:period_error_budget_remaining:ratio", "alert: SLOErrorBudgetBurn", "(14.4 * 0.001)",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q", want)
			}
		}
		promtool, err := exec.LookPath("promtool")
		if err != nil {
			t.Skip("promtool not installed (.ci/run installs Debian's prometheus package)")
		}
		file := filepath.Join(t.TempDir(), "slo.rules.yaml")
		if err := os.WriteFile(file, stdout.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		if b, err := exec.Command(promtool, "check", "rules", file).CombinedOutput(); err != nil {
			t.Fatalf("promtool check rules: %v\n%s", err, b)
		}
	})
	t.Run("a bad SLO is reported as file:line and exits 1", func(t *testing.T) {
		bad := filepath.Join(dir, "slos.yaml")
		writeFile(t, bad, strings.Replace(reviewsSLOs, "objective: 99\n", "objective: 100\n", 1))
		var stdout, stderr bytes.Buffer
		cmd := exec.Command(binary, "slo", "rules", dir)
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
			t.Fatalf("want exit 1, got %v\n%s", err, stderr.Bytes())
		}
		if want := bad + ":15: spec.objective"; !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr does not name %q:\n%s", want, stderr.Bytes())
		}
		if stdout.Len() != 0 {
			t.Errorf("stdout is not empty:\n%s", stdout.Bytes())
		}
	})
}

func TestRunServesSLOs(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "mesh.yaml"), telemetryMesh)
	writeFile(t, filepath.Join(dir, "slos.yaml"), reviewsSLOs)
	gm := start(t, dir)

	t.Run("the SLO rules are loaded into the rules manager", func(t *testing.T) {
		var rules struct {
			Data struct {
				Groups []struct {
					Name string `json:"name"`
					File string `json:"file"`
				} `json:"groups"`
			} `json:"data"`
		}
		// The rules manager starts, and loads the groups, once the
		// metrics storage is open, just after /readyz says it is.
		want := "glassmesh-slo-default-reviews-availability glassmesh-slo-default-reviews-latency glassmesh-slo-default-reviews-ratio"
		eventually(t, 15*time.Second, func() error {
			gm.getJSON(t, "/api/v1/rules", &rules)
			var names []string
			for _, g := range rules.Data.Groups {
				if g.File == "glassmesh:generated/slo" {
					names = append(names, g.Name)
				}
			}
			if strings.Join(names, " ") != want {
				return fmt.Errorf("generated groups %v, want %s", names, want)
			}
			return nil
		})
	})
	t.Run("GET /api/slos lists them with their alerts", func(t *testing.T) {
		var a struct {
			SLOs []struct {
				Namespace string  `json:"namespace"`
				Name      string  `json:"name"`
				Objective float64 `json:"objective"`
				Window    string  `json:"window"`
				Alerts    []struct {
					Name     string `json:"name"`
					Severity string `json:"severity"`
				} `json:"alerts"`
			} `json:"slos"`
		}
		gm.getJSON(t, "/api/slos?namespace=default", &a)
		if len(a.SLOs) != 3 || a.SLOs[0].Name != "reviews-availability" || a.SLOs[0].Window != "30d" || a.SLOs[1].Window != "7d" {
			t.Fatalf("got %+v", a)
		}
		if al := a.SLOs[0].Alerts; len(al) != 2 || al[0].Severity != "page" || al[1].Severity != "ticket" {
			t.Errorf("alerts %+v", al)
		}
	})
	t.Run("failing calls in access logs burn the availability SLO and page", func(t *testing.T) {
		// productpage's sidecar: 10 OK calls to reviews, 2 answered 503.
		// reviews' sidecar reports the same calls (not counted again) and
		// 3 OK calls from outside the mesh (counted): 2 bad of 15.
		productpage := envoyNode("productpage-v1", "productpage", "10.1.0.1")
		out := "outbound|9080||reviews.default.svc.cluster.local"
		ok := grpcEntry{cluster: out, upstream: "10.1.0.2:9080", downstream: "10.1.0.1:40000", code: 200, grpcStatus: "0"}
		bad := grpcEntry{cluster: out, upstream: "10.1.0.2:9080", downstream: "10.1.0.1:40000", code: 503}
		streamALS(t, gm.GRPCAddr, productpage, append(repeat(ok, 10), repeat(bad, 2)...)...)
		in := grpcEntry{cluster: "inbound|9080||", upstream: "127.0.0.1:9080", downstream: "10.1.0.1:40000", code: 200, grpcStatus: "0", peerHeader: productpage.Id}
		stranger := grpcEntry{cluster: "inbound|9080||", upstream: "127.0.0.1:9080", downstream: "192.168.7.7:5555", code: 200, grpcStatus: "0"}
		streamALS(t, gm.GRPCAddr, envoyNode("reviews-v1", "reviews", "10.1.0.2"), append(repeat(in, 10), repeat(stranger, 3)...)...)

		type sloState struct {
			SLOs []struct {
				Name   string             `json:"name"`
				SLI    map[string]float64 `json:"sli"`
				Alerts []struct {
					Severity string `json:"severity"`
					State    string `json:"state"`
				} `json:"alerts"`
			} `json:"slos"`
		}
		eventually(t, 30*time.Second, func() error {
			var a sloState
			gm.getJSON(t, "/api/slos", &a)
			s := a.SLOs[0]
			// Samples of the two sidecars may land in different flushes,
			// so rate() extrapolates them a little differently.
			if sli, ok := s.SLI["5m"]; !ok || sli < 0.12 || sli > 0.15 {
				return fmt.Errorf("%s: SLI %v, want about 2/15", s.Name, s.SLI)
			}
			if len(s.Alerts) == 0 || s.Alerts[0].Severity != "page" || s.Alerts[0].State != "firing" {
				return fmt.Errorf("%s: alerts %+v, want the page firing", s.Name, s.Alerts)
			}
			return nil
		})
	})
}
