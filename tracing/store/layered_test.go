package store_test

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/glassmesh/glassmesh/tracing/store"
	"github.com/glassmesh/glassmesh/tracing/store/storetest"
)

// TestLayeredConformance: over an empty local store, Layered reads the
// shared store as it is.
func TestLayeredConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) (store.Reader, store.Writer) {
		shared := store.NewMemory(0)
		return store.NewLayered(shared, store.NewMemory(0)), shared
	})
}

// TestLayeredConformanceAllLocal: everything written here and also in the
// shared store (as forwarding does) reads once, not twice.
func TestLayeredConformanceAllLocal(t *testing.T) {
	storetest.Run(t, func(t *testing.T) (store.Reader, store.Writer) {
		shared, local := store.NewMemory(0), store.NewMemory(0)
		return store.NewLayered(shared, local), both{shared, local}
	})
}

type both []store.Writer

func (b both) WriteTraces(ctx context.Context, td ptrace.Traces) error {
	for _, w := range b {
		c := ptrace.NewTraces()
		td.CopyTo(c)
		if err := w.WriteTraces(ctx, c); err != nil {
			return err
		}
	}
	return nil
}

// span is one span of trace 1 named by its id.
func span(id byte, svc string, kind ptrace.SpanKind) ptrace.Traces {
	td := ptrace.NewTraces()
	rs := td.ResourceSpans().AppendEmpty()
	rs.Resource().Attributes().PutStr("service.name", svc)
	sp := rs.ScopeSpans().AppendEmpty().Spans().AppendEmpty()
	sp.SetTraceID(pcommon.TraceID{1})
	sp.SetSpanID(pcommon.SpanID{id})
	sp.SetName(fmt.Sprintf("%s-%d", svc, id))
	sp.SetKind(kind)
	sp.SetStartTimestamp(pcommon.NewTimestampFromTime(time.Now()))
	return td
}

func write(t *testing.T, w store.Writer, tds ...ptrace.Traces) {
	t.Helper()
	for _, td := range tds {
		if err := w.WriteTraces(context.Background(), td); err != nil {
			t.Fatal(err)
		}
	}
}

// names lists the span names seq yields, sorted; or the error.
func names(seq iter.Seq2[[]ptrace.Traces, error]) ([]string, error) {
	var out []string
	for tds, err := range seq {
		if err != nil {
			return nil, err
		}
		for _, td := range tds {
			store.ForEachSpan(td, func(_ string, _ pcommon.Map, sp ptrace.Span) { out = append(out, sp.Name()) })
		}
	}
	slices.Sort(out)
	return out, nil
}

func TestLayeredAddsLocalSpansNotForwardedYet(t *testing.T) {
	shared, local := store.NewMemory(0), store.NewMemory(0)
	a, b := span(1, "a", ptrace.SpanKindServer), span(2, "b", ptrace.SpanKindServer)
	write(t, shared, a, b)
	// Local holds a (forwarded already) and c (not yet); Zipkin's shared
	// span id: b's client half has b's id but is another span.
	c, bClient := span(3, "a", ptrace.SpanKindClient), span(2, "a", ptrace.SpanKindClient)
	write(t, local, a, c, bClient)
	l := store.NewLayered(shared, local)
	want := []string{"a-1", "a-2", "a-3", "b-2"}
	got, err := names(l.GetTraces(context.Background(), store.TraceRequest{TraceID: pcommon.TraceID{1}}))
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("GetTraces = %v, %v; want %v (each span once)", got, err, want)
	}
	got, err = names(l.FindTraces(context.Background(), store.TraceQuery{Service: "b"}))
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("FindTraces = %v, %v; want %v", got, err, want)
	}
}

// TestLayeredTraceOnlyLocalIsNotFound: spans the shared store has none of
// may be only this replica's part of a trace; they are not returned as if
// they were the trace.
func TestLayeredTraceOnlyLocalIsNotFound(t *testing.T) {
	local := store.NewMemory(0)
	write(t, local, span(1, "a", ptrace.SpanKindServer))
	l := store.NewLayered(store.NewMemory(0), local)
	got, err := names(l.GetTraces(context.Background(), store.TraceRequest{TraceID: pcommon.TraceID{1}}))
	if err != nil || len(got) != 0 {
		t.Fatalf("GetTraces = %v, %v; want nothing", got, err)
	}
}

// failing is a shared store that is down.
type failing struct{ store.Reader }

var errDown = fmt.Errorf("trace store http://jaeger: %w", store.ErrUnavailable)

func (failing) GetTraces(context.Context, ...store.TraceRequest) iter.Seq2[[]ptrace.Traces, error] {
	return func(yield func([]ptrace.Traces, error) bool) { yield(nil, errDown) }
}

func (failing) FindTraces(context.Context, store.TraceQuery) iter.Seq2[[]ptrace.Traces, error] {
	return func(yield func([]ptrace.Traces, error) bool) { yield(nil, errDown) }
}

func TestLayeredFailsWhenTheSharedStoreFails(t *testing.T) {
	local := store.NewMemory(0)
	write(t, local, span(1, "a", ptrace.SpanKindServer))
	l := store.NewLayered(failing{}, local)
	if got, err := names(l.GetTraces(context.Background(), store.TraceRequest{TraceID: pcommon.TraceID{1}})); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("GetTraces = %v, %v; want the shared store's error, not the local part", got, err)
	}
	if got, err := names(l.FindTraces(context.Background(), store.TraceQuery{})); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("FindTraces = %v, %v; want the shared store's error", got, err)
	}
}

func TestHTTPStatus(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
	}{
		{errDown, 503},
		{fmt.Errorf("x: %w", store.ErrBadResponse), 502},
		{errors.New("disk"), 500},
	} {
		if got := store.HTTPStatus(tc.err); got != tc.want {
			t.Errorf("HTTPStatus(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}
