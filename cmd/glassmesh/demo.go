package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/glassmesh/glassmesh/demo"
	sidecarconfig "github.com/glassmesh/glassmesh/sidecar-config"
)

func newDemoCmd() *cobra.Command {
	var (
		f         runFlags
		reset     bool
		rps       float64
		badCanary bool
	)
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run glassmesh with a Bookinfo-like demo mesh of proxyless gRPC apps and live traffic",
		Long: `demo runs everything 'glassmesh run' does, writes a Bookinfo-like mesh config
into --config (kept across runs unless --reset; workloads.yaml is rewritten
because the apps get free ports), starts productpage, details, reviews v1/v2/v3
and ratings as child processes (each its own xDS node, serving with
xds.NewGRPCServer) and a traffic generator. Each gets a SPIFFE certificate
from the mesh CA through 'glassmesh sidecar certs --watch'; security.yaml makes
the namespace mutual-TLS only and lets only reviews call ratings. Edit a weight
in the config's routes.yaml and the traffic follows.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDemo(cmd.Context(), f, demoOptions{reset: reset, rps: rps, badCanary: badCanary}, cmd.OutOrStdout())
		},
	}
	f.register(cmd.Flags(), "./demo-mesh")
	cmd.Flags().BoolVar(&reset, "reset", false, "rewrite the demo config from scratch, dropping edits")
	cmd.Flags().Float64Var(&rps, "traffic-rps", 20, "requests per second the traffic generator sends to productpage (0: none)")
	cmd.Flags().BoolVar(&badCanary, "bad-canary", false, "make reviews-v3 fail half its requests 25 s after it starts (after retries, ~1 in 8 calls still fails), so the canary rolls back on its own")
	return cmd
}

// demoOptions are the demo's own flags.
type demoOptions struct {
	reset     bool
	rps       float64
	badCanary bool
}

func runDemo(ctx context.Context, f runFlags, o demoOptions, out io.Writer) error {
	logger, err := f.logger(os.Stderr)
	if err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	ports, err := freePorts(6)
	if err != nil {
		return err
	}
	apps := demo.Apps(ports)
	fmt.Fprintf(out, "[1/4] writing the demo mesh config to %s\n", absPath(f.configPath))
	if err := demo.WriteConfig(f.configPath, apps, o.reset); err != nil {
		return fmt.Errorf("demo config: %w", err)
	}
	// Every demo shows its canary from the first step: forget the last run's.
	if err := os.RemoveAll(filepath.Join(f.dataDir, "canaries")); err != nil {
		return err
	}
	// The apps take their config on the attested xDS listener: over TLS,
	// proving their workload.
	if f.grpcTLS.xdsAddr == "" && f.ca.attestation != attestOff {
		f.grpcTLS.xdsAddr = "127.0.0.1:0"
	}
	a, err := newApp(f, logger)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "[2/4] control plane: xDS on %s, HTTP on %s\n", a.grpcLis.Addr(), a.httpLis.Addr())
	if a.xdsTLSLis != nil {
		fmt.Fprintf(out, "      the apps take xDS over TLS, attested, on %s\n", a.xdsTLSLis.Addr())
	}
	sup := &demo.Supervisor{
		Exe: exe, XDSAddr: dialAddr(a.grpcLis.Addr()), ZipkinURL: a.tel.zipkinURL(), Apps: apps, RPS: o.rps,
		CertsDir: filepath.Join(f.dataDir, "demo-certs"), ServerURL: "http://" + dialAddr(a.httpLis.Addr()), TokenFile: a.demoToken,
		XDSTLSAddr: a.xdsTLSDialAddr(),
		ExtraArgs:  []string{"--log.level", f.logLevel, "--log.format", f.logFormat},
		Logger:     logger.With("component", "demo"),
	}
	if o.badCanary {
		sup.AppArgs = map[string][]string{"reviews-v3": {"--fail-rate", "0.5", "--fail-after", "25s"}}
	}
	dctx, cancel := context.WithCancel(ctx)
	a.actors = append(a.actors,
		actor{func() error {
			// The apps ask the CA for their workload's certificate, which
			// it issues only once the mesh config is serving.
			for !a.ready.Load() {
				select {
				case <-dctx.Done():
					return nil
				case <-time.After(20 * time.Millisecond):
				}
			}
			return sup.Run(dctx)
		}, func(error) { cancel() }},
		actor{func() error {
			demoProgress(dctx, a, len(apps)+1, xdsClients(apps, o.rps), out)
			<-dctx.Done()
			return nil
		}, func(error) { cancel() }},
	)
	return a.run(ctx)
}

// demoProgress reports the apps connecting, then the URLs to open.
func demoProgress(ctx context.Context, a *app, procs, want int, out io.Writer) {
	fmt.Fprintf(out, "[3/4] starting %d demo processes, each an xDS node with its own SPIFFE certificate (sidecar certs --watch), mTLS STRICT\n", procs)
	deadline := time.Now().Add(60 * time.Second)
	last := -1
	for time.Now().Before(deadline) {
		n := len(a.xds.Proxies())
		if n != last {
			fmt.Fprintf(out, "      %d/%d xDS clients connected\n", n, want)
			last = n
		}
		if n >= want {
			break
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(200 * time.Millisecond):
		}
	}
	base := "http://" + browseAddr(a.httpLis.Addr())
	fmt.Fprintf(out, "[4/4] demo running: traffic flows productpage -> details, reviews (v1, v2, v3) -> ratings\n\n")
	fmt.Fprintf(out, "  UI                %s/\n", base)
	fmt.Fprintf(out, "  connected proxies %s/api/xds/proxies\n", base)
	fmt.Fprintf(out, "  mesh config       %s/api/mesh/config\n", base)
	fmt.Fprintf(out, "  edit routing      %s\n", filepath.Join(absPath(a.flags.configPath), "routes.yaml"))
	fmt.Fprintf(out, "  canary v1 -> v3   %s/api/canaries/default/reviews  (or: glassmesh canary status default/reviews --server %s)\n\n", base, base)
}

func newDemoAppCmd() *cobra.Command {
	var (
		f       runFlags
		cfg     demo.AppConfig
		traffic bool
		rps     float64
	)
	cmd := &cobra.Command{
		Use:    "demo-app",
		Short:  "Run one demo app (started by 'glassmesh demo')",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			logger, err := f.logger(os.Stderr)
			if err != nil {
				return err
			}
			if traffic {
				return demo.RunTraffic(cmd.Context(), demo.TrafficConfig{RPS: rps, TesterShare: 0.05, ReportAddr: cfg.ReportAddr, Trace: cfg.Trace, Secure: cfg.Secure},
					logger.With("workload", demo.TrafficGenerator))
			}
			return demo.RunApp(cmd.Context(), cfg, logger.With("workload", cfg.App.Name()))
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&cfg.App.Service, "service", "", "bookinfo service to serve")
	fs.StringVar(&cfg.App.Version, "version", "v1", "its version")
	fs.IntVar(&cfg.App.Port, "port", 0, "port to listen on, on 127.0.0.1")
	fs.Float64Var(&cfg.FailRate, "fail-rate", 0, "share of requests to fail with UNAVAILABLE")
	fs.DurationVar(&cfg.Latency, "latency", 0, "latency added to every request")
	fs.DurationVar(&cfg.FailAfter, "fail-after", 0, "start failing (--fail-rate) only this long after start")
	fs.BoolVar(&traffic, "traffic", false, "run the traffic generator instead of an app")
	fs.StringVar(&cfg.ReportAddr, "report-addr", "", "glassmesh's gRPC address to report calls to")
	fs.StringVar(&cfg.Trace.OTLPAddr, "traces-otlp", "", "OTLP/gRPC address to send spans to")
	fs.StringVar(&cfg.Trace.ZipkinURL, "traces-zipkin", "", "Zipkin endpoint the B3 app (ratings) sends spans to")
	fs.Float64Var(&rps, "rps", 20, "traffic generator rate")
	fs.BoolVar(&cfg.Secure, "xds-security", false, "serve with xds.NewGRPCServer and dial with xDS credentials: listener, mTLS and authorization from glassmesh (needs --certs-dir in the bootstrap)")
	fs.StringVar(&f.logLevel, "log.level", "info", "log level")
	fs.StringVar(&f.logFormat, "log.format", "text", "log format")
	return cmd
}

// freePorts finds n free ports for the demo's apps, below the kernel's
// ephemeral range: the apps bind them after the ports are freed here, and a
// port of that range could meanwhile become the local end of an outgoing
// connection (a browser's, a client's), so that the app could never bind.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	low := ephemeralLow()
	ports := make([]int, 0, n)
	for try := 0; len(ports) < n && try < 1000; try++ {
		port := 0 // the kernel's pick, when no range below the ephemeral one
		if low > 2048 {
			port = 1024 + rand.IntN(low-1024)
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	if len(ports) < n {
		return nil, fmt.Errorf("no %d free ports for the demo apps", n)
	}
	return ports, nil
}

// ephemeralLow is the lowest port the kernel hands to outgoing connections
// (Linux's ip_local_port_range), or 0 when unknown.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0
	}
	var lo, hi int
	if _, err := fmt.Sscan(string(b), &lo, &hi); err != nil {
		return 0
	}
	return lo
}

// xdsTLSDialAddr is where local apps dial the attested xDS listener, or "".
func (a *app) xdsTLSDialAddr() string {
	if a.xdsTLSLis == nil {
		return ""
	}
	return dialAddr(a.xdsTLSLis.Addr())
}

// dialAddr turns a listener address into one a local client can dial.
func dialAddr(addr net.Addr) string {
	t := addr.(*net.TCPAddr)
	if t.IP.IsUnspecified() {
		return fmt.Sprintf("127.0.0.1:%d", t.Port)
	}
	return t.String()
}

func browseAddr(addr net.Addr) string {
	t := addr.(*net.TCPAddr)
	if t.IP.IsUnspecified() || t.IP.IsLoopback() {
		return fmt.Sprintf("localhost:%d", t.Port)
	}
	return t.String()
}

func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

// xdsClients counts the demo processes that connect to glassmesh.
// xdsClients is how many demo processes become xDS nodes: every app (its
// server asks for its Listener, and callers for routes) and the traffic
// generator.
func xdsClients(apps []demo.App, rps float64) int {
	n := len(apps)
	if rps > 0 {
		n++ // the traffic generator
	}
	return n
}

// demoToken mints the workload token a demo app presents for its
// certificate (bound to its workload, a week long: a demo restart mints
// new ones) into the data dir, or, with --attestation=off, gives the
// operator's token file.
func (a *app) demoToken(node sidecarconfig.NodeInfo) (string, error) {
	if a.flags.ca.attestation == attestOff {
		return a.flags.apiTokenFile, nil
	}
	m, _ := a.store.Mesh()
	w := m.Workload(node.Namespace, node.Workload)
	if w == nil {
		return "", fmt.Errorf("workload %s/%s is not in the demo mesh", node.Namespace, node.Workload)
	}
	tok, err := a.ca.MintToken(w.Namespace, w.Spec.ServiceAccount, w.Name, a.flags.ca.audience, 7*24*time.Hour)
	if err != nil {
		return "", err
	}
	dir := filepath.Join(a.flags.dataDir, "demo-tokens")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	file := filepath.Join(dir, node.Namespace+"-"+node.Workload+".jwt")
	return file, os.WriteFile(file, []byte(tok+"\n"), 0o600)
}
