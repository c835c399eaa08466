package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"sync/atomic"
	"time"

	"github.com/oklog/run"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"

	"github.com/glassmesh/glassmesh/control/ca"
	"github.com/glassmesh/glassmesh/control/canary"
	"github.com/glassmesh/glassmesh/control/model"
	"github.com/glassmesh/glassmesh/control/policy"
	"github.com/glassmesh/glassmesh/control/push"
	"github.com/glassmesh/glassmesh/control/source"
	"github.com/glassmesh/glassmesh/control/source/kube"
	"github.com/glassmesh/glassmesh/control/xds"
	"github.com/glassmesh/glassmesh/dashboards"
	"github.com/glassmesh/glassmesh/telemetry/admission"
	"github.com/glassmesh/glassmesh/telemetry/receiver"
	"github.com/glassmesh/glassmesh/telemetry/slo"
)

func newRunCmd() *cobra.Command {
	var f runFlags
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run glassmesh all-in-one: control plane, telemetry, tracing, graph, SLOs and UI",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			logger, err := f.logger(os.Stderr)
			if err != nil {
				return err
			}
			a, err := newApp(f, logger)
			if err != nil {
				return err
			}
			return a.run(cmd.Context())
		},
	}
	f.register(cmd.Flags(), "./mesh")
	return cmd
}

// app is one assembled glassmesh: its parts and listeners.
type app struct {
	flags  runFlags
	logger *slog.Logger
	reg    *prometheus.Registry

	store  *source.Store
	config configSource
	kube   *kube.Source // the config source, with --source kubernetes
	// memory is --memory.limit's budget, shared by every ingest path (nil: off).
	memory *admission.Budget
	// attestor says who bearer tokens prove their holders to be.
	attestor *ca.Attestor
	xds      *xds.Server
	tel      *telemetry
	canary   *canary.Controller
	policies *policy.Controller
	// sloEngine keeps the SLOs' error budgets (slo.go).
	sloEngine *slo.Engine
	slos      *slo.Manager
	ca        *ca.CA
	pusher    *push.Pusher
	grpc      *grpc.Server
	grpcLis   net.Listener
	// xdsTLS serves xDS to attested clients only (--xds-tls-addr).
	xdsTLS    *grpc.Server
	xdsTLSLis net.Listener
	httpLis   net.Listener
	mux       *http.ServeMux
	ready     atomic.Bool
	started   time.Time // when newApp began: what "ready" is timed from

	leading        atomic.Bool              // holds the leader Lease (leader.go)
	renewals       atomic.Pointer[renewals] // the Lease's renewals, once campaigning (leader.go)
	canaryRequests *canary.Requests         // with --source kubernetes
	leaderGauge    prometheus.Gauge

	// actors are extra run-group members (the demo adds its apps).
	actors []actor
}

// configSource feeds the config pipeline: the file watcher or the
// Kubernetes informers.
type configSource interface {
	Run(ctx context.Context, out source.Sink) error
}

type actor struct {
	execute   func() error
	interrupt func(error)
}

func newApp(f runFlags, logger *slog.Logger) (*app, error) {
	if _, err := f.apiToken(); err != nil {
		return nil, err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	a := &app{flags: f, logger: logger, reg: reg, mux: http.NewServeMux(), started: time.Now()}
	a.store = source.NewStore(logger, reg)
	a.leaderGauge = newLeaderGauge(reg)
	switch f.source {
	case "file":
		a.config = source.NewFile(source.FileConfig{Path: f.configPath}, logger.With("component", "source"))
	case "kubernetes":
		k, err := kube.New(kube.Config{Kubeconfig: f.kubeconfig, Namespaces: f.namespaces}, logger.With("component", "source"))
		if err != nil {
			return nil, fmt.Errorf("--source kubernetes: %w", err)
		}
		a.config, a.kube = k, k
	default:
		return nil, fmt.Errorf("--source: %q is not file or kubernetes", f.source)
	}
	if err := f.ca.check(); err != nil {
		return nil, err
	}
	if err := a.newAttestor(); err != nil {
		return nil, err
	}
	a.xds = xds.New(xds.Config{Authorize: a.xdsAuthorizer()}, logger.With("component", "xds"), reg)
	var err error
	if a.memory, err = newMemoryBudget(int64(f.memoryLimit), logger, reg); err != nil {
		return nil, err
	}
	grpcOpts := []grpc.ServerOption{
		grpc.MaxConcurrentStreams(1 << 20),
		grpc.MaxRecvMsgSize(maxMessageBytes),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
	}
	if tap := receiver.MemoryTap(a.memory); tap != nil {
		grpcOpts = append(grpcOpts, grpc.InTapHandle(tap))
	}
	creds, err := f.grpcTLS.serverOption()
	if err != nil {
		return nil, err
	}
	if creds != nil {
		grpcOpts = append(grpcOpts, creds)
	}
	a.grpc = grpc.NewServer(grpcOpts...)
	a.xds.Register(a.grpc)

	a.routes()
	if a.tel, err = a.newTelemetry(f.telemetry); err != nil {
		return nil, err
	}
	if err = a.newCA(); err != nil {
		a.tel.close()
		return nil, err
	}
	if err = a.newWebhook(); err != nil {
		a.tel.close()
		return nil, err
	}
	if err = a.newXDSTLS(); err != nil {
		a.tel.close()
		return nil, err
	}
	if err = a.newSLOs(); err != nil {
		a.tel.close()
		return nil, err
	}
	// The config fan-out: what follows the serving mesh, in order.
	a.pusher = push.New(push.Config{XDS: a.xds, CA: a.ca, Reloaders: []push.Reloader{
		{Name: "SLO rules", Apply: a.slos.Update},
	}}, logger.With("component", "push"))
	if err = a.newCanary(); err != nil {
		a.tel.close()
		return nil, err
	}
	if err = a.newPolicies(); err != nil {
		a.tel.close()
		return nil, err
	}
	if a.grpcLis, err = net.Listen("tcp", f.grpcAddr); err != nil {
		a.tel.close()
		return nil, fmt.Errorf("--grpc-addr: %w", err)
	}
	if a.httpLis, err = net.Listen("tcp", f.httpAddr); err != nil {
		a.grpcLis.Close()
		a.tel.close()
		return nil, fmt.Errorf("--http-addr: %w", err)
	}
	return a, nil
}

func (a *app) routes() {
	a.mux.Handle("GET /metrics", promhttp.HandlerFor(a.reg, promhttp.HandlerOpts{Registry: a.reg}))
	a.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	a.mux.HandleFunc("GET /readyz", a.serveReadyz)
	a.mux.HandleFunc("GET /readyz/{component}", a.serveReadyzOf)
	// Go's profiler, as Prometheus serves it: read-only, for operators.
	a.mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	a.mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	a.mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	a.mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	a.mux.Handle("GET /api/mesh/config", a.store)
	a.mux.Handle("GET /api/xds/proxies", a.xds.Handler())
	// The web UI: every path no API claims (method-less, see dashboards.Handler).
	a.mux.Handle("/", dashboards.Handler())
}

// apply is the config pipeline: a clean load is translated and pushed; a
// load with errors, or one that fails to translate, keeps the last good one.
func (a *app) apply(r model.Result) []source.ObjectStatus {
	setAside, _ := a.store.Apply(r, a.pusher.Push)
	if a.store.Loaded() && !a.ready.Swap(true) {
		a.logger.Info("glassmesh ready", "sinceStart", time.Since(a.started))
	}
	a.serveCanaryActions()
	return setAside
}

// xdsTLSAddr is the attested xDS listener's address for the start-up log.
func (a *app) xdsTLSAddr() []any {
	if a.xdsTLSLis == nil {
		return nil
	}
	return []any{"xdsTLS", a.xdsTLSLis.Addr().String()}
}

func (a *app) run(ctx context.Context) error {
	a.logger.Info("glassmesh starting", append([]any{"version", version,
		"http", a.httpLis.Addr().String(), "grpc", a.grpcLis.Addr().String(), "source", a.flags.source, "config", a.flags.configPath,
		"dataDir", a.flags.dataDir}, append(a.tel.addrs(), a.xdsTLSAddr()...)...)...)
	defer a.tel.close()
	var g run.Group
	ctx, cancel := context.WithCancel(ctx)
	for _, ac := range a.tel.actors(ctx) {
		g.Add(ac.execute, ac.interrupt)
	}
	g.Add(func() error { <-ctx.Done(); return nil }, func(error) { cancel() })
	g.Add(func() error { return a.config.Run(ctx, a.apply) }, func(error) { cancel() })
	g.Add(func() error { return a.canary.Run(ctx, a.reapply) }, func(error) { cancel() })
	g.Add(func() error { return a.policies.Run(ctx, a.reapply) }, func(error) { cancel() })
	g.Add(func() error { return a.elect(ctx) }, func(error) { cancel() })
	g.Add(func() error { return a.pusher.RenewSecrets(ctx, a.reapply) }, func(error) { cancel() })
	g.Add(func() error { return a.publishCABundle(ctx) }, func(error) { cancel() })
	g.Add(func() error { return a.grpc.Serve(a.grpcLis) }, func(error) { a.xds.Stop(); a.grpc.Stop() })
	if a.xdsTLS != nil {
		g.Add(func() error { return a.xdsTLS.Serve(a.xdsTLSLis) }, func(error) { a.xds.Stop(); a.xdsTLS.Stop() })
	}
	httpSrv := &http.Server{Handler: a.mux, ReadHeaderTimeout: 10 * time.Second}
	g.Add(func() error {
		if err := httpSrv.Serve(a.httpLis); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	}, func(error) {
		_ = a.tel.graph.Close() // ends the graph streams, or Shutdown waits for them
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		_ = httpSrv.Shutdown(sctx)
	})
	for _, ac := range a.actors {
		g.Add(ac.execute, ac.interrupt)
	}
	err := g.Run()
	a.logger.Info("glassmesh stopped")
	return err
}
