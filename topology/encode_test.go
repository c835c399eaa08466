package topology

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/glassmesh/glassmesh/telemetry/record"
)

// TestEmitIsEncodingJSONOfKialiTypes holds the hand-written encoder to
// encoding/json: every graph decodes strictly into the Kiali types and
// encodes back to the same bytes.
func TestEmitIsEncodingJSONOfKialiTypes(t *testing.T) {
	g := newFixtureGraph(t, fixtureNow)
	odd := "<a&b>\"\\\n\t\u2028é\x01"
	oddPeer := record.Peer{Workload: odd, Namespace: odd, App: odd, Version: odd, Principal: odd, Cluster: odd}
	at := fixtureNow.Add(-30 * time.Second)
	if err := g.ConsumeRequests(context.Background(), []record.Request{
		{Time: at, Reporter: record.ReporterSource, Source: oddPeer, Dest: oddPeer, DestinationService: odd,
			DestinationServiceName: odd, DestinationServiceNamespace: odd, Protocol: record.ProtocolHTTP,
			ResponseCode: 302, ResponseFlags: odd, ConnectionSecurityPolicy: "mutual_tls", Duration: time.Nanosecond},
		{Time: at, Reporter: record.ReporterSource, Source: oddPeer, Dest: record.Peer{Namespace: odd}, DestinationService: odd,
			DestinationServiceName: odd, DestinationServiceNamespace: odd, Protocol: record.ProtocolGRPC, GRPCStatus: "-"},
	}); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"graphType=workload", "graphType=app&boxBy=namespace,app", "graphType=service",
		"injectServiceNodes=true&boxBy=cluster", "appenders=", "appenders=idleNode,health,securityPolicy",
		"graphType=versionedApp&responseTime=avg&namespaces=bookinfo", "graphType=versionedApp&boxBy=app,namespace,cluster&rateGrpc=total"} {
		t.Run(q, func(t *testing.T) {
			body, err := g.buildFrom(context.Background(), mustOptions(t, q), pathMemory)
			if err != nil {
				t.Fatal(err)
			}
			sameAsEncodingJSON(t, body)
		})
	}
}

// sameAsEncodingJSON fails unless the hand-written body is byte for byte
// what encoding/json makes of the Kiali types it decodes into.
func sameAsEncodingJSON(t *testing.T, body []byte) {
	t.Helper()
	want, err := json.Marshal(strictDecode(t, body))
	if err != nil {
		t.Fatal(err)
	}
	if got := bytes.TrimSuffix(body, []byte("\n")); !bytes.Equal(got, want) {
		t.Errorf("\n got %s\nwant %s", got, want)
	}
}
