package receiver_test

import (
	"context"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/glassmesh/glassmesh/telemetry/receiver"
	"github.com/glassmesh/glassmesh/telemetry/record"
)

func TestFullDataDirIs507OrResourceExhaustedWithTheReason(t *testing.T) {
	for name, err := range map[string]error{
		"the guard's refusal":    &record.StorageFull{What: "/data has 0 B free", RetryAfter: 4 * time.Second},
		"an ENOSPC from a write": &record.StorageFull{What: "/data: write failed", RetryAfter: 4 * time.Second, Err: syscall.ENOSPC},
	} {
		t.Run(name, func(t *testing.T) {
			w := &spanWriter{}
			w.setErr(err)
			s := startTraceReceiver(t, receiver.TracesConfig{RetryAfter: time.Second}, w)
			pb, _ := request(2, 0).MarshalProto()
			resp, body := post(t, s.OTLPURL, "application/x-protobuf", "", pb)
			if resp.StatusCode != http.StatusInsufficientStorage || resp.Header.Get("Retry-After") != "4" || !strings.Contains(body, "data dir full") {
				t.Errorf("OTLP/HTTP: %d Retry-After %q %q, want 507, 4 and the reason", resp.StatusCode, resp.Header.Get("Retry-After"), body)
			}
			resp, body = post(t, s.ZipkinURL, "application/json", "", []byte(`[{"traceId":"1","id":"2"}]`))
			if resp.StatusCode != http.StatusInsufficientStorage || resp.Header.Get("Retry-After") != "4" || !strings.Contains(body, "data dir full: /data") {
				t.Errorf("Zipkin: %d Retry-After %q %q, want 507, 4 and the reason", resp.StatusCode, resp.Header.Get("Retry-After"), body)
			}
			conn, cerr := grpc.NewClient(s.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
			if cerr != nil {
				t.Fatal(cerr)
			}
			defer conn.Close()
			_, gerr := ptraceotlp.NewGRPCClient(conn).Export(context.Background(), request(2, 0))
			st := status.Convert(gerr)
			if st.Code() != codes.ResourceExhausted || len(st.Details()) != 1 || !strings.HasPrefix(st.Message(), "data dir full") {
				t.Errorf("gRPC: %v, want RESOURCE_EXHAUSTED with RetryInfo and the reason", gerr)
			}
		})
	}
}
