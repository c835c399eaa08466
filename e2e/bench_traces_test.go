package e2e

import (
	"context"
	"crypto/rand"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

var otlpProfile = flag.String("otlp.cpuprofile", "", "write a 10 s CPU profile of glassmesh taking OTLP load to this file (BenchmarkOTLPIngest)")

const (
	spansPerTrace   = 8
	tracesPerExport = 64 // 512 spans per request, the OTel SDK's default batch
)

// realisticTraces is one export of tracesPerExport traces of spansPerTrace
// spans with 10 attributes each (~430 B/span encoded), fresh ids.
func realisticTraces() ptrace.Traces {
	td := ptrace.NewTraces()
	services := []string{"productpage", "reviews", "ratings", "details"}
	now := time.Now()
	tids := make([][16]byte, tracesPerExport)
	for i := range tids {
		_, _ = rand.Read(tids[i][:])
	}
	perService := spansPerTrace / len(services) // spans of each trace in each service
	for _, svc := range services {
		rs := td.ResourceSpans().AppendEmpty()
		rs.Resource().Attributes().PutStr("service.name", svc)
		rs.Resource().Attributes().PutStr("service.version", "v1")
		rs.Resource().Attributes().PutStr("k8s.pod.name", svc+"-v1-7d4b9c-xk2lp")
		ss := rs.ScopeSpans().AppendEmpty()
		ss.Scope().SetName("go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc")
		for i := 0; i < tracesPerExport*perService; i++ {
			tid := tids[i/perService]
			var sid [8]byte
			_, _ = rand.Read(sid[:])
			s := ss.Spans().AppendEmpty()
			s.SetTraceID(pcommon.TraceID(tid))
			s.SetSpanID(pcommon.SpanID(sid))
			s.SetName("/bookinfo." + svc + "/Get")
			s.SetKind(ptrace.SpanKindServer)
			s.SetStartTimestamp(pcommon.NewTimestampFromTime(now))
			s.SetEndTimestamp(pcommon.NewTimestampFromTime(now.Add(time.Duration(i%50) * time.Millisecond)))
			a := s.Attributes()
			a.PutStr("rpc.system", "grpc")
			a.PutStr("rpc.service", "bookinfo."+svc)
			a.PutStr("rpc.method", "Get")
			a.PutInt("rpc.grpc.status_code", int64(i%7))
			a.PutStr("net.peer.name", "10.1.0."+strconv.Itoa(i%250))
			a.PutInt("net.peer.port", 9080)
			a.PutStr("user.id", "user-"+strconv.Itoa(i%1000))
			a.PutStr("http.user_agent", "grpc-go/1.85.0")
			a.PutStr("region", "eu-west-1")
			a.PutStr("request.id", fmt.Sprintf("%x", tid[:6]))
		}
	}
	return td
}

// BenchmarkOTLPDecodeLimit is the limit of trace ingestion: pdata's OTLP
// protobuf unmarshal of the same batches, on one core. Each op decodes 100
// batches, so that `-benchtime 5x` is not 5 cold decodes; spans/cpu-s
// divides by this process's CPU time (GC included), which other work on a
// shared machine does not inflate as it does wall time.
func BenchmarkOTLPDecodeLimit(b *testing.B) {
	raw, err := ptraceotlp.NewExportRequestFromTraces(realisticTraces()).MarshalProto()
	if err != nil {
		b.Fatal(err)
	}
	const perOp = 100
	b.SetBytes(int64(len(raw)) * perOp)
	cpu0 := procCPU(b, os.Getpid())
	b.ResetTimer()
	spans := 0
	for i := 0; i < b.N; i++ {
		for range perOp {
			req := ptraceotlp.NewExportRequest()
			if err := req.UnmarshalProto(raw); err != nil {
				b.Fatal(err)
			}
			spans += req.Traces().SpanCount()
		}
	}
	b.StopTimer()
	cpu := procCPU(b, os.Getpid()) - cpu0
	b.ReportMetric(float64(spans)/b.Elapsed().Seconds(), "spans/s")
	b.ReportMetric(float64(spans)/cpu.Seconds(), "spans/cpu-s")
	b.ReportMetric(float64(len(raw))/float64(tracesPerExport*spansPerTrace), "B/span")
}

// BenchmarkOTLPIngest exports realistic batches from 4 concurrent clients
// to a glassmesh process over OTLP/gRPC; every OK means durable (WAL) and
// indexed. It reports the wall rate, spans per CPU-second of glassmesh, and
// glassmesh's resident memory at the end.
func BenchmarkOTLPIngest(b *testing.B) {
	dir := b.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "mesh.yaml"), []byte(telemetryMesh), 0o644); err != nil {
		b.Fatal(err)
	}
	gm := startIn(b, dir, b.TempDir())
	const clients, perClient = 4, 50 // 4 × 50 × 512 = 102,400 spans per round
	batches := make([]ptraceotlp.ExportRequest, 16)
	for i := range batches {
		batches[i] = ptraceotlp.NewExportRequestFromTraces(realisticTraces())
	}
	cc, err := grpc.NewClient(gm.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	defer cc.Close()
	client := ptraceotlp.NewGRPCClient(cc)
	if *otlpProfile != "" {
		profileUnderLoad(b, gm, client, batches)
	}
	var wall, cpu time.Duration
	for i := 0; i < b.N; i++ {
		cpu0 := procCPU(b, gm.cmd.Process.Pid)
		start := time.Now()
		var wg sync.WaitGroup
		for c := range clients {
			wg.Go(func() {
				for j := range perClient {
					if _, err := client.Export(context.Background(), batches[(c*perClient+j)%len(batches)]); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		wall += time.Since(start)
		cpu += procCPU(b, gm.cmd.Process.Pid) - cpu0
	}
	spans := float64(b.N * clients * perClient * tracesPerExport * spansPerTrace)
	b.ReportMetric(spans/wall.Seconds(), "spans/s")
	b.ReportMetric(spans/cpu.Seconds(), "spans/cpu-s")
	b.ReportMetric(float64(procRSS(b, gm.cmd.Process.Pid))/(1<<20), "RSS-MiB")
}

// profileUnderLoad writes a 10 s CPU profile of gm to *otlpProfile while
// 4 clients export batches to it.
func profileUnderLoad(b *testing.B, gm *instance, client ptraceotlp.GRPCClient, batches []ptraceotlp.ExportRequest) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for c := range 4 {
		wg.Go(func() {
			for j := c; ctx.Err() == nil; j++ {
				_, _ = client.Export(ctx, batches[j%len(batches)])
			}
		})
	}
	defer wg.Wait()
	defer cancel()
	resp, err := http.Get("http://" + gm.HTTPAddr + "/debug/pprof/profile?seconds=10")
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	f, err := os.Create(*otlpProfile)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
}

// procRSS is a process's resident set size in bytes.
func procRSS(b *testing.B, pid int) int64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, l := range strings.Split(string(raw), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}
