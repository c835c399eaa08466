// Package jaeger tests several glassmesh replicas that share a real Jaeger
// v2 (built from its module, a tool dependency of this one): each forwards
// its spans there (--traces.export-otlp) and reads traces from there
// (--traces.query-url). Its own module, so the main module never depends
// on Jaeger; `make test-jaeger` runs it.
package jaeger

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Binaries built once for the whole package.
var jaegerBin, glassmeshBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "glassmesh-e2e-jaeger-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	jaegerBin, glassmeshBin = filepath.Join(dir, "jaeger"), filepath.Join(dir, "glassmesh")
	// Jaeger from this module's tool dependency; glassmesh in the main
	// module's directory (from here it would resolve against this go.sum).
	for _, b := range []struct{ out, pkg, dir string }{
		{jaegerBin, "github.com/jaegertracing/jaeger/cmd/jaeger", "."},
		{glassmeshBin, "./cmd/glassmesh", "../.."},
	} {
		began := time.Now()
		build := exec.Command("go", "build", "-o", b.out, b.pkg)
		build.Dir, build.Stdout, build.Stderr = b.dir, os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintf(os.Stderr, "building %s: %v\n", b.pkg, err)
			os.Exit(1)
		}
		fmt.Fprintf(os.Stderr, "built %s in %s\n", b.pkg, time.Since(began).Round(time.Second))
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// freePort is a loopback port nothing listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	return lis.Addr().(*net.TCPAddr).Port
}

// jaeger is a Jaeger v2 process with Badger storage, so its traces
// survive a restart on the same ports and directory.
type jaeger struct {
	t           *testing.T
	dir         string
	config      string
	QueryURL    string // the query service's HTTP base URL (API v3, /api/...)
	OTLPHTTPURL string // its OTLP/HTTP receiver
	cmd         *exec.Cmd
	done        chan struct{}
	log         *os.File
}

// jaegerConfig runs only what the test needs: the OTLP receiver into
// Badger and the query service, all on loopback ports, with no
// self-telemetry server (its default port 8888 may be taken).
const jaegerConfig = `
service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: info
extensions:
  jaeger_query:
    storage:
      traces: shared
    http:
      endpoint: 127.0.0.1:%d
    grpc:
      endpoint: 127.0.0.1:%d
  jaeger_storage:
    backends:
      shared:
        badger:
          directories:
            keys: %s
            values: %s
          ephemeral: false
          ttl:
            spans: 1h
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:%d
exporters:
  jaeger_storage_exporter:
    trace_storage: shared
`

func startJaeger(t *testing.T) *jaeger {
	t.Helper()
	j := &jaeger{t: t, dir: t.TempDir()}
	query, grpcPort, otlp := freePort(t), freePort(t), freePort(t)
	data := filepath.Join(j.dir, "badger")
	j.config = filepath.Join(j.dir, "config.yaml")
	if err := os.WriteFile(j.config, fmt.Appendf(nil, jaegerConfig, query, grpcPort, data, data, otlp), 0o644); err != nil {
		t.Fatal(err)
	}
	j.QueryURL = fmt.Sprintf("http://127.0.0.1:%d", query)
	j.OTLPHTTPURL = fmt.Sprintf("http://127.0.0.1:%d", otlp)
	j.start()
	t.Cleanup(j.stop)
	return j
}

// start runs Jaeger and waits until its query service answers.
func (j *jaeger) start() {
	j.t.Helper()
	var err error
	if j.log, err = os.OpenFile(filepath.Join(j.dir, "jaeger.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644); err != nil {
		j.t.Fatal(err)
	}
	j.cmd = exec.Command(jaegerBin, "--config", "file:"+j.config)
	j.cmd.Stdout, j.cmd.Stderr = j.log, j.log
	j.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := j.cmd.Start(); err != nil {
		j.t.Fatal(err)
	}
	j.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { _ = cmd.Wait(); close(done) }(j.cmd, j.done)
	eventually(j.t, 60*time.Second, func() error {
		select {
		case <-j.done:
			j.t.Fatalf("jaeger exited:\n%s", j.logs())
		default:
		}
		code, body, err := get(j.QueryURL + "/api/v3/services")
		if err != nil || code != 200 {
			return fmt.Errorf("jaeger not ready: %d %s %v", code, body, err)
		}
		return nil
	})
}

// stop ends Jaeger with SIGTERM (Badger closes its files), SIGKILL after
// 30 s.
func (j *jaeger) stop() {
	if j.cmd == nil {
		return
	}
	_ = j.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-j.done:
	case <-time.After(30 * time.Second):
		_ = j.cmd.Process.Kill()
		<-j.done
	}
	j.cmd = nil
	j.log.Close()
	if j.t.Failed() {
		j.t.Logf("jaeger logs:\n%s", j.logs())
	}
}

func (j *jaeger) logs() string {
	b, _ := os.ReadFile(filepath.Join(j.dir, "jaeger.log"))
	return string(b)
}

// replica is one running glassmesh.
type replica struct {
	t        *testing.T
	name     string
	cmd      *exec.Cmd
	HTTPAddr string
	GRPCAddr string

	mu   sync.Mutex
	logs []string
	done chan struct{}
}

// startReplica runs `glassmesh run` on free loopback ports with an empty
// mesh, forwarding its spans to j and reading traces from j.
func startReplica(t *testing.T, name string, j *jaeger) *replica {
	t.Helper()
	r := &replica{t: t, name: name, done: make(chan struct{})}
	r.cmd = exec.Command(glassmeshBin, "run",
		"--config", t.TempDir(), "--data-dir", t.TempDir(),
		"--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0",
		"--otlp-grpc-addr", "", "--otlp-http-addr", "", "--zipkin-addr", "",
		"--metrics.interval", "1s", "--rules.interval", "1s", "--log.format", "json",
		"--traces.export-otlp", j.OTLPHTTPURL, "--traces.query-url", j.QueryURL)
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stderr, err := r.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addrs := make(chan [2]string, 1)
	go r.readLogs(stderr, addrs)
	t.Cleanup(r.stop)
	select {
	case a := <-addrs:
		r.HTTPAddr, r.GRPCAddr = a[0], a[1]
	case <-r.done:
		t.Fatalf("%s exited early:\n%s", name, r.Logs())
	case <-time.After(60 * time.Second):
		t.Fatalf("%s did not start:\n%s", name, r.Logs())
	}
	eventually(t, 60*time.Second, func() error {
		code, body, err := get("http://" + r.HTTPAddr + "/readyz/all") // every store open, not only xDS
		if err != nil || code != 200 {
			return fmt.Errorf("%s not ready: %d %s %v", name, code, body, err)
		}
		return nil
	})
	return r
}

func (r *replica) readLogs(rd io.Reader, addrs chan<- [2]string) {
	defer close(r.done)
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	sent := false
	for sc.Scan() {
		line := sc.Text()
		r.mu.Lock()
		r.logs = append(r.logs, line)
		r.mu.Unlock()
		var rec struct {
			Msg  string `json:"msg"`
			HTTP string `json:"http"`
			GRPC string `json:"grpc"`
		}
		if !sent && json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "glassmesh starting" {
			addrs <- [2]string{rec.HTTP, rec.GRPC}
			sent = true
		}
	}
}

// Logs is everything the replica logged so far.
func (r *replica) Logs() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.logs, "\n")
}

func (r *replica) stop() {
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.done:
	case <-time.After(15 * time.Second):
		_ = r.cmd.Process.Kill()
		<-r.done
	}
	_ = r.cmd.Wait()
	if r.t.Failed() {
		r.t.Logf("%s logs:\n%s", r.name, r.Logs())
	}
}

// get fetches u and returns its status and body.
func get(u string) (int, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// getJSON fetches path from the replica and decodes a 200 answer into v.
func (r *replica) getJSON(path string, v any) error {
	code, body, err := get("http://" + r.HTTPAddr + path)
	if err != nil {
		return err
	}
	if code != 200 {
		return fmt.Errorf("%s: GET %s: %d %s", r.name, path, code, body)
	}
	if err := json.Unmarshal([]byte(body), v); err != nil {
		return fmt.Errorf("%s: GET %s: %v", r.name, path, err)
	}
	return nil
}

// eventually retries f until it returns nil or d passes; the deadlines
// are generous, the machines here are shared.
func eventually(t *testing.T, d time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %v", d, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
