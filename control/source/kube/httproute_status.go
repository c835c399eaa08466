package kube

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/glassmesh/glassmesh/control/model"
	"github.com/glassmesh/glassmesh/control/source"
	"github.com/glassmesh/glassmesh/control/source/internal/unstr"
)

// The status of imported HTTPRoutes, as Gateway API asks of a mesh (GAMMA):
// one entry in status.parents per Service parent, written by the leader
// under glassmesh's controllerName, with the conditions Accepted (is the
// route in use, and if not, why: its errors, or another route owning the
// service) and ResolvedRefs (are its backends Services glassmesh can make
// subsets of). Entries of other controllers are kept. SMI TrafficSplits
// have no status to write.

// ControllerName is glassmesh's controllerName in Gateway API statuses.
const ControllerName = "glassmesh.io/mesh"

// Gateway API condition types and reasons used in HTTPRoute parents.
const (
	routeAccepted         = "Accepted"
	routeResolvedRefs     = "ResolvedRefs"
	reasonAccepted        = "Accepted"
	reasonUnsupported     = "UnsupportedValue"
	reasonConflicted      = "Conflicted" // implementation-specific: another route owns the service
	reasonInvalidBackends = "InvalidBackendRefs"
	reasonResolvedRefs    = "ResolvedRefs"
	reasonBackendNotFound = "BackendNotFound"
	reasonInvalidKind     = "InvalidKind"
	reasonRefNotPermitted = "RefNotPermitted"
)

// routeConditions are the Accepted and ResolvedRefs conditions of a route
// with the given import errors, or losing to another route (conflict).
func routeConditions(errs []model.Diagnostic, conflict string, serving model.Serving, generation int64) []metav1.Condition {
	accepted := metav1.Condition{Type: routeAccepted, Status: metav1.ConditionTrue, Reason: reasonAccepted, Message: "routes the service", ObservedGeneration: generation}
	refs := metav1.Condition{Type: routeResolvedRefs, Status: metav1.ConditionTrue, Reason: reasonResolvedRefs, Message: "every backend is a Service of the route's namespace with a selector", ObservedGeneration: generation}
	var refMsgs, otherMsgs []string
	for _, d := range errs {
		if strings.Contains(d.Path, ".backendRefs[") {
			refMsgs = append(refMsgs, fieldMessage(d))
			reason := reasonBackendNotFound
			switch {
			case strings.Contains(d.Message, "is not a core Service"):
				reason = reasonInvalidKind
			case strings.Contains(d.Message, "another namespace"):
				reason = reasonRefNotPermitted
			}
			if refs.Status == metav1.ConditionTrue {
				refs.Status, refs.Reason = metav1.ConditionFalse, reason
			}
		} else {
			otherMsgs = append(otherMsgs, fieldMessage(d))
		}
	}
	if len(refMsgs) > 0 {
		refs.Message = strings.Join(refMsgs, "; ")
	}
	switch {
	case len(errs) > 0:
		accepted.Status, accepted.Reason = metav1.ConditionFalse, reasonUnsupported
		if len(otherMsgs) == 0 {
			accepted.Reason = reasonInvalidBackends
		}
		accepted.Message = strings.Join(append(otherMsgs, refMsgs...), "; ") + servingNote(serving)
	case conflict != "":
		accepted.Status, accepted.Reason, accepted.Message = metav1.ConditionFalse, reasonConflicted, conflict
	}
	for _, c := range []*metav1.Condition{&accepted, &refs} {
		if len(c.Message) > maxConditionMessage {
			c.Message = c.Message[:maxConditionMessage-3] + "..."
		}
	}
	return []metav1.Condition{accepted, refs}
}

// serviceParents are the route's parentRefs that glassmesh routes: core
// Services of its own namespace (as httpRouteRoutes imports them).
func serviceParents(u *unstructured.Unstructured) []any {
	var out []any
	for _, p := range unstr.List(u.Object, "spec", "parentRefs") {
		if unstr.String(p, "kind") != "Service" || (unstr.String(p, "group") != "" && unstr.String(p, "group") != "core") {
			continue
		}
		if pns := unstr.String(p, "namespace"); pns != "" && pns != u.GetNamespace() {
			continue
		}
		out = append(out, p)
	}
	return out
}

// parentsWrite is the status write that gives each Service parent of u
// glassmesh's entry with conditions want (and drops glassmesh's entries
// for parents it no longer has), if u does not carry them yet. The whole
// list is written, other controllers' entries as they are, with u's
// resourceVersion: a conflict means u changed, and its next report writes
// again.
func parentsWrite(u *unstructured.Unstructured, want []metav1.Condition, now time.Time) (statusWrite, bool) {
	current, _, _ := unstructured.NestedSlice(u.Object, "status", "parents")
	var others, ours []any
	for _, e := range current {
		if unstr.String(e, "controllerName") == ControllerName {
			ours = append(ours, e)
		} else {
			others = append(others, e)
		}
	}
	var desired []any
	changed := false
	for _, p := range serviceParents(u) {
		var have map[string]any
		for _, e := range ours {
			if m, ok := e.(map[string]any); ok && parentKey(m["parentRef"], u.GetNamespace()) == parentKey(p, u.GetNamespace()) {
				have = m
			}
		}
		conds := make([]any, 0, len(want))
		for _, c := range want {
			old, found := findCondition(unstr.List(have, "conditions"), c.Type)
			if !found || old.Status != c.Status || old.Reason != c.Reason || old.Message != c.Message || old.ObservedGeneration != c.ObservedGeneration {
				changed = true
			}
			c.LastTransitionTime = metav1.NewTime(now.Truncate(time.Second))
			if found && old.Status == c.Status {
				c.LastTransitionTime = old.LastTransitionTime
			}
			b, _ := json.Marshal(c)
			var m map[string]any
			_ = json.Unmarshal(b, &m)
			conds = append(conds, m)
		}
		desired = append(desired, map[string]any{"parentRef": p, "controllerName": ControllerName, "conditions": conds})
	}
	if !changed && len(desired) == len(ours) {
		return statusWrite{}, false
	}
	patch, err := json.Marshal(map[string]any{
		"metadata": map[string]any{"resourceVersion": u.GetResourceVersion()},
		"status":   map[string]any{"parents": append(others, desired...)},
	})
	if err != nil {
		return statusWrite{}, false
	}
	gv, _ := schema.ParseGroupVersion(u.GetAPIVersion()) // the version watched
	gvr := schema.GroupVersionResource{Group: source.GatewayGroup, Version: gv.Version, Resource: source.HTTPRoutesPlural}
	return statusWrite{what: "parents", gvr: gvr, namespace: u.GetNamespace(), name: u.GetName(), patch: patch, conflictDrops: true}, true
}

// parentKey identifies a parentRef whatever defaults the API server filled
// in (group, kind, namespace).
func parentKey(ref any, namespace string) string {
	group, kind, ns := unstr.String(ref, "group"), unstr.String(ref, "kind"), unstr.String(ref, "namespace")
	if group == "core" {
		group = ""
	}
	if kind == "" {
		kind = "Gateway"
	}
	if ns == "" {
		ns = namespace
	}
	port, _, _ := unstr.Integer(ref, "port")
	return fmt.Sprintf("%s/%s/%s/%s/%s:%d", group, kind, ns, unstr.String(ref, "name"), unstr.String(ref, "sectionName"), port)
}
