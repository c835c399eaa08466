package store

import (
	"strings"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// defaultLimit is the number of traces a TraceQuery without a Limit returns.
const defaultLimit = 100

// serviceKey is the resource attribute that names a span's service.
const serviceKey = "service.name"

// MaxTraces is the number of traces q returns at most: its Limit, or
// 100 when it has none.
func (q TraceQuery) MaxTraces() int {
	if q.Limit <= 0 {
		return defaultLimit
	}
	return q.Limit
}

// KindName is the Jaeger spelling of a span kind ("" when unspecified), as
// Operation.SpanKind and OperationQuery.SpanKind use it.
func KindName(k ptrace.SpanKind) string {
	switch k {
	case ptrace.SpanKindServer:
		return "server"
	case ptrace.SpanKindClient:
		return "client"
	case ptrace.SpanKindProducer:
		return "producer"
	case ptrace.SpanKindConsumer:
		return "consumer"
	case ptrace.SpanKindInternal:
		return "internal"
	}
	return ""
}

// ServiceName is the service a resource names (its service.name).
func ServiceName(res pcommon.Resource) string {
	if v, ok := res.Attributes().Get(serviceKey); ok {
		return v.AsString()
	}
	return ""
}

func inWindow(t time.Time, start, end time.Time) bool {
	return (start.IsZero() || !t.Before(start)) && (end.IsZero() || !t.After(end))
}

// spanMatches reports whether one span satisfies every condition of q.
// The "error" attribute compares the span's error status, "span.kind" its
// kind; every other attribute is looked up on the span, then its resource.
func spanMatches(q *TraceQuery, svc string, res pcommon.Map, sp ptrace.Span) bool {
	if q.Service != "" && svc != q.Service {
		return false
	}
	if q.Operation != "" && sp.Name() != q.Operation {
		return false
	}
	start := sp.StartTimestamp().AsTime()
	if !inWindow(start, q.StartMin, q.StartMax) {
		return false
	}
	d := time.Duration(sp.EndTimestamp() - sp.StartTimestamp())
	if q.DurationMin > 0 && d < q.DurationMin || q.DurationMax > 0 && d > q.DurationMax {
		return false
	}
	for k, v := range q.Attributes {
		if !attrMatches(k, v, res, sp) {
			return false
		}
	}
	return true
}

func attrMatches(k, v string, res pcommon.Map, sp ptrace.Span) bool {
	switch k {
	case "error":
		isErr := sp.Status().Code() == ptrace.StatusCodeError
		return isErr == strings.EqualFold(v, "true")
	case "span.kind":
		return KindName(sp.Kind()) == v
	}
	if a, ok := sp.Attributes().Get(k); ok && a.AsString() == v {
		return true
	}
	a, ok := res.Get(k)
	return ok && a.AsString() == v
}

// MatchTrace reports whether a span of td satisfies every condition of q,
// and the latest start of such a span: the check every backend makes on
// the traces its indexes point to (an index only narrows the candidates).
func MatchTrace(q *TraceQuery, td ptrace.Traces) (latest time.Time, ok bool) {
	ForEachSpan(td, func(svc string, res pcommon.Map, sp ptrace.Span) {
		if spanMatches(q, svc, res, sp) {
			if t := sp.StartTimestamp().AsTime(); !ok || t.After(latest) {
				latest, ok = t, true
			}
		}
	})
	return latest, ok
}

// ForEachSpan calls fn with every span of td, its service and resource
// attributes.
func ForEachSpan(td ptrace.Traces, fn func(svc string, res pcommon.Map, sp ptrace.Span)) {
	rss := td.ResourceSpans()
	for i := 0; i < rss.Len(); i++ {
		rs := rss.At(i)
		svc := ServiceName(rs.Resource())
		attrs := rs.Resource().Attributes()
		sss := rs.ScopeSpans()
		for j := 0; j < sss.Len(); j++ {
			spans := sss.At(j).Spans()
			for k := 0; k < spans.Len(); k++ {
				fn(svc, attrs, spans.At(k))
			}
		}
	}
}

// CallKey is a parent → child service pair, the key backends count
// Dependencies by.
type CallKey struct{ Parent, Child string }

// depCollector counts parent/child span pairs across services within one
// trace, whose parts may arrive in several pieces.
type depCollector struct {
	svcOf map[pcommon.SpanID]string
	kids  []depKid
}

type depKid struct {
	parent pcommon.SpanID
	svc    string
	start  time.Time
}

func (c *depCollector) add(td ptrace.Traces) {
	if c.svcOf == nil {
		c.svcOf = make(map[pcommon.SpanID]string)
	}
	ForEachSpan(td, func(svc string, _ pcommon.Map, sp ptrace.Span) {
		c.svcOf[sp.SpanID()] = svc
		if !sp.ParentSpanID().IsEmpty() {
			c.kids = append(c.kids, depKid{sp.ParentSpanID(), svc, sp.StartTimestamp().AsTime()})
		}
	})
}

// each calls fn for every cross-service call, with the child's start.
func (c *depCollector) each(fn func(k CallKey, start time.Time)) {
	for _, kid := range c.kids {
		p, ok := c.svcOf[kid.parent]
		if ok && p != kid.svc {
			fn(CallKey{Parent: p, Child: kid.svc}, kid.start)
		}
	}
}

// DependencyList turns call counts into Dependencies, sorted by parent
// then child.
func DependencyList(m map[CallKey]uint64) []Dependency {
	out := make([]Dependency, 0, len(m))
	for k, n := range m {
		out = append(out, Dependency{Parent: k.Parent, Child: k.Child, CallCount: n})
	}
	sortDeps(out)
	return out
}
