package main

// suites lists what `make bench` runs, in order. Each issue adds its own.
func suites() []suite {
	return []suite{
		{
			Title: "xDS fan-out: one weight change to N proxyless clients",
			About: "N raw ADS clients (sharing 32 gRPC connections, one stream each) subscribe by name to a mesh of " +
				"100 services × 10 endpoints (100 listeners, routes, clusters and load assignments) and ACK every response. " +
				"One weight changes; the figure is the time until every client has ACKed the new RouteConfiguration. " +
				"`linear` is glassmesh's server (go-control-plane's server over per-type LinearCaches, diffed updates, the watches of streams " +
				"that subscribe to the same names and know the same versions coalesced into one); " +
				"`snapshotcache` is go-control-plane's plain SnapshotCache (one snapshot per node, one version for every type). " +
				"Targets: 1,000 clients in ≤ 300 ms, 10,000 in ≤ 3 s. heap-*-B/client is control-plane heap per connected client.",
			Pkg:   "./control/xds/",
			Bench: "BenchmarkFanout$",
			Args:  []string{"-benchtime", "5x", "-timeout", "30m", "-xds.fanout=10000"},
			Ratios: []ratio{
				{Label: "SnapshotCache / glassmesh, 100 clients", Num: "Fanout/snapshotcache/clients=100", Den: "Fanout/linear/clients=100", Unit: "ms/update"},
				{Label: "SnapshotCache / glassmesh, 1,000 clients", Num: "Fanout/snapshotcache/clients=1000", Den: "Fanout/linear/clients=1000", Unit: "ms/update"},
				{Label: "SnapshotCache / glassmesh, 10,000 clients", Num: "Fanout/snapshotcache/clients=10000", Den: "Fanout/linear/clients=10000", Unit: "ms/update"},
			},
			Metrics: []string{"ms/update", "clients", "resp/client/update", "heap-inuse-B/client", "heap-live-B/client"},
		},
		{
			Title: "Config loop: a file save to the last client's ACK",
			About: "The headline of a config change, end to end: a 100-service mesh in one file (each service two versions of 10 endpoints and a " +
				"weighted route) watched by the real file source (100 ms debounce), N raw ADS clients (sharing 32 gRPC connections) subscribed by " +
				"name to every listener, route, cluster and load assignment (800 names each) as grpc-go does when it dials every service. One " +
				"route's weight is edited and the file saved; ms/change is until every client has ACKed the new RouteConfiguration (max-ms the " +
				"slowest of the runs). The control plane runs in a process of its own (the test binary again), so its CPU and memory are its own; " +
				"the clients run in the benchmark process, on the same 2 cores. `glassmesh` is the whole loop (parse only the changed document, " +
				"contain, translate reusing what did not change, validate only new encodings, diffed push into go-control-plane LinearCaches, " +
				"sharded by node, the watches of streams that name and know the same coalesced into one); `snapshotcache` is the same file source " +
				"and translation into go-control-plane's plain SnapshotCache (a snapshot per node, one version for every type), run once at " +
				"10,000 clients (a change takes it about a minute there). loop-ms/change is the " +
				"time in the loop (contain, translate, validate, update, answering the open watches); cpu-ms/change is the control-plane " +
				"process's CPU per change, the clients' ACKs included; heap-KB/client and rss-KB/client are the control plane's live heap and " +
				"resident set per connected client (after sync, over before the clients); peak-rss-MB its peak resident set. " +
				"Targets: ≤ 300 ms at 1,000 clients, ≤ 1 s at 10,000; peak RSS ≤ 0.5× SnapshotCache's.",
			Pkg:   "./control/push/",
			Bench: "BenchmarkConfigPush|BenchmarkLoop",
			Args:  []string{"-benchtime", "3x", "-timeout", "90m", "-push.clients=1000,5000,10000", "-push.peer-max=10000"},
			Ratios: []ratio{
				{Label: "SnapshotCache / glassmesh, 1,000 clients", Num: "ConfigPush/snapshotcache/clients=1000", Den: "ConfigPush/glassmesh/clients=1000", Unit: "ms/change"},
				{Label: "SnapshotCache / glassmesh, 5,000 clients", Num: "ConfigPush/snapshotcache/clients=5000", Den: "ConfigPush/glassmesh/clients=5000", Unit: "ms/change"},
				{Label: "glassmesh / SnapshotCache peak RSS, 1,000 clients", Num: "ConfigPush/glassmesh/clients=1000", Den: "ConfigPush/snapshotcache/clients=1000", Unit: "peak-rss-MB"},
				{Label: "glassmesh / SnapshotCache peak RSS, 5,000 clients", Num: "ConfigPush/glassmesh/clients=5000", Den: "ConfigPush/snapshotcache/clients=5000", Unit: "peak-rss-MB"},
				{Label: "SnapshotCache / glassmesh, 10,000 clients", Num: "ConfigPush/snapshotcache/clients=10000", Den: "ConfigPush/glassmesh/clients=10000", Unit: "ms/change"},
				{Label: "glassmesh / SnapshotCache peak RSS, 10,000 clients", Num: "ConfigPush/glassmesh/clients=10000", Den: "ConfigPush/snapshotcache/clients=10000", Unit: "peak-rss-MB"},
			},
			Metrics: []string{"ms/change", "max-ms", "loop-ms/change", "cpu-ms/change", "heap-KB/client", "rss-KB/client", "peak-rss-MB", "ns/op"},
		},
		{
			Title: "xDS fan-out with mTLS and RBAC",
			About: "A translated mesh of 100 gRPC services × 10 workloads (each its own service account and address, a v1/v2 route per service), " +
				"1,000 proxyless clients (one per workload) subscribed to every service's listener, route, clusters and endpoints and to their own " +
				"server Listener. With mtls-rbac=true the mesh is STRICT mesh-wide (clusters carry TLS with SPIFFE SAN checks, server listeners " +
				"require client certificates) and every service has an ALLOW policy for two callers and a DENY policy for one path (RBAC filters). " +
				"ms/update is a weight change from translation to the last client's ACK; translate-ms the translation alone; sync-KiB/client " +
				"the bytes each client receives to sync.",
			Pkg:   "./control/xds/",
			Bench: "BenchmarkFanoutSecurity",
			Args:  []string{"-benchtime", "5x", "-timeout", "30m"},
			Ratios: []ratio{
				{Label: "with / without mTLS+RBAC, push time", Num: "FanoutSecurity/mtls-rbac=true/clients=1000", Den: "FanoutSecurity/mtls-rbac=false/clients=1000", Unit: "ms/update"},
				{Label: "with / without mTLS+RBAC, push size", Num: "FanoutSecurity/mtls-rbac=true/clients=1000", Den: "FanoutSecurity/mtls-rbac=false/clients=1000", Unit: "sync-KiB/client"},
			},
			Metrics: []string{"ms/update", "translate-ms", "sync-KiB/client", "clients"},
		},
		{
			Title: "Mesh CA: SVID issuance and a rotation wave",
			About: "Issue: the built-in CA (ECDSA P-256) making a key and signing (Envoy sidecars over SDS) or signing a CSR " +
				"(`glassmesh sidecar certs`, proxyless apps), one core. RotationWave: 1,000 workloads, each its own service account, renewed " +
				"at once: issue-ms issues the 1,000 certificates; push-ms is from the xDS update to the last of 1,000 connected sidecars " +
				"(raw ADS streams, SDS) ACKing its new secret.",
			Pkg:     "./control/...",
			Bench:   "BenchmarkIssue|BenchmarkRotationWave",
			Args:    []string{"-benchtime", "3s", "-timeout", "30m"},
			Metrics: []string{"SVIDs/s", "ns/op", "issue-ms", "push-ms", "workloads/s"},
		},
		{
			Title: "ALS ingestion: Envoy access logs to queryable istio_* metrics",
			About: "(a) the limit: decoding StreamAccessLogsMessage protos alone (100 HTTPAccessLogEntry per message, one core). " +
				"(b) glassmesh end to end: a glassmesh process receives the same kind of batches over 4 ALS streams (gRPC on loopback), " +
				"converts them to Istio-labelled requests, aggregates, appends to its TSDB every 1 s, until `sum(istio_requests_total)` " +
				"counts every entry. entries/s is wall clock with the load generator on the same 2 cores; entries/cpu-s divides by the " +
				"CPU time glassmesh itself used (from /proc). Target: (b) per CPU-second ≥ 0.5 × (a).",
			Pkg:   "./e2e/",
			Bench: "BenchmarkALS",
			Args:  []string{"-benchtime", "3x"},
			Ratios: []ratio{
				{Label: "(b) per glassmesh CPU-second / (a) decode per core", Num: "ALSIngest", Den: "ALSDecodeLimit", Unit: "entries/cpu-s", DenUnit: "entries/s"},
			},
			Metrics: []string{"entries/s", "entries/cpu-s"},
		},
		{
			Title: "Trace ingestion: OTLP/gRPC spans, durable and indexed",
			About: "(a) the limit: pdata's OTLP protobuf unmarshal of the same batches (512 spans per request, " +
				"10 attributes, ~350 B/span), one goroutine, warm (100 batches per op); its spans/cpu-s divides by the CPU time " +
				"of the benchmark process (GC included), which other load on the machine does not inflate. (b) a glassmesh process " +
				"takes the batches from 4 concurrent OTLP/gRPC clients on the same machine; each OK means the spans are in the WAL " +
				"and indexed. spans/cpu-s divides by the CPU time glassmesh used; RSS-MiB is its resident memory at the end. " +
				"Target: (b) per CPU-second ≥ 0.5 × (a) per CPU-second. " +
				"For reference, Jaeger v1.76's non-durable memory store took 97–132k spans/s of such spans on a 2-vCPU machine, " +
				"growing to 16 GB RSS in a minute.",
			Pkg:   "./e2e/",
			Bench: "BenchmarkOTLP",
			Args:  []string{"-benchtime", "5x"},
			Ratios: []ratio{
				{Label: "(b) per glassmesh CPU-second / (a) decode per CPU-second", Num: "OTLPIngest", Den: "OTLPDecodeLimit", Unit: "spans/cpu-s"},
			},
			Metrics: []string{"spans/s", "spans/cpu-s", "RSS-MiB", "B/span"},
		},
		{
			Title: "Trace store: writes and reads",
			About: "tracing/store/durable in-process: write throughput (WAL + index), trace by id and search latency " +
				"on a pre-filled store (size in the benchmark names).",
			Pkg:   "./tracing/store/durable/",
			Bench: ".",
		},
		{
			Title: "Trace forwarding: the WAL to an OTLP/HTTP target",
			About: "tracing/forward on a running durable store: spans/s written and forwarded to a local OTLP/HTTP target " +
				"that discards them (the forwarder reads the WAL and sends its protobuf as it is).",
			Pkg:   "./tracing/forward/",
			Bench: ".",
		},
		{
			Title: "Trace store at 10M spans: trace-by-id and search latency",
			About: "One durable store filled with 1,250,000 traces (10M spans, ~100 blocks and a head), then 2,000 random " +
				"trace-by-id lookups and 400 searches (service; service+attribute; service+operation+min duration; error=true; " +
				"limit 20), p50/p99.",
			Pkg:     "./tracing/store/durable/",
			Bench:   "BenchmarkLatency",
			Args:    []string{"-benchtime", "1x", "-timeout", "30m", "-bench-latency-traces", "1250000"},
			Metrics: []string{"p50-ms", "p99-ms", "stored-spans"},
		},
		{
			Title: "Metrics: aggregation and TSDB appends",
			About: "BenchmarkConsume: requests/s into the in-memory Istio aggregates. BenchmarkFlush: appending every series to the " +
				"embedded TSDB, with memory per series (compare Prometheus's ~4.7 KB per head series). BenchmarkRestore: reloading " +
				"counters after a restart.",
			Pkg:   "./telemetry/metrics/",
			Bench: "BenchmarkConsume|BenchmarkFlush|BenchmarkRestore",
		},
		{
			Title: "Metrics in: remote-write and OTLP",
			About: "telemetry/receiver's metrics receivers: samples/data points per second through Prometheus's remote-write " +
				"handler and OTLP translation (limiter, decode, append, commit), against TSDBAppendLimit, the plain tsdb appender " +
				"on the same batches (the limit).",
			Pkg:   "./telemetry/receiver/",
			Bench: "BenchmarkTSDBAppendLimit|BenchmarkRemoteWriteReceive|BenchmarkOTLPGRPCReceive",
			Ratios: []ratio{
				{Label: "remote-write in / plain TSDB append", Num: "RemoteWriteReceive", Den: "TSDBAppendLimit", Unit: "samples/s"},
				{Label: "OTLP gRPC in / plain TSDB append", Num: "OTLPGRPCReceive", Den: "TSDBAppendLimit", Unit: "datapoints/s", DenUnit: "samples/s"},
			},
		},
		{
			Title:   "Access-log conversion",
			About:   "Pipeline conversion of decoded entries to Istio-labelled requests vs decoding alone, and a real ALS stream into the receiver.",
			Pkg:     "./telemetry/...",
			Bench:   "BenchmarkConvertHTTP|BenchmarkDecodeHTTPEntry|BenchmarkStreamAccessLogs",
			Metrics: []string{"entries/s", "ns/op", "B/op", "allocs/op"},
		},
		{
			Title: "Service graph (Kiali-compatible)",
			About: "Synthetic meshes of 100, 1,000 and 10,000 services (2 versions each, ~2 edges per workload), 10m window: " +
				"building the graph from the in-memory aggregates straight to its JSON (Graph), a whole GET " +
				"/api/namespaces/graph that finds no cached graph (GraphHTTP; callers within a refresh interval share the " +
				"cached bytes), the SSE update path (StreamUpdate: build, compare, frame), and the PromQL fallback over a " +
				"TSDB (GraphPromQL; store=http: the same queries through Prometheus's HTTP API, as from the shared store of several " +
				"replicas). cpu-ms is the process's CPU time per request (GC and both cores included), steadier " +
				"than wall time on this shared machine. Targets: ≤ 50 ms p99 at 1,000 services, ≤ 500 ms at 10,000. For " +
				"reference, Kiali v1.89 on a 2-vCPU machine with an instant Prometheus: 153 ms / 108 MB at 905 nodes, " +
				"2.76 s / 3.1 GB at 7,205 nodes.",
			Pkg:     "./topology/",
			Bench:   "BenchmarkGraph$|BenchmarkGraphHTTP|BenchmarkStreamUpdate|BenchmarkGraphPromQL",
			Args:    []string{"-benchtime", "20x", "-timeout", "30m"},
			Metrics: []string{"p50-ms", "p99-ms", "cpu-ms", "B/op", "allocs/op", "edges", "body-bytes", "event-bytes"},
		},
		{
			Title: "Canary rollback latency",
			About: "A canary at its first step (50%) with 40 requests/s from grpc-go's real xDS client; its backend starts failing " +
				"every request. Time from the first failing request to the served weights at 100% stable (p50/max over 5 runs), and to " +
				"the client's last 20 calls all at stable. glassmesh runs with the default 5 s --metrics.interval. store=prometheus: " +
				"the gates read a shared store as several replicas do (remote-write, with glassmesh's default 1 s batch deadline, to Debian's " +
				"Prometheus, --metrics.query-url); one replica here, as the data path is the same for each (e2e/k8s " +
				"TestSharedStoreCanaryOnEveryReplicasReports rolls back in 4–5 s with the reports split between two). Target: " +
				"≤ 15 s with a 10 s interval; Flagger needs at least its 60 s default interval × threshold.",
			Pkg:     "./e2e/",
			Bench:   "BenchmarkCanaryRollback",
			Args:    []string{"-benchtime", "5x", "-timeout", "30m"},
			Metrics: []string{"p50-s-to-weights", "max-s-to-weights", "p50-s-to-traffic", "max-s-to-traffic"},
		},
		{
			Title: "SLO rule evaluation",
			About: "One evaluation round for 1,000 availability SLOs through the real storage and PromQL engine, on the same raw traffic (10 minutes per service). " +
				"RuleEvaluation: the generated Sloth-compatible rule groups (10 minutes of history, so their 30d window mean reads little; it grows with the history). " +
				"store=http: as the leader of several replicas evaluates them on the shared store (--metrics.query-url), each expression an HTTP query; " +
				"the store is Prometheus's own HTTP API and engine (web/api/v1) over the same TSDB, so the difference is the round trips and JSON. " +
				"IncrementalEvaluation: one round of the incremental engine (telemetry/slo.Engine: the last step's events from two batched queries, 2,000 " +
				"counter samples appended, every window's start read from the rollup series, every budget), with SLO windows of 30 days and 12 weeks " +
				"whose rollups already hold the whole window (a TSDB block; 5-minute rollup step there, 1 minute by default). Target: ≤ 0.5 s per round, " +
				"the same for 12 weeks as for 30 days. cpu-ms/round is the process's CPU time per round: the machine is shared, so wall time runs above it.",
			Pkg:   "./telemetry/slo/",
			Bench: "BenchmarkRuleEvaluation|BenchmarkIncrementalEvaluation",
			Args:  []string{"-benchtime", "3x", "-timeout", "30m"},
			Ratios: []ratio{
				{Label: "rules / incremental, per round (30d)", Num: "RuleEvaluation/store=local", Den: "IncrementalEvaluation/window=30d", Unit: "ms/round"},
				{Label: "12 weeks / 30 days, incremental, CPU per round", Num: "IncrementalEvaluation/window=84d", Den: "IncrementalEvaluation/window=30d", Unit: "cpu-ms/round"},
			},
			Metrics: []string{"ms/round", "cpu-ms/round", "ms/slo", "B/op", "allocs/op"},
		},
		{
			Title: "Mesh config load",
			About: "Parsing and validating a config directory of 2,000 files (1,000 services and their workloads): model.Load, and model.LoadManifests as the file source and `glassmesh validate` read it (Kubernetes manifests allowed).",
			Pkg:   "./control/model/",
			Bench: ".",
		},
		{
			Title: "Web UI: graph first render and bundle size",
			About: "Headless Debian Chromium (1366×768, browser cache off) opens /graph on topology's benchmark mesh of 1,000 services " +
				"(2 versions each, 10 namespaces, all selected) served by the embedded UI and a topology.Graph in the benchmark process. " +
				"ms is from navigation start to cytoscape's first paint with every node (its render event after the layout), p50/max " +
				"over the runs; data-ms is when the graph reached the canvas (assets, stream, JSON, model), layout-ms the layout alone. " +
				"type=app draws 1,000 nodes; type=versionedApp (the page's default type) draws 2,000 version nodes. Above 250 nodes " +
				"the page draws flat (no app boxes) with the breadthfirst layout, straight edges without labels and node names only " +
				"once zoomed in to read them (the benchmark fails on another layout). The machine's 2 cores are shared with other " +
				"work, so expect ±1 s between runs. bundle: gzip -9 sizes of dashboards/dist, for the app shell (index.html and " +
				"what it links), what the graph page loaded, and every asset.",
			Pkg:     "./e2e/",
			Bench:   "BenchmarkUIGraph",
			Args:    []string{"-benchtime", "5x", "-timeout", "20m"},
			Metrics: []string{"p50-ms", "max-ms", "p50-data-ms", "p50-layout-ms", "nodes", "gzip-kB-shell", "gzip-kB-graph-page", "gzip-kB-all"},
		},
		{
			Title: "Kubernetes source: API change to xDS push, and informer memory",
			About: "Both through a real glassmesh process (`glassmesh run`) and, for the Kubernetes source, a real kube-apiserver v1.37 " +
				"(in the benchmark process) with etcd. KubernetesPush: the same mesh of 100 gRPC services × 10 endpoints (two 5-pod " +
				"Deployments v1/v2 each) with one v1/v2 TrafficRoute per service, served once with `--source kubernetes " +
				"--kubernetes.namespaces bench-push --leader-elect=false`, one replica that leads and so writes status conditions (core Services, Pods with the status a kubelet would write, EndpointSlices and " +
				"TrafficRoute custom resources created through the API) and once with `--config DIR` (the same objects as Service, " +
				"Workload and TrafficRoute YAML in three files). 1,000 simulated proxyless clients (raw ADS streams over 32 gRPC " +
				"connections, proxyless node ids) subscribe by name to every service's listener, route configuration, v1/v2 " +
				"clusters and endpoints and ACK every response. One route's v1 weight changes: a JSON merge PATCH of the TrafficRoute " +
				"through the API server, or routes.yaml rewritten atomically (a hidden temporary file renamed over it, as editors " +
				"and config tools do). ms/update is from the start of that call to the moment the last of the 1,000 clients has " +
				"ACKed a new RouteConfiguration version (one client decodes it and checks it carries the new weight). Both paths " +
				"wait a 100 ms debounce before rebuilding: the Kubernetes source 100 ms after the first watch event " +
				"(KubernetesConfig.Debounce), the file source 100 ms without a further fsnotify event (FileConfig.Debounce, " +
				"source.DefaultDebounce; capped at 10× in a burst); after it the Kubernetes source builds the model from its " +
				"informer caches, the file source re-reads and parses the directory. sync-KiB/client is what a client receives " +
				"to sync (equal for both sources: the same xDS). InformerMemory: 1,000 Services (headless: the test server's " +
				"service CIDR is a /24), 10,000 Pods and 1,000 EndpointSlices in one namespace; the Kubernetes source " +
				"(kube.New, in the benchmark process) starts, and MiB is the growth of the live heap (after GC) from " +
				"before its start to after its first model, which holds every object; freed-MiB is what a GC returns once it " +
				"stopped. The API server runs in the same process, so its own heap moves too (most on the first start, which " +
				"also warms its list paths): both are medians over the starts, and the informer caches' size lies between them. " +
				"B/pod is MiB over the " +
				"cluster's pods (the caches hold Services, Pods, EndpointSlices and the glassmesh CRs of every namespace; pods " +
				"keep only the fields the mesh reads). sync-ms is from the source's start to its first model. " +
				"KubernetesChurn (it runs first and leaves every pod ready): the InformerMemory mesh (1,000 headless services × 10 pods, " +
				"no routes) served by `glassmesh run --source kubernetes` to 1,000 proxyless clients, each subscribed to the listener, " +
				"route, cluster and endpoints of 10 services (client c dials services c … c+9); 100 EndpointSlice updates a second " +
				"(JSON merge patches through the API server, pod 0 of the next service turning unready, or ready again), for as many " +
				"seconds as iterations, from when the initial sync has gone quiet (1 s without a response). cores is the glassmesh process's CPU time over the wall time of the churn (from /proc), " +
				"cpu-ms/update the same per update; p50-ms/max-ms are from a patch's return until client 0 received the load " +
				"assignment with the new endpoint count (its 10 services, one sample each per 10 s); rebuilds/s counts " +
				"glassmesh_config_reloads_total; the run fails unless client 0 ends with every last-written state. Target: under one core.",
			Dir:   "e2e/k8s",
			Pkg:   ".",
			Bench: "BenchmarkKubernetesPush|BenchmarkInformerMemory|BenchmarkKubernetesChurn",
			Args:  []string{"-benchtime", "10x", "-timeout", "60m", "-vet=off"},
			Ratios: []ratio{
				{Label: "kubernetes / file source, 1,000 clients", Num: "KubernetesPush/source=kubernetes/clients=1000", Den: "KubernetesPush/source=file/clients=1000", Unit: "ms/update"},
			},
			Metrics: []string{"ms/update", "p50-ms", "max-ms", "resp/client/update", "sync-KiB/client", "MiB", "freed-MiB", "B/pod", "sync-ms", "pods", "services",
				"cores", "cpu-ms/update", "updates/s", "rebuilds/s", "responses/s"},
		},
	}
}
