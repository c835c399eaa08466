package demo

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	sidecarconfig "github.com/glassmesh/glassmesh/sidecar-config"
)

// Supervisor runs every demo app, and the traffic generator, as a child
// process of its own: each is its own xDS node with its own identity, as
// pods are. A child that exits is started again after a second.
type Supervisor struct {
	Exe       string   // the glassmesh binary; children run `Exe demo-app ...`
	XDSAddr   string   // where children reach glassmesh's xDS server (and its ALS and OTLP)
	ZipkinURL string   // glassmesh's Zipkin endpoint, for the B3 app; empty: it uses OTLP too
	Apps      []App    // the workloads to run
	RPS       float64  // traffic generator rate; 0 runs no traffic
	ExtraArgs []string // passed to every child (log flags)
	// AppArgs are extra arguments for one app, by workload name (the bad
	// canary's failures).
	AppArgs map[string][]string
	// CertsDir, when set, gives every child a SPIFFE certificate: the
	// supervisor runs `Exe sidecar certs --watch` per child into
	// CertsDir/<workload>, from the CA at ServerURL, presenting the
	// workload's credential (the file TokenFile gives), and the child
	// serves and dials with xDS security.
	CertsDir  string
	ServerURL string
	TokenFile func(node sidecarconfig.NodeInfo) (string, error)
	// XDSTLSAddr, with CertsDir and TokenFile, is glassmesh's attested
	// xDS listener (--xds-tls-addr): the children then take their config
	// over TLS, trusting the mesh root and proving their workload with
	// their certificate and token. Telemetry still goes to XDSAddr.
	XDSTLSAddr string
	Logger     *slog.Logger
}

// Run starts the children and keeps them running until ctx ends, then stops
// them and waits for them.
func (s *Supervisor) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	type child struct {
		name string
		args []string
		node sidecarconfig.NodeInfo
	}
	var children []child
	for _, a := range s.Apps {
		args := []string{"demo-app", "--service", a.Service, "--version", a.Version, "--port", strconv.Itoa(a.Port)}
		children = append(children, child{a.Name(), append(args, s.AppArgs[a.Name()]...), appNode(a)})
	}
	if s.RPS > 0 {
		tg := App{Service: TrafficGenerator, Version: "v1"}
		children = append(children, child{TrafficGenerator,
			[]string{"demo-app", "--traffic", "--rps", strconv.FormatFloat(s.RPS, 'f', -1, 64)},
			appNode(tg)})
	}
	for _, c := range children {
		opts := sidecarconfig.BootstrapOptions{XDSAddr: s.XDSAddr}
		args := append(c.args, "--report-addr", s.XDSAddr, "--traces-otlp", s.XDSAddr, "--traces-zipkin", s.ZipkinURL)
		if s.CertsDir != "" {
			opts.CertsDir = filepath.Join(s.CertsDir, c.node.Workload)
			certs := []string{"sidecar", "certs", "--workload", c.node.Namespace + "/" + c.node.Workload, "--dir", opts.CertsDir,
				"--server", s.ServerURL, "--watch"}
			if s.TokenFile != nil {
				f, err := s.TokenFile(c.node)
				if err != nil {
					return fmt.Errorf("demo: credential of %s: %w", c.name, err)
				}
				certs = append(certs, "--token-file", f)
				if s.XDSTLSAddr != "" {
					opts.XDSAddr, opts.XDSTokenFile = s.XDSTLSAddr, f
					opts.XDSCA = filepath.Join(opts.CertsDir, sidecarconfig.RootCertFile)
				}
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				s.keepRunning(ctx, c.name+" certs", append(certs, s.ExtraArgs...), os.Environ())
			}()
			args = append(args, "--xds-security")
		}
		bootstrap, err := sidecarconfig.ProxylessBootstrapFor(c.node, opts)
		if err != nil {
			return fmt.Errorf("demo: bootstrap for %s: %w", c.name, err)
		}
		env := append(os.Environ(), "GRPC_XDS_BOOTSTRAP_CONFIG="+string(bootstrap), "GRPC_XDS_BOOTSTRAP=")
		if opts.XDSTokenFile != "" {
			env = append(env, "GRPC_EXPERIMENTAL_XDS_BOOTSTRAP_CALL_CREDS=true")
		}
		args = append(args, s.ExtraArgs...)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if opts.CertsDir != "" && !waitForFile(ctx, filepath.Join(opts.CertsDir, sidecarconfig.RootCertFile)) {
				return
			}
			s.keepRunning(ctx, c.name, args, env)
		}()
	}
	wg.Wait()
	return nil
}

func (s *Supervisor) keepRunning(ctx context.Context, name string, args, env []string) {
	for ctx.Err() == nil {
		cmd := exec.Command(s.Exe, args...)
		cmd.Env = env
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		// The children die with the demo, even when it is killed with -9.
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			s.Logger.Error("demo app failed to start", "app", name, "error", err)
		} else {
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case err := <-done:
				s.Logger.Warn("demo app exited; restarting in 1s", "app", name, "error", err)
			case <-ctx.Done():
				_ = cmd.Process.Signal(syscall.SIGTERM)
				select {
				case <-done:
				case <-time.After(5 * time.Second):
					_ = cmd.Process.Kill()
					<-done
				}
				return
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// waitForFile waits until path exists (the first certificates of a
// child), or ctx ends.
func waitForFile(ctx context.Context, path string) bool {
	for {
		if _, err := os.Stat(path); err == nil {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// appNode is a demo process's identity; the traffic generator's workload
// name is its service name.
func appNode(a App) sidecarconfig.NodeInfo {
	name := a.Name()
	if a.Service == TrafficGenerator {
		name = TrafficGenerator
	}
	return sidecarconfig.NodeInfo{Namespace: Namespace, Workload: name, Instance: name + "-0", IP: "127.0.0.1",
		Labels: map[string]string{"app": a.Service, "version": a.Version}}
}
