// Package propagation is the mesh's trace-context propagator: it extracts
// W3C traceparent/tracestate and B3 (single "b3" and multi "x-b3-*"
// headers) and injects the formats configured, so a trace started by a
// B3-speaking app (Zipkin tracers, older Envoys) continues through W3C
// apps and back with the same ids. It is built on OTel's propagators.
//
// 64-bit B3 trace ids are padded to 128 bits with leading zeros, the way
// Zipkin and Jaeger store them, so the W3C form of such a trace is
// "0000000000000000" followed by the 16 B3 hex digits.
package propagation

import (
	"fmt"
	"strings"

	"go.opentelemetry.io/contrib/propagators/b3"
	"go.opentelemetry.io/otel/propagation"
)

// Format is one wire format of trace context.
type Format string

// The formats a Propagator can inject. Their names are those of the
// OTEL_PROPAGATORS environment variable, so users recognise them.
const (
	// W3C is the W3C Trace Context traceparent and tracestate headers.
	W3C Format = "tracecontext"
	// B3Multi is the x-b3-traceid, x-b3-spanid, x-b3-parentspanid and
	// x-b3-sampled headers.
	B3Multi Format = "b3multi"
	// B3Single is the single "b3" header.
	B3Single Format = "b3"
	// Baggage is the W3C baggage header.
	Baggage Format = "baggage"
)

// DefaultInject returns what Default injects: W3C and B3 multi, which
// every tracer in the mesh understands.
func DefaultInject() []Format { return []Format{W3C, B3Multi} }

// Config says which formats a Propagator injects. Every known format is
// always extracted.
type Config struct {
	// Inject lists the formats written on outgoing requests, without
	// duplicates; empty means DefaultInject().
	Inject []Format
}

// Validate reports an unknown or repeated format, naming its key path.
func (c Config) Validate() error {
	seen := map[Format]bool{}
	for i, f := range c.Inject {
		switch f {
		case W3C, B3Multi, B3Single, Baggage:
		default:
			return fmt.Errorf("propagation.inject[%d]: unknown format %q (want tracecontext, b3multi, b3 or baggage)", i, f)
		}
		if seen[f] {
			return fmt.Errorf("propagation.inject[%d]: %q given twice", i, f)
		}
		seen[f] = true
	}
	return nil
}

// ParseFormats parses a comma-separated list such as "tracecontext,b3multi"
// (OTEL_PROPAGATORS style) into a Config.
func ParseFormats(s string) (Config, error) {
	var c Config
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			c.Inject = append(c.Inject, Format(strings.ToLower(f)))
		}
	}
	return c, c.Validate()
}

// New returns a propagator that extracts W3C, B3 single, B3 multi and
// baggage, and injects the formats of cfg.
func New(cfg Config) (propagation.TextMapPropagator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	inject := cfg.Inject
	if len(inject) == 0 {
		inject = DefaultInject()
	}
	p := &composite{extract: newExtractors()}
	var enc b3.Encoding
	for _, f := range inject {
		switch f {
		case W3C:
			p.inject = append(p.inject, propagation.TraceContext{})
		case Baggage:
			p.inject = append(p.inject, propagation.Baggage{})
		case B3Multi:
			enc |= b3.B3MultipleHeader
		case B3Single:
			enc |= b3.B3SingleHeader
		}
	}
	if enc != 0 {
		p.inject = append(p.inject, b3.New(b3.WithInjectEncoding(enc)))
	}
	return p, nil
}

// Default returns the propagator injecting DefaultInject().
func Default() propagation.TextMapPropagator {
	p, _ := New(Config{}) // the zero Config is valid
	return p
}

// HeaderNames lists every header a mesh propagator reads, lower case:
// proxies must forward them unchanged (Envoy's tracing config, ALS
// additional headers) for traces to stitch across hops.
func HeaderNames() []string {
	return []string{
		"traceparent", "tracestate", "baggage",
		"b3", "x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid", "x-b3-sampled", "x-b3-flags",
	}
}
