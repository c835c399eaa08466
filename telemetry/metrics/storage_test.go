package metrics

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"
	"go.uber.org/goleak"

	"github.com/glassmesh/glassmesh/telemetry/record"
)

// killChildEnv, when set to a data dir, turns the test binary into the
// child of TestStorageSurvivesKill.
const killChildEnv = "GLASSMESH_METRICS_KILL_CHILD_DIR"

func TestMain(m *testing.M) {
	if dir := os.Getenv(killChildEnv); dir != "" {
		os.Exit(runKillChild(dir))
	}
	goleak.VerifyTestMain(m)
}

func TestStorageConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  StorageConfig
		want string // substring of the error; "" means valid
	}{
		{"defaults are valid", StorageConfig{DataDir: "d"}, ""},
		{"a data dir is required", StorageConfig{}, "data-dir: must not be empty"},
		{"negative retention is named", StorageConfig{DataDir: "d", Retention: -time.Second}, "retention.metrics: must be > 0"},
		{"a sub-second block is refused", StorageConfig{DataDir: "d", BlockDuration: 500 * time.Millisecond}, "metrics.block-duration: must be >= 1s"},
		{"one second blocks are fine", StorageConfig{DataDir: "d", BlockDuration: time.Second, Retention: time.Second}, ""},
		{"negative exemplars are named", StorageConfig{DataDir: "d", MaxExemplars: -1}, "metrics.max-exemplars"},
		{"negative out-of-order window is named", StorageConfig{DataDir: "d", OutOfOrderWindow: -1}, "metrics.out-of-order-window"},
		{"negative sync interval is named", StorageConfig{DataDir: "d", WALSyncInterval: -1}, "metrics.wal-sync-interval"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("Validate() = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestStorageAppendQueryAndSync(t *testing.T) {
	reg := prometheus.NewRegistry()
	st, err := OpenStorage(StorageConfig{DataDir: t.TempDir(), WALSyncInterval: 10 * time.Millisecond}, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = st.Run(context.Background()) }()
	t.Cleanup(func() { _ = st.Close() })
	if !strings.HasSuffix(st.Dir(), "/metrics") {
		t.Errorf("Dir() = %q, want it under <data-dir>/metrics", st.Dir())
	}
	ts := time.Now().UnixMilli()
	app := st.Appendable().Appender(context.Background())
	if _, err := app.Append(0, labels.FromStrings("__name__", "up"), ts, 1); err != nil {
		t.Fatal(err)
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
	q, err := st.Queryable().Querier(ts-1, ts+1)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	ss := q.Select(context.Background(), false, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "up"))
	if !ss.Next() {
		t.Fatalf("the committed sample is not queryable: %v", ss.Err())
	}
	deadline := time.Now().Add(5 * time.Second)
	for testutil.ToFloat64(st.syncs) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the WAL was never fsynced after a commit")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatalf("a second Close() = %v, want the first result (nil)", err)
	}
}

// TestStorageSurvivesKill runs a child process that consumes requests,
// flushes, says so, and is then killed with SIGKILL. What the flush
// committed must be there when the parent reopens the data dir, and the
// counters must continue from it.
func TestStorageSurvivesKill(t *testing.T) {
	if testing.Short() {
		t.Skip("re-executes the test binary")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), killChildEnv+"="+dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("child said nothing: %v", err)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	flushedAt, err := strconv.ParseInt(strings.TrimPrefix(strings.TrimSpace(line), "flushed "), 10, 64)
	if err != nil {
		t.Fatalf("child said %q: %v", line, err)
	}
	at := time.UnixMilli(flushedAt)

	e := newTestEnv(t, dir, AggregatorConfig{})
	if got := e.value(t, `sum(istio_requests_total)`, at); got != killChildRequests {
		t.Fatalf("after kill -9, sum(istio_requests_total) = %v, want %d", got, killChildRequests)
	}
	consume(t, e.agg, httpReq(record.ReporterSource, 200, time.Millisecond))
	next := at.Add(5 * time.Second)
	if err := e.agg.flushAt(context.Background(), next); err != nil {
		t.Fatal(err)
	}
	if got := e.value(t, `sum(istio_requests_total)`, next); got != killChildRequests+1 {
		t.Errorf("after restart, sum(istio_requests_total) = %v, want %d", got, killChildRequests+1)
	}
	if got := e.value(t, `sum(resets(istio_requests_total[1m]))`, next); got != 0 {
		t.Errorf("resets over the restart = %v, want 0", got)
	}
}

const killChildRequests = 7

// runKillChild is the child of TestStorageSurvivesKill. It never returns
// on success: the parent kills it.
func runKillChild(dir string) int {
	st, err := OpenStorage(StorageConfig{DataDir: dir}, nil, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	agg, err := NewAggregator(AggregatorConfig{}, st, nil, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	reqs := make([]record.Request, killChildRequests)
	for i := range reqs {
		reqs[i] = httpReq(record.ReporterSource, 200, time.Millisecond)
	}
	if err := agg.ConsumeRequests(context.Background(), reqs); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := agg.Flush(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("flushed %d\n", agg.lastFlush)
	time.Sleep(time.Hour)
	return 1
}
