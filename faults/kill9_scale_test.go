//go:build faults

package faults

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/prompb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/structpb"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/glassmesh/glassmesh/control/naming"
)

// What a restart at scale must give back, and by when (from exec). The
// targets are 5 s for the mesh and span ingest; on the shared 2-core
// machine the case asserts 5x that. Metrics follow the TSDB's WAL replay
// (minutes here), so their bound only catches a replay that never ends.
const (
	scaleFastDeadline    = 25 * time.Second
	scaleMetricsDeadline = 10 * time.Minute
	scaleSampled         = 300 // fill traces and series read back after each start
	scaleServices        = 20
)

// TestKill9RestartAtScale: glassmesh on a data dir of 10M stored spans and
// 1M active series is started, killed with SIGKILL once everything is
// open, and started again. Each start must serve xDS and acknowledge
// spans within the fast deadline while the stores open behind, answer
// metrics ingest and PromQL once the TSDB has replayed, and then read back
// a sample of the fill's traces and series, the count of its series, and
// what it acknowledged during the start.
func TestKill9RestartAtScale(t *testing.T) {
	dir := scaleDataDir(t)
	cfg := t.TempDir()
	if err := os.WriteFile(filepath.Join(cfg, "mesh.yaml"), meshYAML(scaleServices, 50), 0o644); err != nil {
		t.Fatal(err)
	}
	n := newNode(t, dir, "--config", cfg)
	first := n.measureStart(t)
	first.check(t, "first start")
	checkScale(t, n, first)
	n.kill(t)
	again := n.measureStart(t)
	again.check(t, "restart after kill -9")
	checkScale(t, n, again)
}

// startFigures are the times from exec until each part answered, and
// what was acknowledged on the way.
type startFigures struct {
	xds, spans, metricsIngest, promql, allReady time.Duration
	errs                                        []string
	traceID                                     string // the Zipkin trace acknowledged during the start
}

func (f *startFigures) check(t *testing.T, what string) {
	t.Helper()
	t.Logf("%s: xDS serving after %s, span ingest acknowledged after %s, metrics ingest after %s, PromQL after %s, /readyz/all after %s",
		what, f.xds, f.spans, f.metricsIngest, f.promql, f.allReady)
	for _, e := range f.errs {
		t.Errorf("%s: %s", what, e)
	}
}

// measureStart starts glassmesh and times, concurrently and each from
// exec, a proxyless client's first Listener, the first Zipkin write
// acknowledged (202), the first remote-write acknowledged (2xx), the first
// PromQL answer (200) and /readyz/all. A refusal before the store opened
// must be a 503 with Retry-After; anything else is an error.
func (n *node) measureStart(t *testing.T) *startFigures {
	t.Helper()
	began := time.Now()
	startTimeout = 2 * time.Minute // listening comes first now, whatever the data dir
	n.g = launch(t, append(n.args, "--data-dir", n.dir, "--http-addr", n.http, "--grpc-addr", n.grpc, "--zipkin-addr", n.zipkin)...)
	n.starts++
	f := &startFigures{traceID: fmt.Sprintf("%016x%016x", 0xbeef, rand.Uint64())}
	var mu sync.Mutex
	fail := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		f.errs = append(f.errs, fmt.Sprintf(format, args...))
	}
	var wg sync.WaitGroup
	until := func(d *time.Duration, deadline time.Duration, what string, try func() (bool, error)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Since(began) < deadline {
				ok, err := try()
				if err != nil {
					fail("%s: %v", what, err)
					return
				}
				if ok {
					*d = time.Since(began).Round(time.Millisecond)
					return
				}
				time.Sleep(50 * time.Millisecond)
			}
			fail("%s: not within %s of exec", what, deadline)
		}()
	}
	hc := &http.Client{Timeout: 5 * time.Second}
	cc := n.dialXDS(t)
	until(&f.xds, scaleFastDeadline, "xDS", func() (bool, error) { return fetchListener(cc), nil })
	until(&f.spans, scaleFastDeadline, "span ingest", func() (bool, error) { return n.postSpans(hc, f.traceID) })
	until(&f.metricsIngest, scaleMetricsDeadline, "metrics ingest", func() (bool, error) {
		return n.postSample(hc)
	})
	until(&f.promql, scaleMetricsDeadline, "PromQL", func() (bool, error) {
		return answered(hc, "http://"+n.http+"/api/v1/query?query=vector(1)")
	})
	until(&f.allReady, scaleMetricsDeadline, "/readyz/all", func() (bool, error) {
		resp, err := hc.Get("http://" + n.http + "/readyz/all")
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
	wg.Wait()
	t.Logf("start %d: %d answers were 429 (memory budget) before success", n.starts, refused429.Swap(0))
	t.Logf("start %d: trace store opened in %s, TSDB in %s, istio_* counters restored in %s, \"glassmesh ready\" at %s",
		n.starts, n.took("trace store opened", "took"), n.took("metrics storage opened", "took"),
		n.took("metrics restored from TSDB", "took"), n.took("glassmesh ready", "sinceStart"))
	return f
}

// dialXDS is a client that reconnects quickly, as Envoy does.
func (n *node) dialXDS(t *testing.T) *grpc.ClientConn {
	cc, err := grpc.NewClient(n.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: backoff.Config{BaseDelay: 100 * time.Millisecond,
			Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second}, MinConnectTimeout: time.Second}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// fetchListener asks for one service's Listener as a proxyless client and
// reports whether it came.
func fetchListener(cc *grpc.ClientConn) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	st, err := discovery.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(ctx, grpc.WaitForReady(true))
	if err != nil {
		return false
	}
	name := names(1)[resource.ListenerType][0]
	err = st.Send(&discovery.DiscoveryRequest{TypeUrl: resource.ListenerType, ResourceNames: []string{name},
		Node: &corev3.Node{Id: "restart-probe", Metadata: &structpb.Struct{Fields: map[string]*structpb.Value{
			naming.NodeMetaGenerator: structpb.NewStringValue(naming.GeneratorGRPC)}}}})
	if err != nil {
		return false
	}
	r, err := st.Recv()
	return err == nil && len(r.GetResources()) == 1
}

// postSpans writes one Zipkin trace of two spans: true on 202; a refusal
// other than 503 with Retry-After is an error.
func (n *node) postSpans(hc *http.Client, id string) (bool, error) {
	spans := []zipkinSpan{
		{TraceID: id, ID: "00000000000000a1", Name: "restart", Kind: "SERVER", Timestamp: time.Now().UnixMicro(), Duration: 1000,
			LocalEndpoint: map[string]string{"serviceName": "k9-restart"}},
		{TraceID: id, ID: "00000000000000a2", ParentID: "00000000000000a1", Name: "restart", Kind: "CLIENT",
			Timestamp: time.Now().UnixMicro(), Duration: 500, LocalEndpoint: map[string]string{"serviceName": "k9-restart"}},
	}
	body, _ := json.Marshal(spans)
	resp, err := hc.Post("http://"+n.zipkin+"/api/v2/spans", "application/json", strings.NewReader(string(body)))
	return acknowledged(resp, err, http.StatusAccepted)
}

// postSample remote-writes one sample of k9_restart: true on 2xx.
func (n *node) postSample(hc *http.Client) (bool, error) {
	ts := time.Now().UnixMilli()
	req := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
		Labels:  []prompb.Label{{Name: "__name__", Value: "k9_restart"}, {Name: "start", Value: fmt.Sprint(n.starts)}},
		Samples: []prompb.Sample{{Value: 1, Timestamp: ts}}}}}
	raw, err := req.Marshal()
	if err != nil {
		return false, err
	}
	hreq, _ := http.NewRequest(http.MethodPost, "http://"+n.http+"/api/v1/write", strings.NewReader(string(snappy.Encode(nil, raw))))
	hreq.Header.Set("Content-Type", "application/x-protobuf")
	hreq.Header.Set("Content-Encoding", "snappy")
	hreq.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	resp, err := hc.Do(hreq)
	return acknowledged(resp, err, http.StatusNoContent)
}

// answered reports whether a GET got 200; 503 with Retry-After is "not
// yet", anything else an error.
func answered(hc *http.Client, u string) (bool, error) {
	resp, err := hc.Get(u)
	return acknowledged(resp, err, http.StatusOK)
}

// refused429 counts 429 answers during the starts.
var refused429 atomic.Int64

// acknowledged reads an answer: want is success, a refused connection or
// 503 or 429 with Retry-After is "not yet", any other status an error.
func acknowledged(resp *http.Response, err error, want int) (bool, error) {
	if err != nil {
		return false, nil // not listening yet
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == want || want == http.StatusNoContent && resp.StatusCode/100 == 2:
		return true, nil
	case resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") != "":
		return false, nil
	case resp.StatusCode == http.StatusTooManyRequests && resp.Header.Get("Retry-After") != "":
		// Over the memory budget (the TSDB's replay holds a lot): also
		// retryable, and counted.
		refused429.Add(1)
		return false, nil
	}
	return false, fmt.Errorf("answered %s (Retry-After %q)", resp.Status, resp.Header.Get("Retry-After"))
}

// checkScale reads back a random sample of the fill's traces (from blocks
// and head) and series, counts the series, and reads what the start
// acknowledged.
func checkScale(t *testing.T, n *node, f *startFigures) {
	t.Helper()
	began := time.Now()
	ids := []int{0, scaleTraces - scaleHeadTraces, scaleTraces - 1}
	for range scaleSampled - len(ids) {
		ids = append(ids, rand.IntN(scaleTraces))
	}
	for _, id := range ids {
		if spans := n.traceSpans(t, fmt.Sprintf("%016x%016x", 0xfeed, id)); len(spans) != 8 {
			t.Errorf("fill trace %d: %d spans, want 8", id, len(spans))
		}
	}
	t.Logf("read back %d fill traces in %s", len(ids), time.Since(began).Round(time.Millisecond))
	if spans := n.traceSpans(t, f.traceID); len(spans) != 2 {
		t.Errorf("trace %s acknowledged during the start: %d spans, want 2", f.traceID, len(spans))
	}
	began = time.Now()
	series := make([]string, scaleSampled)
	for i := range series {
		series[i] = fmt.Sprint(rand.IntN(scaleSeries))
	}
	q := fmt.Sprintf(`count(last_over_time({job="fill",series=~"%s"}[1d]))`, strings.Join(series, "|"))
	if got, want := n.queryScalar(t, q), float64(distinct(series)); got != want {
		t.Errorf("sampled fill series: %v found, want %v", got, want)
	}
	// The fill's samples may be older than PromQL's 5-minute lookback.
	if got := n.queryScalar(t, `count(last_over_time({job="fill"}[1d]))`); got != scaleSeries {
		t.Errorf("count of fill series: %v, want %d", got, scaleSeries)
	}
	if got := n.queryScalar(t, fmt.Sprintf(`count(k9_restart{start="%d"})`, n.starts)); got != 1 {
		t.Errorf("the sample acknowledged during start %d: %v series, want 1", n.starts, got)
	}
	t.Logf("read back %d sampled series and counted %d in %s", scaleSampled, scaleSeries, time.Since(began).Round(time.Millisecond))
}

func distinct(s []string) int {
	m := map[string]bool{}
	for _, v := range s {
		m[v] = true
	}
	return len(m)
}
