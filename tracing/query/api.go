// Package query serves stored traces the way Jaeger does: the Jaeger HTTP
// API that Jaeger UI and Grafana's Jaeger data source use (/api/services,
// /api/traces, ...) in Jaeger's UI JSON model, and Jaeger's API v3
// (/api/v3/...) in OTLP JSON; and, over gRPC, Jaeger's remote storage v2 API
// (StorageGRPC), so a stock Jaeger v2 can use glassmesh as its storage. It
// reads a tracing/store Reader.
package query

import (
	"encoding/json"
	"errors"
	"iter"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/glassmesh/glassmesh/tracing/store"
)

// API serves the Jaeger HTTP APIs over a store.Reader.
type API struct {
	r      store.Reader
	logger *slog.Logger
	now    func() time.Time
}

// New returns an API reading r; a nil logger discards.
func New(r store.Reader, logger *slog.Logger) *API {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &API{r: r, logger: logger, now: time.Now}
}

// Register mounts every path on mux (cmd passes the --http-addr mux).
func (a *API) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/services", a.services)
	mux.HandleFunc("GET /api/services/{service}/operations", a.serviceOperations)
	mux.HandleFunc("GET /api/operations", a.operations)
	mux.HandleFunc("GET /api/traces", a.searchTraces)
	mux.HandleFunc("GET /api/traces/{traceID}", a.getTrace)
	mux.HandleFunc("GET /api/dependencies", a.dependencies)
	mux.HandleFunc("GET /api/v3/services", a.v3Services)
	mux.HandleFunc("GET /api/v3/operations", a.v3Operations)
	mux.HandleFunc("GET /api/v3/traces", a.v3FindTraces)
	mux.HandleFunc("GET /api/v3/traces/{trace_id}", a.v3GetTrace)
}

// response is Jaeger's structuredResponse.
type response struct {
	Data   any             `json:"data"`
	Total  int             `json:"total"`
	Limit  int             `json:"limit"`
	Offset int             `json:"offset"`
	Errors []responseError `json:"errors"`
}

// errorResponse is the body of a failed request, Jaeger's
// {"data":null,"errors":[{"code":404,"msg":"trace not found"}]}.
type errorResponse struct {
	Data   any             `json:"data"`
	Errors []responseError `json:"errors"`
}

// responseError is Jaeger's structuredError.
type responseError struct {
	Code    int    `json:"code,omitempty"`
	Msg     string `json:"msg"`
	TraceID string `json:"traceID,omitempty"`
}

// errTraceNotFound is Jaeger's message for a missing trace.
var errTraceNotFound = errors.New("trace not found")

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code, b = http.StatusInternalServerError, []byte(`{"data":null,"errors":[{"code":500,"msg":"encoding the response failed"}]}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(b)
}

// writeError answers code with Jaeger's error body.
func (a *API) writeError(w http.ResponseWriter, code int, err error) {
	if code >= 500 {
		a.logger.Error("trace query failed", "err", err)
	}
	writeJSON(w, code, errorResponse{Errors: []responseError{{Code: code, Msg: err.Error()}}})
}

func (a *API) services(w http.ResponseWriter, r *http.Request) {
	svcs, err := a.r.Services(r.Context())
	if err != nil {
		a.writeError(w, store.HTTPStatus(err), err)
		return
	}
	if svcs == nil {
		svcs = []string{}
	}
	writeJSON(w, http.StatusOK, response{Data: svcs, Total: len(svcs)})
}

// serviceOperations lists a service's span names, each once.
func (a *API) serviceOperations(w http.ResponseWriter, r *http.Request) {
	ops, err := a.r.Operations(r.Context(), store.OperationQuery{Service: r.PathValue("service")})
	if err != nil {
		a.writeError(w, store.HTTPStatus(err), err)
		return
	}
	names := []string{}
	for _, op := range ops {
		if !slices.Contains(names, op.Name) {
			names = append(names, op.Name)
		}
	}
	writeJSON(w, http.StatusOK, response{Data: names, Total: len(names)})
}

// operation is one entry of /api/operations.
type operation struct {
	Name     string `json:"name"`
	SpanKind string `json:"spanKind"`
}

func (a *API) operations(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	svc, kind := q.Get(paramService), q.Get(paramSpanKind)
	if svc == "" {
		a.writeError(w, http.StatusBadRequest, errServiceRequired)
		return
	}
	if !validSpanKind(kind) {
		a.writeError(w, http.StatusBadRequest, parseError(errors.New("unsupported span kind: '"+kind+"'"), paramSpanKind))
		return
	}
	ops, err := a.r.Operations(r.Context(), store.OperationQuery{Service: svc, SpanKind: kind})
	if err != nil {
		a.writeError(w, store.HTTPStatus(err), err)
		return
	}
	out := make([]operation, len(ops))
	for i, op := range ops {
		out[i] = operation{Name: op.Name, SpanKind: op.SpanKind}
	}
	writeJSON(w, http.StatusOK, response{Data: out, Total: len(out)})
}

func (a *API) getTrace(w http.ResponseWriter, r *http.Request) {
	id, err := parseTraceID(r.PathValue("traceID"))
	if err != nil {
		a.writeError(w, http.StatusBadRequest, parseError(err, paramTraceID))
		return
	}
	traces, err := collect(a.r.GetTraces(r.Context(), store.TraceRequest{TraceID: id}))
	if err != nil {
		a.writeError(w, store.HTTPStatus(err), err)
		return
	}
	if len(traces) == 0 {
		a.writeError(w, http.StatusNotFound, errTraceNotFound)
		return
	}
	writeJSON(w, http.StatusOK, response{Data: toUITraces(traces)})
}

func (a *API) searchTraces(w http.ResponseWriter, r *http.Request) {
	p, err := parseSearch(r.URL.Query(), a.now())
	if err != nil {
		a.writeError(w, http.StatusBadRequest, err)
		return
	}
	var seq iter.Seq2[[]ptrace.Traces, error]
	if len(p.traceIDs) > 0 {
		reqs := make([]store.TraceRequest, len(p.traceIDs))
		for i, id := range p.traceIDs {
			reqs[i] = store.TraceRequest{TraceID: id}
		}
		seq = a.r.GetTraces(r.Context(), reqs...)
	} else {
		seq = a.r.FindTraces(r.Context(), p.query)
	}
	traces, err := collect(seq)
	if err != nil {
		a.writeError(w, store.HTTPStatus(err), err)
		return
	}
	writeJSON(w, http.StatusOK, response{Data: toUITraces(traces)})
}

func (a *API) dependencies(w http.ResponseWriter, r *http.Request) {
	start, end, err := parseDependencies(r.URL.Query(), a.now())
	if err != nil {
		a.writeError(w, http.StatusBadRequest, err)
		return
	}
	deps, err := a.r.Dependencies(r.Context(), start, end)
	if err != nil {
		a.writeError(w, store.HTTPStatus(err), err)
		return
	}
	svc := r.URL.Query().Get(paramService)
	out := []uiDependency{}
	for _, d := range deps {
		if svc == "" || d.Parent == svc || d.Child == svc {
			out = append(out, uiDependency{Parent: d.Parent, Child: d.Child, CallCount: d.CallCount})
		}
	}
	writeJSON(w, http.StatusOK, response{Data: out})
}

// traceChunks is one trace's spans as the store yielded them.
type traceChunks struct {
	id     pcommon.TraceID
	chunks []ptrace.Traces
}

// collect groups what seq yields by trace id, in first-seen order.
func collect(seq iter.Seq2[[]ptrace.Traces, error]) ([]traceChunks, error) {
	var out []traceChunks
	index := map[pcommon.TraceID]int{}
	for tds, err := range seq {
		if err != nil {
			return nil, err
		}
		for _, td := range tds {
			id, ok := firstTraceID(td)
			if !ok {
				continue
			}
			i, seen := index[id]
			if !seen {
				i = len(out)
				index[id] = i
				out = append(out, traceChunks{id: id})
			}
			out[i].chunks = append(out[i].chunks, td)
		}
	}
	return out, nil
}

// firstTraceID is the trace id of td's first span.
func firstTraceID(td ptrace.Traces) (pcommon.TraceID, bool) {
	for _, rs := range td.ResourceSpans().All() {
		for _, ss := range rs.ScopeSpans().All() {
			if ss.Spans().Len() > 0 {
				return ss.Spans().At(0).TraceID(), true
			}
		}
	}
	return pcommon.TraceID{}, false
}

func toUITraces(traces []traceChunks) []uiTrace {
	out := make([]uiTrace, 0, len(traces))
	for _, t := range traces {
		out = append(out, toUITrace(t.chunks))
	}
	return out
}
