package pipeline

import (
	"context"
	"errors"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	accesslogdatav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/glassmesh/glassmesh/control/model"
	"github.com/glassmesh/glassmesh/control/naming"
	"github.com/glassmesh/glassmesh/telemetry/record"
)

func tcpEntry(stream string, typ accesslogdatav3.AccessLogType, sent, received uint64) *accesslogdatav3.TCPAccessLogEntry {
	return &accesslogdatav3.TCPAccessLogEntry{
		CommonProperties: &accesslogdatav3.AccessLogCommon{
			StartTime:             timestamppb.New(t0),
			UpstreamCluster:       "outbound|3306||ratings.default.svc.cluster.local",
			UpstreamRemoteAddress: addr("127.0.0.1", 13306),
			StreamId:              stream,
			AccessLogType:         typ,
		},
		ConnectionProperties: &accesslogdatav3.ConnectionProperties{SentBytes: sent, ReceivedBytes: received},
	}
}

func TestConvertTCP(t *testing.T) {
	rec := &recorder{}
	p := newTestPipeline(t, Config{}, rec)
	entries := []*accesslogdatav3.TCPAccessLogEntry{
		tcpEntry("c1", accesslogdatav3.AccessLogType_TcpPeriodic, 100, 10),
		tcpEntry("c1", accesslogdatav3.AccessLogType_TcpPeriodic, 150, 30),
		tcpEntry("c1", accesslogdatav3.AccessLogType_TcpConnectionEnd, 170, 30),
		tcpEntry("", accesslogdatav3.AccessLogType_TcpConnectionEnd, 5, 6),
	}
	if err := p.ConsumeTCPLogs(context.Background(), productpageNode, entries); err != nil {
		t.Fatal(err)
	}
	got := rec.Take()
	base := record.Request{
		Time: t0, Reporter: "source", Source: productpage, Dest: ratings,
		DestinationService: "ratings.default.svc.cluster.local", DestinationServiceName: "ratings", DestinationServiceNamespace: "default",
		Protocol: "tcp", ResponseFlags: "-", ConnectionSecurityPolicy: "unknown",
	}
	want := []struct {
		sent, received uint64
		opened, closed bool
	}{
		{100, 10, true, false},
		{50, 20, false, false},
		{20, 0, false, true},
		{5, 6, true, true},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d requests, want %d", len(got), len(want))
	}
	for i, w := range want {
		r := base
		r.TCPSentBytes, r.TCPReceivedBytes, r.TCPOpened, r.TCPClosed = w.sent, w.received, w.opened, w.closed
		if d := diffRequest(got[i], r); d != "" {
			t.Errorf("entry %d:%s", i, d)
		}
	}
	if n := len(p.conns.open); n != 0 {
		t.Errorf("%d connections still tracked after their final entries", n)
	}
}

func TestConnTrackerIsBounded(t *testing.T) {
	untracked := 0
	ct := newConnTracker(2, func() { untracked++ })
	props := &accesslogdatav3.ConnectionProperties{SentBytes: 10}
	for _, s := range []string{"a", "b", "c"} {
		ct.observe("n", s, props, false, t0)
	}
	if len(ct.open) != 2 || untracked != 1 {
		t.Fatalf("tracked %d, untracked %d; want 2 and 1", len(ct.open), untracked)
	}
	// Once the old connections are stale they make room.
	ct.observe("n", "d", props, false, t0.Add(staleConnectionForTest()))
	if _, ok := ct.open[connKey{"n", "d"}]; !ok || len(ct.open) != 1 {
		t.Errorf("stale connections were not forgotten: %v", ct.open)
	}
}

func staleConnectionForTest() time.Duration { return staleConnection + time.Minute + 1 }

func TestReporterIdentity(t *testing.T) {
	ix := buildIndex(testMesh(t), DefaultClusterID, DefaultTrustDomain)
	tests := []struct {
		name string
		node *corev3.Node
		want record.Peer
	}{
		{"metadata names the workload", productpageNode, productpage},
		{"a pod name in the id finds its workload", &corev3.Node{Id: naming.NodeID("10.0.0.3", "reviews-v2-5b64f47f-xk2p9", "default")}, principal(reviewsV2, spiffeReviews)},
		{"an unknown instance at a workload's unique address is that workload", &corev3.Node{Id: naming.NodeID("10.0.0.2", "whatever", "default")}, principal(reviewsV1, spiffeReviews)},
		{"an id of another shape is unknown", &corev3.Node{Id: "router~1.2.3.4~x~y"}, nobody},
		{"no node at all is unknown", nil, nobody},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := reporterOf(ix, tc.node).peer
			if tc.node == productpageNode {
				tc.want.Principal = spiffePage // the registry's identity, used only over mTLS
			}
			if got != tc.want {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestConsumerErrorsSurface(t *testing.T) {
	reg := prometheus.NewRegistry()
	busy := &recorder{}
	busy.Fail(record.ErrOverloaded)
	fine := &recorder{}
	mesh := testMesh(t)
	p, err := New(Config{}, func() *model.Mesh { return mesh }, []record.RequestConsumer{busy, fine}, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	e := entry{cluster: "inbound|9080||", downstream: addr("192.168.1.1", 1), code: 200}.build()
	err = p.ConsumeHTTPLogs(context.Background(), reviewsV2Node, []*accesslogdatav3.HTTPAccessLogEntry{e, e})
	if !errors.Is(err, record.ErrOverloaded) {
		t.Fatalf("got %v, want ErrOverloaded", err)
	}
	if n := len(fine.Take()); n != 2 {
		t.Errorf("the other consumer got %d requests, want 2", n)
	}
	if v := testutil.ToFloat64(p.m.refused.WithLabelValues("overloaded")); v != 2 {
		t.Errorf("refused{overloaded} = %v, want 2", v)
	}
	if v := testutil.ToFloat64(p.m.unknownPeers[1]); v != 2 {
		t.Errorf("unknown peers of destination reports = %v, want 2", v)
	}
	if _, err := New(Config{}, nil, nil, nil, reg); err == nil {
		t.Error("a second pipeline on the same registry registered its metrics twice without error")
	}
}

func TestMeshChangesAreSeen(t *testing.T) {
	rec := &recorder{}
	var mesh *model.Mesh // empty at first
	p, err := New(Config{}, func() *model.Mesh { return mesh }, []record.RequestConsumer{rec}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	e := entry{cluster: reviewsCluster, upstream: addr("10.0.0.3", 9080), code: 200}.build()
	for _, m := range []*model.Mesh{nil, testMesh(t)} {
		mesh = m
		if err := p.ConsumeHTTPLogs(context.Background(), productpageNode, []*accesslogdatav3.HTTPAccessLogEntry{e}); err != nil {
			t.Fatal(err)
		}
	}
	got := rec.Take()
	if got[0].Dest.Workload != "unknown" || got[1].Dest.Workload != "reviews-v2" {
		t.Errorf("destinations %q then %q, want unknown then reviews-v2", got[0].Dest.Workload, got[1].Dest.Workload)
	}
}
