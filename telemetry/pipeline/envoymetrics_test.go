package pipeline

import (
	"context"
	"math"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb"
	"google.golang.org/protobuf/proto"
)

func openTSDB(t *testing.T) *tsdb.DB {
	t.Helper()
	db, err := tsdb.Open(t.TempDir(), nil, nil, tsdb.DefaultOptions(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// series reads every series of the db as "labels value" lines, sorted.
func series(t *testing.T, db *tsdb.DB) []string {
	t.Helper()
	q, err := db.Querier(math.MinInt64, math.MaxInt64)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	set := q.Select(context.Background(), false, nil, labels.MustNewMatcher(labels.MatchRegexp, labels.MetricName, ".+"))
	var out []string
	for set.Next() {
		s := set.At()
		it := s.Iterator(nil)
		for it.Next() != 0 {
			ts, v := it.At()
			out = append(out, s.Labels().String()+" "+formatSample(ts, v))
		}
	}
	if err := set.Err(); err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

func formatSample(ts int64, v float64) string {
	return labels.FormatOpenMetricsFloat(v) + " @" + labels.FormatOpenMetricsFloat(float64(ts))
}

func TestConsumeEnvoyMetrics(t *testing.T) {
	db := openTSDB(t)
	p := newTestPipeline(t, Config{Appendable: db})
	families := envoyFamilies(1_700_000_000_000)
	if err := p.ConsumeEnvoyMetrics(context.Background(), reviewsV2Node, families); err != nil {
		t.Fatal(err)
	}
	node := `namespace="default", pod="reviews-v2-5b64f47f-xk2p9", workload="reviews-v2"`
	at := " @1.7e+12"
	want := []string{
		`{__name__="envoy_cluster_outbound_9080__reviews_default_svc_cluster_local_upstream_rq_total", ` + node + `} 42.0` + at,
		`{__name__="envoy_http_inbound_0_0_0_0_9080_downstream_rq_time_bucket", le="+Inf", ` + node + `} 3.0` + at,
		`{__name__="envoy_http_inbound_0_0_0_0_9080_downstream_rq_time_bucket", le="1.0", ` + node + `} 1.0` + at,
		`{__name__="envoy_http_inbound_0_0_0_0_9080_downstream_rq_time_bucket", le="10.0", ` + node + `} 2.0` + at,
		`{__name__="envoy_http_inbound_0_0_0_0_9080_downstream_rq_time_count", ` + node + `} 3.0` + at,
		`{__name__="envoy_http_inbound_0_0_0_0_9080_downstream_rq_time_sum", ` + node + `} 12.5` + at,
		`{__name__="envoy_listener_admin_downstream_cx_length_ms", namespace="default", pod="reviews-v2-5b64f47f-xk2p9", quantile="0.5", workload="reviews-v2"} 2.0` + at,
		`{__name__="envoy_listener_admin_downstream_cx_length_ms_count", ` + node + `} 4.0` + at,
		`{__name__="envoy_listener_admin_downstream_cx_length_ms_sum", ` + node + `} 8.0` + at,
		`{__name__="envoy_server_live", envoy_tag="x", exported_pod="spoofed", ` + node + `} 1.0` + at,
	}
	got := series(t, db)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	t.Run("a repeated sample is skipped and counted, not an error", func(t *testing.T) {
		families[0].Metric[0].Counter.Value = proto.Float64(43)
		if err := p.ConsumeEnvoyMetrics(context.Background(), reviewsV2Node, families[:1]); err != nil {
			t.Fatal(err)
		}
		if n := len(series(t, db)); n != len(want) {
			t.Errorf("%d samples, want %d", n, len(want))
		}
		if v := testutil.ToFloat64(p.m.envoyRejected.WithLabelValues("duplicate")); v != 1 {
			t.Errorf("rejected{duplicate} = %v, want 1", v)
		}
	})
	t.Run("without storage Envoy stats are refused", func(t *testing.T) {
		p := newTestPipeline(t, Config{})
		if err := p.ConsumeEnvoyMetrics(context.Background(), reviewsV2Node, families); err != ErrNoStorage {
			t.Errorf("got %v, want ErrNoStorage", err)
		}
	})
}

func TestSanitizeName(t *testing.T) {
	for in, want := range map[string]string{
		"cluster.x|9080||a.b": "cluster_x_9080__a_b",
		"ok_name":             "ok_name",
		"9lives":              "_9lives",
		"":                    "",
		"ünïcode":             "__n__code",
	} {
		if got := sanitizeName(in); got != want {
			t.Errorf("sanitizeName(%q) = %q, want %q", in, got, want)
		}
	}
}

// envoyFamilies are stats of each type, as Envoy's metrics service sends
// them, all at ts.
func envoyFamilies(ts int64) []*dto.MetricFamily {
	return []*dto.MetricFamily{{
		Name:   proto.String("cluster.outbound|9080||reviews.default.svc.cluster.local.upstream_rq_total"),
		Type:   dto.MetricType_COUNTER.Enum(),
		Metric: []*dto.Metric{{Counter: &dto.Counter{Value: proto.Float64(42)}, TimestampMs: proto.Int64(ts)}},
	}, {
		Name: proto.String("server.live"),
		Type: dto.MetricType_GAUGE.Enum(),
		Metric: []*dto.Metric{{
			Label:       []*dto.LabelPair{{Name: proto.String("envoy.tag"), Value: proto.String("x")}, {Name: proto.String("pod"), Value: proto.String("spoofed")}},
			Gauge:       &dto.Gauge{Value: proto.Float64(1)},
			TimestampMs: proto.Int64(ts),
		}},
	}, {
		Name: proto.String("http.inbound_0.0.0.0_9080.downstream_rq_time"),
		Type: dto.MetricType_HISTOGRAM.Enum(),
		Metric: []*dto.Metric{{
			Histogram: &dto.Histogram{
				SampleCount: proto.Uint64(3), SampleSum: proto.Float64(12.5),
				Bucket: []*dto.Bucket{{UpperBound: proto.Float64(1), CumulativeCount: proto.Uint64(1)}, {UpperBound: proto.Float64(10), CumulativeCount: proto.Uint64(2)}},
			},
			TimestampMs: proto.Int64(ts),
		}},
	}, {
		Name: proto.String("listener.admin.downstream_cx_length_ms"),
		Type: dto.MetricType_SUMMARY.Enum(),
		Metric: []*dto.Metric{{
			Summary:     &dto.Summary{SampleCount: proto.Uint64(4), SampleSum: proto.Float64(8), Quantile: []*dto.Quantile{{Quantile: proto.Float64(0.5), Value: proto.Float64(2)}}},
			TimestampMs: proto.Int64(ts),
		}},
	}}
}
