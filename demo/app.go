package demo

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	xdscreds "google.golang.org/grpc/credentials/xds"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/xds" // also registers the xds:/// resolver and balancers
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/glassmesh/glassmesh/telemetry/grpcreport"
)

// AppConfig configures one demo app process.
type AppConfig struct {
	App        App
	FailRate   float64       // share of requests answered with UNAVAILABLE
	FailAfter  time.Duration // FailRate applies only this long after the app started
	Latency    time.Duration // added to every request
	ReportAddr string        // glassmesh's --grpc-addr: calls are reported there (grpcreport); empty: not reported
	Trace      TraceConfig   // where spans go
	// Secure serves with xds.NewGRPCServer and dials with xDS credentials:
	// the app's listener, mTLS and authorization then come from glassmesh,
	// with the certificates of the bootstrap's file_watcher provider.
	Secure bool

	started time.Time // set by RunApp
}

// reporter starts the app's call reporting to glassmesh, or returns nil
// options when there is nowhere to report to.
func reporter(app App, addr string, logger *slog.Logger) (*grpcreport.Reporter, error) {
	if addr == "" {
		return nil, nil
	}
	n := appNode(app)
	return grpcreport.NewReporter(grpcreport.Config{Target: addr, IP: n.IP, Instance: n.Instance,
		Namespace: n.Namespace, Workload: n.Workload, Labels: n.Labels}, logger)
}

// transportCredentials are an app's client credentials: xDS ones (TLS
// when glassmesh says so, else plaintext) when secure.
func transportCredentials(secure bool) (credentials.TransportCredentials, error) {
	if !secure {
		return insecure.NewCredentials(), nil
	}
	return xdscreds.NewClientCredentials(xdscreds.ClientOptions{FallbackCreds: insecure.NewCredentials()})
}

// clientOptions are the dial options of an app's outbound calls.
func clientOptions(creds credentials.TransportCredentials, r *grpcreport.Reporter, tr *tracing) []grpc.DialOption {
	opts := append([]grpc.DialOption{grpc.WithTransportCredentials(creds)}, tr.dialOptions()...)
	if r != nil {
		opts = append(opts, grpc.WithChainUnaryInterceptor(r.UnaryClientInterceptor()),
			grpc.WithChainStreamInterceptor(r.StreamClientInterceptor()))
	}
	return opts
}

// handler serves one call of a bookinfo service.
type handler func(ctx context.Context, req *structpb.Struct) (*structpb.Struct, error)

// RunApp serves the app on 127.0.0.1:<port> until ctx ends. Its outbound
// calls go through glassmesh (xds:/// targets); the process's xDS bootstrap
// comes from GRPC_XDS_BOOTSTRAP_CONFIG, set by the demo supervisor.
func RunApp(ctx context.Context, cfg AppConfig, logger *slog.Logger) error {
	cfg.started = time.Now()
	rep, err := reporter(cfg.App, cfg.ReportAddr, logger)
	if err != nil {
		return err
	}
	if rep != nil {
		defer rep.Close()
	}
	tr, err := newTracing(ctx, cfg.App, cfg.Trace, logger)
	if err != nil {
		return err
	}
	defer tr.shutdown()
	h, closeFn, err := newHandler(cfg, rep, tr)
	if err != nil {
		return err
	}
	defer closeFn()
	lis, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", cfg.App.Port))
	if err != nil {
		return err
	}
	sopts := tr.serverOptions()
	if rep != nil {
		sopts = append(sopts, grpc.ChainUnaryInterceptor(rep.UnaryServerInterceptor()),
			grpc.ChainStreamInterceptor(rep.StreamServerInterceptor()))
	}
	srv, err := newServer(cfg, sopts, logger)
	if err != nil {
		return err
	}
	Register(srv, cfg.App.Service, h)
	go func() {
		<-ctx.Done()
		srv.GracefulStop()
	}()
	logger.Info("demo app serving", "addr", lis.Addr().String(), "xdsSecurity", cfg.Secure)
	return srv.Serve(lis)
}

// server is what both gRPC server kinds offer the demo.
type server interface {
	grpc.ServiceRegistrar
	Serve(net.Listener) error
	GracefulStop()
}

// newServer is a plain gRPC server, or with cfg.Secure an xDS-enabled one
// that serves once glassmesh sent its Listener.
func newServer(cfg AppConfig, opts []grpc.ServerOption, logger *slog.Logger) (server, error) {
	if !cfg.Secure {
		return grpc.NewServer(opts...), nil
	}
	creds, err := xdscreds.NewServerCredentials(xdscreds.ServerOptions{FallbackCreds: insecure.NewCredentials()})
	if err != nil {
		return nil, err
	}
	opts = append(opts, grpc.Creds(creds), xds.ServingModeCallback(func(addr net.Addr, a xds.ServingModeChangeArgs) {
		logger.Info("demo app serving mode", "addr", addr.String(), "mode", a.Mode.String(), "error", a.Err)
	}))
	return xds.NewGRPCServer(opts...)
}

func newHandler(cfg AppConfig, rep *grpcreport.Reporter, tr *tracing) (handler, func(), error) {
	creds, err := transportCredentials(cfg.Secure)
	if err != nil {
		return nil, nil, err
	}
	d := &dialer{opts: clientOptions(creds, rep, tr)}
	w, err := serviceWork(cfg.App, d)
	if err != nil {
		d.close()
		return nil, nil, err
	}
	me := cfg.App
	return func(ctx context.Context, req *structpb.Struct) (*structpb.Struct, error) {
		if err := misbehave(ctx, cfg); err != nil {
			return nil, err
		}
		fields, err := w(ctx, req)
		if err != nil {
			return nil, err
		}
		fields["service"], fields["version"] = me.Service, me.Version
		return structpb.NewStruct(fields)
	}, d.close, nil
}

// work is what one bookinfo service does for a request.
type work func(ctx context.Context, req *structpb.Struct) (map[string]any, error)

// serviceWork is the work of app's service; it dials the services it calls.
func serviceWork(app App, d *dialer) (work, error) {
	switch app.Service {
	case "ratings":
		return func(context.Context, *structpb.Struct) (map[string]any, error) {
			return map[string]any{"stars": 4}, nil
		}, nil
	case "details":
		return func(context.Context, *structpb.Struct) (map[string]any, error) {
			return map[string]any{"author": "William Shakespeare", "year": 1595}, nil
		}, nil
	case "reviews":
		if app.Version == "v1" { // v1 shows no stars, like Bookinfo's
			return func(context.Context, *structpb.Struct) (map[string]any, error) {
				return map[string]any{"reviews": 2}, nil
			}, nil
		}
		ratings, err := d.dial("ratings")
		if err != nil {
			return nil, err
		}
		return func(ctx context.Context, req *structpb.Struct) (map[string]any, error) {
			r, err := Call(ctx, ratings, "ratings", req)
			if err != nil {
				return nil, status.Errorf(codes.Unavailable, "ratings: %v", err)
			}
			return map[string]any{"reviews": 2, "stars": r.Fields["stars"].GetNumberValue()}, nil
		}, nil
	case "productpage":
		details, err := d.dial("details")
		if err != nil {
			return nil, err
		}
		reviews, err := d.dial("reviews")
		if err != nil {
			return nil, err
		}
		return func(ctx context.Context, req *structpb.Struct) (map[string]any, error) {
			if _, err := Call(ctx, details, "details", req); err != nil {
				return nil, status.Errorf(codes.Unavailable, "details: %v", err)
			}
			r, err := Call(ctx, reviews, "reviews", req)
			if err != nil {
				return nil, status.Errorf(codes.Unavailable, "reviews: %v", err)
			}
			return map[string]any{"reviewsVersion": r.Fields["version"].GetStringValue()}, nil
		}, nil
	}
	return nil, fmt.Errorf("demo: unknown service %q", app.Service)
}

// misbehave adds the configured latency and fails the configured share of
// requests, so the demo can show slow and failing versions.
func misbehave(ctx context.Context, cfg AppConfig) error {
	if cfg.Latency > 0 {
		select {
		case <-time.After(cfg.Latency):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if cfg.FailRate > 0 && time.Since(cfg.started) >= cfg.FailAfter && rand.Float64() < cfg.FailRate {
		return status.Errorf(codes.Unavailable, "%s: injected failure", cfg.App.Name())
	}
	return nil
}

// dialer opens an app's outbound connections and closes them all.
type dialer struct {
	opts  []grpc.DialOption
	conns []*grpc.ClientConn
}

func (d *dialer) dial(service string) (*grpc.ClientConn, error) {
	cc, err := grpc.NewClient(Target(service), d.opts...)
	if err == nil {
		d.conns = append(d.conns, cc)
	}
	return cc, err
}

func (d *dialer) close() {
	for _, c := range d.conns {
		c.Close()
	}
}

// Register adds a bookinfo service with one method, Get, to a gRPC server.
// Messages are google.protobuf.Struct, so the demo needs no generated code.
func Register(srv grpc.ServiceRegistrar, service string, h func(context.Context, *structpb.Struct) (*structpb.Struct, error)) {
	srv.RegisterService(&grpc.ServiceDesc{
		ServiceName: serviceName(service),
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{{
			MethodName: "Get",
			Handler: func(_ any, ctx context.Context, dec func(any) error, ic grpc.UnaryServerInterceptor) (any, error) {
				in := new(structpb.Struct)
				if err := dec(in); err != nil {
					return nil, err
				}
				if ic == nil {
					return h(ctx, in)
				}
				info := &grpc.UnaryServerInfo{FullMethod: Method(service)}
				return ic(ctx, in, info, func(ctx context.Context, req any) (any, error) {
					return h(ctx, req.(*structpb.Struct))
				})
			},
		}},
	}, struct{}{})
}

// Call invokes a bookinfo service's Get method.
func Call(ctx context.Context, cc grpc.ClientConnInterface, service string, req *structpb.Struct, opts ...grpc.CallOption) (*structpb.Struct, error) {
	if req == nil {
		req = &structpb.Struct{}
	}
	out := new(structpb.Struct)
	err := cc.Invoke(ctx, Method(service), req, out, opts...)
	return out, err
}

func serviceName(service string) string { return "bookinfo." + service }

// Method is the full gRPC method name of a bookinfo service's Get.
func Method(service string) string { return "/" + serviceName(service) + "/Get" }
