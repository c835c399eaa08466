package jaegerquery

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"iter"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/glassmesh/glassmesh/tracing/store"
)

var _ store.Reader = (*Reader)(nil)

// API paths, under Config.URL.
const (
	pathTraces       = "/api/v3/traces"
	pathServices     = "/api/v3/services"
	pathOperations   = "/api/v3/operations"
	pathDependencies = "/api/dependencies"
)

// The search window used for an unbounded side of a TraceQuery: API v3
// requires both bounds.
var (
	searchFloor   = time.Unix(0, 0).UTC()
	searchCeiling = time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)
)

// GetTraces yields each trace asked for, whole, as the store answers it
// (raw: Jaeger's adjusters are not applied); traces the store does not
// have, or with no span in the request's window, are skipped. The first
// failure ends the sequence with its error.
func (r *Reader) GetTraces(ctx context.Context, ids ...store.TraceRequest) iter.Seq2[[]ptrace.Traces, error] {
	return func(yield func([]ptrace.Traces, error) bool) {
		for _, req := range ids {
			tds, err := r.getTrace(ctx, req)
			if err != nil {
				yield(nil, err)
				return
			}
			if len(tds) > 0 && !yield(tds, nil) {
				return
			}
		}
	}
}

func (r *Reader) getTrace(ctx context.Context, req store.TraceRequest) ([]ptrace.Traces, error) {
	id := hex.EncodeToString(req.TraceID[:])
	path := pathTraces + "/" + id
	q := url.Values{"raw_traces": {"true"}}
	if !req.Start.IsZero() {
		q.Set("start_time", req.Start.UTC().Format(time.RFC3339Nano))
	}
	if !req.End.IsZero() {
		q.Set("end_time", req.End.UTC().Format(time.RFC3339Nano))
	}
	a, err := r.get(ctx, path, q)
	if err != nil {
		return nil, err
	}
	if notFound(a) {
		return nil, nil
	}
	tds, err := r.traces(path, a)
	if err != nil {
		return nil, err
	}
	for _, td := range tds {
		var other pcommon.TraceID
		store.ForEachSpan(td, func(_ string, _ pcommon.Map, sp ptrace.Span) {
			if sp.TraceID() != req.TraceID {
				other = sp.TraceID()
			}
		})
		if !other.IsEmpty() {
			return nil, r.fail(store.ErrBadResponse, "GET %s: answered spans of trace %s", path, other)
		}
	}
	if !req.Start.IsZero() || !req.End.IsZero() {
		// Not every store applies the window (Jaeger's memory store does not).
		q := store.TraceQuery{StartMin: req.Start, StartMax: req.End}
		if !anyMatch(&q, tds) {
			return nil, nil
		}
	}
	return tds, nil
}

// notFound reports whether a is API v3's "no traces found": 404 with
// Jaeger's error JSON. A 404 without it is a path the server does not
// serve, which is an error.
func notFound(a answer) bool {
	if a.status != http.StatusNotFound {
		return false
	}
	e, ok := decodeGatewayError(a.body)
	return ok && e.HTTPCode == http.StatusNotFound
}

func anyMatch(q *store.TraceQuery, tds []ptrace.Traces) bool {
	for _, td := range tds {
		if _, ok := store.MatchTrace(q, td); ok {
			return true
		}
	}
	return false
}

// Services lists the store's services, sorted.
func (r *Reader) Services(ctx context.Context) ([]string, error) {
	var ans servicesAnswer
	if err := r.getJSON(ctx, pathServices, nil, &ans); err != nil {
		return nil, err
	}
	slices.Sort(ans.Services)
	return slices.Compact(ans.Services), nil
}

// Operations lists a service's operations, sorted by name then kind.
func (r *Reader) Operations(ctx context.Context, q store.OperationQuery) ([]store.Operation, error) {
	v := url.Values{"service": {q.Service}}
	if q.SpanKind != "" {
		v.Set("span_kind", q.SpanKind)
	}
	var ans operationsAnswer
	if err := r.getJSON(ctx, pathOperations, v, &ans); err != nil {
		return nil, err
	}
	ops := make([]store.Operation, 0, len(ans.Operations))
	for _, op := range ans.Operations {
		ops = append(ops, store.Operation{Name: op.Name, SpanKind: op.SpanKind})
	}
	store.SortOperations(ops)
	return slices.Compact(ops), nil
}

// getJSON asks for path?q and decodes a 200 answer's JSON object into v.
func (r *Reader) getJSON(ctx context.Context, path string, q url.Values, v any) error {
	a, err := r.get(ctx, path, q)
	if err != nil {
		return err
	}
	if err := r.checkOK(path, a); err != nil {
		return err
	}
	if err := json.Unmarshal(a.body, v); err != nil {
		return r.fail(store.ErrBadResponse, "GET %s: %w", path, err)
	}
	return nil
}

// traces decodes a 200 answer of path's traces.
func (r *Reader) traces(path string, a answer) ([]ptrace.Traces, error) {
	if err := r.checkOK(path, a); err != nil {
		return nil, err
	}
	tds, err := decodeTraces(a.body)
	if err != nil {
		return nil, r.fail(store.ErrBadResponse, "GET %s: %w", path, err)
	}
	return tds, nil
}

// checkOK fails an answer that is not a 200, or is a web page: Jaeger
// answers the UI's page, 200, for paths it does not serve (the URL may
// name the wrong port, or a Jaeger without API v3).
func (r *Reader) checkOK(path string, a answer) error {
	if a.status != http.StatusOK {
		return r.statusError("GET "+path, a)
	}
	if b := bytes.TrimSpace(a.body); len(b) > 0 && b[0] == '<' {
		return r.fail(store.ErrBadResponse, "GET %s: answered a web page, not JSON: is this the Jaeger query service's HTTP address (port 16686), and is the Jaeger recent enough for API v3?", path)
	}
	return nil
}

// FindTraces yields the traces matching q, newest first. The store's
// answer is checked against q here as well (store.MatchTrace), since not
// every store applies every condition.
func (r *Reader) FindTraces(ctx context.Context, q store.TraceQuery) iter.Seq2[[]ptrace.Traces, error] {
	return func(yield func([]ptrace.Traces, error) bool) {
		found, err := r.find(ctx, &q)
		if err != nil {
			yield(nil, err)
			return
		}
		for _, f := range found {
			if !yield([]ptrace.Traces{f.td}, nil) {
				return
			}
		}
	}
}

// FindTraceIDs is FindTraces without the spans (the API has no such call:
// the spans are fetched and dropped).
func (r *Reader) FindTraceIDs(ctx context.Context, q store.TraceQuery) iter.Seq2[[]store.FoundTrace, error] {
	return func(yield func([]store.FoundTrace, error) bool) {
		found, err := r.find(ctx, &q)
		if err != nil {
			yield(nil, err)
			return
		}
		if len(found) == 0 {
			return
		}
		ids := make([]store.FoundTrace, len(found))
		for i, f := range found {
			ids[i] = f.FoundTrace
		}
		yield(ids, nil)
	}
}

// foundTrace is one trace of a search's answer.
type foundTrace struct {
	store.FoundTrace
	td ptrace.Traces
}

func (r *Reader) find(ctx context.Context, q *store.TraceQuery) ([]foundTrace, error) {
	a, err := r.get(ctx, pathTraces, r.searchParams(q))
	if err != nil {
		return nil, err
	}
	if notFound(a) {
		return nil, nil
	}
	tds, err := r.traces(pathTraces, a)
	if err != nil {
		return nil, err
	}
	// Chunks may hold several traces, and a trace may span chunks.
	byID := map[pcommon.TraceID]ptrace.Traces{}
	var order []pcommon.TraceID
	for _, td := range tds {
		for _, f := range store.SplitByTrace(td, 0) {
			all, ok := byID[f.ID]
			if !ok {
				all = ptrace.NewTraces()
				byID[f.ID] = all
				order = append(order, f.ID)
			}
			f.Traces.ResourceSpans().MoveAndAppendTo(all.ResourceSpans())
		}
	}
	var found []foundTrace
	for _, id := range order {
		if start, ok := store.MatchTrace(q, byID[id]); ok {
			found = append(found, foundTrace{store.FoundTrace{TraceID: id, Start: start}, byID[id]})
		}
	}
	slices.SortFunc(found, func(a, b foundTrace) int {
		if c := b.Start.Compare(a.Start); c != 0 {
			return c
		}
		return store.CompareTraceIDs(a.TraceID, b.TraceID)
	})
	return found[:min(len(found), q.MaxTraces())], nil
}

// searchParams are API v3's query.* parameters for q, in the spelling
// Jaeger v1.75 reads (snake_case; query.num_traces) and the one glassmesh
// reads too (query.search_depth).
func (r *Reader) searchParams(q *store.TraceQuery) url.Values {
	v := url.Values{"query.raw_traces": {"true"}}
	if q.Service != "" {
		v.Set("query.service_name", q.Service)
	}
	if q.Operation != "" {
		v.Set("query.operation_name", q.Operation)
	}
	lo, hi := q.StartMin, q.StartMax
	if lo.IsZero() {
		lo = searchFloor
	}
	if hi.IsZero() {
		hi = searchCeiling
	}
	if !lo.Before(hi) {
		hi = lo.Add(time.Nanosecond) // the API wants min < max; the contract allows min == max
	}
	v.Set("query.start_time_min", lo.UTC().Format(time.RFC3339Nano))
	v.Set("query.start_time_max", hi.UTC().Format(time.RFC3339Nano))
	if q.DurationMin > 0 {
		v.Set("query.duration_min", q.DurationMin.String())
	}
	if q.DurationMax > 0 {
		v.Set("query.duration_max", q.DurationMax.String())
	}
	depth := q.MaxTraces()
	if len(q.Attributes) > 0 {
		b, _ := json.Marshal(q.Attributes) // a map of strings always marshals
		v.Set("query.attributes", string(b))
		depth = max(depth, r.cfg.AttributeSearchDepth)
	}
	v.Set("query.num_traces", strconv.Itoa(depth))
	v.Set("query.search_depth", strconv.Itoa(depth))
	return v
}

// Dependencies lists the calls between services in [start, end) as the
// store counts them (Jaeger's memory store: every parent/child span pair
// across services in the traces of the window). The Jaeger HTTP API takes
// milliseconds, so the window is widened to whole milliseconds.
func (r *Reader) Dependencies(ctx context.Context, start, end time.Time) ([]store.Dependency, error) {
	endMs := end.UnixMilli()
	if time.UnixMilli(endMs).Before(end) {
		endMs++
	}
	lookback := max(endMs-start.UnixMilli(), 1)
	v := url.Values{"endTs": {strconv.FormatInt(endMs, 10)}, "lookback": {strconv.FormatInt(lookback, 10)}}
	var ans dependenciesAnswer
	if err := r.getJSON(ctx, pathDependencies, v, &ans); err != nil {
		return nil, err
	}
	if len(ans.Errors) > 0 {
		return nil, r.fail(store.ErrBadResponse, "GET %s: %s", pathDependencies, ans.message())
	}
	counts := map[store.CallKey]uint64{}
	for _, d := range ans.Data {
		if d.Parent != d.Child { // a service calling itself is no edge, as in our stores
			counts[store.CallKey{Parent: d.Parent, Child: d.Child}] += d.CallCount
		}
	}
	return store.DependencyList(counts), nil
}
