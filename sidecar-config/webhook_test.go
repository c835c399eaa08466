package sidecarconfig_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	sidecarconfig "github.com/glassmesh/glassmesh/sidecar-config"
)

func review(t testing.TB, pod *corev1.Pod) []byte {
	raw, err := json.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{UID: "42", Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
			Namespace: "shop", Operation: admissionv1.Create, Object: runtime.RawExtension{Raw: raw}},
	})
	return b
}

func TestWebhookPatchesThePod(t *testing.T) {
	h := sidecarconfig.WebhookHandler(sidecarconfig.DefaultInjectConfig(), slog.New(slog.DiscardHandler))
	pod := &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{GenerateName: "details-v1-", Labels: map[string]string{"app": "details"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "example/details"}}},
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, sidecarconfig.WebhookPath, bytes.NewReader(review(t, pod))))
	var out admissionv1.AdmissionReview
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out.Response == nil {
		t.Fatalf("%d %s", rec.Code, rec.Body.String())
	}
	if out.Response.UID != "42" || !out.Response.Allowed || out.Response.PatchType == nil {
		t.Fatalf("response %+v", out.Response)
	}
	patch, err := jsonpatch.DecodePatch(out.Response.Patch)
	if err != nil {
		t.Fatal(err)
	}
	orig, _ := json.Marshal(pod)
	patched, err := patch.Apply(orig)
	if err != nil {
		t.Fatalf("the API server could not apply the patch: %v", err)
	}
	var got corev1.Pod
	if err := json.Unmarshal(patched, &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Spec.Containers) != 2 || got.Spec.Containers[1].Name != "glassmesh-proxy" || got.Annotations[sidecarconfig.StatusAnnotation] != "envoy" {
		t.Errorf("patched pod: containers %v, annotations %v", names(got.Spec.Containers), got.Annotations)
	}
}

// FuzzWebhook: any body gets 400 or an allowing review; never a refusal,
// a 5xx or a panic.
func FuzzWebhook(f *testing.F) {
	h := sidecarconfig.WebhookHandler(sidecarconfig.DefaultInjectConfig(), slog.New(slog.DiscardHandler))
	f.Add(review(f, &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app"}}}}))
	f.Add([]byte(`{"request":{"uid":"1","kind":{"kind":"Pod"},"operation":"CREATE","object":{"spec":7}}}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, sidecarconfig.WebhookPath, bytes.NewReader(body)))
		switch rec.Code {
		case http.StatusBadRequest:
		case http.StatusOK:
			var out admissionv1.AdmissionReview
			if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out.Response == nil || !out.Response.Allowed {
				t.Fatalf("200 without an allowing response: %s", rec.Body.String())
			}
		default:
			t.Fatalf("status %d", rec.Code)
		}
	})
}
