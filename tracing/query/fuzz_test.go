package query

import (
	"net/url"
	"strings"
	"testing"
	"time"
)

func FuzzParseTraceID(f *testing.F) {
	for _, s := range []string{"a3ce929d0e0e4736", "0000000000000000a3ce929d0e0e4736", "xyz", "", strings.Repeat("f", 33)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := parseTraceID(s)
		if err != nil {
			return
		}
		// A parsed id spells back to the input without its leading zeros.
		if got, want := strings.TrimLeft(traceIDString(id), "0"), strings.TrimLeft(strings.ToLower(s), "0"); got != want {
			t.Fatalf("%q parsed to %s", s, traceIDString(id))
		}
	})
}

func FuzzParseSearch(f *testing.F) {
	for _, s := range []string{
		"service=a&tags=%7B%22error%22%3A%22true%22%7D&tag=k:v&minDuration=1ms&maxDuration=2s&limit=3",
		"service=a&start=1&end=2&lookback=1h", "traceID=a3ce929d0e0e4736", "tags=%7Bbad", "service=a&lookback=custom",
	} {
		f.Add(s)
	}
	now := time.Unix(1_800_000_000, 0)
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		p, err := parseSearch(q, now)
		if err != nil {
			return
		}
		tq := p.query
		if tq.DurationMin < 0 || tq.DurationMax < 0 || tq.Limit < 0 {
			t.Fatalf("negative bound accepted: %+v", tq)
		}
		if tq.DurationMin > 0 && tq.DurationMax > 0 && tq.DurationMax < tq.DurationMin {
			t.Fatalf("max below min accepted: %+v", tq)
		}
		if len(p.traceIDs) == 0 && tq.Service == "" {
			t.Fatal("search without a service accepted")
		}
	})
}

func FuzzParseV3Query(f *testing.F) {
	f.Add("query.start_time_min=2026-01-01T00:00:00Z&query.start_time_max=2026-01-02T00:00:00Z&query.duration_min=1s&query.attributes=%7B%22a%22%3A%22b%22%7D&query.search_depth=5")
	f.Add("query.startTimeMin=x")
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		tq, err := parseV3Query(q)
		if err != nil {
			return
		}
		if !tq.StartMin.Before(tq.StartMax) || tq.Limit < 0 || tq.DurationMin < 0 || tq.DurationMax < 0 {
			t.Fatalf("accepted %+v", tq)
		}
	})
}
