package kube

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/glassmesh/glassmesh/control/model"
	"github.com/glassmesh/glassmesh/control/source"
)

func httpRouteObject(parents []any, status []any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
		"metadata": map[string]any{"name": "reviews", "namespace": "shop", "generation": int64(2), "resourceVersion": "41"},
		"spec":     map[string]any{"parentRefs": parents},
	}}
	if status != nil {
		u.Object["status"] = map[string]any{"parents": status}
	}
	return u
}

// written decodes a parents write: the resourceVersion it is conditional
// on, and the entries.
func written(t *testing.T, x statusWrite) (string, []map[string]any) {
	t.Helper()
	var p struct {
		Metadata struct{ ResourceVersion string }
		Status   struct{ Parents []map[string]any }
	}
	if err := json.Unmarshal(x.patch, &p); err != nil {
		t.Fatal(err)
	}
	return p.Metadata.ResourceVersion, p.Status.Parents
}

func TestHTTPRouteParentsStatus(t *testing.T) {
	now := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	svc := map[string]any{"kind": "Service", "group": "", "name": "reviews"}
	gw := map[string]any{"kind": "Gateway", "name": "edge"}
	otherController := map[string]any{"parentRef": gw, "controllerName": "example.net/gateway",
		"conditions": []any{map[string]any{"type": "Accepted", "status": "True", "reason": "Accepted", "message": "", "lastTransitionTime": "2026-12-01T00:00:00Z"}}}
	ok := routeConditions(nil, "", model.ServingCurrent, 2)

	// A new route: glassmesh's entry for its Service parent, the gateway
	// controller's entry kept, conditional on the version read.
	x, wrote := parentsWrite(httpRouteObject([]any{svc, gw}, []any{otherController}), ok, now)
	if !wrote || !x.conflictDrops || x.gvr.Version != "v1" || x.gvr.Resource != "httproutes" {
		t.Fatalf("write %v %+v", wrote, x)
	}
	rv, parents := written(t, x)
	if rv != "41" || len(parents) != 2 || parents[0]["controllerName"] != "example.net/gateway" || parents[1]["controllerName"] != ControllerName {
		t.Fatalf("rv %s, parents %v", rv, parents)
	}
	conds := parents[1]["conditions"].([]any)
	if c := conds[0].(map[string]any); c["type"] != "Accepted" || c["status"] != "True" || c["lastTransitionTime"] != "2026-12-02T10:00:00Z" {
		t.Errorf("accepted %v", c)
	}

	// Carrying it already (with the defaults the API server adds to a
	// parentRef): nothing to write.
	var stored []any
	_ = json.Unmarshal(mustJSON(t, parents), &stored)
	stored[1].(map[string]any)["parentRef"].(map[string]any)["namespace"] = "shop"
	if _, wrote := parentsWrite(httpRouteObject([]any{svc, gw}, stored), ok, now.Add(time.Minute)); wrote {
		t.Error("wrote a status the route carries already")
	}

	// A backend that is not found: ResolvedRefs False (BackendNotFound),
	// not accepted.
	bad := routeConditions([]model.Diagnostic{{Path: "spec.rules[0].backendRefs[1]", Message: "Service reviews-v9 not found in namespace shop"}}, "", model.ServingLastGood, 3)
	x, wrote = parentsWrite(httpRouteObject([]any{svc, gw}, stored), bad, now.Add(time.Minute))
	if !wrote {
		t.Fatal("no write for a changed condition")
	}
	_, parents = written(t, x)
	conds = parents[1]["conditions"].([]any)
	acc, refs := conds[0].(map[string]any), conds[1].(map[string]any)
	if acc["status"] != "False" || acc["reason"] != reasonInvalidBackends || !strings.Contains(acc["message"].(string), "reviews-v9 not found") || acc["lastTransitionTime"] != "2026-12-02T10:01:00Z" {
		t.Errorf("accepted %v", acc)
	}
	if refs["status"] != "False" || refs["reason"] != reasonBackendNotFound || refs["observedGeneration"] != float64(3) {
		t.Errorf("resolvedRefs %v", refs)
	}

	// Losing the service to an older route or a TrafficRoute: Conflicted.
	c := routeConditions(nil, source.NotImported+"service shop/reviews already has TrafficRoute shop/reviews (from reviews.yaml), which wins", model.ServingCurrent, 2)
	if c[0].Status != metav1.ConditionFalse || c[0].Reason != reasonConflicted || c[1].Status != metav1.ConditionTrue {
		t.Errorf("conflicted %+v", c)
	}
	// Unsupported fields and foreign backends have their reasons.
	c = routeConditions([]model.Diagnostic{
		{Path: "spec.rules[0].matches[0].method", Message: "method matches are not supported"},
		{Path: "spec.rules[0].backendRefs[0]", Message: "backend Pod x is not a core Service: only Services can be subsets"},
	}, "", model.ServingNone, 2)
	if c[0].Reason != reasonUnsupported || c[1].Reason != reasonInvalidKind {
		t.Errorf("reasons %s %s", c[0].Reason, c[1].Reason)
	}

	// No Service parent any more: glassmesh's entry goes, the other stays.
	x, wrote = parentsWrite(httpRouteObject([]any{gw}, stored), ok, now)
	if _, parents = written(t, x); !wrote || len(parents) != 1 || parents[0]["controllerName"] != "example.net/gateway" {
		t.Errorf("after the Service parent went: %v %v", wrote, parents)
	}
	// A route that was never the mesh's: nothing.
	if _, wrote := parentsWrite(httpRouteObject([]any{gw}, []any{otherController}), ok, now); wrote {
		t.Error("wrote the status of a route with no Service parent")
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
