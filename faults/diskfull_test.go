//go:build faults

package faults

import (
	"bytes"
	"context"
	endian "encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/prompb"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// The disk-full case: the data dir on a 64 MiB tmpfs, ingest on three
// paths (OTLP/gRPC spans, Zipkin JSON spans, remote-write samples) while a
// filler file eats all the space, then frees it.
const (
	volumeSize  = "64m"
	minFree     = "8MiB"
	pushEvery   = 20 * time.Millisecond
	healthyFor  = 3 * time.Second
	fullFor     = 5 * time.Second
	recoverWait = 30 * time.Second // generous: recovery needs no restart and takes one write
)

// ingestPath is one client pushing unique items and recording what each
// answer was.
type ingestPath struct {
	name string
	push func(ctx context.Context, n int) (acked bool, err error) // err: refused; nil with !acked: other failure

	mu          sync.Mutex
	acked       []int
	refused     int
	ackedInFull int       // acknowledged while the filler held every byte
	others      []string  // answers that were neither
	firstAfter  time.Time // first ack after the filler was removed
	phase       *phase
}

// phase says where the episode is: 0 healthy, 1 filling or full, 2 freed;
// full is set from the filler's ENOSPC until just before it is removed.
type phase struct {
	mu      sync.Mutex
	n       int
	freedAt time.Time
	full    atomic.Bool
}

func (p *phase) get() (int, time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n, p.freedAt
}

func (p *phase) set(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n = n
	if n == 2 {
		p.freedAt = time.Now()
	}
}

// run pushes items base, base+1, ... until ctx ends.
func (ip *ingestPath) run(ctx context.Context, base int) {
	for n := base; ctx.Err() == nil; n++ {
		fullBefore := ip.phase.full.Load()
		acked, err := ip.push(ctx, n)
		fullAfter := ip.phase.full.Load()
		ip.mu.Lock()
		switch {
		case acked:
			ip.acked = append(ip.acked, n)
			if fullBefore && fullAfter {
				ip.ackedInFull++
			}
			if now, _ := ip.phase.get(); now == 2 && ip.firstAfter.IsZero() {
				ip.firstAfter = time.Now()
			}
		case err != nil && strings.Contains(err.Error(), "data dir full"):
			ip.refused++
		case ctx.Err() == nil:
			ip.others = append(ip.others, fmt.Sprint(err))
		}
		ip.mu.Unlock()
		time.Sleep(pushEvery)
	}
}

func TestDiskFullRefusesRetryablyLosesNothingAndRecoversOnItsOwn(t *testing.T) {
	vol := t.TempDir()
	if err := syscall.Mount("tmpfs", vol, "tmpfs", 0, "size="+volumeSize); err != nil {
		t.Skipf("cannot mount a %s tmpfs (the case needs root): %v", volumeSize, err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(vol, syscall.MNT_DETACH) })
	dataDir := filepath.Join(vol, "data")
	zipkinAddr := freeAddr(t)
	args := []string{"--data-dir", dataDir, "--storage.min-free", minFree, "--zipkin-addr", zipkinAddr}
	g := start(t, args...)

	conn, err := grpc.NewClient(g.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ph := &phase{}
	paths := []*ingestPath{
		{name: "otlp_grpc", push: otlpPush(ptraceotlp.NewGRPCClient(conn)), phase: ph},
		{name: "zipkin", push: zipkinPush("http://" + zipkinAddr + "/api/v2/spans"), phase: ph},
		{name: "remote_write", push: remoteWritePush("http://" + g.httpAddr + "/api/v1/write"), phase: ph},
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i, p := range paths {
		wg.Go(func() { p.run(ctx, i*1_000_000) })
	}

	time.Sleep(healthyFor)
	ph.set(1)
	filler := fill(t, vol)
	ph.full.Store(true)
	t.Logf("filler took the rest of the volume (%s)", bytesOf(filler))
	eventually(t, 10*time.Second, "glassmesh_storage_full is 1", func() error {
		if v := g.metric(t, "glassmesh_storage_full"); v != 1 {
			return fmt.Errorf("glassmesh_storage_full = %v", v)
		}
		return nil
	})
	time.Sleep(fullFor)
	checkRefusalAnswers(t, g.httpAddr, zipkinAddr, ptraceotlp.NewGRPCClient(conn))
	ph.full.Store(false)
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	ph.set(2)
	_, freedAt := ph.get()
	eventually(t, recoverWait, "every path acknowledges again without a restart", func() error {
		for _, p := range paths {
			p.mu.Lock()
			ok := !p.firstAfter.IsZero()
			p.mu.Unlock()
			if !ok {
				return fmt.Errorf("%s not yet", p.name)
			}
		}
		return nil
	})
	time.Sleep(time.Second)
	cancel()
	wg.Wait()
	if v := g.metric(t, "glassmesh_storage_full"); v != 0 {
		t.Errorf("glassmesh_storage_full = %v after space returned", v)
	}

	for _, p := range paths {
		t.Logf("%-12s acked %4d, refused (data dir full) %4d, first ack %6s after space returned, other answers %d",
			p.name, len(p.acked), p.refused, p.firstAfter.Sub(freedAt).Round(time.Millisecond), len(p.others))
		if p.refused == 0 {
			t.Errorf("%s: nothing refused while the disk was full", p.name)
		}
		if p.ackedInFull > 0 {
			t.Errorf("%s: %d acknowledged while the filler held every byte", p.name, p.ackedInFull)
		}
		if len(p.others) > 0 {
			t.Errorf("%s: %d answers neither an ack nor a data-dir-full refusal, e.g. %s", p.name, len(p.others), p.others[0])
		}
	}

	// kill -9 and restart on the same dir: everything acknowledged is there.
	_ = g.cmd.Process.Kill()
	_ = g.cmd.Wait()
	restart := time.Now()
	g = start(t, args...)
	t.Logf("restart after kill -9 to listening: %s", time.Since(restart).Round(time.Millisecond))
	if v := g.metric(t, "prometheus_tsdb_wal_corruptions_total"); v != 0 {
		t.Errorf("the TSDB found %v WAL corruptions on replay", v)
	}
	for _, p := range paths[:2] {
		missing := 0
		for _, n := range p.acked {
			if !traceFound(t, g.httpAddr, n) {
				missing++
			}
		}
		if missing > 0 {
			t.Errorf("%s: %d of %d acknowledged spans missing after kill -9 and restart", p.name, missing, len(p.acked))
		}
	}
	if missing := missingSamples(t, g.httpAddr, paths[2].acked); missing > 0 {
		t.Errorf("remote_write: %d of %d acknowledged samples missing after kill -9 and restart", missing, len(paths[2].acked))
	}
}

// fill writes a file in dir, 1 MiB at a time as a growing log does, until
// the filesystem says ENOSPC, and returns its path.
func fill(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 1<<20)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			return path
		}
	}
}

func bytesOf(path string) string {
	st, err := os.Stat(path)
	if err != nil {
		return "?"
	}
	return fmt.Sprintf("%.1f MiB", float64(st.Size())/(1<<20))
}

// diskTraceID is the id of the n-th pushed trace (and its one span's id).
func diskTraceID(n int) [16]byte {
	var id [16]byte
	endian.BigEndian.PutUint64(id[0:], 0xd15cf011)
	endian.BigEndian.PutUint64(id[8:], uint64(n)+1)
	return id
}

func otlpPush(c ptraceotlp.GRPCClient) func(context.Context, int) (bool, error) {
	return func(ctx context.Context, n int) (bool, error) {
		td := ptrace.NewTraces()
		rs := td.ResourceSpans().AppendEmpty()
		rs.Resource().Attributes().PutStr("service.name", "diskfull-otlp")
		sp := rs.ScopeSpans().AppendEmpty().Spans().AppendEmpty()
		id := diskTraceID(n)
		sp.SetTraceID(pcommon.TraceID(id))
		sp.SetSpanID(pcommon.SpanID(id[8:]))
		sp.SetName("push")
		now := time.Now()
		sp.SetStartTimestamp(pcommon.NewTimestampFromTime(now.Add(-time.Millisecond)))
		sp.SetEndTimestamp(pcommon.NewTimestampFromTime(now))
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		_, err := c.Export(cctx, ptraceotlp.NewExportRequestFromTraces(td))
		if err == nil {
			return true, nil
		}
		if st := status.Convert(err); st.Code() == codes.ResourceExhausted {
			return false, errors.New(st.Message())
		}
		return false, fmt.Errorf("unexpected: %w", err)
	}
}

func zipkinPush(url string) func(context.Context, int) (bool, error) {
	return func(ctx context.Context, n int) (bool, error) {
		id := diskTraceID(n)
		body := fmt.Sprintf(`[{"traceId":%q,"id":%q,"name":"push","timestamp":%d,"duration":1000,"localEndpoint":{"serviceName":"diskfull-zipkin"}}]`,
			hex.EncodeToString(id[:]), hex.EncodeToString(id[8:]), time.Now().UnixMicro())
		return postExpect(ctx, url, []byte(body), http.StatusAccepted, "Content-Type", "application/json")
	}
}

func remoteWritePush(url string) func(context.Context, int) (bool, error) {
	return func(ctx context.Context, n int) (bool, error) {
		req := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
			Labels:  []prompb.Label{{Name: "__name__", Value: "diskfull_sample"}, {Name: "seq", Value: fmt.Sprint(n)}},
			Samples: []prompb.Sample{{Value: float64(n), Timestamp: time.Now().UnixMilli()}},
		}}}
		raw, err := req.Marshal()
		if err != nil {
			return false, err
		}
		return postExpect(ctx, url, snappy.Encode(nil, raw), http.StatusNoContent, "Content-Type", "application/x-protobuf",
			"Content-Encoding", "snappy", "X-Prometheus-Remote-Write-Version", "0.1.0")
	}
}

// postExpect posts body: acked on want; a 507 with Retry-After is a
// refusal (its body the error); anything else is unexpected.
func postExpect(ctx context.Context, url string, body []byte, want int, headers ...string) (bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return false, err
	}
	for i := 0; i < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false, fmt.Errorf("unexpected: %w", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	switch {
	case resp.StatusCode == want:
		return true, nil
	case resp.StatusCode == http.StatusInsufficientStorage && resp.Header.Get("Retry-After") != "":
		return false, errors.New(strings.TrimSpace(string(b)))
	}
	return false, fmt.Errorf("unexpected %d: %s", resp.StatusCode, b)
}

// checkRefusalAnswers asks each path once more while the disk is full and
// checks the answer's code, reason and retry delay.
func checkRefusalAnswers(t *testing.T, httpAddr, zipkinAddr string, c ptraceotlp.GRPCClient) {
	t.Helper()
	_, err := c.Export(context.Background(), ptraceotlp.NewExportRequestFromTraces(oneTrace()))
	st := status.Convert(err)
	if st.Code() != codes.ResourceExhausted || !strings.Contains(st.Message(), "data dir full") || len(st.Details()) == 0 {
		t.Errorf("OTLP/gRPC on a full disk: %v %q with %d details, want RESOURCE_EXHAUSTED naming the data dir with a RetryInfo", st.Code(), st.Message(), len(st.Details()))
	} else {
		t.Logf("OTLP/gRPC answer: %v %q", st.Code(), st.Message())
	}
	for name, url := range map[string]string{"zipkin": "http://" + zipkinAddr + "/api/v2/spans", "remote_write": "http://" + httpAddr + "/api/v1/write"} {
		push := zipkinPush(url)
		if name == "remote_write" {
			push = remoteWritePush(url)
		}
		acked, err := push(context.Background(), 99_000_000)
		if acked || err == nil || !strings.Contains(err.Error(), "data dir full") {
			t.Errorf("%s on a full disk: acked %v, %v; want 507 with Retry-After naming the data dir", name, acked, err)
		} else {
			t.Logf("%s answer: 507 %q", name, err)
		}
	}
}

func oneTrace() ptrace.Traces {
	td := ptrace.NewTraces()
	sp := td.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	id := diskTraceID(98_000_000)
	sp.SetTraceID(pcommon.TraceID(id))
	sp.SetSpanID(pcommon.SpanID(id[8:]))
	return td
}

// traceFound reports whether the Jaeger API returns trace n with its span.
func traceFound(t *testing.T, httpAddr string, n int) bool {
	t.Helper()
	id := diskTraceID(n)
	resp, err := http.Get("http://" + httpAddr + "/api/traces/" + hex.EncodeToString(id[:]))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode == http.StatusOK && strings.Contains(string(b), hex.EncodeToString(id[8:]))
}

// missingSamples counts the acknowledged sample sequence numbers that a
// PromQL query does not return.
func missingSamples(t *testing.T, httpAddr string, acked []int) int {
	t.Helper()
	resp, err := http.Get("http://" + httpAddr + "/api/v1/query?query=diskfull_sample")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Data struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, r := range out.Data.Result {
		have[r.Metric["seq"]] = true
	}
	missing := 0
	for _, n := range acked {
		if !have[fmt.Sprint(n)] {
			missing++
		}
	}
	return missing
}
