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
