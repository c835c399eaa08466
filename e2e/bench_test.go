package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	accesslogdatav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	alsv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
)

const alsBatch = 100 // entries per StreamAccessLogsMessage, as Envoy buffers them

// alsMessages builds n batches of realistic entries from the productpage
// sidecar: successes, 503s with flags, gRPC errors, traced requests.
func alsMessages(n int) []*alsv3.StreamAccessLogsMessage {
	node := envoyNode("productpage-v1", "productpage", "10.1.0.1")
	base := grpcEntry{cluster: "outbound|9080||reviews.default.svc.cluster.local", upstream: "10.1.0.2:9080",
		downstream: "10.1.0.1:40000", code: 200, grpcStatus: "0", traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
	variants := []grpcEntry{base, base, base, base}
	variants[1].grpcStatus = "14"
	variants[2].code, variants[2].grpcStatus, variants[2].flags = 503, "", &accesslogdatav3.ResponseFlags{UpstreamConnectionFailure: true}
	variants[3].upstream = "10.1.0.3:9080"
	variants[3].cluster = "outbound|9080||ratings.default.svc.cluster.local"
	msgs := make([]*alsv3.StreamAccessLogsMessage, n)
	for i := range msgs {
		logs := make([]*accesslogdatav3.HTTPAccessLogEntry, alsBatch)
		for j := range logs {
			logs[j] = variants[(i+j)%len(variants)].proto()
		}
		msgs[i] = &alsv3.StreamAccessLogsMessage{
			LogEntries: &alsv3.StreamAccessLogsMessage_HttpLogs{HttpLogs: &alsv3.StreamAccessLogsMessage_HTTPAccessLogEntries{LogEntry: logs}},
		}
		if i == 0 {
			msgs[i].Identifier = &alsv3.StreamAccessLogsMessage_Identifier{Node: node, LogName: "glassmesh"}
		}
	}
	return msgs
}

// BenchmarkALSDecodeLimit is the limit of ALS ingestion: decoding the
// access-log protos alone, on one core.
func BenchmarkALSDecodeLimit(b *testing.B) {
	msgs := alsMessages(50)
	raw := make([][]byte, len(msgs))
	for i, m := range msgs {
		raw[i], _ = proto.Marshal(m)
	}
	b.ResetTimer()
	entries := 0
	for i := 0; i < b.N; i++ {
		var m alsv3.StreamAccessLogsMessage
		if err := proto.Unmarshal(raw[i%len(raw)], &m); err != nil {
			b.Fatal(err)
		}
		entries += len(m.GetHttpLogs().GetLogEntry())
	}
	b.ReportMetric(float64(entries)/b.Elapsed().Seconds(), "entries/s")
}

// BenchmarkALSIngest sends access logs over 4 ALS streams to a glassmesh
// process and waits until every entry is counted by PromQL. It reports the
// wall-clock rate and the entries per CPU-second glassmesh itself used.
func BenchmarkALSIngest(b *testing.B) {
	dir := b.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "mesh.yaml"), []byte(telemetryMesh), 0o644); err != nil {
		b.Fatal(err)
	}
	gm := startIn(b, dir, b.TempDir())
	const streams, perStream = 4, 500 // 4 × 500 batches × 100 = 200,000 entries per round
	msgs := alsMessages(perStream)
	cc, err := grpc.NewClient(gm.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	defer cc.Close()
	var total float64
	var wall, cpu time.Duration
	for i := 0; i < b.N; i++ {
		cpu0 := procCPU(b, gm.cmd.Process.Pid)
		start := time.Now()
		var wg sync.WaitGroup
		for range streams {
			wg.Go(func() {
				st, err := alsv3.NewAccessLogServiceClient(cc).StreamAccessLogs(context.Background())
				if err != nil {
					b.Error(err)
					return
				}
				for _, m := range msgs {
					if err := st.Send(m); err != nil {
						b.Error(err)
						return
					}
				}
				if _, err := st.CloseAndRecv(); err != nil {
					b.Error(err)
				}
			})
		}
		wg.Wait()
		total += float64(streams * perStream * alsBatch)
		gm.waitValue(b, `sum(istio_requests_total)`, total)
		wall += time.Since(start)
		cpu += procCPU(b, gm.cmd.Process.Pid) - cpu0
	}
	perRound := float64(streams * perStream * alsBatch)
	b.ReportMetric(perRound*float64(b.N)/wall.Seconds(), "entries/s")
	b.ReportMetric(perRound*float64(b.N)/cpu.Seconds(), "entries/cpu-s")
}

// procCPU is the user+system CPU time a process has used.
func procCPU(b *testing.B, pid int) time.Duration {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+2:]))
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	return time.Duration((utime + stime) / 100 * float64(time.Second)) // USER_HZ is 100 on Linux
}
