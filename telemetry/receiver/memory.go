package receiver

import (
	"context"
	"net/http"
	"strings"
	"time"

	alsv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	metricsv3 "github.com/envoyproxy/go-control-plane/envoy/service/metrics/v3"
	"google.golang.org/grpc/tap"

	"github.com/glassmesh/glassmesh/telemetry/admission"
	"github.com/glassmesh/glassmesh/telemetry/record"
)

// Every receiver asks the one memory budget (telemetry/admission) before
// it reads or decodes a request: HTTP requests with their Content-Length,
// gRPC requests twice — at the stream's start (MemoryTap, before gRPC
// reads the message, whose size it does not know yet) and with the
// message's size before decoding it — and stream messages before each is
// read and with its size before it is handed on.

// ingestServices are the gRPC services whose streams MemoryTap refuses
// when over budget; xDS, SDS and the query services are never refused.
var ingestServices = []string{
	"/" + alsv3.AccessLogService_ServiceDesc.ServiceName + "/",
	"/" + metricsv3.MetricsService_ServiceDesc.ServiceName + "/",
	"/" + otlpTraceService + "/",
	"/" + otlpMetricService + "/",
}

// MemoryTap refuses new ingest streams with RESOURCE_EXHAUSTED (and a
// RetryInfo) while mem is over budget, before gRPC reads their messages;
// give it to the gRPC servers that carry ingest (grpc.InTapHandle). It
// runs on the connection's reader, so it only reads the budget's last
// figures. nil when mem is nil.
func MemoryTap(mem *admission.Budget) tap.ServerInHandle {
	if mem == nil {
		return nil
	}
	return func(ctx context.Context, info *tap.Info) (context.Context, error) {
		if !isIngest(info.FullMethodName) {
			return ctx, nil
		}
		if err := mem.Check(); err != nil {
			return ctx, memoryStatus(err)
		}
		return ctx, nil
	}
}

func isIngest(method string) bool {
	for _, s := range ingestServices {
		if strings.HasPrefix(method, s) {
			return true
		}
	}
	return false
}

// admitGRPC takes a received message of n bytes into mem, or returns
// RESOURCE_EXHAUSTED saying what is full.
func admitGRPC(mem *admission.Budget, n int) (release func(), err error) {
	release, err = mem.Admit(int64(n))
	if err != nil {
		return nil, memoryStatus(err)
	}
	return release, nil
}

// memoryStatus is the gRPC status of a budget refusal, with its delay.
func memoryStatus(err error) error {
	return exhausted("glassmesh is over capacity, retry later: "+err.Error(), record.RetryAfter(err, DefaultRetryAfter)).Err()
}

// admitHTTP takes req's body into mem, charged at its Content-Length
// (nothing when unknown: then only the runtime's figures decide), or
// answers 429 with Retry-After and the reason and returns false.
func admitHTTP(mem *admission.Budget, w http.ResponseWriter, req *http.Request) (release func(), ok bool) {
	release, err := mem.Admit(max(req.ContentLength, 0))
	if err != nil {
		writeTooMany(w, err, DefaultRetryAfter)
		return nil, false
	}
	return release, true
}

// writeTooMany answers an overload error in plain text: 429 with the
// error's retry delay (def when it names none).
func writeTooMany(w http.ResponseWriter, err error, def time.Duration) {
	w.Header().Set("Retry-After", retryAfterSeconds(record.RetryAfter(err, def)))
	http.Error(w, err.Error(), http.StatusTooManyRequests)
}
