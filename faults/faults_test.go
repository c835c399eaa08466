//go:build faults

// Package faults runs the real glassmesh binary under faults (`make
// faults`, not part of `make test`): each test checks that glassmesh keeps
// serving what it acknowledged and recovers, and logs the figures that go
// to RELIABILITY.md.
package faults

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var binary string

// startTimeout bounds how long start waits for glassmesh to open its stores
// and listen; a case on a large data dir raises it for its own run.
var startTimeout = time.Minute

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "glassmesh-faults-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "glassmesh")
	build := exec.Command("go", "build", "-o", binary, "../cmd/glassmesh")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building glassmesh:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// glassmesh is a running `glassmesh run`.
type glassmesh struct {
	cmd                *exec.Cmd
	httpAddr, grpcAddr string

	mu   sync.Mutex
	logs [][]byte // every JSON log line, for the figures a case reads from them
}

// start runs `glassmesh run ARGS` on free ports with JSON logs and returns
// once every store is open (/readyz/all); its warnings go to t's log.
func start(t *testing.T, args ...string) *glassmesh {
	t.Helper()
	return startCommand(t, "run", args...)
}

// startCommand is start for another command that takes run's flags
// (`glassmesh demo`).
func startCommand(t *testing.T, command string, args ...string) *glassmesh {
	t.Helper()
	g := launchCommand(t, command, args...)
	eventually(t, startTimeout, "/readyz/all 200", func() error {
		resp, err := http.Get("http://" + g.httpAddr + "/readyz/all")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	})
	return g
}

// launch is start returning as soon as glassmesh listens (it logged its
// addresses), before its stores are open.
func launch(t *testing.T, args ...string) *glassmesh {
	t.Helper()
	return launchCommand(t, "run", args...)
}

// launchCommand is launch for another command that takes run's flags.
func launchCommand(t *testing.T, command string, args ...string) *glassmesh {
	t.Helper()
	args = append([]string{command, "--data-dir", t.TempDir(), "--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0",
		"--otlp-grpc-addr", "", "--otlp-http-addr", "", "--zipkin-addr", "127.0.0.1:0", "--log.format", "json"}, args...)
	g := &glassmesh{cmd: exec.Command(binary, args...)}
	g.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stderr, err := g.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := g.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addrs := make(chan [2]string, 1)
	logged := make(chan struct{})
	t.Cleanup(func() { _ = g.cmd.Process.Kill(); _ = g.cmd.Wait(); <-logged })
	go func() {
		defer close(logged)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var l struct{ Msg, Level, HTTP, GRPC string }
			g.mu.Lock()
			g.logs = append(g.logs, slices.Clone(sc.Bytes()))
			g.mu.Unlock()
			if json.Unmarshal(sc.Bytes(), &l) == nil && l.Msg == "glassmesh starting" {
				addrs <- [2]string{l.HTTP, l.GRPC}
			}
			if l.Level == "WARN" || l.Level == "ERROR" {
				t.Logf("glassmesh: %s", sc.Text())
			}
		}
	}()
	select {
	case a := <-addrs:
		g.httpAddr, g.grpcAddr = a[0], a[1]
	case <-time.After(startTimeout):
		t.Fatalf("glassmesh did not start within %s", startTimeout)
	}
	return g
}

// logged returns the fields of the first log line whose message is msg.
func (g *glassmesh) logged(msg string) (map[string]any, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, b := range g.logs {
		var l map[string]any
		if json.Unmarshal(b, &l) == nil && l["msg"] == msg {
			return l, true
		}
	}
	return nil, false
}

// metric is the value of an unlabelled metric on /metrics.
func (g *glassmesh) metric(t *testing.T, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + g.httpAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// liveHeap is glassmesh's heap after a full GC (forced through pprof): the
// least of three samples, as whatever runs between the GC and the scrape
// allocates too.
func (g *glassmesh) liveHeap(t *testing.T) float64 {
	t.Helper()
	least := math.Inf(1)
	for range 3 {
		resp, err := http.Get("http://" + g.httpAddr + "/debug/pprof/heap?gc=1")
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		least = min(least, g.metric(t, "go_memstats_heap_alloc_bytes"))
	}
	return least
}

// eventually polls f until it returns nil, for at most d.
func eventually(t *testing.T, d time.Duration, what string, f func() error) {
	t.Helper()
	var err error
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if err = f(); err == nil {
			return
		}
	}
	t.Fatalf("%s: not within %s: %v", what, d, err)
}

// freeAddr is a free loopback address to listen on.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
