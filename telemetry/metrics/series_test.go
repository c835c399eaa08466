package metrics

import (
	"hash/maphash"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/glassmesh/glassmesh/control/model"

	"github.com/glassmesh/glassmesh/telemetry/record"
)

func TestBucketIndex(t *testing.T) {
	tests := []struct {
		name string
		v    float64
		le   string
	}{
		{"zero goes to the first bucket", 0, "0.5"},
		{"a value on a bound belongs to that bound", 5, "5.0"},
		{"a value just above a bound goes up", 5.0001, "10.0"},
		{"sub-millisecond", 0.7, "1.0"},
		{"an hour is the last finite bucket", 3600000, "3.6e+06"},
		{"beyond the last bound is +Inf", 3600001, "+Inf"},
	}
	l := newLayouts()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := l.http[hDuration+bucketIndex(tt.v)].le; got != tt.le {
				t.Errorf("bucket of %v = le %q, want %q", tt.v, got, tt.le)
			}
		})
	}
}

func TestLayoutsMatchIstio(t *testing.T) {
	l := newLayouts()
	if len(l.http) != 1+3*(len(bucketBounds)+3) || len(l.tcp) != 4 {
		t.Fatalf("layout sizes http=%d tcp=%d", len(l.http), len(l.tcp))
	}
	var les []string
	for _, d := range l.http[hDuration : hDuration+numBuckets] {
		les = append(les, d.le)
	}
	want := "0.5 1.0 5.0 10.0 25.0 50.0 100.0 250.0 500.0 1000.0 2500.0 5000.0 10000.0 30000.0 60000.0 300000.0 600000.0 1.8e+06 3.6e+06 +Inf"
	if got := strings.Join(les, " "); got != want {
		t.Errorf("duration buckets\n got %s\nwant %s", got, want)
	}
	for _, d := range []seriesDesc{l.http[hDuration+numBuckets], l.http[hRequestBytes+numBuckets+1], l.http[hResponseBytes]} {
		if _, ok := l.index[d]; !ok {
			t.Errorf("%v is not indexed", d)
		}
	}
}

// TestKeyRoundTrip encodes requests, builds every series' labels from the
// key, and decodes the key back from each: what a restart relies on.
func TestKeyRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		req  record.Request
	}{
		{"a full gRPC request", httpReq(record.ReporterSource, 200, time.Millisecond)},
		{"an empty request", record.Request{}},
		{"a TCP report", tcpReq(1, 2, true, true)},
		{"values with separator-like bytes", with(httpReq(record.ReporterSource, 503, 0), func(r *record.Request) {
			r.Source.Workload, r.Dest.Workload, r.ResponseFlags = "a\xffb", "\x00\x01", strings.Repeat("x", 300)
		})},
		{"a negative response code", with(httpReq(record.ReporterDestination, -1, 0), func(r *record.Request) { r.GRPCStatus = "" })},
	}
	l := newLayouts()
	var b labels.ScratchBuilder
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var k seriesKey
			k.fill(&tt.req)
			for pos, d := range l.descs(k.tcp) {
				ls := keyLabels(&b, string(k.b), d)
				if ls.Get("__name__") != d.name || ls.Get("le") != d.le {
					t.Fatalf("labels of %v = %s", d, ls)
				}
				var back seriesKey
				gotPos, ok := l.keyFromLabels(ls, &back)
				if !ok || gotPos != pos || string(back.b) != string(k.b) || back.tcp != k.tcp {
					t.Fatalf("keyFromLabels(%s) = pos %d ok %v key %q, want pos %d key %q", ls, gotPos, ok, back.b, pos, k.b)
				}
			}
		})
	}
}

func TestKeysOfDifferentLabelSetsDiffer(t *testing.T) {
	base := httpReq(record.ReporterSource, 200, 0)
	variants := []record.Request{
		base,
		with(base, func(r *record.Request) { r.Reporter = record.ReporterDestination }),
		with(base, func(r *record.Request) { r.ResponseCode = 2000 }),
		with(base, func(r *record.Request) { r.Source.Workload, r.Source.Namespace = "productpage-v1bookinfo", "" }),
		with(base, func(r *record.Request) { r.GRPCStatus = "" }),
		with(base, func(r *record.Request) { r.Protocol = record.ProtocolTCP }),
		with(base, func(r *record.Request) { r.ResponseFlags = "" }), // "-" like base: same set
	}
	seed := maphash.MakeSeed()
	seen := map[string]int{}
	for i, r := range variants {
		var k seriesKey
		k.fill(&r)
		if j, dup := seen[string(k.b)]; dup && !(i == 6 && j == 0) {
			t.Errorf("variants %d and %d share a key", j, i)
		}
		seen[string(k.b)] = i
		if k2 := (seriesKey{b: append([]byte(nil), k.b...)}); k2.hash(seed) != k.hash(seed) {
			t.Errorf("variant %d: equal keys hash differently", i)
		}
	}
	if len(seen) != len(variants)-1 {
		t.Errorf("%d distinct keys, want %d (flags \"\" and \"-\" are one set)", len(seen), len(variants)-1)
	}
}

// Latency SLOs are computed from these buckets, so the model's list of
// thresholds an SLO may use must be exactly the histogram's bounds.
func TestBucketBoundsAreTheLatencySLOThresholds(t *testing.T) {
	if want := model.LatencyBucketsMs(); !slices.Equal(bucketBounds[:], want[:]) {
		t.Errorf("bucketBounds = %v, model.LatencyBucketsMs = %v", bucketBounds, want)
	}
}
