package receiver

import (
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/glassmesh/glassmesh/telemetry/admission"
)

// maxRequestBytes is the largest request body a push receiver reads: the
// limit Prometheus's remote-write and OTLP decoders apply themselves.
const maxRequestBytes = 32 << 20

// Reasons a push request is turned away, as the "reason" label of
// glassmesh_ingest_rejected_requests_total.
const (
	rejectRequests = "inflight_requests"
	rejectBytes    = "inflight_bytes"
	rejectTooLarge = "too_large"
	rejectMemory   = "memory"
)

var (
	// errOverCapacity: retry later; the answer is 429 / RESOURCE_EXHAUSTED
	// with a retry delay.
	errOverCapacity = errors.New("ingest over capacity: too much in flight, retry later")
	// errTooLarge: the request alone exceeds the in-flight byte budget and
	// would never fit; retrying cannot help.
	errTooLarge = errors.New("request larger than the ingest in-flight byte limit")
)

// inflightLimiter admits push requests while both the number of requests
// and their bytes in flight stay under their limits. It never queues: a
// request that does not fit is refused at once, so memory stays bounded
// however fast clients push, and clients back off on the retry delay.
type inflightLimiter struct {
	maxRequests int
	maxBytes    int64
	retryAfter  time.Duration
	memory      *admission.Budget // the process's, shared by every receiver; may be nil

	mu       sync.Mutex
	requests int
	bytes    int64

	inflightRequests prometheus.Gauge
	inflightBytes    prometheus.Gauge
	rejected         *prometheus.CounterVec
}

func newInflightLimiter(maxRequests int, maxBytes int64, retryAfter time.Duration, memory *admission.Budget, reg prometheus.Registerer) *inflightLimiter {
	f := promauto.With(reg)
	return &inflightLimiter{
		maxRequests: maxRequests,
		maxBytes:    maxBytes,
		retryAfter:  retryAfter,
		memory:      memory,
		inflightRequests: f.NewGauge(prometheus.GaugeOpts{
			Name: "glassmesh_ingest_inflight_requests",
			Help: "Remote-write and OTLP metric requests being processed.",
		}),
		inflightBytes: f.NewGauge(prometheus.GaugeOpts{
			Name: "glassmesh_ingest_inflight_bytes",
			Help: "Encoded bytes of the remote-write and OTLP metric requests being processed.",
		}),
		rejected: f.NewCounterVec(prometheus.CounterOpts{
			Name: "glassmesh_ingest_rejected_requests_total",
			Help: "Remote-write and OTLP metric requests refused for lack of capacity, by receiver and reason.",
		}, []string{"receiver", "reason"}),
	}
}

// acquire admits a request of n bytes for receiver, or returns
// errOverCapacity or errTooLarge. The release func must be called once
// the request is done.
func (l *inflightLimiter) acquire(receiver string, n int64) (release func(), err error) {
	if n > l.maxBytes {
		l.rejected.WithLabelValues(receiver, rejectTooLarge).Inc()
		return nil, fmt.Errorf("%w (%d > %d bytes)", errTooLarge, n, l.maxBytes)
	}
	l.mu.Lock()
	switch {
	case l.requests >= l.maxRequests:
		l.mu.Unlock()
		l.rejected.WithLabelValues(receiver, rejectRequests).Inc()
		return nil, errOverCapacity
	case l.bytes+n > l.maxBytes:
		l.mu.Unlock()
		l.rejected.WithLabelValues(receiver, rejectBytes).Inc()
		return nil, errOverCapacity
	}
	l.requests++
	l.bytes += n
	l.mu.Unlock()
	l.inflightRequests.Inc()
	l.inflightBytes.Add(float64(n))
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			l.requests--
			l.bytes -= n
			l.mu.Unlock()
			l.inflightRequests.Dec()
			l.inflightBytes.Sub(float64(n))
		})
	}, nil
}

// wrapHTTP admits each request through the limiter, charging its
// Content-Length, or the most a decoder reads when the length is unknown
// (then the body is capped to that charge). Refused requests get 429 with
// Retry-After, or 413 when they can never fit.
func (l *inflightLimiter) wrapHTTP(receiver string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := r.ContentLength
		if n < 0 {
			n = min(maxRequestBytes, l.maxBytes)
			r.Body = http.MaxBytesReader(w, r.Body, n)
		}
		release, err := l.acquire(receiver, n)
		switch {
		case errors.Is(err, errTooLarge):
			http.Error(w, err.Error(), http.StatusRequestEntityTooLarge)
			return
		case err != nil:
			writeTooMany(w, err, l.retryAfter)
			return
		}
		defer release()
		releaseMem, ok := admitHTTP(l.memory, w, r)
		if !ok {
			l.rejected.WithLabelValues(receiver, rejectMemory).Inc()
			return
		}
		defer releaseMem()
		next.ServeHTTP(w, r)
	})
}

// grpcStatus turns an acquire error into RESOURCE_EXHAUSTED. Over capacity
// carries RetryInfo, which OTLP exporters require before they retry
// RESOURCE_EXHAUSTED; too large carries none, so they do not.
func (l *inflightLimiter) grpcStatus(err error) error {
	if errors.Is(err, errTooLarge) {
		return exhausted(err.Error(), 0).Err()
	}
	return exhausted(err.Error(), l.retryAfter).Err()
}
