package storetest

import (
	"context"
	"os"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/glassmesh/glassmesh/tracing/store"
)

// WriteAll writes every batch to w, failing t on the first error.
func WriteAll(t testing.TB, w store.Writer, tds ...ptrace.Traces) {
	t.Helper()
	for _, td := range tds {
		if err := w.WriteTraces(context.Background(), td); err != nil {
			t.Fatal(err)
		}
	}
}

// WaitFor polls cond until it holds, failing t after a generous 10 s.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

// AppendFile appends b to the file at path (damage, in WAL tests) and
// returns its size before.
func AppendFile(t testing.TB, path string, b []byte) int64 {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
	return st.Size()
}
