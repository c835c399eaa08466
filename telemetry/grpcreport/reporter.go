// Package grpcreport lets proxyless gRPC apps report their calls the way an
// Envoy sidecar does: each call becomes an Envoy HTTP access log entry,
// streamed in batches to glassmesh's access log service, so proxyless
// traffic gets the same Istio-standard metrics and graph as sidecar traffic.
//
// Add the interceptors to both clients and servers. Clients report as the
// caller (upstream cluster outbound|<port>||<service host>) and send their
// node id in x-glassmesh-peer; servers report as the callee (inbound|<port>||)
// and log that header, so glassmesh knows who called even when every app
// shares one address. Reporting never blocks a call: entries go through a
// bounded queue and are dropped (and counted) when it is full, e.g. while
// glassmesh is unreachable.
package grpcreport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	accesslogdatav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/glassmesh/glassmesh/control/naming"
)

// Defaults of Config.
const (
	// DefaultBatchSize is the most entries per ALS message.
	DefaultBatchSize = 100
	// DefaultFlushInterval is how long an entry waits for a full batch.
	DefaultFlushInterval = time.Second
	// DefaultQueueSize bounds the entries waiting to be sent.
	DefaultQueueSize = 10_000
	// DefaultCloseTimeout bounds Close's final flush.
	DefaultCloseTimeout = 5 * time.Second
)

// LogName is the access log name the reporter sends, the one sidecars use.
const LogName = "glassmesh"

// Config configures a Reporter.
type Config struct {
	// Target is glassmesh's gRPC address (its --grpc-addr), host:port or
	// any grpc-go target. Required.
	Target string
	// The app's identity, as DESIGN.md's node conventions spell it: the
	// instance's IP and name (a pod name, or the workload name in file
	// config), its namespace, workload name and labels (app, version).
	// IP, Instance and Namespace are required.
	IP        string
	Instance  string
	Namespace string
	Workload  string
	Labels    map[string]string
	// BatchSize is the most entries per message; 0 means DefaultBatchSize.
	BatchSize int
	// FlushInterval is how long an entry may wait for a full batch; 0
	// means DefaultFlushInterval.
	FlushInterval time.Duration
	// QueueSize bounds the entries waiting to be sent; beyond it entries
	// are dropped. At most QueueSize + BatchSize entries are held in
	// memory. 0 means DefaultQueueSize.
	QueueSize int
	// CloseTimeout bounds Close's final flush; 0 means DefaultCloseTimeout.
	CloseTimeout time.Duration
	// DialOptions for the connection to Target; nil means plaintext.
	DialOptions []grpc.DialOption
}

func (c Config) withDefaults() (Config, error) {
	switch {
	case c.Target == "":
		return c, errors.New("grpcreport: no Target (glassmesh's gRPC address)")
	case c.IP == "" || c.Instance == "" || c.Namespace == "":
		return c, fmt.Errorf("grpcreport: identity needs IP, Instance and Namespace (got %q, %q, %q)", c.IP, c.Instance, c.Namespace)
	case c.BatchSize < 0 || c.QueueSize < 0 || c.FlushInterval < 0 || c.CloseTimeout < 0:
		return c, errors.New("grpcreport: BatchSize, QueueSize, FlushInterval and CloseTimeout must not be negative")
	}
	if c.Workload == "" {
		c.Workload = c.Instance
	}
	if c.BatchSize == 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.FlushInterval == 0 {
		c.FlushInterval = DefaultFlushInterval
	}
	if c.QueueSize == 0 {
		c.QueueSize = DefaultQueueSize
	}
	if c.CloseTimeout == 0 {
		c.CloseTimeout = DefaultCloseTimeout
	}
	if c.DialOptions == nil {
		c.DialOptions = []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	}
	return c, nil
}

// Stats counts what happened to the calls a Reporter saw.
type Stats struct {
	Queued  uint64 // entries accepted into the queue
	Sent    uint64 // entries handed to glassmesh's access log stream
	Dropped uint64 // entries dropped because the queue was full or the reporter closed
	Unsent  uint64 // entries still queued when Close gave up
}

// Reporter turns gRPC calls into access log entries and streams them to
// glassmesh. Its methods are safe for concurrent use.
type Reporter struct {
	cfg    Config
	logger *slog.Logger
	node   *corev3.Node
	conn   *grpc.ClientConn
	queue  chan *accesslogdatav3.HTTPAccessLogEntry

	ctx    context.Context // ends the ALS stream; cancelled when Close gives up
	cancel context.CancelFunc
	stop   chan struct{}
	done   chan struct{}
	once   sync.Once
	closed atomic.Bool
	err    error // of the final flush, set before done closes

	queued, sent, dropped, unsent atomic.Uint64
}

// NewReporter starts a reporter; Close stops it. The connection to
// cfg.Target is made lazily and re-made with backoff whenever it fails.
func NewReporter(cfg Config, logger *slog.Logger) (*Reporter, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	node, err := buildNode(cfg)
	if err != nil {
		return nil, err
	}
	// Reconnect about as eagerly as the sender retries (grpc-go waits a
	// second or more by default); the app's own options come last and win.
	opts := append([]grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
		Backoff:           backoff.Config{BaseDelay: minBackoff, Multiplier: 1.6, Jitter: 0.2, MaxDelay: maxBackoff},
		MinConnectTimeout: 5 * time.Second,
	})}, cfg.DialOptions...)
	conn, err := grpc.NewClient(cfg.Target, opts...)
	if err != nil {
		return nil, fmt.Errorf("grpcreport: target %q: %w", cfg.Target, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Reporter{
		cfg: cfg, logger: logger.With("component", "grpcreport"), node: node, conn: conn,
		queue: make(chan *accesslogdatav3.HTTPAccessLogEntry, cfg.QueueSize),
		ctx:   ctx, cancel: cancel, stop: make(chan struct{}), done: make(chan struct{}),
	}
	go r.run()
	return r, nil
}

// buildNode is the xDS node of DESIGN.md: id from naming.NodeID, metadata
// NAMESPACE, WORKLOAD_NAME, LABELS and GENERATOR=grpc.
func buildNode(cfg Config) (*corev3.Node, error) {
	labels := make(map[string]any, len(cfg.Labels))
	for k, v := range cfg.Labels {
		labels[k] = v
	}
	md, err := structpb.NewStruct(map[string]any{
		naming.NodeMetaNamespace:    cfg.Namespace,
		naming.NodeMetaWorkloadName: cfg.Workload,
		naming.NodeMetaLabels:       labels,
		naming.NodeMetaGenerator:    naming.GeneratorGRPC,
	})
	if err != nil {
		return nil, fmt.Errorf("grpcreport: node metadata: %w", err)
	}
	return &corev3.Node{Id: naming.NodeID(cfg.IP, cfg.Instance, cfg.Namespace), Metadata: md}, nil
}

// NodeID is the id the reporter identifies as, and sends in x-glassmesh-peer.
func (r *Reporter) NodeID() string { return r.node.GetId() }

// Stats returns the reporter's counters.
func (r *Reporter) Stats() Stats {
	return Stats{Queued: r.queued.Load(), Sent: r.sent.Load(), Dropped: r.dropped.Load(), Unsent: r.unsent.Load()}
}

// report queues an entry without ever blocking.
func (r *Reporter) report(e *accesslogdatav3.HTTPAccessLogEntry) {
	if r.closed.Load() {
		r.dropped.Add(1)
		return
	}
	select {
	case r.queue <- e:
		r.queued.Add(1)
	default:
		r.dropped.Add(1)
	}
}

// Close flushes what is queued (waiting at most CloseTimeout), ends the
// stream and the connection. Calls reported afterwards are dropped. It
// returns an error when entries could not be delivered.
func (r *Reporter) Close() error {
	r.once.Do(func() {
		r.closed.Store(true)
		close(r.stop)
		giveUp := time.AfterFunc(r.cfg.CloseTimeout, r.cancel)
		<-r.done
		giveUp.Stop()
		r.cancel()
		_ = r.conn.Close()
	})
	return r.err
}
