package model

import (
	"slices"
	"strings"
	"testing"
)

// policyBase is reviews split 50/50 between v1 and v2, an availability SLO
// of reviews and one of ratings.
const policyBase = routeHead + `    - destinations: [{subset: v1, weight: 50}, {subset: v2, weight: 50}]
---
apiVersion: glassmesh.io/v1alpha1
kind: SLO
metadata: {name: avail}
spec: {service: reviews, objective: 99.5, indicator: {availability: {}}}
---
apiVersion: glassmesh.io/v1alpha1
kind: Service
metadata: {name: ratings}
spec:
  ports: [{name: grpc, port: 9080, protocol: GRPC}]
  selector: {app: ratings}
---
apiVersion: glassmesh.io/v1alpha1
kind: SLO
metadata: {name: ratings-avail}
spec: {service: ratings, objective: 99, indicator: {availability: {}}}
`

func TestValidateSLOPolicyErrorsNameFileLineAndPath(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string
	}{{
		name: "a policy names an existing SLO and route of one service, and actions that fit their triggers",
		yaml: `apiVersion: glassmesh.io/v1alpha1
kind: SLOPolicy
metadata: {name: p}
spec:
  slo: ratings-avail
  actions:
    - when: page
      shiftTraffic: {route: reviews, maxShift: 101, minHealthySubsets: 0}
    - when: budgetExhausted
      shiftTraffic: {route: nope}
    - when: ticket
      freezeCanaries: true
    - when: soon
    - when: page
      shiftTraffic: {route: reviews}
      freezeCanaries: true
`,
		want: []string{
			"x.yaml:8: spec.actions[0].shiftTraffic.maxShift: 101 is out of range 1..100 (percent of the rule's weight the policy may move)",
			"x.yaml:8: spec.actions[0].shiftTraffic.minHealthySubsets: want at least 1: a route must keep a subset to send traffic to",
			"x.yaml:8: spec.actions[0].shiftTraffic.route: TrafficRoute reviews routes service reviews, but SLO ratings-avail is about service ratings",
			"x.yaml:9: spec.actions[1].when: shiftTraffic acts on a subset's own burn: want page or ticket, not budgetExhausted (the budget is the whole service's)",
			"x.yaml:10: spec.actions[1].shiftTraffic: a policy shifts one route once: only one shiftTraffic action",
			"x.yaml:11: spec.actions[2].when: freezeCanaries follows the error budget: want budgetExhausted, not ticket",
			`x.yaml:13: spec.actions[3].when: "soon" is not page, ticket or budgetExhausted`,
			"x.yaml:13: spec.actions[3]: set exactly one of shiftTraffic or freezeCanaries",
			"x.yaml:14: spec.actions[4]: set exactly one of shiftTraffic or freezeCanaries",
		},
	}, {
		name: "a missing SLO, no actions, bad recovery; two policies on one route",
		yaml: `apiVersion: glassmesh.io/v1alpha1
kind: SLOPolicy
metadata: {name: p}
spec:
  slo: nope
  actions: []
  recovery: {after: 10ms, steps: [50, 25, 90], interval: 0.5s}
---
apiVersion: glassmesh.io/v1alpha1
kind: SLOPolicy
metadata: {name: q}
spec:
  slo: avail
  actions: [{when: page, shiftTraffic: {route: reviews}}]
---
apiVersion: glassmesh.io/v1alpha1
kind: SLOPolicy
metadata: {name: r}
spec:
  slo: avail
  actions: [{when: ticket, shiftTraffic: {route: reviews}}]
`,
		want: []string{
			"x.yaml:5: spec.slo: SLO nope not found in namespace default",
			"x.yaml:6: spec.actions: at least one action is required: shiftTraffic (when: page or ticket) or freezeCanaries (when: budgetExhausted)",
			"x.yaml:7: spec.recovery.after: 10ms is too short: want at least 1s",
			"x.yaml:7: spec.recovery.interval: 500ms is too short: want at least 1s",
			"x.yaml:7: spec.recovery.steps[1]: 25 does not increase on the step before it (50)",
			"x.yaml:7: spec.recovery.steps[2]: the last step must be 100: recovery ends with the subset's whole weight back",
			"x.yaml:21: spec.actions[0].shiftTraffic.route: TrafficRoute reviews is already shifted by SLOPolicy default/q at x.yaml:9",
		},
	}, {
		name: "shiftTraffic needs an SLI it can split by subset",
		yaml: `apiVersion: glassmesh.io/v1alpha1
kind: SLO
metadata: {name: mine}
spec:
  service: reviews
  objective: 99
  indicator: {ratio: {errorQuery: 'sum(rate(e[$window]))', totalQuery: 'sum(rate(t[$window]))'}}
---
apiVersion: glassmesh.io/v1alpha1
kind: SLOPolicy
metadata: {name: p}
spec:
  slo: mine
  actions: [{when: page, shiftTraffic: {route: reviews}}]
`,
		want: []string{
			"x.yaml:14: spec.actions[0].shiftTraffic: SLO mine measures a ratio of the user's own queries, which cannot be split by subset: shiftTraffic needs an availability or latency SLO",
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := loadFiles(t, map[string]string{"base.yaml": base, "slo.yaml": policyBase, "x.yaml": tt.yaml})
			if got := diagStrings(r.Errors); !slices.Equal(got, tt.want) {
				t.Errorf("errors:\n got %s\nwant %s", strings.Join(got, "\n     "), strings.Join(tt.want, "\n     "))
			}
		})
	}
}

func TestValidSLOPolicyGetsDefaultsAndWarnsOfACanary(t *testing.T) {
	r := loadFiles(t, map[string]string{"base.yaml": base, "slo.yaml": policyBase, "p.yaml": `apiVersion: glassmesh.io/v1alpha1
kind: SLOPolicy
metadata: {name: reviews}
spec:
  slo: avail
  actions:
    - when: page
      shiftTraffic: {route: reviews}
    - {when: budgetExhausted, freezeCanaries: true}
---
apiVersion: glassmesh.io/v1alpha1
kind: Canary
metadata: {name: reviews}
spec: {route: reviews, stable: v1, canary: v2, steps: [10, 50], gates: [{slo: avail}]}
`})
	if len(r.Errors) > 0 {
		t.Fatalf("errors: %v", r.Errors)
	}
	p := r.Mesh.PolicyOf("default", "reviews")
	if p == nil || p.Name != "reviews" || !p.FreezesCanaries() {
		t.Fatalf("PolicyOf(default, reviews) = %+v", p)
	}
	s := p.ShiftAction().ShiftTraffic
	rec := p.Spec.Recovery
	if s.MaxShift != DefaultPolicyMaxShift || s.MinHealthySubsets != DefaultPolicyMinHealthySubsets ||
		rec.After.Duration != DefaultPolicyRecoveryAfter || rec.Interval.Duration != DefaultPolicyRecoveryInterval ||
		!slices.Equal(rec.Steps, DefaultPolicyRecoverySteps()) {
		t.Errorf("defaults not applied: %+v %+v", s, rec)
	}
	want := "p.yaml:8: spec.actions[0].shiftTraffic.route: TrafficRoute reviews is driven by Canary default/reviews at p.yaml:11: " +
		"while that canary progresses or is paused it owns the weights and this policy only records what it would do"
	if got := diagStrings(r.Warnings); !slices.Contains(got, want) {
		t.Errorf("warnings %q, want %q", got, want)
	}
}
