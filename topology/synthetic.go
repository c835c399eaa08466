package topology

import (
	"strconv"
	"time"

	"github.com/glassmesh/glassmesh/telemetry/record"
)

// SyntheticRequests is one minute of the benchmarks' synthetic mesh: n
// services of 2 versions each over 10 namespaces, each workload calling two
// other services (one version each): ~2 edges per workload, 4n series, one
// request each, both reporters, at time at. Every 50th service (shifted by
// minute) answers 503. The topology and web UI benchmarks share it.
func SyntheticRequests(n, minute int, at time.Time) []record.Request {
	peer := func(i, v int) record.Peer {
		app, ns := "svc"+strconv.Itoa(i), "ns"+strconv.Itoa(i%10)
		ver := "v" + strconv.Itoa(v+1)
		return record.Peer{Workload: app + "-" + ver, Namespace: ns, App: app, Version: ver,
			Principal: "spiffe://cluster.local/ns/" + ns + "/sa/" + app, CanonicalService: app, CanonicalRevision: ver, Cluster: "east"}
	}
	var batch []record.Request
	for i := range n {
		for v := range 2 {
			for j, to := range []int{(i + 1) % n, (i*7 + 3) % n} {
				dst := peer(to, (v+j)%2)
				code := 200
				if (i+minute)%50 == 0 {
					code = 503
				}
				r := record.Request{Time: at, Reporter: record.ReporterSource, Source: peer(i, v), Dest: dst,
					DestinationService: dst.App + "." + dst.Namespace + ".svc.cluster.local", DestinationServiceName: dst.App,
					DestinationServiceNamespace: dst.Namespace, Protocol: record.ProtocolHTTP, ResponseCode: code,
					ResponseFlags: "-", ConnectionSecurityPolicy: "mutual_tls", Duration: time.Duration(5+i%40) * time.Millisecond,
					RequestBytes: 200, ResponseBytes: 2000}
				batch = append(batch, r)
				r.Reporter = record.ReporterDestination
				batch = append(batch, r)
			}
		}
	}
	return batch
}
