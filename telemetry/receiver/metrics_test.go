package receiver

import (
	"context"
	"math"
	"testing"

	metricsv3 "github.com/envoyproxy/go-control-plane/envoy/service/metrics/v3"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/glassmesh/glassmesh/telemetry/pipeline"
)

func TestEnvoyMetricsAreStored(t *testing.T) {
	db, err := tsdb.Open(t.TempDir(), nil, nil, tsdb.DefaultOptions(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	conn := serve(t, Config{}, newPipeline(t, pipeline.Config{Appendable: db}))
	s, err := metricsv3.NewMetricsServiceClient(conn).StreamMetrics(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	counter := func(v float64, ts int64) []*dto.MetricFamily {
		return []*dto.MetricFamily{{
			Name:   proto.String("cluster.inbound|9080||.upstream_rq_total"),
			Type:   dto.MetricType_COUNTER.Enum(),
			Metric: []*dto.Metric{{Counter: &dto.Counter{Value: proto.Float64(v)}, TimestampMs: proto.Int64(ts)}},
		}}
	}
	msgs := []*metricsv3.StreamMetricsMessage{
		{Identifier: &metricsv3.StreamMetricsMessage_Identifier{Node: reviewsV2Node}, EnvoyMetrics: counter(5, 1000)},
		{EnvoyMetrics: counter(9, 2000)},
	}
	for _, m := range msgs {
		if err := s.Send(m); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.CloseAndRecv(); err != nil {
		t.Fatal(err)
	}
	q, err := db.Querier(math.MinInt64, math.MaxInt64)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	set := q.Select(context.Background(), false, nil,
		labels.MustNewMatcher(labels.MatchEqual, labels.MetricName, "envoy_cluster_inbound_9080___upstream_rq_total"),
		labels.MustNewMatcher(labels.MatchEqual, "namespace", "default"),
		labels.MustNewMatcher(labels.MatchEqual, "workload", "reviews-v2"),
		labels.MustNewMatcher(labels.MatchEqual, "pod", "reviews-v2-5b64f47f-xk2p9"))
	var got []float64
	for set.Next() {
		it := set.At().Iterator(nil)
		for it.Next() != 0 {
			_, v := it.At()
			got = append(got, v)
		}
	}
	if len(got) != 2 || got[0] != 5 || got[1] != 9 {
		t.Errorf("stored samples %v, want [5 9]", got)
	}
}

func TestMetricsStreamErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  pipeline.Config
		msg  *metricsv3.StreamMetricsMessage
		want codes.Code
	}{
		{"a first message without identifier is INVALID_ARGUMENT", pipeline.Config{}, &metricsv3.StreamMetricsMessage{}, codes.InvalidArgument},
		{"stats without storage are FAILED_PRECONDITION", pipeline.Config{}, &metricsv3.StreamMetricsMessage{Identifier: &metricsv3.StreamMetricsMessage_Identifier{Node: reviewsV2Node}}, codes.FailedPrecondition},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			conn := serve(t, Config{}, newPipeline(t, tc.cfg))
			s, err := metricsv3.NewMetricsServiceClient(conn).StreamMetrics(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			_ = s.Send(tc.msg)
			_, err = s.CloseAndRecv()
			if got := status.Code(err); got != tc.want {
				t.Fatalf("got %v (%v), want %v", got, err, tc.want)
			}
		})
	}
}
