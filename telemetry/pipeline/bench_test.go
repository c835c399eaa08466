package pipeline

import (
	"context"
	"fmt"
	"testing"

	accesslogdatav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	alsv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	"google.golang.org/protobuf/proto"

	"github.com/glassmesh/glassmesh/control/naming"
	"github.com/glassmesh/glassmesh/telemetry/record"
)

// benchEntries are n realistic inbound entries as a sidecar logs them with
// the headers control/translate asks for: trace context, request id, peer id,
// grpc-status, TLS properties, byte counts and timings.
func benchEntries(n int) []*accesslogdatav3.HTTPAccessLogEntry {
	out := make([]*accesslogdatav3.HTTPAccessLogEntry, n)
	for i := range out {
		e := entry{
			cluster: "inbound|9080||", downstream: addr("10.0.0.1", uint32(40000+i%20000)), tls: mtls(spiffeReviews, spiffePage),
			authority: "reviews.default.svc.cluster.local:9080", code: 200,
			headers: map[string]string{
				"traceparent":     fmt.Sprintf("00-%032x-%016x-01", i+1, i+1),
				"x-request-id":    fmt.Sprintf("6f1c2a4e-%04x-4a8b-9c3d-2e1f0a9b8c7d", i%65536),
				naming.PeerHeader: naming.NodeID("10.0.0.1", "productpage-v1-7d9f8c-abcde", "default"),
			},
			trailers: map[string]string{"grpc-status": "0", "grpc-message": ""},
			reqBytes: [2]uint64{180, 42}, respBytes: [2]uint64{90, 1300}, durationMS: 3 + i%40,
		}.build()
		e.CommonProperties.UpstreamRemoteAddress = addr("127.0.0.1", 9080)
		e.CommonProperties.DownstreamLocalAddress = addr("10.0.0.3", 9080)
		e.CommonProperties.TimeToLastRxByte = ms(1)
		e.CommonProperties.TimeToFirstUpstreamTxByte = ms(1)
		e.CommonProperties.TimeToLastUpstreamRxByte = ms(3)
		e.Request.UserAgent = "grpc-go/1.85.0"
		e.Request.RequestId = e.Request.RequestHeaders["x-request-id"]
		out[i] = e
	}
	return out
}

// counter is a RequestConsumer that only counts, so the benchmark measures
// conversion.
type counter struct{ n int }

func (c *counter) ConsumeRequests(_ context.Context, reqs []record.Request) error {
	c.n += len(reqs)
	return nil
}

// BenchmarkConvertHTTP measures decoded entries through conversion and
// fan-out, in batches of 100 (a typical ALS message).
func BenchmarkConvertHTTP(b *testing.B) {
	c := &counter{}
	p := newTestPipeline(b, Config{}, c)
	batch := benchEntries(100)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := p.ConsumeHTTPLogs(ctx, reviewsV2Node, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(c.n)/b.Elapsed().Seconds(), "entries/s")
}

// BenchmarkDecodeHTTPEntry measures proto.Unmarshal of an ALS message of 100
// realistic entries: the limit an ALS receiver can reach.
func BenchmarkDecodeHTTPEntry(b *testing.B) {
	msg := &alsv3.StreamAccessLogsMessage{
		LogEntries: &alsv3.StreamAccessLogsMessage_HttpLogs{HttpLogs: &alsv3.StreamAccessLogsMessage_HTTPAccessLogEntries{LogEntry: benchEntries(100)}},
	}
	raw, err := proto.Marshal(msg)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		var m alsv3.StreamAccessLogsMessage
		if err := proto.Unmarshal(raw, &m); err != nil {
			b.Fatal(err)
		}
		n += len(m.GetHttpLogs().GetLogEntry())
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "entries/s")
}
