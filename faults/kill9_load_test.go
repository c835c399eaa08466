//go:build faults

package faults

import (
	"bytes"
	"context"
	encbin "encoding/binary"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	accesslogdatav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	alsv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/prompb"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/glassmesh/glassmesh/control/naming"
)

// The mixed load: each sender pauses this long between requests, and
// keeps going through the kills (a failed request is simply not recorded).
const (
	loadPause            = 50 * time.Millisecond
	otlpTracesPerRequest = 4 // per OTLP request, 3 spans each
	zipkinTraces         = 2 // per Zipkin request, 2 spans each
	rwSeries             = 4 // per remote-write request, one sample each
	alsBatch             = 10
	requestDeadline      = 3 * time.Second
)

// ledger holds what glassmesh acknowledged, to be read back after the
// kills, and when each kind of ingest was last acknowledged.
type ledger struct {
	mu      sync.Mutex
	traces  map[string][]string // acknowledged trace id → its span ids
	fresh   []string            // trace ids acknowledged since the last check
	samples []rwSample
	als     map[int][]alsSend // per epoch: every batch sent on its stream
	lastAck map[string]time.Time
	first   map[string]time.Time // the first ack of each kind since mark
	epoch   int                  // ALS streams of epoch e report as workload k9-als-e
}

type rwSample struct {
	series string
	ts     int64
	value  float64
}

type alsSend struct {
	at      time.Time
	entries int
}

func newLedger() *ledger {
	return &ledger{traces: map[string][]string{}, als: map[int][]alsSend{}, lastAck: map[string]time.Time{}, first: map[string]time.Time{}}
}

// ack notes an acknowledgement of kind; hold mu.
func (l *ledger) ack(kind string) {
	now := time.Now()
	l.lastAck[kind] = now
	if l.first[kind].IsZero() {
		l.first[kind] = now
	}
}

// mark forgets the first acks, at a restart.
func (l *ledger) mark() {
	l.mu.Lock()
	defer l.mu.Unlock()
	clear(l.first)
}

// firstAck is when kind was first acknowledged since mark.
func (l *ledger) firstAck(kind string) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.first[kind]
}

func (l *ledger) ackTraces(kind string, spans map[string][]string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for id, s := range spans {
		l.traces[id] = append(l.traces[id], s...)
		l.fresh = append(l.fresh, id)
	}
	l.ack(kind)
}

// acked reports whether kind was acknowledged after t.
func (l *ledger) acked(kind string, t time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lastAck[kind].After(t)
}

// traceID is the id of trace n of sender kind k: distinct across kinds and runs.
func traceID(k byte, n uint64) pcommon.TraceID {
	var id pcommon.TraceID
	copy(id[:], "kill9")
	id[5] = k
	encbin.BigEndian.PutUint64(id[8:], n)
	return id
}

func spanID(n uint64, s int) pcommon.SpanID {
	var id pcommon.SpanID
	encbin.BigEndian.PutUint64(id[:], n<<8|uint64(s+1))
	return id
}

// sendOTLP exports spans over OTLP/gRPC until ctx ends.
func sendOTLP(ctx context.Context, cc *grpc.ClientConn, l *ledger) {
	client := ptraceotlp.NewGRPCClient(cc)
	for seq := uint64(0); pause(ctx); {
		td := ptrace.NewTraces()
		acked := map[string][]string{}
		rs := td.ResourceSpans().AppendEmpty()
		rs.Resource().Attributes().PutStr("service.name", "k9-otlp")
		ss := rs.ScopeSpans().AppendEmpty()
		now := time.Now()
		for range otlpTracesPerRequest {
			seq++
			id := traceID('o', seq)
			for s := range 3 {
				sp := ss.Spans().AppendEmpty()
				sp.SetTraceID(id)
				sp.SetSpanID(spanID(seq, s))
				if s > 0 {
					sp.SetParentSpanID(spanID(seq, 0))
				}
				sp.SetName("/k9.Otlp/Get")
				sp.SetStartTimestamp(pcommon.NewTimestampFromTime(now))
				sp.SetEndTimestamp(pcommon.NewTimestampFromTime(now.Add(time.Millisecond)))
				acked[id.String()] = append(acked[id.String()], sp.SpanID().String())
			}
		}
		rctx, cancel := context.WithTimeout(ctx, requestDeadline)
		_, err := client.Export(rctx, ptraceotlp.NewExportRequestFromTraces(td))
		cancel()
		if err == nil {
			l.ackTraces("otlp", acked)
		}
	}
}

// zipkinSpan is a Zipkin v2 JSON span.
type zipkinSpan struct {
	TraceID       string            `json:"traceId"`
	ID            string            `json:"id"`
	ParentID      string            `json:"parentId,omitempty"`
	Name          string            `json:"name"`
	Kind          string            `json:"kind"`
	Timestamp     int64             `json:"timestamp"`
	Duration      int64             `json:"duration"`
	LocalEndpoint map[string]string `json:"localEndpoint"`
}

// sendZipkin posts Zipkin v2 JSON spans until ctx ends; 202 is the ack.
func sendZipkin(ctx context.Context, url string, l *ledger) {
	hc := &http.Client{Timeout: requestDeadline}
	for seq := uint64(0); pause(ctx); {
		var spans []zipkinSpan
		acked := map[string][]string{}
		for range zipkinTraces {
			seq++
			id := traceID('z', seq).String()
			for s := range 2 {
				sp := zipkinSpan{TraceID: id, ID: spanID(seq, s).String(), Name: "get /k9", Kind: "SERVER",
					Timestamp: time.Now().UnixMicro(), Duration: 1000, LocalEndpoint: map[string]string{"serviceName": "k9-zipkin"}}
				if s > 0 {
					sp.ParentID, sp.Kind = spanID(seq, 0).String(), "CLIENT"
				}
				spans = append(spans, sp)
				acked[id] = append(acked[id], sp.ID)
			}
		}
		body, _ := json.Marshal(spans)
		if post(ctx, hc, url, "application/json", nil, body) {
			l.ackTraces("zipkin", acked)
		}
	}
}

// sendRemoteWrite posts one sample of each of rwSeries series per request
// (remote-write 1.0: snappy protobuf) until ctx ends; 2xx is the ack.
func sendRemoteWrite(ctx context.Context, url string, l *ledger) {
	hc := &http.Client{Timeout: requestDeadline}
	headers := map[string]string{"Content-Encoding": "snappy", "X-Prometheus-Remote-Write-Version": "0.1.0"}
	var last int64
	for seq := 0; pause(ctx); seq++ {
		ts := max(time.Now().UnixMilli(), last+1) // a series' samples only go forward
		last = ts
		req := &prompb.WriteRequest{}
		var sent []rwSample
		for s := range rwSeries {
			series := fmt.Sprint(s)
			req.Timeseries = append(req.Timeseries, prompb.TimeSeries{
				Labels:  []prompb.Label{{Name: "__name__", Value: "k9_rw"}, {Name: "series", Value: series}},
				Samples: []prompb.Sample{{Value: float64(seq), Timestamp: ts}}})
			sent = append(sent, rwSample{series: series, ts: ts, value: float64(seq)})
		}
		raw, err := req.Marshal()
		if err != nil {
			panic(err)
		}
		if post(ctx, hc, url, "application/x-protobuf", headers, snappy.Encode(nil, raw)) {
			l.mu.Lock()
			l.samples = append(l.samples, sent...)
			l.ack("remote-write")
			l.mu.Unlock()
		}
	}
}

// post reports whether a POST got a 2xx answer.
func post(ctx context.Context, hc *http.Client, url, contentType string, headers map[string]string, body []byte) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		panic(err)
	}
	req.Header.Set("Content-Type", contentType)
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode/100 == 2
}

// sendALS streams Envoy HTTP access logs as a sidecar does, a stream per
// glassmesh process: the stream opened after a restart reports as the
// epoch's own workload, so what each kill lost can be read per epoch.
// When ctx ends the stream is closed as Envoy closes it, so the last
// entries are read before the test counts them.
func sendALS(ctx context.Context, cc *grpc.ClientConn, l *ledger) {
	for ctx.Err() == nil {
		sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		stopOpen := context.AfterFunc(ctx, cancel) // only while it waits for the server
		st, err := alsv3.NewAccessLogServiceClient(cc).StreamAccessLogs(sctx, grpc.WaitForReady(true))
		if !stopOpen() || err != nil {
			cancel()
			continue
		}
		l.mu.Lock()
		epoch := l.epoch
		l.mu.Unlock()
		msg := &alsv3.StreamAccessLogsMessage{
			Identifier: &alsv3.StreamAccessLogsMessage_Identifier{Node: alsNode(epoch), LogName: "glassmesh"}}
		for {
			if !pause(ctx) {
				_, _ = st.CloseAndRecv()
				break
			}
			msg.LogEntries = &alsv3.StreamAccessLogsMessage_HttpLogs{HttpLogs: &alsv3.StreamAccessLogsMessage_HTTPAccessLogEntries{LogEntry: alsEntries()}}
			if st.Send(msg) != nil {
				break
			}
			msg.Identifier = nil // Envoy identifies itself on a stream's first message only
			l.mu.Lock()
			l.als[epoch] = append(l.als[epoch], alsSend{at: time.Now(), entries: alsBatch})
			l.ack("als")
			l.mu.Unlock()
		}
		cancel()
	}
}

func alsWorkload(epoch int) string { return fmt.Sprintf("k9-als-%d", epoch) }

func alsNode(epoch int) *corev3.Node {
	meta, _ := structpb.NewStruct(map[string]any{
		naming.NodeMetaNamespace: "default", naming.NodeMetaWorkloadName: alsWorkload(epoch),
		naming.NodeMetaLabels: map[string]any{"app": "k9-als", "version": "v1"},
	})
	return &corev3.Node{Id: naming.NodeID("10.200.0.1", alsWorkload(epoch)+"-0", "default"), Metadata: meta}
}

// alsEntries are alsBatch outbound calls to svc-0, as its caller's
// sidecar logs them.
func alsEntries() []*accesslogdatav3.HTTPAccessLogEntry {
	out := make([]*accesslogdatav3.HTTPAccessLogEntry, alsBatch)
	for i := range out {
		out[i] = &accesslogdatav3.HTTPAccessLogEntry{
			CommonProperties: &accesslogdatav3.AccessLogCommon{
				UpstreamCluster: "outbound|9080||svc-0.default.svc.cluster.local",
				StartTime:       timestamppb.Now(), TimeToLastDownstreamTxByte: durationpb.New(3 * time.Millisecond)},
			ProtocolVersion: accesslogdatav3.HTTPAccessLogEntry_HTTP11,
			Request: &accesslogdatav3.HTTPRequestProperties{RequestMethod: corev3.RequestMethod_GET,
				Path: "/k9", Authority: "svc-0:9080", RequestHeadersBytes: 100},
			Response: &accesslogdatav3.HTTPResponseProperties{ResponseCode: wrapperspb.UInt32(200), ResponseBodyBytes: 40},
		}
	}
	return out
}

// pause waits loadPause; false once ctx ended.
func pause(ctx context.Context) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(loadPause):
		return true
	}
}
