package durable

import (
	"bytes"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/glassmesh/glassmesh/tracing/store"
	"github.com/glassmesh/glassmesh/tracing/store/storetest"
)

// interleaved is a batch whose traces are spread over two resources and
// two scopes, with spans of different traces alternating, and one trace of
// 7 spans (over maxSpans 3 in the test).
func interleaved() ptrace.Traces {
	td := ptrace.NewTraces()
	for r, svc := range []string{"a", "b"} {
		rs := td.ResourceSpans().AppendEmpty()
		rs.SetSchemaUrl("https://schema/" + svc)
		rs.Resource().Attributes().PutStr("service.name", svc)
		for s := range 2 {
			ss := rs.ScopeSpans().AppendEmpty()
			ss.Scope().SetName("scope")
			ss.Scope().SetVersion(svc)
			for k := range 4 {
				sp := ss.Spans().AppendEmpty()
				sp.SetTraceID(pcommon.TraceID{byte(1 + k%2)})
				if k == 3 {
					sp.SetTraceID(pcommon.TraceID{byte(3 + r)})
				}
				sp.SetSpanID(pcommon.SpanID{byte(r), byte(s), byte(k), 1})
				sp.SetName("op")
				sp.Attributes().PutInt("k", int64(k))
			}
		}
	}
	return td
}

// canonical is a fragment re-encoded by pdata, so fragments compare by
// content rather than by field order.
func canonical(t *testing.T, data []byte) []byte {
	t.Helper()
	var u ptrace.ProtoUnmarshaler
	td, err := u.UnmarshalTraces(data)
	if err != nil {
		t.Fatal(err)
	}
	var m ptrace.ProtoMarshaler
	out, err := m.MarshalTraces(td)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestEncodeRecordCutsLikeSplitTraces(t *testing.T) {
	batches := map[string]ptrace.Traces{
		"interleaved traces": interleaved(),
		"generated traces":   storetest.NewGen(time.Unix(1700000000, 0)).Batch(0, 20),
		"conformance batch":  storetest.NewFixture().Batches()[0],
	}
	for name, td := range batches {
		for _, maxSpans := range []int{0, 3} {
			var m ptrace.ProtoMarshaler
			raw, err := m.MarshalTraces(td)
			if err != nil {
				t.Fatal(err)
			}
			req, _ := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
			for _, in := range [][]byte{raw, req} {
				rec, frags, _, err := encodeRecord(in, maxSpans)
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				got, err := decodePayload(rec[walHeaderSize:])
				if err != nil {
					t.Fatalf("%s: record: %v", name, err)
				}
				want := store.SplitByTrace(td, maxSpans)
				if len(got) != len(want) || len(frags) != len(want) {
					t.Fatalf("%s, max %d: %d fragments (%d cut), want %d", name, maxSpans, len(got), len(frags), len(want))
				}
				for i, w := range want {
					wb, _ := m.MarshalTraces(w.Traces)
					if got[i].id != w.ID || frags[i].spans != w.Spans ||
						!bytes.Equal(canonical(t, got[i].data), wb) || frags[i].at != got[i].at || frags[i].n != len(got[i].data) {
						t.Errorf("%s, max %d: fragment %d (%v, %d spans) differs from %v, %d spans", name, maxSpans, i, got[i].id, frags[i].spans, w.ID, w.Spans)
					}
				}
			}
		}
	}
}

func TestEncodeRecordRefusesWhatIsNoBatch(t *testing.T) {
	noID := protowire.AppendTag(nil, 2, protowire.BytesType) // span without trace id
	noID = protowire.AppendVarint(noID, 2)
	noID = append(noID, 0x12, 0) // span_id, empty
	ss := protowire.AppendTag(nil, 2, protowire.BytesType)
	ss = protowire.AppendBytes(ss, noID)
	rs := protowire.AppendTag(nil, 1, protowire.BytesType)
	rs = protowire.AppendBytes(rs, ss)
	for name, b := range map[string][]byte{
		"truncated":              {0x0a, 0x10, 1},
		"bad tag":                {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
		"span without trace id":  rs,
		"trace id of wrong size": append(bytes.Clone(rs[:len(rs)-2]), 0x0a, 0),
	} {
		if _, _, _, err := encodeRecord(b, 0); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// FuzzEncodeRecord feeds arbitrary bytes to the batch cutter: it must fail
// or give a record whose fragments decode whenever pdata decodes the input.
func FuzzEncodeRecord(f *testing.F) {
	var m ptrace.ProtoMarshaler
	raw, _ := m.MarshalTraces(interleaved())
	f.Add(raw)
	raw, _ = m.MarshalTraces(storetest.NewFixture().Batches()[1])
	f.Add(raw)
	f.Add([]byte{0x0a, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		rec, frags, _, err := encodeRecord(b, 2)
		if err != nil {
			return
		}
		got, err := decodePayload(rec[walHeaderSize:])
		if err != nil || len(got) != len(frags) {
			t.Fatalf("record of %d fragments (%v) from %d cut", len(got), err, len(frags))
		}
		var u ptrace.ProtoUnmarshaler
		td, err := u.UnmarshalTraces(b)
		if err != nil {
			return
		}
		n := 0
		for _, fr := range got {
			part, err := u.UnmarshalTraces(fr.data)
			if err != nil {
				t.Fatalf("fragment of a decodable batch does not decode: %v", err)
			}
			n += part.SpanCount()
		}
		if n != td.SpanCount() {
			t.Fatalf("%d spans in fragments, %d in the batch", n, td.SpanCount())
		}
	})
}

// A raw batch that is not td's encoding (other trace ids, or no OTLP at
// all) is not stored: td is encoded instead.
func TestWriteTracesEncodedFallsBackToTheBatch(t *testing.T) {
	d := openTest(t, Config{})
	g := storetest.NewGen(time.Now().Add(-time.Minute))
	var m ptrace.ProtoMarshaler
	other, _ := m.MarshalTraces(g.Batch(5, 1))
	for i, raw := range [][]byte{other, {0xff}} {
		td := g.Batch(i, 1)
		if err := d.WriteTracesEncoded(t.Context(), td, raw); err != nil {
			t.Fatal(err)
		}
		if n, _ := storetest.GetSpans(t, d, store.TraceRequest{TraceID: storetest.TraceID(i)}); n != td.SpanCount() {
			t.Errorf("batch %d: %d spans stored, want %d", i, n, td.SpanCount())
		}
	}
}
