// Package topology is glassmesh's live service graph: it keeps in-memory
// edge aggregates fed by the request pipeline (falling back to PromQL over
// the istio_* series), adds the service graph of the spans, and serves both
// as Kiali's cytoscape JSON on /api/namespaces/graph and as server-sent
// events on /api/graph/stream.
//
// # Data
//
// Graph is a record.RequestConsumer. It keeps the requests DESIGN.md's
// count-once rule selects (reporter=source, plus reporter=destination when
// source_workload is unknown) as one series per Istio label set without
// the reporter. A series holds cumulative totals and a snapshot of them at
// the start of each BucketWidth (10s) it saw traffic in; the traffic of a
// window is the difference of two snapshots, found by binary search, so a
// graph costs O(series touched × log history), never a walk of the
// history. Run thins snapshots older than FineWindow (10m) to one per
// CoarseWidth (1m) and forgets history older than MaxWindow (1h).
//
// Windows the memory does not hold (longer than MaxWindow, older than the
// process, or every window with Config.PreferQuerier, or once Istio series
// were pushed in by remote-write or OTLP, which Graph.WatchAppends notices
// on the receivers' appendable) are read through a
// PromQL query function (Prometheus's rules.QueryFunc) with the rates Kiali
// queries: sum by (labels) (rate(...[d])) of
// istio_requests_total, the duration histogram and sums, the byte sums and
// istio_tcp_*_bytes_total. Both paths give the same graph (tested within
// ±1% over a TSDB written by telemetry/metrics' Aggregator), including
// response-time quantiles: the in-memory histograms use Istio's buckets and
// histogram_quantile's interpolation.
//
// Span dependencies (tracing/store's Reader.Dependencies) join the graph by
// service name: a span service is the node of the same app, workload or
// service name that metrics drew (apps and workloads first, ties broken by
// namespace, workload, version); otherwise an app node in the namespace
// after the first "." of the name, or "unknown". Such nodes and edges have
// dataSource "spans"; edges seen by both "both". Span-only edges are HTTP,
// rated by call count over the window.
//
// # Kiali rules implemented
//
// Graph types app, versionedApp, workload (default) and service; a node
// without app label falls back to its workload node; traffic without a
// source workload comes from the single "unknown" node; a destination
// without workload is its service node. injectServiceNodes puts the
// service node between caller and workload. boxBy app|namespace|cluster
// adds compound nodes (app boxes only for two or more members, as Kiali).
// Appenders: responseTime (avg|50|95|99, ms), throughput (request|response,
// bytes/s), securityPolicy (isMTLS = percent of the edge's traffic with
// mutual TLS, plus principals), deadNode (drops series without traffic;
// with the mesh registry, isDead on nodes whose workloads have no
// endpoints, and on services that select none with endpoints), idleNode
// (nodes of series that had traffic in memory before the window but none
// in it; with the registry, a node of dataSource "registry" for every
// service and workload of the requested namespaces without traffic),
// health (healthData plus glassmesh's healthStatus, from Tolerances;
// Kiali's defaults), istio (with the registry: hasVS, hasTrafficShifting
// and hasRequestRouting on the service node of a service with a
// TrafficRoute; glassmesh's canary, with the state SetCanaryStates gives,
// on that node and on the nodes of the canary subset's workloads when a
// Canary drives the route). Rates are strings with Kiali's precision; ids are
// the sha256 (hex) of the node identity and of "source.target.protocol",
// as Kiali's; responseTime and throughput are whole numbers (ms,
// bytes/s), as Kiali prints them.
//
// # Serving
//
// A graph is built straight to its JSON (emit: no intermediate maps),
// byte for byte what encoding/json writes for the Kiali types (tested).
// The bytes are cached per parameter set (queryTime included) for one
// refresh interval and shared by every HTTP caller and, as the data of
// their events, every stream client; gzip is sent only to callers that
// accept it, compressed once per cached graph. Build decodes the same
// bytes for callers that want Go values.
//
// # Wiring (cmd/glassmesh)
//
//	q := engine.QueryFunc(storage.Queryable()) // telemetry/metrics
//	if queryURL != "" { // --metrics.query-url
//		remote, err := metrics.NewRemoteQuery(metrics.RemoteQueryConfig{URL: queryURL})
//		q = remote.Query
//	}
//	g, err := topology.New(topology.Config{PreferQuerier: queryURL != ""}, q,
//		spanReader, logger.With("component", "topology"), reg)
//	g.SetMesh(func() *model.Mesh { m, _ := store.Mesh(); return m })
//	g.SetCanaryStates(canaryController.StateOf)
//	ingest, err := receiver.NewMetricsReceiver(cfg, g.WatchAppends(storage.AppendableV2()), ...)
//	consumers = append(consumers, g) // the pipeline's fan-out
//	g.Register(mux)                  // on --http-addr
//	// run group: execute g.Run(ctx), interrupt cancels ctx;
//	// before the HTTP server shuts down: g.Close() (ends the streams)
//
// # Not done
//
// Service entries, isOutOfMesh, Kiali's other route flags (hasCB,
// hasFaultInjection, hasRequestTimeout, hasMirroring) and "unused" nodes
// are not drawn. gRPC sent/received rates use request and
// response bytes (glassmesh records no gRPC message counts).
package topology
