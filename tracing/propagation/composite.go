package propagation

import (
	"context"

	"go.opentelemetry.io/contrib/propagators/b3"
	"go.opentelemetry.io/otel/propagation"
)

// composite extracts every format and injects the configured ones.
type composite struct {
	inject  []propagation.TextMapPropagator
	extract []propagation.TextMapPropagator
}

// newExtractors returns the extracting propagators in the order they run,
// so that when a request carries both W3C and B3 headers the W3C context
// (which also carries tracestate) wins: a valid span context found later
// replaces an earlier one, an invalid one leaves it.
func newExtractors() []propagation.TextMapPropagator {
	return []propagation.TextMapPropagator{
		b3.New(), // reads "b3" first, then x-b3-*
		propagation.TraceContext{},
		propagation.Baggage{},
	}
}

// Inject writes the span context of ctx in every configured format.
func (c *composite) Inject(ctx context.Context, carrier propagation.TextMapCarrier) {
	for _, p := range c.inject {
		p.Inject(ctx, carrier)
	}
}

// Extract reads W3C, B3 and baggage headers from carrier.
func (c *composite) Extract(ctx context.Context, carrier propagation.TextMapCarrier) context.Context {
	for _, p := range c.extract {
		ctx = p.Extract(ctx, carrier)
	}
	return ctx
}

// Fields lists the headers Inject writes.
func (c *composite) Fields() []string {
	var fields []string
	for _, p := range c.inject {
		fields = append(fields, p.Fields()...)
	}
	return fields
}
