package receiver

import (
	"testing"

	zipkinmodel "github.com/openzipkin/zipkin-go/model"
	zipkinproto "github.com/openzipkin/zipkin-go/proto/zipkin_proto3"
)

func FuzzZipkinJSON(f *testing.F) {
	f.Add([]byte(`[{"traceId":"a3ce929d0e0e4736","id":"1","kind":"SERVER","shared":true,"localEndpoint":{"serviceName":"a"},"tags":{"error":""},"annotations":[{"timestamp":1,"value":"x"}]}]`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`[{"traceId":"00000000000000000000000000000000","id":"1"}]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		spans, err := decodeZipkinJSON(b)
		if err != nil {
			return
		}
		td, err := zipkinToTraces(spans)
		if err == nil && td.SpanCount() != len(spans) {
			t.Fatalf("%d spans in, %d out", len(spans), td.SpanCount())
		}
	})
}

func FuzzZipkinProto(f *testing.F) {
	parent := zipkinmodel.ID(1)
	blob, _ := zipkinproto.SpanSerializer{}.Serialize([]*zipkinmodel.SpanModel{{
		SpanContext: zipkinmodel.SpanContext{TraceID: zipkinmodel.TraceID{Low: 8}, ID: 9, ParentID: &parent},
		Name:        "n", Kind: zipkinmodel.Client, Tags: map[string]string{"k": "v"},
		Annotations:   []zipkinmodel.Annotation{{Value: "a"}},
		LocalEndpoint: &zipkinmodel.Endpoint{ServiceName: "s", Port: 1},
	}})
	f.Add(blob)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		spans, err := decodeZipkinProto(b)
		if err != nil {
			return
		}
		td, err := zipkinToTraces(spans)
		if err == nil && td.SpanCount() != len(spans) {
			t.Fatalf("%d spans in, %d out", len(spans), td.SpanCount())
		}
	})
}
