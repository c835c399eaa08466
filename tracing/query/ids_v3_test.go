package query_test

import (
	"bytes"
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"
)

// zipkin64 is a two-span Zipkin trace with a 64-bit trace id.
const zipkin64 = `[
 {"traceId":"a3ce929d0e0e4736","id":"0000000000000001","name":"get","kind":"SERVER","timestamp":%d,"duration":1000,"localEndpoint":{"serviceName":"legacy"}},
 {"traceId":"a3ce929d0e0e4736","parentId":"0000000000000001","id":"0000000000000002","name":"call","kind":"CLIENT","timestamp":%d,"duration":500,"localEndpoint":{"serviceName":"legacy"}}
]`

func TestSixtyFourBitIDs(t *testing.T) {
	m := startMesh(t)
	ts := time.Now().Add(-time.Minute).UnixMicro()
	resp, err := http.Post(m.zipkinURL, "application/json", bytes.NewBufferString(fmt.Sprintf(zipkin64, ts, ts+10)))
	if err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("zipkin post: %v %v", resp, err)
	}
	resp.Body.Close()
	for _, id := range []string{"a3ce929d0e0e4736", "0000000000000000a3ce929d0e0e4736"} {
		t.Run("found by "+id, func(t *testing.T) {
			var tr jTraces
			code, body := m.get(t, "/api/traces/"+id, &tr)
			if code != 200 || len(tr.Data) != 1 || tr.Data[0].TraceID != "a3ce929d0e0e4736" {
				t.Fatalf("got %d %.300s, want the trace shown with 16 hex digits", code, body)
			}
			call := findSpan(tr.Data[0], "call")
			if len(call.References) != 1 || call.References[0].TraceID != "a3ce929d0e0e4736" || call.References[0].SpanID != "0000000000000001" {
				t.Fatalf("references %+v", call.References)
			}
		})
	}
}

// otlpJSON is the part of OTLP JSON the v3 tests read.
type otlpJSON struct {
	Result struct {
		ResourceSpans []struct {
			ScopeSpans []struct {
				Spans []struct{ TraceID, SpanID, ParentSpanID, Name string }
			}
		}
	}
}

func (o otlpJSON) spans() int {
	n := 0
	for _, rs := range o.Result.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			n += len(ss.Spans)
		}
	}
	return n
}

func TestV3Traces(t *testing.T) {
	m := startMesh(t)
	now := time.Now()
	id := m.bookinfo(t, now.Add(-time.Minute), "jason")
	var got otlpJSON
	if code, body := m.get(t, "/api/v3/traces/"+id.String(), &got); code != 200 || got.spans() != 6 {
		t.Fatalf("v3 trace: %d %.300s", code, body)
	}
	q := url.Values{
		"query.service_name":   {"ratings"},
		"query.start_time_min": {now.Add(-time.Hour).Format(time.RFC3339Nano)},
		"query.start_time_max": {now.Format(time.RFC3339Nano)},
		"query.attributes":     {`{"db.system":"sqlite"}`},
		"query.duration_min":   {"100ms"},
		"query.search_depth":   {"5"},
	}
	got = otlpJSON{}
	if code, body := m.get(t, "/api/v3/traces?"+q.Encode(), &got); code != 200 || got.spans() != 6 {
		t.Fatalf("v3 search: %d %.300s", code, body)
	}
	q.Set("query.operation_name", "nope")
	if code, body := m.get(t, "/api/v3/traces?"+q.Encode(), nil); code != 404 {
		t.Fatalf("v3 search for nothing: %d %.300s, want 404", code, body)
	}
}

func TestDependencies(t *testing.T) {
	m := startMesh(t)
	m.bookinfo(t, time.Now().Add(-time.Minute), "jason")
	var deps struct {
		Data []struct {
			Parent, Child string
			CallCount     uint64
		}
	}
	code, body := m.get(t, "/api/dependencies?endTs="+fmt.Sprintf("%d", time.Now().UnixMilli())+"&lookback=3600000", &deps)
	if code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	got := map[string]uint64{}
	for _, d := range deps.Data {
		got[d.Parent+">"+d.Child] = d.CallCount
	}
	if got["productpage>reviews"] != 1 || got["reviews>ratings"] != 1 {
		t.Fatalf("dependencies %s", body)
	}
	code, body = m.get(t, "/api/dependencies?service=ratings", &deps)
	if code != 200 || len(deps.Data) != 1 {
		t.Fatalf("filtered by service: %d %s", code, body)
	}
}
