package store

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestExportURLConvention(t *testing.T) {
	for _, c := range []struct{ in, kind, target string }{
		{"http://tempo:4318", "http", "http://tempo:4318/v1/traces"},
		{"http://tempo:4318/", "http", "http://tempo:4318/v1/traces"},
		{"https://otlp.example.com/otlp/v1/traces", "http", "https://otlp.example.com/otlp/v1/traces"},
		{"grpc://jaeger:4317", "grpc", "jaeger:4317"},
		{"jaeger:4317", "grpc", "jaeger:4317"},
		{"[::1]:4317", "grpc", "[::1]:4317"},
	} {
		kind, target, err := parseExportURL(c.in)
		if err != nil || kind != c.kind || target != c.target {
			t.Errorf("parseExportURL(%q) = %q, %q, %v; want %q, %q", c.in, kind, target, err, c.kind, c.target)
		}
	}
	for _, bad := range []string{"", "tempo", "ftp://x:1", "http://", "grpc://x:1/path", "x:notaport"} {
		if _, _, err := parseExportURL(bad); err == nil {
			t.Errorf("parseExportURL(%q) accepted", bad)
		}
	}
}

func TestRetryAfterTakesSecondsOrADate(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Duration{
		"": 0, "3": 3 * time.Second, "-1": 0, "soon": 0,
		now.Add(time.Minute).Format(http.TimeFormat): time.Minute,
	} {
		if got := retryAfter(in, now); got != want {
			t.Errorf("retryAfter(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestForwardConfigValidateNamesTheKey(t *testing.T) {
	for _, c := range []ForwardConfig{
		{Targets: []ForwardTarget{{URL: "nope"}}},
		{Targets: []ForwardTarget{{URL: "http://a:1"}, {URL: "http://a:1"}}},
		{MaxLag: -1},
		{MinBackoff: time.Second, MaxBackoff: time.Millisecond},
	} {
		if err := c.Validate(); err == nil || !strings.HasPrefix(err.Error(), "traces.forward.") {
			t.Errorf("Validate(%+v) = %v", c, err)
		}
	}
}
