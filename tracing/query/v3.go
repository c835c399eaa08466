package query

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/glassmesh/glassmesh/tracing/store"
)

// v3DefaultSearchDepth is query.search_depth's default, as in Jaeger.
const v3DefaultSearchDepth = 100

// v3Error is Jaeger's GRPCGatewayError body.
type v3Error struct {
	Error v3ErrorDetails `json:"error"`
}

// v3ErrorDetails is the inside of a v3Error.
type v3ErrorDetails struct {
	HTTPCode int    `json:"httpCode"`
	Message  string `json:"message"`
}

func (a *API) writeV3Error(w http.ResponseWriter, code int, err error) {
	if code >= 500 {
		a.logger.Error("trace query failed", "err", err)
	}
	writeJSON(w, code, v3Error{v3ErrorDetails{HTTPCode: code, Message: err.Error()}})
}

// v3Param returns the value of the canonical (camelCase) parameter or of
// its older snake_case spelling, and the name it came from.
func v3Param(q url.Values, canonical, deprecated string) (string, string) {
	if v := q.Get(canonical); v != "" {
		return v, canonical
	}
	return q.Get(deprecated), deprecated
}

func malformed(param string, err error) error {
	return fmt.Errorf("malformed parameter %s: %w", param, err)
}

func (a *API) v3Services(w http.ResponseWriter, r *http.Request) {
	svcs, err := a.r.Services(r.Context())
	if err != nil {
		a.writeV3Error(w, store.HTTPStatus(err), err)
		return
	}
	if svcs == nil {
		svcs = []string{}
	}
	writeJSON(w, http.StatusOK, map[string][]string{"services": svcs})
}

func (a *API) v3Operations(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	kind, param := v3Param(q, "spanKind", "span_kind")
	if !validSpanKind(kind) {
		a.writeV3Error(w, http.StatusBadRequest, malformed(param, fmt.Errorf("unsupported span kind %q", kind)))
		return
	}
	ops, err := a.r.Operations(r.Context(), store.OperationQuery{Service: q.Get("service"), SpanKind: kind})
	if err != nil {
		a.writeV3Error(w, store.HTTPStatus(err), err)
		return
	}
	out := make([]operation, len(ops))
	for i, op := range ops {
		out[i] = operation{Name: op.Name, SpanKind: op.SpanKind}
		if out[i].SpanKind == "" {
			out[i].SpanKind = "internal" // as Jaeger's v3 gateway answers
		}
	}
	writeJSON(w, http.StatusOK, map[string][]operation{"operations": out})
}

func (a *API) v3GetTrace(w http.ResponseWriter, r *http.Request) {
	id, err := parseTraceID(r.PathValue("trace_id"))
	if err != nil {
		a.writeV3Error(w, http.StatusBadRequest, malformed("trace_id", err))
		return
	}
	req := store.TraceRequest{TraceID: id}
	q := r.URL.Query()
	for _, b := range []struct {
		canonical, deprecated string
		t                     *time.Time
	}{{"startTime", "start_time", &req.Start}, {"endTime", "end_time", &req.End}} {
		if s, param := v3Param(q, b.canonical, b.deprecated); s != "" {
			if *b.t, err = time.Parse(time.RFC3339Nano, s); err != nil {
				a.writeV3Error(w, http.StatusBadRequest, malformed(param, err))
				return
			}
		}
	}
	traces, err := collect(a.r.GetTraces(r.Context(), req))
	a.writeV3Traces(w, traces, err)
}

func (a *API) v3FindTraces(w http.ResponseWriter, r *http.Request) {
	tq, err := parseV3Query(r.URL.Query())
	if err != nil {
		a.writeV3Error(w, http.StatusBadRequest, err)
		return
	}
	traces, err := collect(a.r.FindTraces(r.Context(), tq))
	a.writeV3Traces(w, traces, err)
}

// writeV3Traces answers {"result": <OTLP JSON TracesData>} with every
// trace's resource spans, or 404 when there are none, as Jaeger does.
func (a *API) writeV3Traces(w http.ResponseWriter, traces []traceChunks, err error) {
	if err != nil {
		a.writeV3Error(w, store.HTTPStatus(err), err)
		return
	}
	if len(traces) == 0 {
		a.writeV3Error(w, http.StatusNotFound, errors.New("No traces found")) //nolint:staticcheck // Jaeger's exact message
		return
	}
	all := ptrace.NewTraces()
	for _, t := range traces {
		for _, td := range t.chunks {
			td.ResourceSpans().MoveAndAppendTo(all.ResourceSpans())
		}
	}
	b, err := (&ptrace.JSONMarshaler{}).MarshalTraces(all)
	if err != nil {
		a.writeV3Error(w, store.HTTPStatus(err), err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]json.RawMessage{"result": b})
}

// parseV3Query parses /api/v3/traces' query.* parameters; the start-time
// bounds are required, as in Jaeger.
func parseV3Query(q url.Values) (store.TraceQuery, error) {
	var tq store.TraceQuery
	tq.Service, _ = v3Param(q, "query.serviceName", "query.service_name")
	tq.Operation, _ = v3Param(q, "query.operationName", "query.operation_name")
	if s := q.Get("query.attributes"); s != "" {
		if err := json.Unmarshal([]byte(s), &tq.Attributes); err != nil {
			return tq, malformed("query.attributes", err)
		}
	}
	minS, minP := v3Param(q, "query.startTimeMin", "query.start_time_min")
	maxS, maxP := v3Param(q, "query.startTimeMax", "query.start_time_max")
	if minS == "" || maxS == "" {
		return tq, errors.New("query.start_time_min and query.start_time_max are required")
	}
	var err error
	if tq.StartMin, err = time.Parse(time.RFC3339Nano, minS); err != nil {
		return tq, malformed(minP, err)
	}
	if tq.StartMax, err = time.Parse(time.RFC3339Nano, maxS); err != nil {
		return tq, malformed(maxP, err)
	}
	if !tq.StartMin.Before(tq.StartMax) {
		return tq, errors.New("query.start_time_min must be before query.start_time_max")
	}
	tq.Limit = v3DefaultSearchDepth
	if s, p := v3Param(q, "query.searchDepth", "query.search_depth"); s != "" {
		if tq.Limit, err = strconv.Atoi(s); err != nil || tq.Limit < 0 {
			return tq, malformed(p, fmt.Errorf("%q is not a non-negative integer", s))
		}
	}
	for _, d := range []struct {
		canonical, deprecated string
		v                     *time.Duration
	}{{"query.durationMin", "query.duration_min", &tq.DurationMin}, {"query.durationMax", "query.duration_max", &tq.DurationMax}} {
		if s, p := v3Param(q, d.canonical, d.deprecated); s != "" {
			if *d.v, err = time.ParseDuration(s); err != nil || *d.v < 0 {
				return tq, malformed(p, fmt.Errorf("%q is not a non-negative duration", s))
			}
		}
	}
	return tq, nil
}
