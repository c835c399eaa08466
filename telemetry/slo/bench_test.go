package slo

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/prometheus/rules"

	"github.com/glassmesh/glassmesh/control/model"
	"github.com/glassmesh/glassmesh/telemetry/metrics"
	"github.com/glassmesh/glassmesh/telemetry/metrics/promapi/promapitest"
)

// BenchmarkRuleEvaluation is the cost of one evaluation of the rule groups
// of 1,000 availability SLOs, each on its own service with 10 minutes of
// traffic (an OK and a failing series, samples every 10s), through the
// real storage and engine. It reports the cost per SLO. store=http
// evaluates the same rules as the leader of several replicas does on their
// shared store (metrics.RemoteQuery over HTTP): the store here is
// Prometheus's own HTTP API and engine (web/api/v1, as glassmesh serves
// it) over the same TSDB, so the difference is the round trips and JSON.
func BenchmarkRuleEvaluation(b *testing.B) {
	const n = 1000
	e := newEnv(b)
	now := time.Now().Truncate(time.Second)
	var slos []*model.SLO
	var cs []counter
	for i := range n {
		svc := fmt.Sprintf("svc-%04d", i)
		s := testSLO(svc+"-availability", 99.9, 30*24*time.Hour, model.Indicator{Availability: &model.AvailabilityIndicator{}})
		s.Spec.Service = svc
		slos = append(slos, s)
		sel := fmt.Sprintf(`reporter="source",source_workload="client",destination_service_name=%q,destination_service_namespace="default"`, svc)
		cs = append(cs,
			counter{`istio_requests_total{` + sel + `,response_code="200"}`, 10},
			counter{`istio_requests_total{` + sel + `,response_code="503"}`, 0.1})
	}
	e.appendCounters(b, now, cs...)
	eval := func(b *testing.B, groups []*rules.Group) {
		for i := 0; b.Loop(); i++ {
			ts := now.Add(time.Duration(i) * 10 * time.Second)
			for _, g := range groups {
				g.Eval(context.Background(), ts)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n/1e6, "ms/slo")
	}
	b.Run("store=local", func(b *testing.B) {
		eval(b, loadGroups(b, testEngine(b), e.st.DB(), Generate(slos), 10*time.Second))
	})
	b.Run("store=http", func(b *testing.B) {
		srv := promapitest.Serve(b, metrics.BackendFromDB(e.st.DB()), e.eng)
		remote, err := metrics.NewRemoteQuery(metrics.RemoteQueryConfig{URL: srv.URL})
		if err != nil {
			b.Fatal(err)
		}
		eval(b, loadGroupsQuerying(b, remote.Query, e.st.DB(), Generate(slos), 10*time.Second))
	})
}
