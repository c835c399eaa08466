//go:build faults

package faults

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	accesslogdatav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	alsv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/prometheus/prompb"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// The load each request carries, per path.
const (
	spansPerRequest   = 100 // OTLP/gRPC traces and Zipkin
	samplesPerRequest = 500 // remote-write: one sample of each of 500 series
	pointsPerRequest  = 200 // OTLP/HTTP metrics: one gauge point of each of 200 series
	entriesPerMessage = 100 // ALS
	messagesPerStream = 10  // ALS: a stream sends this many, then closes
	templates         = 64  // distinct pre-encoded trace requests per path
	requestTimeout    = 30 * time.Second
)

// outcome is what one request (an ALS stream: one message) came to.
type outcome int

const (
	accepted outcome = iota
	refused          // 429 with Retry-After, or RESOURCE_EXHAUSTED with RetryInfo
	failed           // anything else: a 5xx, another code, a hang, a broken connection
)

// counts are one path's outcomes, in requests and in units (spans,
// samples, points, entries).
type counts struct {
	accepted, refused, failed atomic.Int64
	units                     atomic.Int64 // accepted units
	offeredUnits              atomic.Int64
	firstFailure              atomic.Pointer[string]
}

func (c *counts) add(o outcome, units int, err error) {
	c.offeredUnits.Add(int64(units))
	switch o {
	case accepted:
		c.accepted.Add(1)
		c.units.Add(int64(units))
	case refused:
		c.refused.Add(1)
	default:
		c.failed.Add(1)
		msg := fmt.Sprint(err)
		c.firstFailure.CompareAndSwap(nil, &msg)
	}
}

// client sends one kind of request in a loop, as fast as it can, with no
// back-off: it is the load.
type client interface {
	// send makes one attempt and says what came of it and how many units
	// it offered.
	send(ctx context.Context) (outcome, int, error)
}

// path is one ingest path: a name and how to make its clients.
type path struct {
	name  string
	unit  string
	newCl func(id int) client
	acked func() []string // what an accepted request carried, to be read back
}

// rawCodec sends and receives pre-encoded protobuf, so a load client
// spends no CPU encoding; the server cannot tell.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *(v.(*[]byte)), nil }
func (rawCodec) Unmarshal(data []byte, v any) error {
	*(v.(*[]byte)) = append([]byte(nil), data...)
	return nil
}
func (rawCodec) Name() string { return "proto" }

// grpcOutcome classifies a gRPC error: a refusal must carry a RetryInfo.
func grpcOutcome(err error) outcome {
	if err == nil {
		return accepted
	}
	st := status.Convert(err)
	if st.Code() != codes.ResourceExhausted {
		return failed
	}
	for _, d := range st.Details() {
		if _, ok := d.(*errdetails.RetryInfo); ok {
			return refused
		}
	}
	return failed
}

// httpOutcome classifies an HTTP answer: a refusal must carry Retry-After.
func httpOutcome(resp *http.Response, err error) (outcome, error) {
	if err != nil {
		return failed, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	switch {
	case resp.StatusCode/100 == 2:
		return accepted, nil
	case resp.StatusCode == http.StatusTooManyRequests && resp.Header.Get("Retry-After") != "":
		return refused, nil
	}
	return failed, fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(b))
}

// ackLog keeps a few ids of accepted requests, to read back.
type ackLog struct {
	mu  sync.Mutex
	ids map[string]bool
}

func (a *ackLog) add(id string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.ids == nil {
		a.ids = map[string]bool{}
	}
	if len(a.ids) < 64 {
		a.ids[id] = true
	}
}

func (a *ackLog) list() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []string
	for id := range a.ids {
		out = append(out, id)
	}
	return out
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// otlpTraces sends pre-encoded ExportTraceServiceRequests over gRPC.
type otlpTraces struct {
	conn   *grpc.ClientConn
	bodies [][]byte
	ids    []string // each body's trace id
	n      int
	acks   *ackLog
}

func newOTLPTraceBodies() ([][]byte, []string) {
	var bodies [][]byte
	var ids []string
	for range templates {
		req := ptraceotlp.NewExportRequest()
		rs := req.Traces().ResourceSpans().AppendEmpty()
		rs.Resource().Attributes().PutStr("service.name", "overload-otlp")
		ss := rs.ScopeSpans().AppendEmpty().Spans()
		var tid pcommon.TraceID
		_, _ = rand.Read(tid[:])
		now := time.Now()
		for i := range spansPerRequest {
			s := ss.AppendEmpty()
			s.SetTraceID(tid)
			var sid pcommon.SpanID
			_, _ = rand.Read(sid[:])
			s.SetSpanID(sid)
			s.SetName(fmt.Sprintf("op-%d", i%10))
			s.SetKind(ptrace.SpanKindServer)
			s.SetStartTimestamp(pcommon.NewTimestampFromTime(now))
			s.SetEndTimestamp(pcommon.NewTimestampFromTime(now.Add(time.Millisecond)))
			s.Attributes().PutStr("http.route", "/api/items/{id}")
			s.Attributes().PutInt("http.status_code", 200)
		}
		b, _ := req.MarshalProto()
		bodies, ids = append(bodies, b), append(ids, tid.String())
	}
	return bodies, ids
}

func (c *otlpTraces) send(ctx context.Context) (outcome, int, error) {
	i := c.n % len(c.bodies)
	c.n++
	var out []byte
	err := c.conn.Invoke(ctx, "/opentelemetry.proto.collector.trace.v1.TraceService/Export", &c.bodies[i], &out, grpc.ForceCodec(rawCodec{}))
	o := grpcOutcome(err)
	if o == accepted {
		c.acks.add(c.ids[i])
	}
	return o, spansPerRequest, err
}

// zipkin sends pre-encoded Zipkin v2 JSON lists.
type zipkin struct {
	url    string
	hc     *http.Client
	bodies [][]byte
	ids    []string
	n      int
	acks   *ackLog
}

func newZipkinBodies() ([][]byte, []string) {
	var bodies [][]byte
	var ids []string
	for range templates {
		tid := randomHex(16)
		ts := time.Now().UnixMicro()
		spans := make([]map[string]any, spansPerRequest)
		for i := range spans {
			spans[i] = map[string]any{"traceId": tid, "id": randomHex(8), "name": fmt.Sprintf("op-%d", i%10),
				"kind": "SERVER", "timestamp": ts, "duration": 1000,
				"localEndpoint": map[string]any{"serviceName": "overload-zipkin"},
				"tags":          map[string]string{"http.path": "/api/items/1", "http.status_code": "200"}}
		}
		b, _ := json.Marshal(spans)
		bodies, ids = append(bodies, b), append(ids, tid)
	}
	return bodies, ids
}

func (c *zipkin) send(ctx context.Context) (outcome, int, error) {
	i := c.n % len(c.bodies)
	c.n++
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(c.bodies[i]))
	req.Header.Set("Content-Type", "application/json")
	o, err := httpOutcome(c.hc.Do(req))
	if o == accepted {
		c.acks.add(c.ids[i])
	}
	return o, spansPerRequest, err
}

// remoteWrite sends one sample of each of its own series per request,
// the value counting up, so that the last accepted value can be read back.
type remoteWrite struct {
	url  string
	hc   *http.Client
	req  prompb.WriteRequest
	last int64 // timestamp of the last request, ms
	seq  float64
	acks *ackLog
	id   int
}

func newRemoteWrite(url string, hc *http.Client, id int, acks *ackLog) *remoteWrite {
	c := &remoteWrite{url: url, hc: hc, acks: acks, id: id}
	for i := range samplesPerRequest {
		c.req.Timeseries = append(c.req.Timeseries, prompb.TimeSeries{
			Labels: []prompb.Label{{Name: "__name__", Value: "overload_rw"}, {Name: "client", Value: fmt.Sprint(id)},
				{Name: "series", Value: fmt.Sprint(i)}},
			Samples: []prompb.Sample{{}},
		})
	}
	return c
}

func (c *remoteWrite) send(ctx context.Context) (outcome, int, error) {
	c.last = max(c.last+1, time.Now().UnixMilli())
	c.seq++
	for i := range c.req.Timeseries {
		c.req.Timeseries[i].Samples[0] = prompb.Sample{Value: c.seq, Timestamp: c.last}
	}
	raw, _ := c.req.Marshal()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(snappy.Encode(nil, raw)))
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("Content-Encoding", "snappy")
	req.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	o, err := httpOutcome(c.hc.Do(req))
	if o == accepted {
		c.acks.add(fmt.Sprintf(`overload_rw{client="%d",series="0"} %g`, c.id, c.seq))
	}
	return o, samplesPerRequest, err
}

// otlpMetrics sends one point of each of its own gauges per request over
// OTLP/HTTP, the value counting up like remoteWrite's.
type otlpMetrics struct {
	url  string
	hc   *http.Client
	id   int
	seq  float64
	last time.Time
	acks *ackLog
}

func (c *otlpMetrics) send(ctx context.Context) (outcome, int, error) {
	c.seq++
	// Prometheus keeps milliseconds: each request its own.
	now := time.Now().Truncate(time.Millisecond)
	if !now.After(c.last) {
		now = c.last.Add(time.Millisecond)
	}
	c.last = now
	req := pmetricotlp.NewExportRequest()
	rm := req.Metrics().ResourceMetrics().AppendEmpty()
	rm.Resource().Attributes().PutStr("service.name", "overload-otlp-metrics")
	rm.Resource().Attributes().PutStr("service.instance.id", fmt.Sprint(c.id))
	ms := rm.ScopeMetrics().AppendEmpty().Metrics()
	m := ms.AppendEmpty()
	m.SetName("overload_otlp")
	g := m.SetEmptyGauge()
	for i := range pointsPerRequest {
		p := g.DataPoints().AppendEmpty()
		p.SetTimestamp(pcommon.NewTimestampFromTime(now))
		p.SetDoubleValue(c.seq)
		p.Attributes().PutStr("series", fmt.Sprint(i))
	}
	body, _ := req.MarshalProto()
	hreq, _ := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	hreq.Header.Set("Content-Type", "application/x-protobuf")
	o, err := httpOutcome(c.hc.Do(hreq))
	if o == accepted {
		c.acks.add(fmt.Sprintf(`overload_otlp{instance="%d",series="0"} %g`, c.id, c.seq))
	}
	return o, pointsPerRequest, err
}

// als streams pre-encoded access-log messages: messagesPerStream of them,
// then it closes its side. A stream the server ends early with
// RESOURCE_EXHAUSTED counts its unsent messages as refused.
type als struct {
	conn        *grpc.ClientConn
	first, next []byte
	ackedUnits  *atomic.Int64 // entries of streams that ended OK
}

func newALSMessages(id int) (first, next []byte) {
	entries := make([]*accesslogdatav3.HTTPAccessLogEntry, entriesPerMessage)
	for i := range entries {
		entries[i] = &accesslogdatav3.HTTPAccessLogEntry{
			CommonProperties: &accesslogdatav3.AccessLogCommon{
				UpstreamCluster: "outbound|9080||reviews.default.svc.cluster.local",
				StartTime:       timestamppb.Now(),
			},
			Request:  &accesslogdatav3.HTTPRequestProperties{RequestMethod: corev3.RequestMethod_GET, Path: fmt.Sprintf("/reviews/%d", i%10), Authority: "reviews:9080"},
			Response: &accesslogdatav3.HTTPResponseProperties{ResponseCode: wrapperspb.UInt32(200)},
		}
	}
	logs := &alsv3.StreamAccessLogsMessage_HttpLogs{HttpLogs: &alsv3.StreamAccessLogsMessage_HTTPAccessLogEntries{LogEntry: entries}}
	node := &corev3.Node{Id: fmt.Sprintf("sidecar~10.0.%d.%d~productpage-v1-%d.default~default.svc.cluster.local", id/250, id%250, id)}
	first, _ = proto.Marshal(&alsv3.StreamAccessLogsMessage{Identifier: &alsv3.StreamAccessLogsMessage_Identifier{Node: node, LogName: "als"}, LogEntries: logs})
	next, _ = proto.Marshal(&alsv3.StreamAccessLogsMessage{LogEntries: logs})
	return first, next
}

var alsDesc = &grpc.StreamDesc{StreamName: "StreamAccessLogs", ClientStreams: true}

// send runs one stream; its outcome is the stream's, its units the
// entries it sent.
func (c *als) send(ctx context.Context) (outcome, int, error) {
	st, err := c.conn.NewStream(ctx, alsDesc, "/envoy.service.accesslog.v3.AccessLogService/StreamAccessLogs", grpc.ForceCodec(rawCodec{}))
	if err != nil {
		return grpcOutcome(err), entriesPerMessage * messagesPerStream, err
	}
	sent := 0
	for i := range messagesPerStream {
		msg := &c.next
		if i == 0 {
			msg = &c.first
		}
		if err := st.SendMsg(msg); err != nil {
			break // the server ended the stream: its status follows
		}
		sent++
	}
	_ = st.CloseSend()
	var out []byte
	err = st.RecvMsg(&out)
	if errors.Is(err, io.EOF) {
		err = nil
	}
	if err == nil && sent == messagesPerStream {
		c.ackedUnits.Add(int64(entriesPerMessage * messagesPerStream))
	}
	return grpcOutcome(err), entriesPerMessage * messagesPerStream, err
}

// drive runs clients until ctx ends, adding their outcomes to c.
func drive(ctx context.Context, clients []client, c *counts) *sync.WaitGroup {
	var wg sync.WaitGroup
	end, _ := ctx.Deadline()
	for _, cl := range clients {
		wg.Go(func() {
			for ctx.Err() == nil {
				rctx, cancel := context.WithTimeout(ctx, requestTimeout)
				o, units, err := cl.send(rctx)
				cancel()
				if ctx.Err() != nil || !time.Now().Before(end) {
					return // the phase ended mid-request: not the server's doing
				}
				if rctx.Err() == context.DeadlineExceeded {
					o, err = failed, fmt.Errorf("no answer in %s: %v", requestTimeout, err)
				}
				c.add(o, units, err)
			}
		})
	}
	return &wg
}

// promQuery is the value of an instant query's single sample, or an error.
func promQuery(httpAddr, q string) (float64, error) {
	resp, err := http.Get("http://" + httpAddr + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var r struct {
		Data struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return 0, err
	}
	if len(r.Data.Result) != 1 {
		return 0, fmt.Errorf("%s: %d samples", q, len(r.Data.Result))
	}
	var v float64
	_, err = fmt.Sscan(fmt.Sprint(r.Data.Result[0].Value[1]), &v)
	return v, err
}
