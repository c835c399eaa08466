package receiver

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"google.golang.org/grpc/status"

	"github.com/glassmesh/glassmesh/telemetry/diskspace"
	"github.com/glassmesh/glassmesh/telemetry/record"
)

// A full data dir (record.IsStorageFull) is answered as retryable on every
// path: RESOURCE_EXHAUSTED with a RetryInfo over gRPC, 507 Insufficient
// Storage with Retry-After over HTTP, and the reason starts "data dir
// full". Nothing of a refused request was acknowledged, so the client's
// retry (after space returns) is the only copy that counts.

// reasonStorageFull is the "reason" label of requests and spans refused
// for a full data dir.
const reasonStorageFull = "storage_full"

// storageFullMessage is the reason told to the client.
func storageFullMessage(err error) string {
	msg := err.Error()
	if !strings.Contains(msg, "data dir full") {
		msg = "data dir full: " + msg
	}
	return msg
}

// storageFullStatus is RESOURCE_EXHAUSTED with a retry delay.
func storageFullStatus(err error, def time.Duration) *status.Status {
	return exhausted(storageFullMessage(err), record.RetryAfter(err, def))
}

// writeStorageFull answers 507 with Retry-After and the reason in plain
// text (Zipkin, remote-write).
func writeStorageFull(w http.ResponseWriter, err error, def time.Duration) {
	w.Header().Set("Retry-After", retryAfterSeconds(record.RetryAfter(err, def)))
	http.Error(w, storageFullMessage(err), http.StatusInsufficientStorage)
}

// fullKey is the context key of a request's fullNote.
type fullKey struct{}

// fullNote keeps the storage-full error an appender met while serving one
// request, for the answer that Prometheus's handlers would make a 500.
type fullNote struct {
	mu  sync.Mutex
	err error
}

func (n *fullNote) note(err error) error {
	if record.IsStorageFull(err) {
		n.mu.Lock()
		if n.err == nil {
			n.err = err
		}
		n.mu.Unlock()
	}
	return err
}

func (n *fullNote) get() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.err
}

// noteStorageFull answers 507 with Retry-After, counting it, while space
// (may be nil) refuses, and turns the 5xx that Prometheus's remote-write
// and OTLP handlers answer for any storage error into the same when the
// error was a full data dir; answer writes the body.
func noteStorageFull(receiver string, rejected func(receiver string), space *diskspace.Guard, def time.Duration,
	answer func(w http.ResponseWriter, r *http.Request, err error), next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		refuse := func(err error) {
			rejected(receiver)
			w.Header().Set("Retry-After", retryAfterSeconds(record.RetryAfter(err, def)))
			answer(w, r, err)
		}
		if err := space.Check(); err != nil {
			refuse(err)
			return
		}
		n := &fullNote{}
		r = r.WithContext(context.WithValue(r.Context(), fullKey{}, n))
		next.ServeHTTP(&fullWriter{ResponseWriter: w, note: n, answer: refuse}, r)
	})
}

// fullWriter replaces a 5xx answer with the storage-full one when the
// request met a full data dir; the handler's own body is dropped.
type fullWriter struct {
	http.ResponseWriter
	note    *fullNote
	answer  func(err error)
	dropped bool
}

func (w *fullWriter) WriteHeader(code int) {
	if code >= 500 {
		if err := w.note.get(); err != nil {
			w.dropped = true
			w.answer(err)
			return
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *fullWriter) Write(b []byte) (int, error) {
	if w.dropped {
		return len(b), nil
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection.
func (w *fullWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// notingAppendable hands out appenders that note storage-full errors in
// their request's fullNote (when the context has one).
type notingAppendable struct{ storage.AppendableV2 }

func (a notingAppendable) AppenderV2(ctx context.Context) storage.AppenderV2 {
	app := a.AppendableV2.AppenderV2(ctx)
	n, _ := ctx.Value(fullKey{}).(*fullNote)
	if n == nil {
		return app
	}
	if ex, ok := app.(storage.ExemplarAppenderV2); ok {
		return notingExemplarAppender{notingAppender{ex, n}, ex}
	}
	return notingAppender{app, n}
}

type notingAppender struct {
	storage.AppenderV2
	n *fullNote
}

func (a notingAppender) Append(ref storage.SeriesRef, ls labels.Labels, st, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, opts storage.AOptions) (storage.SeriesRef, error) {
	ref, err := a.AppenderV2.Append(ref, ls, st, t, v, h, fh, opts)
	return ref, a.n.note(err)
}

func (a notingAppender) Commit() error { return a.n.note(a.AppenderV2.Commit()) }

type notingExemplarAppender struct {
	notingAppender
	ex storage.ExemplarAppenderV2
}

func (a notingExemplarAppender) AppendExemplars(ref storage.SeriesRef, ls labels.Labels, es []exemplar.Exemplar) (storage.SeriesRef, error) {
	ref, err := a.ex.AppendExemplars(ref, ls, es)
	return ref, a.n.note(err)
}

// plainStorageFull answers in plain text (remote-write).
func plainStorageFull(w http.ResponseWriter, _ *http.Request, err error) {
	http.Error(w, storageFullMessage(err), http.StatusInsufficientStorage)
}

// otlpStorageFull answers with a google.rpc.Status in the request's
// encoding (OTLP/HTTP).
func otlpStorageFull(w http.ResponseWriter, r *http.Request, err error) {
	ct := r.Header.Get("Content-Type")
	if !strings.HasPrefix(ct, contentTypeProtobuf) {
		ct = contentTypeJSON
	} else {
		ct = contentTypeProtobuf
	}
	writeOTLPError(w, ct, http.StatusInsufficientStorage, storageFullStatus(err, 0).Code(), storageFullMessage(err))
}
