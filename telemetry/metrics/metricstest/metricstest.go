// Package metricstest holds what the metrics packages' tests share: a
// temp-dir TSDB, appends, and waiting for a background part.
package metricstest

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
)

// Logger logs at debug level to the test's output with -v, else nowhere.
func Logger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// OpenDB opens a TSDB with exemplar storage in a temp dir, closed when the
// test ends.
func OpenDB(t testing.TB) *tsdb.DB {
	t.Helper()
	opts := tsdb.DefaultOptions()
	opts.EnableExemplarStorage = true
	opts.MaxExemplars = 1000
	db, err := tsdb.Open(t.TempDir(), slog.New(slog.DiscardHandler), nil, opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// Run runs fn until the test ends, and waits for it.
func Run(t testing.TB, fn func(context.Context) error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fn(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
}

// Eventually polls cond until it holds or timeout passes.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Sample is one float sample, optionally with an exemplar.
type Sample struct {
	Labels   labels.Labels
	T        int64
	V        float64
	Exemplar *exemplar.Exemplar
}

// Append appends samples in one commit.
func Append(t testing.TB, app storage.AppendableV2, samples ...Sample) {
	t.Helper()
	a := app.AppenderV2(context.Background())
	for _, s := range samples {
		opts := storage.AOptions{}
		if s.Exemplar != nil {
			opts.Exemplars = []exemplar.Exemplar{*s.Exemplar}
		}
		if _, err := a.Append(0, s.Labels, 0, s.T, s.V, nil, nil, opts); err != nil {
			t.Fatalf("append %s: %v", s.Labels, err)
		}
	}
	if err := a.Commit(); err != nil {
		t.Fatal(err)
	}
}

// RulesYAML is a rule file of one group: a recording rule (job:up:sum)
// and an alert (InstanceDown, for up == 0).
const RulesYAML = `groups:
  - name: test
    rules:
      - record: job:up:sum
        expr: sum by (job) (up)
      - alert: InstanceDown
        expr: up == 0
        labels: {severity: page}
        annotations: {summary: "{{ $labels.instance }} is down"}
`

// WriteRules writes content to rules.yml in a temp dir and returns its path.
func WriteRules(t testing.TB, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "rules.yml")
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// CheckErr fails unless err is nil when want is "", or contains want.
func CheckErr(t testing.TB, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Fatalf("error = %v, want none", err)
	case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
		t.Fatalf("error = %v, want it to contain %q", err, want)
	}
}
