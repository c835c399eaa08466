package slo

import (
	"flag"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	prommodel "github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/glassmesh/glassmesh/control/model"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// golden compares got with testdata/name, or writes it there with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if string(got) != string(want) {
		t.Errorf("%s differs from the generated rules (run with -update to accept):\n%s", path, got)
	}
}

func TestGenerateGolden(t *testing.T) {
	slos := testSLOs()
	// Shuffled input: the output follows the SLOs' namespace/name order.
	out, err := RuleFile(Generate([]*model.SLO{slos[2], slos[0], slos[1]}))
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "rules.golden.yaml", out)

	t.Run("the rule file parses as Prometheus rules", func(t *testing.T) {
		if _, errs := rulefmt.Parse(out, false, prommodel.LegacyValidation, parser.NewParser(parser.Options{}), slog.New(slog.DiscardHandler)); len(errs) > 0 {
			t.Fatal(errs)
		}
	})
	t.Run("promtool check rules accepts it", func(t *testing.T) {
		promtool, err := exec.LookPath("promtool")
		if err != nil {
			t.Skip("promtool not installed (apt-get install prometheus)")
		}
		path := filepath.Join(t.TempDir(), "slo.rules.yaml")
		if err := os.WriteFile(path, out, 0o644); err != nil {
			t.Fatal(err)
		}
		if b, err := exec.Command(promtool, "check", "rules", path).CombinedOutput(); err != nil {
			t.Fatalf("promtool check rules: %v\n%s", err, b)
		}
	})
}

func TestGenerateForEveryWindow(t *testing.T) {
	day := 24 * time.Hour
	for _, window := range []time.Duration{day, 36 * time.Hour, 3 * day, 7 * day, 365 * day} {
		t.Run("a "+promDuration(window)+" SLO records each series once and reads its own window", func(t *testing.T) {
			s := testSLO("x", 99, window, model.Indicator{Availability: &model.AvailabilityIndicator{}})
			groups := Generate([]*model.SLO{s})
			if len(groups) != 1 {
				t.Fatalf("%d groups", len(groups))
			}
			seen := map[string]bool{}
			var periodBurn string
			for _, r := range groups[0].Rules {
				key := r.Record + r.Alert + "/" + r.Labels[labelWindow] + "/" + r.Labels[labelSeverity]
				if seen[key] {
					t.Errorf("%s is generated twice", key)
				}
				seen[key] = true
				if r.Record == PeriodBurnRateMetric {
					periodBurn = r.Expr
				}
			}
			if want := SLIErrorMetric + promDuration(window) + "{"; !strings.HasPrefix(periodBurn, want) {
				t.Errorf("period burn rate %q does not read %s", periodBurn, want)
			}
			if !seen[SLIErrorMetric+promDuration(window)+"/"+promDuration(window)+"/"] {
				t.Errorf("no SLI for the window itself")
			}
			out, err := RuleFile(groups)
			if err != nil {
				t.Fatal(err)
			}
			if _, errs := rulefmt.Parse(out, false, prommodel.LegacyValidation, parser.NewParser(parser.Options{}), slog.New(slog.DiscardHandler)); len(errs) > 0 {
				t.Fatal(errs)
			}
		})
	}
}
