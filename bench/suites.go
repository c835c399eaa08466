package main

// suites lists what `make bench` runs, in order. Each issue adds its own.
func suites() []suite {
	return []suite{
		{
			Title: "xDS fan-out: one weight change to N proxyless clients",
			About: "N raw ADS clients (sharing 32 gRPC connections, one stream each) subscribe by name to a mesh of " +
				"100 services × 10 endpoints (100 listeners, routes, clusters and load assignments) and ACK every response. " +
				"One weight changes; the figure is the time until every client has ACKed the new RouteConfiguration. " +
				"`linear` is glassmesh's server (go-control-plane's server over per-type LinearCaches, diffed updates); " +
				"`snapshotcache` is go-control-plane's plain SnapshotCache (one snapshot per node, one version for every type). " +
				"Targets: 1,000 clients in ≤ 300 ms, 10,000 in ≤ 3 s. heap-*-B/client is control-plane heap per connected client.",
			Pkg:   "./control/xds/",
			Bench: "BenchmarkFanout",
			Args:  []string{"-benchtime", "5x", "-timeout", "30m", "-xds.fanout", "10000"},
			Ratios: []ratio{
				{"SnapshotCache / glassmesh, 100 clients", "Fanout/snapshotcache/clients=100", "Fanout/linear/clients=100", "ms/update"},
				{"SnapshotCache / glassmesh, 1,000 clients", "Fanout/snapshotcache/clients=1000", "Fanout/linear/clients=1000", "ms/update"},
				{"SnapshotCache / glassmesh, 10,000 clients", "Fanout/snapshotcache/clients=10000", "Fanout/linear/clients=10000", "ms/update"},
			},
			Metrics: []string{"ms/update", "clients", "resp/client/update", "heap-inuse-B/client", "heap-live-B/client"},
		},
		{
			Title: "Mesh config load",
			About: "Parsing and validating a config directory (model.Load).",
			Pkg:   "./control/model/",
			Bench: ".",
		},
	}
}
