package receiver

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	accesslogdatav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	alsv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"

	"github.com/glassmesh/glassmesh/control/naming"
	"github.com/glassmesh/glassmesh/telemetry/pipeline"
	"github.com/glassmesh/glassmesh/telemetry/record"
)

// counter is a RequestConsumer that only counts.
type counter struct{ n atomic.Int64 }

func (c *counter) ConsumeRequests(_ context.Context, reqs []record.Request) error {
	c.n.Add(int64(len(reqs)))
	return nil
}

// BenchmarkStreamAccessLogs measures entries/s from an ALS client's Send
// through gRPC, decoding and conversion to a counting consumer (batches of
// 100 inbound entries like a sidecar's), over loopback.
func BenchmarkStreamAccessLogs(b *testing.B) {
	c := &counter{}
	conn := serve(b, Config{}, newPipeline(b, pipeline.Config{}, c))
	entries := make([]*accesslogdatav3.HTTPAccessLogEntry, 100)
	for i := range entries {
		entries[i] = httpEntry("inbound|9080||", 200, func(e *accesslogdatav3.HTTPAccessLogEntry) {
			e.CommonProperties.DownstreamRemoteAddress = addr("10.0.0.1", uint32(40000+i))
			e.CommonProperties.TlsProperties = &accesslogdatav3.TLSProperties{LocalCertificateProperties: cert(spiffeReviews), PeerCertificateProperties: cert(spiffePage)}
			e.Request.Authority = "reviews.default.svc.cluster.local:9080"
			e.Request.RequestHeaders = map[string]string{
				"traceparent":     fmt.Sprintf("00-%032x-%016x-01", i+1, i+1),
				"x-request-id":    fmt.Sprintf("6f1c2a4e-%04x-4a8b-9c3d-2e1f0a9b8c7d", i),
				naming.PeerHeader: naming.NodeID("10.0.0.1", "productpage-v1-7d9f8c-abcde", "default"),
			}
			e.Response.ResponseTrailers = map[string]string{"grpc-status": "0", "grpc-message": ""}
		})
	}
	s, err := alsv3.NewAccessLogServiceClient(conn).StreamAccessLogs(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	if err := s.Send(&alsv3.StreamAccessLogsMessage{Identifier: &alsv3.StreamAccessLogsMessage_Identifier{Node: reviewsV2Node}}); err != nil {
		b.Fatal(err)
	}
	msg := &alsv3.StreamAccessLogsMessage{LogEntries: httpLogs(entries...)}
	start := time.Now()
	b.ResetTimer()
	for b.Loop() {
		if err := s.Send(msg); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := s.CloseAndRecv(); err != nil { // returns once the server handled every message
		b.Fatal(err)
	}
	b.ReportMetric(float64(c.n.Load())/time.Since(start).Seconds(), "entries/s")
}
