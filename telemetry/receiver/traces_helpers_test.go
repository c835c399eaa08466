package receiver_test

import (
	"context"
	"sync"
	"testing"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/glassmesh/glassmesh/telemetry/receiver"
	"github.com/glassmesh/glassmesh/telemetry/receiver/receivertest"
)

// spanWriter records what the receiver writes; err, when set, is returned
// instead.
type spanWriter struct {
	mu    sync.Mutex
	spans map[string]ptrace.Span // by span id
	svc   map[string]string      // span id -> service.name
	err   error
}

func (w *spanWriter) WriteTraces(_ context.Context, td ptrace.Traces) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return w.err
	}
	if w.spans == nil {
		w.spans, w.svc = map[string]ptrace.Span{}, map[string]string{}
	}
	for _, rs := range td.ResourceSpans().All() {
		svc, _ := rs.Resource().Attributes().Get("service.name")
		for _, ss := range rs.ScopeSpans().All() {
			for _, s := range ss.Spans().All() {
				c := ptrace.NewSpan()
				s.CopyTo(c)
				w.spans[s.SpanID().String()] = c
				w.svc[s.SpanID().String()] = svc.Str()
			}
		}
	}
	return nil
}

func (w *spanWriter) setErr(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.err = err
}

func (w *spanWriter) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.spans)
}

// byName returns the recorded spans by name (the last one of each).
func (w *spanWriter) byName() map[string]ptrace.Span {
	w.mu.Lock()
	defer w.mu.Unlock()
	m := map[string]ptrace.Span{}
	for _, s := range w.spans {
		m[s.Name()] = s
	}
	return m
}

// startTraceReceiver runs a TraceReceiver of cfg writing to w.
func startTraceReceiver(t testing.TB, cfg receiver.TracesConfig, w receiver.TracesWriter) receivertest.Traces {
	t.Helper()
	return receivertest.ServeTraces(t, cfg, w)
}
