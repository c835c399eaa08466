package jaegerquery

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"go.opentelemetry.io/collector/pdata/ptrace"
)

// gatewayError is Jaeger's GRPCGatewayError, the body of a failed API v3
// call (and the error chunk of a streamed one).
type gatewayError struct {
	Error *gatewayErrorDetails `json:"error"`
}

// gatewayErrorDetails is the inside of a gatewayError.
type gatewayErrorDetails struct {
	HTTPCode int    `json:"httpCode"`
	Message  string `json:"message"`
}

// chunk is one object of an API v3 traces answer: {"result": <OTLP JSON
// TracesData>} or, in a stream that failed part way, {"error": {...}}.
type chunk struct {
	Result json.RawMessage      `json:"result"`
	Error  *gatewayErrorDetails `json:"error"`
}

// decodeTraces decodes an API v3 traces answer: one or more chunks, one
// after another (newline-delimited when streamed). Every chunk must hold a
// result and every span a trace and span id; an error chunk, anything
// that is not such a chunk, or nothing at all fails the whole answer, so a
// trace is never returned in part as if it were whole.
func decodeTraces(body []byte) ([]ptrace.Traces, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	var out []ptrace.Traces
	for i := 0; ; i++ {
		var c chunk
		err := dec.Decode(&c)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("chunk %d: %w", i, err)
		}
		if c.Error != nil {
			return nil, fmt.Errorf("chunk %d: error %d: %s", i, c.Error.HTTPCode, c.Error.Message)
		}
		if len(c.Result) == 0 || bytes.Equal(c.Result, []byte("null")) {
			return nil, fmt.Errorf("chunk %d: no result", i)
		}
		td, err := unmarshalTraces(c.Result)
		if err != nil {
			return nil, fmt.Errorf("chunk %d: %w", i, err)
		}
		if err := checkIDs(td); err != nil {
			return nil, fmt.Errorf("chunk %d: %w", i, err)
		}
		out = append(out, td)
	}
	if len(out) == 0 {
		return nil, errors.New("empty answer")
	}
	return out, nil
}

// unmarshalTraces is pdata's OTLP JSON decoder; it must not take the
// process down on input nobody has fuzzed it with, so a panic is an error.
func unmarshalTraces(b []byte) (td ptrace.Traces, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("decoding OTLP JSON: %v", r)
		}
	}()
	td, err = (&ptrace.JSONUnmarshaler{}).UnmarshalTraces(b)
	if err != nil {
		return td, fmt.Errorf("decoding OTLP JSON: %w", err)
	}
	return td, nil
}

// checkIDs fails on a span without a trace or span id: it belongs to no
// trace, so it cannot be what was asked for.
func checkIDs(td ptrace.Traces) error {
	for _, rs := range td.ResourceSpans().All() {
		for _, ss := range rs.ScopeSpans().All() {
			for _, sp := range ss.Spans().All() {
				if sp.TraceID().IsEmpty() || sp.SpanID().IsEmpty() {
					return fmt.Errorf("span %q without a trace or span id", sp.Name())
				}
			}
		}
	}
	return nil
}

// decodeGatewayError reads a failed API v3 call's body; ok is false when
// it is not Jaeger's error JSON (another server answered).
func decodeGatewayError(body []byte) (gatewayErrorDetails, bool) {
	var e gatewayError
	if json.Unmarshal(body, &e) != nil || e.Error == nil || e.Error.HTTPCode == 0 {
		return gatewayErrorDetails{}, false
	}
	return *e.Error, true
}

// servicesAnswer is /api/v3/services' body. Jaeger's protobuf JSON leaves
// empty lists out: {} is no services.
type servicesAnswer struct {
	Services []string `json:"services"`
}

// operationsAnswer is /api/v3/operations' body ({} is none).
type operationsAnswer struct {
	Operations []struct {
		Name     string `json:"name"`
		SpanKind string `json:"spanKind"`
	} `json:"operations"`
}

// dependenciesAnswer is the Jaeger HTTP API's /api/dependencies body.
type dependenciesAnswer struct {
	Data []struct {
		Parent    string `json:"parent"`
		Child     string `json:"child"`
		CallCount uint64 `json:"callCount"`
	} `json:"data"`
	Errors []struct {
		Code int    `json:"code"`
		Msg  string `json:"msg"`
	} `json:"errors"`
}

// decodeV1Error reads the Jaeger HTTP API's error body,
// {"data":null,"errors":[{"code":500,"msg":"..."}]}.
func decodeV1Error(body []byte) (string, bool) {
	var d dependenciesAnswer
	if json.Unmarshal(body, &d) != nil || len(d.Errors) == 0 {
		return "", false
	}
	return d.message(), true
}

// message joins the answer's error messages.
func (d *dependenciesAnswer) message() string {
	msgs := make([]string, len(d.Errors))
	for i, e := range d.Errors {
		msgs[i] = e.Msg
	}
	return strings.Join(msgs, "; ")
}
