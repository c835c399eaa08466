package query

import (
	"cmp"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/glassmesh/glassmesh/tracing/store"
)

// The Jaeger UI JSON model (Jaeger's uimodel package), as Jaeger UI and
// Grafana's Jaeger data source read it.
type (
	uiTrace struct {
		TraceID   string               `json:"traceID"`
		Spans     []uiSpan             `json:"spans"`
		Processes map[string]uiProcess `json:"processes"`
		Warnings  []string             `json:"warnings"`
	}
	uiSpan struct {
		TraceID       string        `json:"traceID"`
		SpanID        string        `json:"spanID"`
		Flags         uint32        `json:"flags,omitempty"`
		OperationName string        `json:"operationName"`
		References    []uiReference `json:"references"`
		StartTime     uint64        `json:"startTime"` // µs since the epoch
		Duration      uint64        `json:"duration"`  // µs
		Tags          []uiKeyValue  `json:"tags"`
		Logs          []uiLog       `json:"logs"`
		ProcessID     string        `json:"processID,omitempty"`
		Warnings      []string      `json:"warnings"`
	}
	uiReference struct {
		RefType string `json:"refType"` // CHILD_OF or FOLLOWS_FROM
		TraceID string `json:"traceID"`
		SpanID  string `json:"spanID"`
	}
	uiProcess struct {
		ServiceName string       `json:"serviceName"`
		Tags        []uiKeyValue `json:"tags"`
	}
	uiLog struct {
		Timestamp uint64       `json:"timestamp"`
		Fields    []uiKeyValue `json:"fields"`
	}
	uiKeyValue struct {
		Key   string `json:"key"`
		Type  string `json:"type,omitempty"`
		Value any    `json:"value"`
	}
	uiDependency struct {
		Parent    string `json:"parent"`
		Child     string `json:"child"`
		CallCount uint64 `json:"callCount"`
	}
)

// traceIDString spells a trace id as Jaeger does: 16 hex digits when its
// high half is zero (a Zipkin/B3 64-bit id), else 32.
func traceIDString(id pcommon.TraceID) string {
	if binary.BigEndian.Uint64(id[:8]) == 0 {
		return hex.EncodeToString(id[8:])
	}
	return hex.EncodeToString(id[:])
}

// toUITrace converts the chunks of one trace to Jaeger's UI model, spans
// in start order, one process per distinct resource.
func toUITrace(chunks []ptrace.Traces) uiTrace {
	t := uiTrace{Processes: map[string]uiProcess{}}
	procIDs := map[string]string{} // process key -> id
	for _, td := range chunks {
		for _, rs := range td.ResourceSpans().All() {
			proc := toUIProcess(rs.Resource())
			key := processKey(proc)
			pid, ok := procIDs[key]
			if !ok {
				pid = fmt.Sprintf("p%d", len(procIDs)+1)
				procIDs[key] = pid
				t.Processes[pid] = proc
			}
			for _, ss := range rs.ScopeSpans().All() {
				for _, s := range ss.Spans().All() {
					t.Spans = append(t.Spans, toUISpan(s, ss.Scope(), pid))
				}
			}
		}
	}
	slices.SortStableFunc(t.Spans, func(a, b uiSpan) int { return cmp.Compare(a.StartTime, b.StartTime) })
	if len(t.Spans) > 0 {
		t.TraceID = t.Spans[0].TraceID
	}
	return t
}

// toUIProcess makes a Jaeger process of a resource: service.name is the
// service, every other attribute a tag.
func toUIProcess(res pcommon.Resource) uiProcess {
	p := uiProcess{Tags: []uiKeyValue{}}
	for k, v := range res.Attributes().All() {
		if k == "service.name" {
			p.ServiceName = v.AsString()
			continue
		}
		p.Tags = append(p.Tags, toUIKeyValue(k, v))
	}
	slices.SortFunc(p.Tags, func(a, b uiKeyValue) int { return strings.Compare(a.Key, b.Key) })
	return p
}

// processKey identifies equal processes.
func processKey(p uiProcess) string {
	var b strings.Builder
	b.WriteString(p.ServiceName)
	for _, kv := range p.Tags {
		fmt.Fprintf(&b, "\x00%s\x00%v", kv.Key, kv.Value)
	}
	return b.String()
}

// toUISpan converts one span. Like Jaeger's OTLP translator it adds
// span.kind, otel.status_code, error=true, otel.status_description and
// the scope name and version as tags, the parent as a CHILD_OF reference
// and links as FOLLOWS_FROM references.
func toUISpan(s ptrace.Span, scope pcommon.InstrumentationScope, pid string) uiSpan {
	traceID := traceIDString(s.TraceID())
	start := uint64(s.StartTimestamp()) / 1000
	end := uint64(s.EndTimestamp()) / 1000
	u := uiSpan{
		TraceID:       traceID,
		SpanID:        s.SpanID().String(),
		OperationName: s.Name(),
		References:    []uiReference{},
		StartTime:     start,
		Tags:          []uiKeyValue{},
		Logs:          []uiLog{},
		ProcessID:     pid,
	}
	if end > start {
		u.Duration = end - start
	}
	if !s.ParentSpanID().IsEmpty() {
		u.References = append(u.References, uiReference{"CHILD_OF", traceID, s.ParentSpanID().String()})
	}
	for _, l := range s.Links().All() {
		u.References = append(u.References, uiReference{"FOLLOWS_FROM", traceIDString(l.TraceID()), l.SpanID().String()})
	}
	for k, v := range s.Attributes().All() {
		u.Tags = append(u.Tags, toUIKeyValue(k, v))
	}
	u.Tags = append(u.Tags, statusTags(s, scope)...)
	for _, e := range s.Events().All() {
		l := uiLog{Timestamp: uint64(e.Timestamp()) / 1000, Fields: []uiKeyValue{{Key: "event", Type: "string", Value: e.Name()}}}
		for k, v := range e.Attributes().All() {
			l.Fields = append(l.Fields, toUIKeyValue(k, v))
		}
		u.Logs = append(u.Logs, l)
	}
	return u
}

// statusTags are the tags Jaeger derives from a span's kind, status and
// scope.
func statusTags(s ptrace.Span, scope pcommon.InstrumentationScope) []uiKeyValue {
	var tags []uiKeyValue
	str := func(k, v string) { tags = append(tags, uiKeyValue{Key: k, Type: "string", Value: v}) }
	if k := store.KindName(s.Kind()); k != "" {
		str("span.kind", k)
	}
	switch s.Status().Code() {
	case ptrace.StatusCodeError:
		str("otel.status_code", "ERROR")
		tags = append(tags, uiKeyValue{Key: "error", Type: "bool", Value: true})
	case ptrace.StatusCodeOk:
		str("otel.status_code", "OK")
	}
	if m := s.Status().Message(); m != "" {
		str("otel.status_description", m)
	}
	if scope.Name() != "" {
		str("otel.scope.name", scope.Name())
	}
	if scope.Version() != "" {
		str("otel.scope.version", scope.Version())
	}
	if ts := s.TraceState().AsRaw(); ts != "" {
		str("w3c.tracestate", ts)
	}
	return tags
}

// toUIKeyValue converts an attribute; maps and slices become their JSON.
func toUIKeyValue(k string, v pcommon.Value) uiKeyValue {
	switch v.Type() {
	case pcommon.ValueTypeBool:
		return uiKeyValue{Key: k, Type: "bool", Value: v.Bool()}
	case pcommon.ValueTypeInt:
		return uiKeyValue{Key: k, Type: "int64", Value: v.Int()}
	case pcommon.ValueTypeDouble:
		return uiKeyValue{Key: k, Type: "float64", Value: v.Double()}
	case pcommon.ValueTypeBytes:
		return uiKeyValue{Key: k, Type: "binary", Value: v.Bytes().AsRaw()}
	}
	return uiKeyValue{Key: k, Type: "string", Value: v.AsString()}
}
