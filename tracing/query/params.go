package query

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"

	"github.com/glassmesh/glassmesh/tracing/store"
)

// Query parameter names of the Jaeger HTTP API.
const (
	paramService     = "service"
	paramOperation   = "operation"
	paramSpanKind    = "spanKind"
	paramStart       = "start"
	paramEnd         = "end"
	paramLookback    = "lookback"
	paramLimit       = "limit"
	paramMinDuration = "minDuration"
	paramMaxDuration = "maxDuration"
	paramTag         = "tag"
	paramTags        = "tags"
	paramTraceID     = "traceID"
	paramEndTs       = "endTs"
)

// defaultDependencyLookback is /api/dependencies' lookback, as in Jaeger.
const defaultDependencyLookback = 24 * time.Hour

var (
	errServiceRequired = errors.New("parameter 'service' is required")
	errMinOverMax      = errors.New("'maxDuration' should be greater than 'minDuration'")
	errStartAfterEnd   = errors.New("'start' should be before 'end'")
)

// parseError names the parameter that failed, as Jaeger does.
func parseError(err error, param string) error {
	return fmt.Errorf("unable to parse param '%s': %w", param, err)
}

// parseTraceID parses a trace id of 1 to 32 hex digits; shorter ids (Zipkin
// and B3 64-bit ones) are zero padded, so "a3ce929d0e0e4736" and its
// 32-digit form name the same trace.
func parseTraceID(s string) (pcommon.TraceID, error) {
	var id pcommon.TraceID
	if s == "" {
		return id, errors.New("empty trace id")
	}
	if len(s) > 32 {
		return id, fmt.Errorf("trace id %q is longer than 32 hex characters", s)
	}
	padded := strings.Repeat("0", 32-len(s)) + s
	if _, err := hex.Decode(id[:], []byte(padded)); err != nil {
		return pcommon.TraceID{}, fmt.Errorf("trace id %q is not hex", s)
	}
	return id, nil
}

// parseTags merges repeated tag=key:value parameters (key=value is taken
// too) and tags={"key":"value"} JSON objects.
func parseTags(simple, jsonTags []string) (map[string]string, error) {
	tags := map[string]string{}
	for _, t := range simple {
		k, v, ok := strings.Cut(t, ":")
		if !ok {
			k, v, ok = strings.Cut(t, "=")
		}
		if !ok || k == "" {
			return nil, fmt.Errorf("malformed 'tag' parameter, expecting key:value, received: %s", t)
		}
		tags[k] = v
	}
	for _, j := range jsonTags {
		var m map[string]string
		if err := json.Unmarshal([]byte(j), &m); err != nil {
			return nil, fmt.Errorf("malformed 'tags' parameter, cannot unmarshal JSON: %w", err)
		}
		for k, v := range m {
			tags[k] = v
		}
	}
	if len(tags) == 0 {
		return nil, nil
	}
	return tags, nil
}

// parseDuration parses an optional Go duration ("1.5s", "200ms").
func parseDuration(q url.Values, param string) (time.Duration, error) {
	s := q.Get(param)
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, parseError(err, param)
	}
	if d < 0 {
		return 0, parseError(errors.New("negative duration"), param)
	}
	return d, nil
}

// parseUnixTime parses optional integer time in units since the epoch.
func parseUnixTime(q url.Values, param string, unit time.Duration) (time.Time, bool, error) {
	s := q.Get(param)
	if s == "" {
		return time.Time{}, false, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, false, parseError(err, param)
	}
	return time.Unix(0, 0).Add(time.Duration(n) * unit), true, nil
}

// searchParams is a parsed /api/traces request.
type searchParams struct {
	traceIDs []pcommon.TraceID // when given, fetch these instead
	query    store.TraceQuery
}

// parseSearch parses /api/traces parameters: start and end in µs (end
// defaults to now), lookback as a Go duration (used when start is absent;
// "custom" is ignored), limit (0: 100, applied after every filter).
func parseSearch(q url.Values, now time.Time) (searchParams, error) {
	var p searchParams
	for _, s := range q[paramTraceID] {
		id, err := parseTraceID(s)
		if err != nil {
			return p, parseError(err, paramTraceID)
		}
		p.traceIDs = append(p.traceIDs, id)
	}
	p.query.Service, p.query.Operation = q.Get(paramService), q.Get(paramOperation)
	if len(p.traceIDs) == 0 && p.query.Service == "" {
		return p, errServiceRequired
	}
	var err error
	if p.query.Attributes, err = parseTags(q[paramTag], q[paramTags]); err != nil {
		return p, err
	}
	if err := parseWindow(q, now, &p.query); err != nil {
		return p, err
	}
	if p.query.DurationMin, err = parseDuration(q, paramMinDuration); err != nil {
		return p, err
	}
	if p.query.DurationMax, err = parseDuration(q, paramMaxDuration); err != nil {
		return p, err
	}
	if p.query.DurationMin > 0 && p.query.DurationMax > 0 && p.query.DurationMax < p.query.DurationMin {
		return p, errMinOverMax
	}
	if s := q.Get(paramLimit); s != "" {
		if p.query.Limit, err = strconv.Atoi(s); err != nil || p.query.Limit < 0 {
			return p, parseError(fmt.Errorf("%q is not a non-negative integer", s), paramLimit)
		}
	}
	return p, nil
}

// parseWindow sets the start-time bounds of q.
func parseWindow(q url.Values, now time.Time, tq *store.TraceQuery) error {
	end, ok, err := parseUnixTime(q, paramEnd, time.Microsecond)
	if err != nil {
		return err
	}
	if !ok {
		end = now
	}
	start, ok, err := parseUnixTime(q, paramStart, time.Microsecond)
	if err != nil {
		return err
	}
	if lb := q.Get(paramLookback); !ok && lb != "" && lb != "custom" {
		d, err := parseLookback(lb)
		if err != nil {
			return parseError(err, paramLookback)
		}
		start = end.Add(-d)
	}
	if !start.IsZero() && start.After(end) {
		return errStartAfterEnd
	}
	tq.StartMin, tq.StartMax = start, end
	return nil
}

// parseLookback parses a Go duration, or a whole number of days or weeks
// ("2d", "1w") as Jaeger UI's lookback menu spells them.
func parseLookback(s string) (time.Duration, error) {
	unit := map[byte]time.Duration{'d': 24 * time.Hour, 'w': 7 * 24 * time.Hour}[s[len(s)-1]]
	if unit == 0 {
		return time.ParseDuration(s)
	}
	n, err := strconv.ParseUint(s[:len(s)-1], 10, 16)
	if err != nil {
		return 0, fmt.Errorf("lookback %q: want a Go duration or a number of days (d) or weeks (w)", s)
	}
	return time.Duration(n) * unit, nil
}

// parseDependencies parses /api/dependencies: endTs and lookback in ms.
func parseDependencies(q url.Values, now time.Time) (start, end time.Time, err error) {
	end, ok, err := parseUnixTime(q, paramEndTs, time.Millisecond)
	if err != nil {
		return start, end, err
	}
	if !ok {
		end = now
	}
	lookback := defaultDependencyLookback
	if s := q.Get(paramLookback); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			return start, end, parseError(fmt.Errorf("%q is not a number of milliseconds", s), paramLookback)
		}
		lookback = time.Duration(n) * time.Millisecond
	}
	return end.Add(-lookback), end, nil
}

// validSpanKind reports whether k is a Jaeger span kind filter.
func validSpanKind(k string) bool {
	switch k {
	case "", "server", "client", "producer", "consumer", "internal":
		return true
	}
	return false
}
