// Package e2e holds glassmesh's heavy end-to-end tests: they build the real
// binary, run it on free ports, and talk to it with real clients (grpc-go's
// xDS client, raw xDS streams, HTTP). One package, so they share one build.
package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// binary is the glassmesh binary built once for the whole package.
var binary string

func TestMain(m *testing.M) {
	if os.Getenv(xdsCallChildEnv) != "" { // a child of TestSecurityXDSCallCredentials
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "glassmesh-e2e-")
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

// instance is one running glassmesh process.
type instance struct {
	t          testing.TB
	cmd        *exec.Cmd
	HTTPAddr   string // host:port of the HTTP API
	GRPCAddr   string // host:port of the xDS server
	ZipkinAddr string // host:port of the Zipkin receiver
	XDSTLSAddr string // host:port of the attested xDS listener (--xds-tls-addr), or ""
	DataDir    string

	mu   sync.Mutex
	logs []string
	done chan struct{}
}

// start runs `glassmesh run` (or another subcommand given in args[0]) on
// free loopback ports and waits until /readyz answers.
func start(t testing.TB, configPath string, extra ...string) *instance {
	t.Helper()
	return startIn(t, configPath, t.TempDir(), extra...)
}

// startIn is start with a given data directory, to restart on old data.
func startIn(t testing.TB, configPath, dataDir string, extra ...string) *instance {
	t.Helper()
	return startCmd(t, "run", configPath, dataDir, extra...)
}

// startCmd starts `glassmesh <sub>` (run or demo) on free ports.
func startCmd(t testing.TB, sub, configPath, dataDir string, extra ...string) *instance {
	t.Helper()
	in := &instance{t: t, DataDir: dataDir, done: make(chan struct{})}
	args := append([]string{sub,
		"--config", configPath, "--data-dir", in.DataDir,
		"--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0",
		"--otlp-grpc-addr", "127.0.0.1:0", "--otlp-http-addr", "127.0.0.1:0", "--zipkin-addr", "127.0.0.1:0", "--metrics.interval", "1s", "--rules.interval", "1s",
		"--log.format", "json", "--log.level", "info"}, extra...)
	in.cmd = exec.Command(binary, args...)
	in.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stderr, err := in.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := in.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addrs := make(chan [4]string, 1)
	go in.readLogs(stderr, addrs)
	t.Cleanup(func() { in.stop() })
	select {
	case a := <-addrs:
		in.HTTPAddr, in.GRPCAddr, in.ZipkinAddr, in.XDSTLSAddr = a[0], a[1], a[2], a[3]
	case <-in.done:
		t.Fatalf("glassmesh exited early:\n%s", in.Logs())
	case <-time.After(30 * time.Second):
		t.Fatalf("glassmesh did not start:\n%s", in.Logs())
	}
	// /readyz is 200 once xDS serves the mesh; the stores open behind it.
	// The tests read and write them at once, so wait for every component.
	eventually(t, 30*time.Second, func() error {
		resp, err := http.Get("http://" + in.HTTPAddr + "/readyz/all")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("readyz: %s", resp.Status)
		}
		return nil
	})
	return in
}

func (in *instance) readLogs(r io.Reader, addrs chan<- [4]string) {
	defer close(in.done)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	sent := false
	for sc.Scan() {
		line := sc.Text()
		in.mu.Lock()
		in.logs = append(in.logs, line)
		in.mu.Unlock()
		if sent {
			continue
		}
		var rec struct {
			Msg    string `json:"msg"`
			HTTP   string `json:"http"`
			GRPC   string `json:"grpc"`
			Zipkin string `json:"zipkin"`
			XDSTLS string `json:"xdsTLS"`
		}
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "glassmesh starting" {
			addrs <- [4]string{rec.HTTP, rec.GRPC, rec.Zipkin, rec.XDSTLS}
			sent = true
		}
	}
}

// Logs returns everything the process logged so far.
func (in *instance) Logs() string {
	in.mu.Lock()
	defer in.mu.Unlock()
	return strings.Join(in.logs, "\n")
}

// kill ends the process with SIGKILL: no shutdown, no final flush.
func (in *instance) kill() {
	_ = in.cmd.Process.Kill()
	<-in.done
	_ = in.cmd.Wait()
}

func (in *instance) stop() {
	if in.cmd.ProcessState != nil {
		return
	}
	_ = in.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-in.done:
	case <-time.After(10 * time.Second):
		_ = in.cmd.Process.Kill()
		<-in.done
	}
	_ = in.cmd.Wait()
	if in.t.Failed() {
		in.t.Logf("glassmesh logs:\n%s", in.Logs())
	}
}

// getJSON decodes GET http://<HTTPAddr><path> into v.
func (in *instance) getJSON(t testing.TB, path string, v any) {
	t.Helper()
	resp, err := http.Get("http://" + in.HTTPAddr + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %s: %s", path, resp.Status, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
}

// eventually retries f until it returns nil or the deadline passes. The
// deadlines are generous (machines here are shared); the real figures are
// measured by `make bench`.
func eventually(t testing.TB, d time.Duration, f func() error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var err error
	for {
		if err = f(); err == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("not within %s: %v", d, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// kialiGraph is what the tests read of /api/namespaces/graph (Kiali's
// cytoscape JSON).
type kialiGraph struct {
	Elements struct {
		Nodes []struct {
			Data kialiNode `json:"data"`
		} `json:"nodes"`
		Edges []struct {
			Data kialiEdge `json:"data"`
		} `json:"edges"`
	} `json:"elements"`
}

type kialiNode struct {
	ID, App, Version, Workload, Service, NodeType, Namespace, Parent string
	IsBox                                                            string `json:"isBox"`
	HealthStatus                                                     string `json:"healthStatus"`
	// The istio appender's route and canary marks.
	HasVS *struct {
		Hostnames []string `json:"hostnames"`
	} `json:"hasVS"`
	HasTrafficShifting bool `json:"hasTrafficShifting"`
	Canary             *struct {
		Namespace, Name, State string
	} `json:"canary"`
}

type kialiEdge struct {
	ID, Source, Target string
	IsMTLS             string `json:"isMTLS"`
	HealthStatus       string `json:"healthStatus"`
	Traffic            struct {
		Protocol string            `json:"protocol"`
		Rates    map[string]string `json:"rates"`
	} `json:"traffic"`
}

// rps is the edge's request rate, as the graph counts it.
func (e *kialiEdge) rps() float64 {
	v, _ := strconv.ParseFloat(e.Traffic.Rates[e.Traffic.Protocol], 64)
	return v
}
