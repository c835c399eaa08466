package topology

import (
	"strconv"
	"time"

	"github.com/glassmesh/glassmesh/telemetry/metrics"
)

// SyntheticRequests is one minute of the benchmarks' synthetic mesh: n
// services of 2 versions each over 10 namespaces, each workload calling two
// other services (one version each): ~2 edges per workload, 4n series, one
// request each, both reporters, at time at. Every 50th service (shifted by
// minute) answers 503. The topology and web UI benchmarks share it.
func SyntheticRequests(n, minute int, at time.Time) []metrics.Request {
	peer := func(i, v int) metrics.Peer {
		app, ns := "svc"+strconv.Itoa(i), "ns"+strconv.Itoa(i%10)
		ver := "v" + strconv.Itoa(v+1)
		return metrics.Peer{Workload: app + "-" + ver, Namespace: ns, App: app, Version: ver,
			Principal: "spiffe://cluster.local/ns/" + ns + "/sa/" + app, CanonicalService: app, CanonicalRevision: ver, Cluster: "east"}
	}
	var batch []metrics.Request
	for i := range n {
		for v := range 2 {
			for j, to := range []int{(i + 1) % n, (i*7 + 3) % n} {
				dst := peer(to, (v+j)%2)
				code := 200
				if (i+minute)%50 == 0 {
					code = 503
				}
				r := metrics.Request{Time: at, Reporter: metrics.ReporterSource, Source: peer(i, v), Dest: dst,
					DestinationService: dst.App + "." + dst.Namespace + ".svc.cluster.local", DestinationServiceName: dst.App,
					DestinationServiceNamespace: dst.Namespace, Protocol: metrics.ProtocolHTTP, ResponseCode: code,
					ResponseFlags: "-", ConnectionSecurityPolicy: "mutual_tls", Duration: time.Duration(5+i%40) * time.Millisecond,
					RequestBytes: 200, ResponseBytes: 2000}
				batch = append(batch, r)
				r.Reporter = metrics.ReporterDestination
				batch = append(batch, r)
			}
		}
	}
	return batch
}
