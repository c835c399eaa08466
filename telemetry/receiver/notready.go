package receiver

import (
	"errors"
	"net/http"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/glassmesh/glassmesh/telemetry/record"
)

// notReady reports whether err says a store is still opening: the request
// was not taken, and the same one succeeds later.
func notReady(err error) bool { return errors.Is(err, record.ErrNotReady) }

// unavailable is UNAVAILABLE with msg and a google.rpc.RetryInfo, which
// OTLP exporters and Envoy honour: what a receiver answers while the store
// it writes to opens.
func unavailable(msg string, retryAfter time.Duration) *status.Status {
	st := status.New(codes.Unavailable, msg)
	if withInfo, err := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(retryAfter)}); err == nil {
		return withInfo
	}
	return st
}

// notReadyStatus is the gRPC status of a not-ready error.
func notReadyStatus(err error, def time.Duration) *status.Status {
	return unavailable(err.Error(), record.RetryAfter(err, def))
}

// writeNotReady answers a not-ready error over HTTP: 503 with Retry-After
// and the reason in plain text.
func writeNotReady(w http.ResponseWriter, err error, def time.Duration) {
	w.Header().Set("Retry-After", retryAfterSeconds(record.RetryAfter(err, def)))
	http.Error(w, err.Error(), http.StatusServiceUnavailable)
}

// readyGate answers 503 with Retry-After while ready() returns an error,
// before next reads the body; a nil ready never refuses.
func readyGate(ready func() error, def time.Duration, next http.Handler) http.Handler {
	if ready == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := ready(); err != nil {
			writeNotReady(w, err, def)
			return
		}
		next.ServeHTTP(w, r)
	})
}
