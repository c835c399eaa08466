package kube

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/glassmesh/glassmesh/control/model"
)

func trafficRoute(generation int64, conditions ...any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "glassmesh.io/v1alpha1", "kind": "TrafficRoute",
		"metadata": map[string]any{"name": "reviews", "namespace": "shop", "generation": generation, "uid": "u-1"},
	}}
	if len(conditions) > 0 {
		u.Object["status"] = map[string]any{"conditions": conditions}
	}
	return u
}

func TestConditionWrites(t *testing.T) {
	now := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	earlier := "2026-12-02T09:00:00Z"
	invalid := validCondition([]string{"spec.rules[0].destinations: weights sum to 60, want 100"}, model.ServingLastGood, 3)
	valid := validCondition(nil, model.ServingCurrent, 3)
	for _, tc := range []struct {
		name       string
		obj        *unstructured.Unstructured
		want       metav1.Condition
		write      bool
		event      bool
		transition string // the lastTransitionTime written
	}{
		{"a new invalid object gets the condition and an Event", trafficRoute(3), invalid, true, true, "2026-12-02T10:00:00Z"},
		{"a new valid object gets the condition, no Event", trafficRoute(3), valid, true, false, "2026-12-02T10:00:00Z"},
		{"nothing to write when it carries the condition already", trafficRoute(3,
			map[string]any{"type": "Valid", "status": "True", "reason": "Valid", "message": "accepted", "observedGeneration": int64(3), "lastTransitionTime": earlier}),
			valid, false, false, ""},
		{"a new generation, still valid: written, the transition time kept", trafficRoute(3,
			map[string]any{"type": "Valid", "status": "True", "reason": "Valid", "message": "accepted", "observedGeneration": int64(2), "lastTransitionTime": earlier}),
			valid, true, false, earlier},
		{"valid to invalid: a transition and an Event", trafficRoute(3,
			map[string]any{"type": "Valid", "status": "True", "reason": "Valid", "message": "accepted", "observedGeneration": int64(2), "lastTransitionTime": earlier}),
			invalid, true, true, "2026-12-02T10:00:00Z"},
		{"invalid with other errors: an Event again", trafficRoute(3,
			map[string]any{"type": "Valid", "status": "False", "reason": "Invalid", "message": "spec.service: required", "observedGeneration": int64(2), "lastTransitionTime": earlier}),
			invalid, true, true, earlier},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x, ok := conditionWrite("trafficroutes", tc.obj, tc.want, now, "replica-a")
			if ok != tc.write {
				t.Fatalf("write = %v, want %v", ok, tc.write)
			}
			if !ok {
				return
			}
			if (x.event != nil) != tc.event {
				t.Errorf("event = %v, want %v", x.event != nil, tc.event)
			}
			if x.event != nil && (x.event.Type != "Warning" || x.event.Regarding.Kind != "TrafficRoute" || x.event.Regarding.Name != "reviews" ||
				x.event.ReportingInstance != "replica-a" || !strings.Contains(x.event.Note, "spec.rules[0].destinations")) {
				t.Errorf("event %+v", x.event)
			}
			var patch struct {
				Status struct {
					ObservedGeneration int64              `json:"observedGeneration"`
					Conditions         []metav1.Condition `json:"conditions"`
				} `json:"status"`
			}
			if err := json.Unmarshal(x.patch, &patch); err != nil {
				t.Fatal(err)
			}
			c := patch.Status.Conditions
			if len(c) != 1 || c[0].Status != tc.want.Status || c[0].ObservedGeneration != 3 || patch.Status.ObservedGeneration != 3 {
				t.Fatalf("patch %s", x.patch)
			}
			if got := c[0].LastTransitionTime.UTC().Format(time.RFC3339); got != tc.transition {
				t.Errorf("lastTransitionTime %s, want %s", got, tc.transition)
			}
			if x.gvr.Resource != "trafficroutes" || x.namespace != "shop" || x.name != "reviews" {
				t.Errorf("writes to %v %s/%s", x.gvr, x.namespace, x.name)
			}
		})
	}
}

func TestValidConditionMessages(t *testing.T) {
	c := validCondition([]string{"spec.a: bad", "spec.b: worse"}, model.ServingLastGood, 7)
	if c.Status != metav1.ConditionFalse || c.Reason != ReasonInvalid || !strings.HasPrefix(c.Message, "spec.a: bad; spec.b: worse") ||
		!strings.Contains(c.Message, "last good version keeps serving") || c.ObservedGeneration != 7 {
		t.Errorf("invalid: %+v", c)
	}
	if c := validCondition([]string{"spec.a: bad"}, model.ServingNone, 7); !strings.Contains(c.Message, "no version of it serves") {
		t.Errorf("invalid, never valid: %+v", c)
	}
	// Other objects' errors do not hold a valid one back any more.
	if c := validCondition(nil, model.ServingCurrent, 1); c.Status != metav1.ConditionTrue || c.Message != "accepted" {
		t.Errorf("valid: %+v", c)
	}
	long := validCondition([]string{strings.Repeat("x", 2*maxConditionMessage)}, model.ServingNone, 1)
	x, _ := conditionWrite("trafficroutes", trafficRoute(1), long, time.Now(), "")
	if len(x.patch) > 2*maxConditionMessage || len(x.event.Note) > maxEventNote || x.event.ReportingInstance == "" {
		t.Errorf("a long message is not cut: patch %d bytes, note %d", len(x.patch), len(x.event.Note))
	}
}
