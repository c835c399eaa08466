package topology

import (
	"context"
	"testing"
	"time"

	"github.com/glassmesh/glassmesh/telemetry/record"
	"github.com/glassmesh/glassmesh/tracing/store"
)

// fakeSpans is a span store whose only data is its dependencies.
type fakeSpans struct {
	store.Reader
	deps []store.Dependency
	err  error
}

func (f *fakeSpans) Dependencies(context.Context, time.Time, time.Time) ([]store.Dependency, error) {
	return f.deps, f.err
}

func wk(name, app, version string) record.Peer {
	return record.Peer{Workload: name, Namespace: "bookinfo", App: app, Version: version,
		Principal: "spiffe://cluster.local/ns/bookinfo/sa/" + app, CanonicalService: app, CanonicalRevision: version, Cluster: "east"}
}

// call is n identical requests from src to dst through service svc.
type call struct {
	src, dst record.Peer
	svc      string
	proto    string
	code     int
	grpc     string
	n        int
	mtls     bool
	ms       time.Duration
	tcpBytes uint64
	onlyDest bool // a caller outside the mesh: only the callee reports
}

// fixtureCalls is the 4-service mesh over a 10m window (600 s): rates are
// n/600 per second.
func fixtureCalls() []call {
	pp, det := wk("productpage-v1", "productpage", "v1"), wk("details-v1", "details", "v1")
	r1, r2 := wk("reviews-v1", "reviews", "v1"), wk("reviews-v2", "reviews", "v2")
	rat, db := wk("ratings-v1", "ratings", "v1"), wk("mysql-v1", "mysql", "v1")
	unknown := record.Peer{}
	return []call{
		{src: pp, dst: r1, svc: "reviews", proto: "http", code: 200, n: 600, mtls: true, ms: 10 * time.Millisecond},
		{src: pp, dst: r2, svc: "reviews", proto: "http", code: 200, n: 300, mtls: true, ms: 40 * time.Millisecond},
		{src: pp, dst: det, svc: "details", proto: "http", code: 200, n: 540, mtls: true, ms: 3 * time.Millisecond},
		{src: pp, dst: det, svc: "details", proto: "http", code: 503, n: 60, mtls: true, ms: 300 * time.Millisecond},
		{src: r2, dst: rat, svc: "ratings", proto: "grpc", code: 200, grpc: "0", n: 290, ms: 7 * time.Millisecond},
		{src: r2, dst: rat, svc: "ratings", proto: "grpc", code: 200, grpc: "14", n: 10, ms: 2 * time.Millisecond},
		{src: r1, dst: db, svc: "mysql", proto: "tcp", n: 60, tcpBytes: 1000, mtls: true},
		{src: unknown, dst: pp, svc: "productpage", proto: "http", code: 200, n: 1200, onlyDest: true, ms: 20 * time.Millisecond},
	}
}

// fixtureSpans: reviews calls audit, which sends no ALS; productpage →
// details is seen by both.
func fixtureSpans() *fakeSpans {
	return &fakeSpans{deps: []store.Dependency{
		{Parent: "reviews", Child: "audit", CallCount: 120},
		{Parent: "productpage", Child: "details", CallCount: 600},
	}}
}

// requests expands calls into requests as both reporters see them.
func requests(calls []call, at time.Time) []record.Request {
	var out []record.Request
	for _, c := range calls {
		for i := 0; i < c.n; i++ {
			r := record.Request{
				Time: at, Source: c.src, Dest: c.dst,
				DestinationService:          c.svc + ".bookinfo.svc.cluster.local",
				DestinationServiceName:      c.svc,
				DestinationServiceNamespace: "bookinfo",
				Protocol:                    c.proto, ResponseCode: c.code, GRPCStatus: c.grpc, ResponseFlags: "-",
				ConnectionSecurityPolicy: "none", Duration: c.ms, RequestBytes: 100, ResponseBytes: 1000,
			}
			if c.mtls {
				r.ConnectionSecurityPolicy = "mutual_tls"
			}
			if c.proto == "tcp" {
				r.ResponseCode, r.Duration, r.RequestBytes, r.ResponseBytes = 0, 0, 0, 0
				r.TCPSentBytes, r.TCPReceivedBytes, r.TCPOpened, r.TCPClosed = c.tcpBytes, 2*c.tcpBytes, true, true
			}
			if c.code == 503 {
				r.ResponseFlags = "UF"
			}
			if !c.onlyDest {
				r.Reporter = record.ReporterSource
				out = append(out, r)
			}
			r.Reporter = record.ReporterDestination
			out = append(out, r)
		}
	}
	return out
}

// newFixtureGraph is a Graph fed the fixture, whose clock stands at now.
func newFixtureGraph(t testing.TB, now time.Time) *Graph {
	t.Helper()
	g, err := New(Config{}, nil, fixtureSpans(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	g.now = func() time.Time { return now }
	g.started = now.Add(-time.Hour)
	if err := g.ConsumeRequests(context.Background(), requests(fixtureCalls(), now.Add(-30*time.Second))); err != nil {
		t.Fatal(err)
	}
	return g
}
