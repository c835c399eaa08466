package k8s

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
)

// gatewayAPIVersion is the Gateway API release whose HTTPRoute CRD the
// import test installs, as the Go module proxy serves it.
const gatewayAPIVersion = "v1.6.3"

var httpRoutes = schema.GroupVersionResource{Group: "gateway.networking.k8s.io", Version: "v1", Resource: "httproutes"}

// httpRouteCRD returns a directory holding the upstream HTTPRoute CRD (from
// the sigs.k8s.io/gateway-api module, downloaded through the module cache).
func httpRouteCRD(t *testing.T) string {
	t.Helper()
	cmd := exec.Command("go", "mod", "download", "-json", "sigs.k8s.io/gateway-api@"+gatewayAPIVersion)
	cmd.Dir = os.TempDir() // outside any module: nothing's go.mod changes
	out, err := cmd.Output()
	if err != nil {
		t.Skipf("the Gateway API module is not available: %v %s", err, out)
	}
	var mod struct{ Dir string }
	if err := json.Unmarshal(out, &mod); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(mod.Dir, "config", "crd", "standard", "gateway.networking.k8s.io_httproutes.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "httproutes.yaml"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func httpRoute(ns string, v1, v2 int64) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
		"metadata": map[string]any{"name": "reviews", "namespace": ns},
		"spec": map[string]any{
			"parentRefs": []any{map[string]any{"group": "", "kind": "Service", "name": "reviews"}},
			"rules": []any{map[string]any{"backendRefs": []any{
				map[string]any{"name": "reviews-v1", "port": int64(9080), "weight": v1},
				map[string]any{"name": "reviews-v2", "port": int64(9080), "weight": v2},
			}}},
		},
	}}
}

// TestImportHTTPRoute: an HTTPRoute bound to a Service (GAMMA) created
// through the API server shows in /api/mesh/config as a TrafficRoute with
// its weights in percent and its origin, and follows edits.
func TestImportHTTPRoute(t *testing.T) {
	installCRDs(t, server.Config, httpRouteCRD(t))
	cs := kubernetes.NewForConfigOrDie(server.Config)
	dyn := dynamic.NewForConfigOrDie(server.Config)
	ns := newNamespace(t, cs)
	ctx := context.Background()
	for name, labels := range map[string]map[string]string{
		"reviews":    {"app": "reviews"},
		"reviews-v1": {"app": "reviews", "version": "v1"},
		"reviews-v2": {"app": "reviews", "version": "v2"},
	} {
		if _, err := cs.CoreV1().Services(ns).Create(ctx, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec:       corev1.ServiceSpec{Selector: labels, Ports: []corev1.ServicePort{{Name: "grpc", Port: 9080}}},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := dyn.Resource(httpRoutes).Namespace(ns).Create(ctx, httpRoute(ns, 3, 1), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	httpAddr, _ := runGlassmesh(t, "--kubernetes.namespaces", ns, "--leader-elect.namespace", ns)

	key := "TrafficRoute/" + ns + "/httproute-reviews"
	wantOrigin := "kubernetes:httproutes.gateway.networking.k8s.io/" + ns + "/reviews"
	weights := func() (map[string]uint32, error) {
		resp, err := http.Get("http://" + httpAddr + "/api/mesh/config")
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		var st struct {
			Errors    []json.RawMessage `json:"errors"`
			Resources struct {
				TrafficRoutes []struct {
					Metadata struct{ Name, Namespace string } `json:"metadata"`
					Spec     struct {
						Service string `json:"service"`
						Subsets []struct {
							Name   string            `json:"name"`
							Labels map[string]string `json:"labels"`
						} `json:"subsets"`
						Rules []struct {
							Destinations []struct {
								Subset string `json:"subset"`
								Weight uint32 `json:"weight"`
							} `json:"destinations"`
						} `json:"rules"`
					} `json:"spec"`
				} `json:"trafficRoutes"`
			} `json:"resources"`
			Origins map[string]string `json:"origins"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
			return nil, err
		}
		if len(st.Errors) > 0 {
			return nil, fmt.Errorf("config errors: %s", st.Errors)
		}
		if got := st.Origins[key]; got != wantOrigin {
			return nil, fmt.Errorf("origins[%s] = %q, want %q", key, got, wantOrigin)
		}
		for _, r := range st.Resources.TrafficRoutes {
			if r.Metadata.Name != "httproute-reviews" || r.Metadata.Namespace != ns {
				continue
			}
			if r.Spec.Service != "reviews" || len(r.Spec.Subsets) != 2 || r.Spec.Subsets[1].Labels["version"] != "v2" || len(r.Spec.Rules) != 1 {
				return nil, fmt.Errorf("route %+v", r.Spec)
			}
			out := map[string]uint32{}
			for _, d := range r.Spec.Rules[0].Destinations {
				out[d.Subset] = d.Weight
			}
			return out, nil
		}
		return nil, fmt.Errorf("no TrafficRoute %s", key)
	}
	within(t, 60*time.Second, "the imported route", func() error {
		w, err := weights()
		if err != nil {
			return err
		}
		if w["reviews-v1"] != 75 || w["reviews-v2"] != 25 {
			return fmt.Errorf("weights %v, want reviews-v1 75, reviews-v2 25", w)
		}
		return nil
	})

	t.Run("an edit of the HTTPRoute changes the TrafficRoute", func(t *testing.T) {
		// glassmesh writes the route's status meanwhile: retry on conflict.
		if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			cur, err := dyn.Resource(httpRoutes).Namespace(ns).Get(ctx, "reviews", metav1.GetOptions{})
			if err != nil {
				return err
			}
			r := httpRoute(ns, 1, 0)
			r.SetResourceVersion(cur.GetResourceVersion())
			_, err = dyn.Resource(httpRoutes).Namespace(ns).Update(ctx, r, metav1.UpdateOptions{})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		within(t, 25*time.Second, "the new weights", func() error {
			w, err := weights()
			if err != nil {
				return err
			}
			if w["reviews-v1"] != 100 || w["reviews-v2"] != 0 || len(w) != 2 {
				return fmt.Errorf("weights %v, want reviews-v1 100, reviews-v2 0", w)
			}
			return nil
		})
	})

	t.Run("the route's status says glassmesh accepted it, next to another controller's entry", func(t *testing.T) {
		within(t, 25*time.Second, "glassmesh's entry in status.parents", func() error {
			return wantParent(ctx, dyn, ns, "True", "Accepted", "True", "ResolvedRefs")
		})
		// Another controller (a gateway's) writes its entry; glassmesh's
		// next writes keep it.
		if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			cur, err := dyn.Resource(httpRoutes).Namespace(ns).Get(ctx, "reviews", metav1.GetOptions{})
			if err != nil {
				return err
			}
			parents, _, _ := unstructured.NestedSlice(cur.Object, "status", "parents")
			parents = append(parents, map[string]any{
				"parentRef": map[string]any{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "edge"}, "controllerName": "example.net/gateway",
				"conditions": []any{map[string]any{"type": "Accepted", "status": "True", "reason": "Accepted", "message": "", "lastTransitionTime": "2026-12-01T00:00:00Z"}},
			})
			_ = unstructured.SetNestedSlice(cur.Object, parents, "status", "parents")
			_, err = dyn.Resource(httpRoutes).Namespace(ns).UpdateStatus(ctx, cur, metav1.UpdateOptions{})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		// Written once, then left alone (no write loop).
		cur, _ := dyn.Resource(httpRoutes).Namespace(ns).Get(ctx, "reviews", metav1.GetOptions{})
		time.Sleep(2 * time.Second)
		again, _ := dyn.Resource(httpRoutes).Namespace(ns).Get(ctx, "reviews", metav1.GetOptions{})
		if cur.GetResourceVersion() != again.GetResourceVersion() {
			t.Errorf("the route keeps changing (resourceVersion %s → %s): a status write loop?", cur.GetResourceVersion(), again.GetResourceVersion())
		}
	})

	t.Run("a backend that does not exist: the route's status says so and the last good routing serves", func(t *testing.T) {
		if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			cur, err := dyn.Resource(httpRoutes).Namespace(ns).Get(ctx, "reviews", metav1.GetOptions{})
			if err != nil {
				return err
			}
			rules, _, _ := unstructured.NestedSlice(cur.Object, "spec", "rules")
			refs := rules[0].(map[string]any)["backendRefs"].([]any)
			refs[1].(map[string]any)["name"] = "reviews-v9"
			_ = unstructured.SetNestedSlice(cur.Object, rules, "spec", "rules")
			_, err = dyn.Resource(httpRoutes).Namespace(ns).Update(ctx, cur, metav1.UpdateOptions{})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		within(t, 25*time.Second, "Accepted False, ResolvedRefs False", func() error {
			return wantParent(ctx, dyn, ns, "False", "InvalidBackendRefs", "False", "BackendNotFound")
		})
		cur, _ := dyn.Resource(httpRoutes).Namespace(ns).Get(ctx, "reviews", metav1.GetOptions{})
		parents, _, _ := unstructured.NestedSlice(cur.Object, "status", "parents")
		if len(parents) != 2 {
			t.Errorf("status.parents %v, want glassmesh's and the gateway's", parents)
		}
		if _, err := weights(); err == nil || !strings.Contains(err.Error(), "reviews-v9") {
			t.Errorf("config errors: %v, want one naming reviews-v9", err)
		}
	})
}

// wantParent checks glassmesh's entry in the reviews HTTPRoute's
// status.parents: its Accepted and ResolvedRefs status and reason.
func wantParent(ctx context.Context, dyn dynamic.Interface, ns, accepted, acceptedReason, refs, refsReason string) error {
	u, err := dyn.Resource(httpRoutes).Namespace(ns).Get(ctx, "reviews", metav1.GetOptions{})
	if err != nil {
		return err
	}
	parents, _, _ := unstructured.NestedSlice(u.Object, "status", "parents")
	for _, p := range parents {
		m := p.(map[string]any)
		if m["controllerName"] != "glassmesh.io/mesh" {
			continue
		}
		got := map[string]string{}
		conds, _ := m["conditions"].([]any)
		for _, c := range conds {
			cm := c.(map[string]any)
			got[cm["type"].(string)] = fmt.Sprintf("%s/%s", cm["status"], cm["reason"])
			if cm["observedGeneration"] != u.GetGeneration() {
				return fmt.Errorf("condition %v observed generation %v, want %d", cm["type"], cm["observedGeneration"], u.GetGeneration())
			}
		}
		if got["Accepted"] != accepted+"/"+acceptedReason || got["ResolvedRefs"] != refs+"/"+refsReason {
			return fmt.Errorf("glassmesh's conditions %v", got)
		}
		return nil
	}
	return fmt.Errorf("no glassmesh entry in status.parents %v", parents)
}
