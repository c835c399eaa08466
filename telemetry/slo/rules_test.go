package slo

import (
	"flag"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

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
