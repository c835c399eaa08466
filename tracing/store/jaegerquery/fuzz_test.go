package jaegerquery

import (
	"bytes"
	"testing"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// FuzzDecodeTraces feeds the API v3 traces decoder arbitrary answers: it
// must never panic, and what it accepts must be whole chunks of spans that
// all have ids and that encode and decode back to the same spans.
func FuzzDecodeTraces(f *testing.F) {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", "reviews")
	sp := rs.ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	sp.SetTraceID(pcommon.TraceID{1, 2, 3})
	sp.SetSpanID(pcommon.SpanID{4, 5})
	sp.SetParentSpanID(pcommon.SpanID{6})
	sp.SetName("GET /reviews")
	sp.SetKind(ptrace.SpanKindServer)
	sp.Attributes().PutInt("http.status_code", 200)
	sp.Status().SetCode(ptrace.StatusCodeError)
	b, err := (&ptrace.JSONMarshaler{}).MarshalTraces(td)
	if err != nil {
		f.Fatal(err)
	}
	one := append(append([]byte(`{"result":`), b...), '}')
	f.Add(one)
	f.Add(append(append(append([]byte{}, one...), '\n'), one...))
	f.Add(append(append([]byte{}, one...), []byte("\n{\"error\":{\"httpCode\":500,\"message\":\"x\"}}")...))
	f.Add([]byte(`{"result":{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"0102","spanId":"01"}]}]}]}}`))
	f.Add([]byte(`{"result":{}}`))
	f.Add([]byte(`{"error":{"httpCode":404,"message":"No traces found"}}`))
	f.Add([]byte(`{"result":null}`))
	f.Add([]byte(``))
	f.Fuzz(func(t *testing.T, body []byte) {
		tds, err := decodeTraces(body)
		if err != nil {
			if tds != nil {
				t.Fatalf("an error (%v) with %d chunks: a partial answer", err, len(tds))
			}
			return
		}
		if len(tds) == 0 {
			t.Fatal("no error and no chunks")
		}
		for _, td := range tds {
			if err := checkIDs(td); err != nil {
				t.Fatalf("accepted a chunk with %v", err)
			}
			enc, err := (&ptrace.JSONMarshaler{}).MarshalTraces(td)
			if err != nil {
				t.Fatalf("re-encoding an accepted chunk: %v", err)
			}
			back, err := decodeTraces(bytes.Join([][]byte{[]byte(`{"result":`), enc, []byte(`}`)}, nil))
			if err != nil {
				t.Fatalf("decoding a re-encoded chunk: %v", err)
			}
			if len(back) != 1 || back[0].SpanCount() != td.SpanCount() {
				t.Fatalf("round trip changed the spans: %d → %d", td.SpanCount(), back[0].SpanCount())
			}
		}
	})
}
