package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/alecthomas/units"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"
	"google.golang.org/grpc"

	"github.com/glassmesh/glassmesh/control/model"
	"github.com/glassmesh/glassmesh/telemetry/admission"
	"github.com/glassmesh/glassmesh/telemetry/diskspace"
	"github.com/glassmesh/glassmesh/telemetry/metrics"
	"github.com/glassmesh/glassmesh/telemetry/metrics/promapi"
	"github.com/glassmesh/glassmesh/telemetry/metrics/ruler"
	"github.com/glassmesh/glassmesh/telemetry/pipeline"
	"github.com/glassmesh/glassmesh/telemetry/receiver"
	"github.com/glassmesh/glassmesh/telemetry/record"
	"github.com/glassmesh/glassmesh/topology"
	"github.com/glassmesh/glassmesh/tracing/forward"
	"github.com/glassmesh/glassmesh/tracing/query"
	"github.com/glassmesh/glassmesh/tracing/store"
	"github.com/glassmesh/glassmesh/tracing/store/durable"
	"github.com/glassmesh/glassmesh/tracing/store/jaegerquery"
)

// telemetryFlags are run's telemetry flags.
type telemetryFlags struct {
	otlpGRPCAddr       string
	otlpHTTPAddr       string
	metricsInterval    time.Duration
	retentionMetrics   string
	metricsBlock       time.Duration
	maxSeriesPerMetric int
	ruleFiles          []string
	rulesInterval      time.Duration
	sloStep            time.Duration
	alertmanagerURLs   []string
	remoteWriteURLs    []string
	remoteWriteBatch   time.Duration
	remoteWriteLabels  map[string]string
	replicaLabel       string
	zipkinAddr         string
	retentionTraces    string
	tracesBlock        time.Duration
	exportOTLP         []string
	metricsQueryURL    string
	tracesQueryURL     string
	storageMinFree     string
}

func (f *telemetryFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.otlpGRPCAddr, "otlp-grpc-addr", ":4317", "OTLP/gRPC receiver address (traces and metrics; also served on --grpc-addr); empty disables")
	fs.StringVar(&f.otlpHTTPAddr, "otlp-http-addr", ":4318", "OTLP/HTTP receiver address (/v1/traces and /v1/metrics; protobuf or JSON, gzip); empty disables")
	fs.DurationVar(&f.metricsInterval, "metrics.interval", 5*time.Second, "how often request metrics are appended to the TSDB (what kill -9 may lose of access-log counts)")
	fs.StringVar(&f.retentionMetrics, "retention.metrics", "15d", "how long metrics are kept (Go duration, or days like 15d)")
	fs.DurationVar(&f.metricsBlock, "metrics.block-duration", metrics.DefaultBlockDuration, "span of the in-memory TSDB head before it is written as a block (Prometheus's min-block-duration); only blocks are deleted by retention, so keep it well under --retention.metrics when that is short")
	fs.IntVar(&f.maxSeriesPerMetric, "metrics.max-series-per-metric", metrics.DefaultMaxSeriesPerMetric, "label sets kept per istio_* metric; new ones beyond it are dropped and counted")
	fs.StringArrayVar(&f.ruleFiles, "rules", nil, "Prometheus rule files (globs; repeatable), evaluated with the generated SLO rules")
	fs.DurationVar(&f.rulesInterval, "rules.interval", 10*time.Second, "default evaluation interval of rule groups")
	fs.DurationVar(&f.sloStep, "slo.step", time.Minute, "step of the incremental SLO engine: how often it counts each SLO's events into its rollups and evaluates every SLO's budget (cost per round does not grow with the SLO window)")
	fs.StringArrayVar(&f.alertmanagerURLs, "alertmanager-url", nil, "Alertmanager to send firing alerts to (repeatable)")
	fs.StringArrayVar(&f.remoteWriteURLs, "remote-write-url", nil, "Prometheus remote-write endpoint to ship every stored series to, e.g. http://mimir:9009/api/v1/push (repeatable)")
	fs.DurationVar(&f.remoteWriteBatch, "remote-write.batch-send-deadline", time.Second, "longest a sample waits for its remote-write batch to fill (Prometheus's default is 5s; shorter, because with --metrics.query-url the canary gates and rules read what was sent)")
	fs.StringToStringVar(&f.remoteWriteLabels, "remote-write.external-label", nil, "label=value added to every series remote-written, e.g. replica=$(POD_NAME) so several replicas' series stay apart in the store (repeatable, or comma-separated)")
	fs.StringVar(&f.replicaLabel, "remote-write.replica-label", "replica", "the external label that tells replicas' series apart in a shared store; with --metrics.query-url and no --remote-write.external-label of that name it is this replica's --leader-elect.identity ($POD_NAME). Rule results (recording rules, ALERTS) go without it: the leader writes them for the whole mesh. Empty: none")
	fs.StringVar(&f.zipkinAddr, "zipkin-addr", ":9411", "Zipkin v2 receiver address (POST /api/v2/spans, JSON or proto3); empty disables")
	fs.StringArrayVar(&f.exportOTLP, "traces.export-otlp", nil, "also forward every accepted span, from the WAL with retries, to this OTLP endpoint (Jaeger, Tempo, a collector): http(s)://host:4318[/v1/traces] or grpc://host:4317 (repeatable)")
	fs.StringVar(&f.retentionTraces, "retention.traces", "72h", "how long traces are kept (Go duration, or days like 3d); whole blocks are deleted")
	fs.DurationVar(&f.tracesBlock, "traces.block-duration", durable.DefaultBlockDuration, "how long the trace head takes spans before it is cut into a block; only blocks are deleted by retention, so keep it well under --retention.traces when that is short")
	fs.StringVar(&f.tracesQueryURL, "traces.query-url", "", "read traces from this shared Jaeger query service (API v3 over HTTP, e.g. http://jaeger:16686) that several replicas forward to with --traces.export-otlp: the Jaeger APIs, Jaeger remote storage, the UI, exemplar links and the graph's span edges; this replica's own spans not forwarded yet are added to the traces it returns")
	fs.StringVar(&f.storageMinFree, "storage.min-free", "256MiB", "space kept free on --data-dir's filesystem: below it ingest (OTLP, Zipkin, remote-write) is refused with RESOURCE_EXHAUSTED / 507 and Retry-After, so block cuts and compaction still have room, and it resumes on its own when space returns; 0 refuses only once a write fails for space")
	fs.StringVar(&f.metricsQueryURL, "metrics.query-url", "", "read metrics from this Prometheus-compatible HTTP API (Mimir, Thanos, Prometheus) instead of this instance's own TSDB, when several replicas remote-write to it: the service graph, canary gates, /api/slos, and the rules and alerts, which only the leader evaluates")
}

// telemetry is the assembled telemetry side: storage, aggregation, the
// receivers and the Prometheus API.
//
// Both stores open in the background (telemetry_open.go): what reads or
// writes them holds their Opening from the start, and the parts that need
// the open store (the istio_* aggregator, remote-write, the rules'
// evaluation, the trace forwarder) are built or started once it is.
type telemetry struct {
	// remoteQuery is --metrics.query-url's store, when given.
	remoteQuery *metrics.RemoteQuery
	metrics     *metrics.Opening // every reader and writer of metrics holds this
	space       *diskspace.Guard // the data dir's free space, guarding every store
	engine      *metrics.Engine
	rules       *ruler.Ruler
	// agg counts access-log records from the start; it restores its
	// counters and flushes once the TSDB has opened (openMetrics).
	agg       *metrics.Aggregator
	metricsCf metricsOpenConfig
	spanStore *store.Opening // every reader and writer of spans holds this
	tracesCf  tracesOpenConfig
	spans     store.Reader // what reads traces: spanStore, or --traces.query-url's store over it

	logger *slog.Logger
	reg    prometheus.Registerer

	// Set by the opening actors, read by close after the run group ends.
	storage *metrics.Storage
	remote  *metrics.RemoteWrite
	traces  *durable.Store
	forward *forward.Forwarder

	graph    *topology.Graph
	otlpGRPC *grpc.Server
	otlpHTTP *http.Server
	otlpGLis net.Listener
	otlpHLis net.Listener
	zipkin   *http.Server
	zipLis   net.Listener
}

func (a *app) newTelemetry(f telemetryFlags) (*telemetry, error) {
	retention, err := model.ParseDuration(f.retentionMetrics)
	if err != nil {
		return nil, fmt.Errorf("--retention.metrics: %w", err)
	}
	t := &telemetry{spanStore: store.NewOpening(), logger: a.logger, reg: a.reg}
	if t.space, err = a.newSpaceGuard(f); err != nil {
		return nil, err
	}
	if t.metrics, err = metrics.NewOpening(metrics.StorageConfig{DataDir: a.flags.dataDir, Retention: retention, BlockDuration: f.metricsBlock, Space: t.space},
		a.logger.With("component", "metrics"), a.reg); err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			t.close()
		}
	}()
	if err := a.newMetrics(t, f, retention); err != nil {
		return nil, err
	}
	traces, err := a.newTraces(t, f)
	if err != nil {
		return nil, err
	}
	if err := a.newPipeline(t, f); err != nil {
		return nil, err
	}
	ingest, err := a.newIngest(t)
	if err != nil {
		return nil, err
	}
	if err := t.listen(f, ingest, traces, a.memory); err != nil {
		return nil, err
	}
	ok = true
	return t, nil
}

// newSpaceGuard builds the guard of --data-dir's free space that both
// stores check before they write.
func (a *app) newSpaceGuard(f telemetryFlags) (*diskspace.Guard, error) {
	minFree, err := units.ParseBase2Bytes(f.storageMinFree)
	if err != nil {
		return nil, fmt.Errorf("--storage.min-free: %q is not a size like 256MiB: %w", f.storageMinFree, err)
	}
	if err := os.MkdirAll(a.flags.dataDir, 0o755); err != nil {
		return nil, fmt.Errorf("--data-dir: %w", err)
	}
	return diskspace.New(diskspace.Config{Dir: a.flags.dataDir, MinFree: int64(minFree)}, a.logger.With("component", "storage"), a.reg)
}

// newMetrics builds what stands on the opening TSDB: the PromQL engine,
// rules, the Prometheus API; remote-write and the istio_* aggregator wait
// for the open TSDB (openMetrics).
func (a *app) newMetrics(t *telemetry, f telemetryFlags, retention time.Duration) error {
	logger, reg := a.logger.With("component", "metrics"), a.reg
	var err error
	t.metricsCf = metricsOpenConfig{
		remote: metrics.RemoteWriteConfig{URLs: f.remoteWriteURLs, ExternalLabels: a.externalLabels(f),
			ReplicaLabel: f.replicaLabel, BatchSendDeadline: f.remoteWriteBatch, FlushDeadline: 10 * time.Second},
	}
	if t.agg, err = metrics.NewOpeningAggregator(metrics.AggregatorConfig{Interval: f.metricsInterval, MaxSeriesPerMetric: f.maxSeriesPerMetric},
		t.metrics, logger, reg); err != nil {
		return err
	}
	backend := t.metrics.Backend()
	if t.engine, err = metrics.NewEngine(metrics.EngineConfig{Dir: filepath.Join(a.flags.dataDir, "queries")}, logger, reg); err != nil {
		return err
	}
	rcfg := ruler.Config{Files: f.ruleFiles, Interval: f.rulesInterval, AlertmanagerURLs: f.alertmanagerURLs}
	if f.metricsQueryURL != "" {
		if t.remoteQuery, err = metrics.NewRemoteQuery(metrics.RemoteQueryConfig{URL: f.metricsQueryURL}); err != nil {
			return err // names the flag
		}
		// The replicas remote-write to that store: rules and alerts judge
		// every replica's traffic there, and only the leader evaluates
		// (its results are remote-written like every series).
		rcfg.Query, rcfg.Follower = t.remoteQuery.Query, a.kube != nil
		// The last leader's alerts' "for" state is there too (its rule
		// results go without the replica label).
		rcfg.Restore = t.remoteQuery.Queryable()
	}
	if t.rules, err = ruler.New(rcfg, backend, t.engine, a.logger.With("component", "rules"), reg); err != nil {
		return err
	}
	// With a shared store the data reads (the UI's charts, Grafana) go there.
	// 503 with the replay's progress until the TSDB is open, as
	// Prometheus answers while it replays.
	api, err := promapi.New(promapi.Config{Version: version, ListenAddress: a.flags.httpAddr, Retention: retention,
		NotReady: t.metrics.Err, Store: f.metricsQueryURL}, backend, t.engine, t.rules, logger, reg)
	if err != nil {
		return err
	}
	api.Register(a.mux)
	return nil
}

// externalLabels are the labels added to every series remote-written:
// --remote-write.external-label, and the replica label when several
// replicas share the store that --metrics.query-url reads.
func (a *app) externalLabels(f telemetryFlags) map[string]string {
	if f.metricsQueryURL == "" || f.replicaLabel == "" || f.remoteWriteLabels[f.replicaLabel] != "" {
		return f.remoteWriteLabels
	}
	labels := maps.Clone(f.remoteWriteLabels)
	if labels == nil {
		labels = map[string]string{}
	}
	labels[f.replicaLabel] = a.flags.leader.identity
	return labels
}

// newIngest builds the metrics receivers (remote-write, OTLP) on the TSDB,
// through the graph's watch for Istio series pushed in.
func (a *app) newIngest(t *telemetry) (*receiver.MetricsReceiver, error) {
	ingest, err := receiver.NewMetricsReceiver(receiver.MetricsConfig{Memory: a.memory, Space: t.space, Ready: t.metrics.Err}, t.graph.WatchAppends(t.metrics),
		a.logger.With("component", "metrics"), a.reg)
	if err != nil {
		return nil, err
	}
	ingest.Register(a.mux)
	ingest.RegisterGRPC(a.grpc)
	return ingest, nil
}

// newPipeline builds the service graph and the access-log path that feeds
// it and the aggregator: receivers → pipeline → consumers.
func (a *app) newPipeline(t *telemetry, f telemetryFlags) error {
	q := t.engine.QueryFunc(t.metrics)
	cfg := topology.Config{}
	if t.remoteQuery != nil {
		q, cfg.PreferQuerier = t.remoteQuery.Query, true
	}
	var err error
	if t.graph, err = topology.New(cfg, q, t.spans, a.logger.With("component", "topology"), a.reg); err != nil {
		return err
	}
	t.graph.Register(a.mux)
	mesh := func() *model.Mesh { m, _ := a.store.Mesh(); return m }
	t.graph.SetMesh(mesh)
	pipe, err := pipeline.New(pipeline.Config{Appendable: t.metrics}, mesh,
		[]record.RequestConsumer{t.agg, t.graph}, a.logger.With("component", "pipeline"), a.reg)
	if err != nil {
		return err
	}
	recv, err := receiver.New(receiver.Config{Memory: a.memory}, pipe, a.logger.With("component", "receiver"), a.reg)
	if err != nil {
		return err
	}
	recv.Register(a.grpc)
	return nil
}

// listen opens the OTLP and Zipkin listeners that are enabled.
func (t *telemetry) listen(f telemetryFlags, ingest *receiver.MetricsReceiver, traces *receiver.TraceReceiver, memory *admission.Budget) error {
	var err error
	if f.otlpGRPCAddr != "" {
		if t.otlpGLis, err = net.Listen("tcp", f.otlpGRPCAddr); err != nil {
			return fmt.Errorf("--otlp-grpc-addr: %w", err)
		}
		opts := []grpc.ServerOption{grpc.MaxRecvMsgSize(maxMessageBytes)}
		if tap := receiver.MemoryTap(memory); tap != nil {
			opts = append(opts, grpc.InTapHandle(tap))
		}
		t.otlpGRPC = grpc.NewServer(opts...)
		ingest.RegisterGRPC(t.otlpGRPC)
		traces.RegisterGRPC(t.otlpGRPC)
	}
	if f.otlpHTTPAddr != "" {
		if t.otlpHLis, err = net.Listen("tcp", f.otlpHTTPAddr); err != nil {
			return fmt.Errorf("--otlp-http-addr: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("POST "+receiver.OTLPMetricsPath, ingest.OTLPHandler())
		mux.Handle(receiver.OTLPTracesPath, traces.OTLPHandler())
		t.otlpHTTP = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	}
	if f.zipkinAddr != "" {
		if t.zipLis, err = net.Listen("tcp", f.zipkinAddr); err != nil {
			return fmt.Errorf("--zipkin-addr: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle(receiver.ZipkinSpansPath, traces.ZipkinHandler())
		t.zipkin = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	}
	return nil
}

// maxMessageBytes bounds one gRPC message (OTLP batches, ALS batches).
const maxMessageBytes = 16 << 20

// newTraces builds the receivers and the Jaeger query API on the opening
// trace store; openTraces opens it.
func (a *app) newTraces(t *telemetry, f telemetryFlags) (*receiver.TraceReceiver, error) {
	retention, err := model.ParseDuration(f.retentionTraces)
	if err != nil {
		return nil, fmt.Errorf("--retention.traces: %w", err)
	}
	logger := a.logger.With("component", "traces")
	t.tracesCf.store = durable.Config{DataDir: a.flags.dataDir, Retention: retention, BlockDuration: f.tracesBlock, Space: t.space}
	for _, u := range f.exportOTLP {
		t.tracesCf.forward.Targets = append(t.tracesCf.forward.Targets, forward.Target{URL: u})
	}
	if err := t.tracesCf.forward.Validate(); err != nil {
		return nil, err
	}
	tr, err := receiver.NewTraceReceiver(receiver.TracesConfig{Memory: a.memory}, t.spanStore, logger, a.reg)
	if err != nil {
		return nil, err
	}
	tr.RegisterGRPC(a.grpc)
	if t.spans, err = a.traceReader(t, f, logger); err != nil {
		return nil, err
	}
	query.New(t.spans, logger).Register(a.mux)
	// Jaeger v2 can use glassmesh as its storage: reads here, writes as OTLP.
	query.NewStorageGRPC(t.spans, logger).RegisterGRPC(a.grpc)
	return tr, nil
}

// traceReader is what every trace read goes through: the local store, or
// with --traces.query-url the shared store plus the local spans not
// forwarded yet.
func (a *app) traceReader(t *telemetry, f telemetryFlags, logger *slog.Logger) (store.Reader, error) {
	if f.tracesQueryURL == "" {
		return t.spanStore, nil
	}
	shared, err := jaegerquery.New(jaegerquery.Config{URL: f.tracesQueryURL})
	if err != nil {
		return nil, fmt.Errorf("--traces.query-url: %w", err)
	}
	if len(f.exportOTLP) == 0 {
		logger.Warn("--traces.query-url without --traces.export-otlp: spans accepted here reach no other replica")
	}
	logger.Info("reading traces from a shared store", "url", shared.URL())
	return store.NewLayered(shared, t.spanStore), nil
}

// actors are the telemetry's long-running parts for the run group.
func (t *telemetry) actors(ctx context.Context) []actor {
	ctx, cancel := context.WithCancel(ctx)
	stop := func(error) { cancel() }
	acts := []actor{
		{func() error { return t.space.Run(ctx) }, stop},
		{func() error { return t.openMetrics(ctx) }, stop},
		{func() error { return t.openTraces(ctx) }, stop},
		{func() error { return t.graph.Run(ctx) }, stop},
	}
	if t.otlpGRPC != nil {
		acts = append(acts, actor{func() error { return t.otlpGRPC.Serve(t.otlpGLis) }, func(error) { t.otlpGRPC.Stop() }})
	}
	if t.otlpHTTP != nil {
		acts = append(acts, httpActor(t.otlpHTTP, t.otlpHLis))
	}
	if t.zipkin != nil {
		acts = append(acts, httpActor(t.zipkin, t.zipLis))
	}
	return acts
}

// httpActor serves srv on lis until interrupted.
func httpActor(srv *http.Server, lis net.Listener) actor {
	return actor{func() error {
		if err := srv.Serve(lis); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	}, func(error) { _ = srv.Close() }}
}

// addrs are the telemetry listeners' addresses, for the start-up log line.
func (t *telemetry) addrs() []any {
	var out []any
	if t.otlpGLis != nil {
		out = append(out, "otlpGRPC", t.otlpGLis.Addr().String())
	}
	if t.otlpHLis != nil {
		out = append(out, "otlpHTTP", t.otlpHLis.Addr().String())
	}
	if t.zipLis != nil {
		out = append(out, "zipkin", t.zipLis.Addr().String())
	}
	return out
}

// zipkinURL is where a local app posts Zipkin spans, or "" when disabled.
func (t *telemetry) zipkinURL() string {
	if t.zipLis == nil {
		return ""
	}
	return "http://" + dialAddr(t.zipLis.Addr()) + receiver.ZipkinSpansPath
}

// close releases what newTelemetry opened; the run group has stopped.
func (t *telemetry) close() {
	if t.engine != nil {
		_ = t.engine.Close()
	}
	if t.otlpGLis != nil {
		t.otlpGLis.Close()
	}
	if t.otlpHLis != nil {
		t.otlpHLis.Close()
	}
	if t.zipLis != nil {
		t.zipLis.Close()
	}
	if t.forward != nil {
		_ = t.forward.Close()
	}
	if t.traces != nil {
		_ = t.traces.Close()
	}
	if t.storage != nil {
		_ = t.storage.Close()
	}
}
