package model

import (
	"slices"
	"strings"
	"testing"
)

// sloBase adds a route for reviews (v1 stable in its last rule) and an
// availability SLO to base.
const sloBase = routeHead + `    - destinations: [{subset: v1, weight: 100}]
---
apiVersion: glassmesh.io/v1alpha1
kind: SLO
metadata: {name: avail}
spec:
  service: reviews
  objective: 99.5
  indicator: {availability: {}}
`

func TestValidateSLOAndCanaryErrorsNameFileLineAndPath(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string
	}{{
		name: "an SLO needs an existing service, a sane objective and window, and one indicator",
		yaml: `apiVersion: glassmesh.io/v1alpha1
kind: SLO
metadata: {name: bad}
spec:
  service: ratings
  objective: 100
  window: 2h
  indicator:
    availability: {}
    latency: {thresholdMs: 300}
`,
		want: []string{
			"x.yaml:5: spec.service: service ratings not found in namespace default",
			"x.yaml:6: spec.objective: 100 is out of range: want a percentage above 0 and below 100, like 99.9",
			"x.yaml:7: spec.window: 2h0m0s is out of range: want from 1d to 365d, like 30d",
			"x.yaml:8: spec.indicator: set exactly one of availability, latency or ratio (got 2)",
		},
	}, {
		name: "a latency threshold must be a bucket bound; ratio queries must be PromQL",
		yaml: `apiVersion: glassmesh.io/v1alpha1
kind: SLO
metadata: {name: slow}
spec: {service: reviews, objective: 99, indicator: {latency: {thresholdMs: 300}}}
---
apiVersion: glassmesh.io/v1alpha1
kind: SLO
metadata: {name: mine}
spec:
  service: reviews
  objective: 99
  indicator:
    ratio:
      errorQuery: sum(rate(errors_total[$window])
`,
		want: []string{
			"x.yaml:4: spec.indicator.latency.thresholdMs: 300 is not a bucket bound of istio_request_duration_milliseconds, so the SLI cannot be exact; use one of 0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000",
			"x.yaml:13: spec.indicator.ratio.totalQuery: required: a PromQL expression",
			`x.yaml:14: spec.indicator.ratio.errorQuery: invalid PromQL: parse error: unclosed left parenthesis`,
		},
	}, {
		name: "a canary names an existing route, its subsets, and increasing steps",
		yaml: `apiVersion: glassmesh.io/v1alpha1
kind: Canary
metadata: {name: c}
spec:
  route: ratings
  stable: v1
  canary: v1
  steps: [5, 5, 101]
  interval: 100ms
`,
		want: []string{
			"x.yaml:5: spec.route: TrafficRoute ratings not found in namespace default",
			"x.yaml:7: spec.canary: the canary must be a different subset from the stable one",
			"x.yaml:8: spec.steps[1]: weight 5 does not increase on the step before it (5)",
			"x.yaml:8: spec.steps[2]: weight 101 is out of range 1..100",
			"x.yaml:9: spec.interval: 100ms is too short: want at least 1s",
		},
	}, {
		name: "a canary's subsets must be the route's, stable in its last rule; gates must resolve",
		yaml: `apiVersion: glassmesh.io/v1alpha1
kind: Canary
metadata: {name: c}
spec:
  route: reviews
  stable: v2
  canary: v3
  steps: [50]
  gates:
    - slo: nope
    - {slo: avail, max: 1}
    - query: 'rate(x[$interval]'
    - {slo: avail, query: up, max: 1}
---
apiVersion: glassmesh.io/v1alpha1
kind: Canary
metadata: {name: d}
spec: {route: reviews, stable: v1, canary: v2, steps: [10]}
`,
		want: []string{
			`x.yaml:6: spec.stable: subset "v2" is not a destination of the last rule of TrafficRoute reviews, whose weights the canary moves`,
			`x.yaml:7: spec.canary: subset "v3" is not defined in TrafficRoute reviews`,
			"x.yaml:10: spec.gates[0].slo: SLO nope not found in namespace default",
			"x.yaml:11: spec.gates[1].max: max belongs to query gates; an slo gate fails on the SLO's page-level burn rate",
			"x.yaml:12: spec.gates[2].query: invalid PromQL: parse error: unclosed left parenthesis",
			"x.yaml:12: spec.gates[2].max: required for a query gate: the largest value that passes",
			"x.yaml:13: spec.gates[3]: set exactly one of slo or query",
			"x.yaml:18: spec.route: TrafficRoute reviews is already driven by Canary default/c at x.yaml:1",
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := loadFiles(t, map[string]string{"base.yaml": base, "slo.yaml": sloBase, "x.yaml": tt.yaml})
			if got := diagStrings(r.Errors); !slices.Equal(got, tt.want) {
				t.Errorf("errors:\n got %s\nwant %s", strings.Join(got, "\n     "), strings.Join(tt.want, "\n     "))
			}
			if r.Mesh != nil {
				t.Error("Mesh is not nil despite errors")
			}
		})
	}
}

func TestValidCanaryGetsDefaultsAndIsFoundByName(t *testing.T) {
	r := loadFiles(t, map[string]string{"base.yaml": base, "slo.yaml": sloBase, "c.yaml": `apiVersion: glassmesh.io/v1alpha1
kind: Canary
metadata: {name: reviews}
spec:
  route: reviews
  stable: v1
  canary: v2
  steps: [10, 50]
  gates: [{slo: avail}, {query: 'sum(rate(istio_requests_total{destination_version="$canary"}[$interval]))', max: 5}]
`})
	if len(r.Errors) > 0 {
		t.Fatalf("errors: %v", r.Errors)
	}
	c := r.Mesh.Canaries[0]
	if c.Spec.Interval.Duration != DefaultCanaryInterval || c.Spec.MinRequests != DefaultCanaryMinRequests || c.Spec.MaxInconclusive != DefaultCanaryMaxInconclusive {
		t.Errorf("defaults not applied: %+v", c.Spec)
	}
	if r.Mesh.Route("default", "reviews") == nil || r.Mesh.SLO("default", "avail") == nil {
		t.Error("Route or SLO lookup by name failed")
	}
}

func TestExpandQueryReplacesLongerNamesFirst(t *testing.T) {
	got := ExpandQuery(`x{v="$canary",w="$can"}[$interval]`, map[string]string{"can": "A", "canary": "v2", "interval": "10s"})
	if want := `x{v="v2",w="A"}[10s]`; got != want {
		t.Errorf("ExpandQuery = %s, want %s", got, want)
	}
}
