package receiver

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/glassmesh/glassmesh/telemetry/pipeline"
)

// rawCodec sends []byte as they are, so a test can put bytes on the wire
// that are no valid protobuf.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) {
	b, ok := v.([]byte)
	if !ok {
		return nil, fmt.Errorf("rawCodec: %T is not []byte", v)
	}
	return b, nil
}

func (rawCodec) Unmarshal(data []byte, v any) error {
	p, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("rawCodec: %T is not *[]byte", v)
	}
	*p = append((*p)[:0], data...)
	return nil
}

func (rawCodec) Name() string { return "proto" } // the server decodes with its proto codec

func TestMalformedProtobufIsInvalidArgument(t *testing.T) {
	methods := []string{
		"/envoy.service.accesslog.v3.AccessLogService/StreamAccessLogs",
		"/envoy.service.metrics.v3.MetricsService/StreamMetrics",
	}
	garbage := map[string][]byte{
		"a truncated varint":           {0x08, 0xff, 0xff},
		"a field of wire type 7":       {0x0f, 0x01},
		"a length beyond the end":      {0x0a, 0x7f, 0x01},
		"invalid UTF-8 in the node id": {0x0a, 0x06, 0x0a, 0x04, 0x0a, 0x02, 0xff, 0xfe},
	}
	conn := serve(t, Config{}, newPipeline(t, pipeline.Config{}, &recorder{}))
	for _, method := range methods {
		for what, b := range garbage {
			t.Run(method[strings.LastIndex(method, "/")+1:]+" with "+what, func(t *testing.T) {
				s, err := conn.NewStream(context.Background(), &grpc.StreamDesc{ClientStreams: true}, method, grpc.ForceCodec(rawCodec{}))
				if err != nil {
					t.Fatal(err)
				}
				_ = s.SendMsg(b)
				_ = s.CloseSend()
				var resp []byte
				err = s.RecvMsg(&resp)
				st := status.Convert(err)
				if st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), "malformed") {
					t.Fatalf("got %v, want INVALID_ARGUMENT naming the malformed message", err)
				}
				t.Log(st.Message())
			})
		}
	}
}
