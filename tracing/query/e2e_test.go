package query_test

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestThreeServiceTraceFromEveryExporter(t *testing.T) {
	m := startMesh(t)
	t0 := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	id := m.bookinfo(t, t0, "jason")

	var svcs struct{ Data []string }
	if code, body := m.get(t, "/api/services", &svcs); code != 200 || !slices.Equal(svcs.Data, []string{"productpage", "ratings", "reviews"}) {
		t.Fatalf("services: %d %s", code, body)
	}
	var tr jTraces
	if code, body := m.get(t, "/api/traces/"+id.String(), &tr); code != 200 || len(tr.Data) != 1 {
		t.Fatalf("trace: %d %s", code, body)
	}
	got := tr.Data[0]
	if got.TraceID != id.String() || len(got.Spans) != 6 {
		t.Fatalf("trace %s with %d spans, want %s with 6", got.TraceID, len(got.Spans), id)
	}
	byID := map[string]jSpan{}
	for _, s := range got.Spans {
		byID[s.SpanID] = s
	}
	roots := 0
	for _, s := range got.Spans {
		if len(s.References) == 0 {
			roots++
			continue
		}
		ref := s.References[0]
		parent, ok := byID[ref.SpanID]
		if ref.RefType != "CHILD_OF" || ref.TraceID != id.String() || !ok {
			t.Errorf("span %s: reference %+v to a span not in the trace", s.OperationName, ref)
		}
		if want := map[string]string{
			"reviews.Get": "GET /productpage", "ratings.Get": "reviews.Get", "db.query": "ratings.Get",
		}[s.OperationName]; want != "" && !strings.EqualFold(parent.OperationName, want) && !strings.EqualFold(parent.OperationName, s.OperationName) {
			// Zipkin lowercases span names, so compare without case.
			t.Errorf("span %s has parent %s", s.OperationName, parent.OperationName)
		}
	}
	if roots != 1 {
		t.Errorf("%d roots, want 1", roots)
	}
	services := map[string]bool{}
	for _, s := range got.Spans {
		services[got.Processes[s.ProcessID].ServiceName] = true
	}
	if len(services) != 3 {
		t.Errorf("services of spans: %v", services)
	}
	if db := findSpan(got, "db.query"); db.Duration != 288_000 || db.StartTime != uint64(t0.Add(12*time.Millisecond).UnixMicro()) {
		t.Errorf("db.query start %d duration %dµs, want 288000", db.StartTime, db.Duration)
	}
}

func findSpan(t jTrace, op string) jSpan {
	for _, s := range t.Spans {
		if s.OperationName == op {
			return s
		}
	}
	return jSpan{}
}

func TestOperations(t *testing.T) {
	m := startMesh(t)
	m.bookinfo(t, time.Now().Add(-time.Minute), "jason")
	var names struct{ Data []string }
	if code, body := m.get(t, "/api/services/reviews/operations", &names); code != 200 || !slices.Equal(names.Data, []string{"ratings.Get", "reviews.Get"}) {
		t.Fatalf("service operations: %d %s", code, body)
	}
	var ops struct {
		Data []struct{ Name, SpanKind string }
	}
	if code, body := m.get(t, "/api/operations?service=reviews&spanKind=server", &ops); code != 200 || len(ops.Data) != 1 || ops.Data[0].Name != "reviews.Get" || ops.Data[0].SpanKind != "server" {
		t.Fatalf("operations: %d %s", code, body)
	}
	var v3 struct {
		Operations []struct{ Name, SpanKind string }
	}
	if code, body := m.get(t, "/api/v3/operations?service=ratings&span_kind=client", &v3); code != 200 || len(v3.Operations) != 0 {
		t.Fatalf("v3 operations: %d %s", code, body)
	}
	var v3s struct{ Services []string }
	if code, body := m.get(t, "/api/v3/services", &v3s); code != 200 || len(v3s.Services) != 3 {
		t.Fatalf("v3 services: %d %s", code, body)
	}
}

func TestSearchParameters(t *testing.T) {
	m := startMesh(t)
	now := time.Now()
	old := m.bookinfo(t, now.Add(-2*time.Hour), "alice")
	mid := m.bookinfo(t, now.Add(-30*time.Minute), "bob")
	recent := m.bookinfo(t, now.Add(-time.Minute), "carol")
	us := func(d time.Duration) string { return fmt.Sprint(now.Add(d).UnixMicro()) }
	tests := []struct {
		name  string
		query string
		want  []string // trace ids, newest first
	}{
		{"service alone finds every trace", "service=productpage", ids(recent, mid, old)},
		{"operation narrows to a span name", "service=ratings&operation=db.query", ids(recent, mid, old)},
		{"an operation of another service finds nothing", "service=productpage&operation=db.query", nil},
		{"tags as JSON", `service=productpage&tags={"user":"bob"}`, ids(mid)},
		{"tag as key:value", "service=productpage&tag=user:carol", ids(recent)},
		{"error=true finds the failing span's trace", `service=ratings&tags={"error":"true"}`, ids(recent, mid, old)},
		{"error=true on a healthy service finds nothing", `service=reviews&tags={"error":"true"}`, nil},
		{"span.kind", "service=reviews&tag=span.kind:server", ids(recent, mid, old)},
		{"minDuration", "service=ratings&minDuration=290ms", ids(recent, mid, old)},
		{"minDuration above every span", "service=ratings&minDuration=1s", nil},
		{"maxDuration", "service=productpage&operation=reviews.Get&maxDuration=300ms", nil},
		{"start and end", "service=productpage&start=" + us(-time.Hour) + "&end=" + us(-10*time.Minute), ids(mid)},
		{"lookback", "service=productpage&lookback=1h", ids(recent, mid)},
		{"lookback in days", "service=productpage&lookback=1d", ids(recent, mid, old)},
		{"limit", "service=productpage&limit=2", ids(recent, mid)},
		{"limit applies after the tag filter", "service=productpage&tag=user:alice&limit=1", ids(old)},
		{"traceID fetches by id", "traceID=" + old.String(), ids(old)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var tr jTraces
			code, body := m.get(t, "/api/traces?"+escape(tt.query), &tr)
			var got []string
			for _, x := range tr.Data {
				got = append(got, x.TraceID)
			}
			if code != 200 || !slices.Equal(got, tt.want) {
				t.Fatalf("got %d %v, want %v (%.200s)", code, got, tt.want, body)
			}
		})
	}
}

func ids(ts ...interface{ String() string }) []string {
	var out []string
	for _, t := range ts {
		out = append(out, t.String())
	}
	return out
}

// escape URL-encodes each value of a raw query.
func escape(raw string) string {
	var parts []string
	for _, kv := range strings.Split(raw, "&") {
		k, v, _ := strings.Cut(kv, "=")
		parts = append(parts, k+"="+url.QueryEscape(v))
	}
	return strings.Join(parts, "&")
}

func TestBadRequests(t *testing.T) {
	m := startMesh(t)
	tests := []struct {
		name, path, want string
	}{
		{"a non-hex trace id", "/api/traces/xyz", "not hex"},
		{"an over-long trace id", "/api/traces/" + strings.Repeat("a", 33), "longer than 32"},
		{"no service", "/api/traces", "parameter 'service' is required"},
		{"a bad minDuration", "/api/traces?service=a&minDuration=abc", "unable to parse param 'minDuration'"},
		{"a bad maxDuration", "/api/traces?service=a&maxDuration=5", "unable to parse param 'maxDuration'"},
		{"max below min", "/api/traces?service=a&minDuration=2s&maxDuration=1s", "'maxDuration' should be greater than 'minDuration'"},
		{"bad tag JSON", "/api/traces?service=a&tags=" + url.QueryEscape("{bad"), "malformed 'tags' parameter"},
		{"a tag without a value", "/api/traces?service=a&tag=novalue", "malformed 'tag' parameter"},
		{"a bad start", "/api/traces?service=a&start=yesterday", "unable to parse param 'start'"},
		{"a bad lookback", "/api/traces?service=a&lookback=forever", "unable to parse param 'lookback'"},
		{"a bad limit", "/api/traces?service=a&limit=-1", "unable to parse param 'limit'"},
		{"operations without a service", "/api/operations", "parameter 'service' is required"},
		{"an unknown span kind", "/api/operations?service=a&spanKind=sideways", "unsupported span kind"},
		{"a bad dependencies endTs", "/api/dependencies?endTs=x", "unable to parse param 'endTs'"},
		{"a bad v3 trace id", "/api/v3/traces/zz", "malformed parameter trace_id"},
		{"v3 search without a window", "/api/v3/traces?query.service_name=a", "are required"},
		{"a bad v3 duration", "/api/v3/traces?query.start_time_min=2026-01-01T00:00:00Z&query.start_time_max=2026-01-02T00:00:00Z&query.duration_min=x", "malformed parameter query.duration_min"},
		{"bad v3 attributes", "/api/v3/traces?query.start_time_min=2026-01-01T00:00:00Z&query.start_time_max=2026-01-02T00:00:00Z&query.attributes=x", "malformed parameter query.attributes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := m.get(t, tt.path, nil)
			if code != http.StatusBadRequest || !strings.Contains(body, tt.want) || !strings.Contains(body, `400`) {
				t.Fatalf("got %d %s, want 400 with %q", code, body, tt.want)
			}
		})
	}
}

func TestMissingTraceIs404WithJaegersBody(t *testing.T) {
	m := startMesh(t)
	code, body := m.get(t, "/api/traces/0123456789abcdef", nil)
	if want := `{"data":null,"errors":[{"code":404,"msg":"trace not found"}]}`; code != 404 || body != want {
		t.Fatalf("got %d %s, want 404 %s", code, body, want)
	}
	code, body = m.get(t, "/api/v3/traces/0123456789abcdef", nil)
	if want := `{"error":{"httpCode":404,"message":"No traces found"}}`; code != 404 || body != want {
		t.Fatalf("v3: got %d %s, want 404 %s", code, body, want)
	}
}
