package store_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/glassmesh/glassmesh/telemetry/record"
	"github.com/glassmesh/glassmesh/tracing/store"
	"github.com/glassmesh/glassmesh/tracing/store/storetest"
)

// Once set, an Opening is the store it holds: the whole contract.
func TestOpeningConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) (store.Reader, store.Writer) {
		o := store.NewOpening()
		o.Set(store.NewMemory(0))
		return o, o
	})
}

func TestOpeningRefusesEveryCallUntilSet(t *testing.T) {
	ctx := context.Background()
	o := store.NewOpening()
	td := storetest.NewFixture().Batches()[0]
	check := func(name string, err error) {
		t.Helper()
		var nr *record.NotReady
		switch {
		case !errors.Is(err, record.ErrNotReady) || !errors.As(err, &nr):
			t.Errorf("%s: %v, want a *record.NotReady", name, err)
		case store.HTTPStatus(err) != http.StatusServiceUnavailable:
			t.Errorf("%s: HTTP status %d, want 503", name, store.HTTPStatus(err))
		case nr.RetryAfter <= 0 || record.RetryAfter(err, 0) != nr.RetryAfter:
			t.Errorf("%s: retry after %s, want a delay", name, nr.RetryAfter)
		}
	}
	check("WriteTraces", o.WriteTraces(ctx, td))
	check("WriteTracesEncoded", o.WriteTracesEncoded(ctx, td, nil))
	_, err := o.Services(ctx)
	check("Services", err)
	_, err = o.Operations(ctx, store.OperationQuery{Service: "a"})
	check("Operations", err)
	_, err = o.Dependencies(ctx, time.Time{}, time.Now())
	check("Dependencies", err)
	for _, err := range o.GetTraces(ctx, store.TraceRequest{}) {
		check("GetTraces", err)
	}
	for _, err := range o.FindTraces(ctx, store.TraceQuery{}) {
		check("FindTraces", err)
	}
	for _, err := range o.FindTraceIDs(ctx, store.TraceQuery{}) {
		check("FindTraceIDs", err)
	}
	select {
	case <-o.Ready():
		t.Fatal("Ready is closed before Set")
	default:
	}

	m := store.NewMemory(0)
	o.Set(m)
	<-o.Ready()
	if err := o.Err(); err != nil {
		t.Fatalf("Err after Set = %v", err)
	}
	if err := o.WriteTraces(ctx, td); err != nil {
		t.Fatalf("WriteTraces after Set: %v", err)
	}
	if svcs, _ := m.Services(ctx); len(svcs) == 0 {
		t.Error("the write after Set did not reach the store")
	}
}

// encodedWriter records which write path a batch took.
type encodedWriter struct {
	*store.Memory
	raw []byte
}

func (w *encodedWriter) WriteTracesEncoded(ctx context.Context, td ptrace.Traces, raw []byte) error {
	w.raw = raw
	return w.WriteTraces(ctx, td)
}

func TestOpeningPassesEncodedWritesOn(t *testing.T) {
	o := store.NewOpening()
	w := &encodedWriter{Memory: store.NewMemory(0)}
	o.Set(w)
	if err := o.WriteTracesEncoded(context.Background(), storetest.NewFixture().Batches()[0], []byte("raw")); err != nil {
		t.Fatal(err)
	}
	if string(w.raw) != "raw" {
		t.Errorf("the store got raw %q, want it passed on", w.raw)
	}
}
