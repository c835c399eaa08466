package pipeline

import "strings"

// Trace context headers an access log entry may carry (they must be listed
// in the access-log config's additional_request_headers_to_log).
const (
	headerTraceparent = "traceparent"
	headerB3          = "b3"
	headerB3TraceID   = "x-b3-traceid"
)

// zeroPad64 turns a 64-bit (16 hex) trace id into the 32-hex form, as Jaeger
// and Zipkin do when they compare ids of both widths.
const zeroPad64 = "0000000000000000"

// traceIDFromHeaders returns the request's trace id as 32 lowercase hex
// characters, from (in order) a W3C traceparent, a B3 single header or an
// x-b3-traceid header; "" when none carries a valid one.
func traceIDFromHeaders(h map[string]string) string {
	if len(h) == 0 {
		return ""
	}
	if v, ok := h[headerTraceparent]; ok {
		if id, ok := parseTraceparent(v); ok {
			return id
		}
	}
	if v, ok := h[headerB3]; ok {
		if id, ok := parseB3Single(v); ok {
			return id
		}
	}
	if v, ok := h[headerB3TraceID]; ok {
		if id, ok := parseB3TraceID(v); ok {
			return id
		}
	}
	return ""
}

// parseTraceparent returns the trace id of a W3C traceparent header
// (version-traceid-parentid-flags). Following the W3C spec it rejects
// version ff, upper-case hex, all-zero ids, and a version-00 header with
// anything after the flags; later versions may append "-..." fields.
func parseTraceparent(v string) (string, bool) {
	const size = 55 // 2 + 1 + 32 + 1 + 16 + 1 + 2
	if len(v) < size || v[2] != '-' || v[35] != '-' || v[52] != '-' {
		return "", false
	}
	version := v[0:2]
	if !isLowerHex(version) || version == "ff" {
		return "", false
	}
	if len(v) > size && (version == "00" || v[size] != '-') {
		return "", false
	}
	trace, parent, flags := v[3:35], v[36:52], v[53:55]
	if !isLowerHex(trace) || !isLowerHex(parent) || !isLowerHex(flags) || allZero(trace) || allZero(parent) {
		return "", false
	}
	return trace, true
}

// parseB3Single returns the trace id of a B3 single header
// ({TraceId}-{SpanId}[-{SamplingState}[-{ParentSpanId}]]). A header that
// only carries a sampling decision ("0", "1", "d") has no trace id.
func parseB3Single(v string) (string, bool) {
	trace, rest, ok := strings.Cut(v, "-")
	if !ok {
		return "", false
	}
	id, ok := parseB3TraceID(trace)
	if !ok {
		return "", false
	}
	span, rest, more := strings.Cut(rest, "-")
	if len(span) != 16 || !isLowerHex(span) || allZero(span) {
		return "", false
	}
	if !more {
		return id, true
	}
	sampled, parent, more := strings.Cut(rest, "-")
	if sampled != "0" && sampled != "1" && sampled != "d" {
		return "", false
	}
	if more && (len(parent) != 16 || !isLowerHex(parent) || allZero(parent)) {
		return "", false
	}
	return id, true
}

// parseB3TraceID returns a 64- or 128-bit B3 trace id as 32 hex characters.
func parseB3TraceID(v string) (string, bool) {
	if (len(v) != 16 && len(v) != 32) || !isLowerHex(v) || allZero(v) {
		return "", false
	}
	if len(v) == 16 {
		return zeroPad64 + v, true
	}
	return v, true
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func allZero(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] != '0' {
			return false
		}
	}
	return true
}
