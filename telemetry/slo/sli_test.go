package slo

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql/parser"

	"github.com/glassmesh/glassmesh/control/model"
)

// testSLO returns an SLO of service reviews in namespace default.
func testSLO(name string, objective float64, window time.Duration, in model.Indicator) *model.SLO {
	return &model.SLO{
		Meta: model.Meta{Name: name, Namespace: "default"},
		Spec: model.SLOSpec{Service: "reviews", Objective: objective, Window: model.Duration{Duration: window}, Indicator: in},
	}
}

func testSLOs() []*model.SLO {
	return []*model.SLO{
		testSLO("reviews-availability", 99.9, 30*24*time.Hour, model.Indicator{Availability: &model.AvailabilityIndicator{}}),
		testSLO("reviews-latency", 99, 7*24*time.Hour, model.Indicator{Latency: &model.LatencyIndicator{ThresholdMs: 250}}),
		testSLO("reviews-ratio", 95, 28*24*time.Hour, model.Indicator{Ratio: &model.RatioIndicator{
			ErrorQuery: `sum(rate(app_errors_total{service="$service"}[$window]))`,
			TotalQuery: `sum(rate(app_requests_total{service="$service"}[$window]))`,
		}}),
	}
}

func TestSLIExpressionsParse(t *testing.T) {
	p := parser.NewParser(parser.Options{})
	for _, s := range testSLOs() {
		for _, matchers := range []string{"", `destination_version="v3"`, `destination_workload=~"reviews-v3", `} {
			errs, total := SLI(s, "37s", matchers, map[string]string{"service": "reviews"})
			for _, q := range []string{errs, total} {
				if _, err := p.ParseExpr(q); err != nil {
					t.Errorf("%s with %q: %v\n%s", s.Name, matchers, err, q)
				}
				if strings.Contains(q, "$") {
					t.Errorf("%s: unexpanded variable in %s", s.Name, q)
				}
			}
		}
	}
}

func TestPageBurnRateAndAllowedErrorRatio(t *testing.T) {
	day := 24 * time.Hour
	for _, tc := range []struct {
		window    time.Duration
		objective float64
		page      float64
		allowed   float64
	}{
		{30 * day, 99.9, 14.4, 0.001},
		{28 * day, 99, 13.44, 0.01},
		{7 * day, 99.5, 3.36, 0.005},
		{0, 95, 14.4, 0.05}, // the default window is 30d
	} {
		s := testSLO("x", tc.objective, tc.window, model.Indicator{Availability: &model.AvailabilityIndicator{}})
		if got := PageBurnRate(s); !near(got, tc.page) {
			t.Errorf("PageBurnRate(%s) = %v, want %v", tc.window, got, tc.page)
		}
		if got := AllowedErrorRatio(s); got != tc.allowed {
			t.Errorf("AllowedErrorRatio(%v) = %v, want %v", tc.objective, got, tc.allowed)
		}
	}
}

func near(a, b float64) bool { d := a - b; return d < 1e-9 && d > -1e-9 }

// reviews is a label fragment of calls to reviews in namespace default.
const reviews = `destination_service_name="reviews",destination_service_namespace="default"`

func TestSLIOnStoredSeries(t *testing.T) {
	e := newEnv(t)
	now := time.Now().Truncate(time.Second)
	e.appendCounters(t, now,
		counter{`istio_requests_total{reporter="source",source_workload="productpage-v1",` + reviews + `,destination_version="v1",response_code="200"}`, 10},
		counter{`istio_requests_total{reporter="source",source_workload="productpage-v1",` + reviews + `,destination_version="v3",response_code="200",grpc_response_status="0"}`, 3},
		counter{`istio_requests_total{reporter="source",source_workload="productpage-v1",` + reviews + `,destination_version="v3",response_code="200",grpc_response_status="14"}`, 1},
		// The callee's report of the same failing calls: not counted again.
		counter{`istio_requests_total{reporter="destination",source_workload="productpage-v1",` + reviews + `,destination_version="v3",response_code="200",grpc_response_status="14"}`, 1},
		// Calls from outside the mesh have only the callee's report.
		counter{`istio_requests_total{reporter="destination",source_workload="unknown",` + reviews + `,destination_version="v1",response_code="503"}`, 0.5},
		counter{`istio_request_duration_milliseconds_bucket{reporter="source",source_workload="productpage-v1",` + reviews + `,destination_version="v1",le="250.0"}`, 9},
		counter{`istio_request_duration_milliseconds_bucket{reporter="source",source_workload="productpage-v1",` + reviews + `,destination_version="v1",le="+Inf"}`, 10},
		counter{`app_errors_total{service="reviews",version="v3"}`, 2},
		counter{`app_requests_total{service="reviews",version="v3"}`, 20},
	)
	slos := testSLOs()
	slos[2].Spec.Indicator.Ratio.ErrorQuery = `sum(rate(app_errors_total{service="$service",version="$canary"}[$window]))`
	slos[2].Spec.Indicator.Ratio.TotalQuery = `sum(rate(app_requests_total{service="$service",version="$canary"}[$window]))`
	for _, tc := range []struct {
		name          string
		slo           *model.SLO
		matchers      string
		errors, total float64
	}{
		{"availability counts each request once", slos[0], "", 1.5, 14.5},
		{"availability of one version", slos[0], `destination_version="v3"`, 1, 4},
		{"availability of a version called from outside the mesh", slos[0], `destination_version=~"v1"`, 0.5, 10.5},
		{"a version without traffic gives zeros", slos[0], `destination_version="v9"`, 0, 0},
		{"latency counts the calls over the threshold", slos[1], `destination_version="v1"`, 1, 10},
		{"ratio expands its variables and ignores matchers", slos[2], `destination_version="v1"`, 2, 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			errs, total := SLI(tc.slo, "1m", tc.matchers, map[string]string{"canary": "v3"})
			for _, q := range []struct {
				expr string
				want float64
			}{{errs, tc.errors}, {total, tc.total}} {
				v := e.query(t, q.expr, now)
				if len(v) != 1 || v[0].Metric.Len() != 0 {
					t.Fatalf("want one sample without labels, got %v\n%s", v, q.expr)
				}
				if !near(v[0].F, q.want) {
					t.Errorf("got %v, want %v\n%s", v[0].F, q.want, q.expr)
				}
			}
		})
	}
}
