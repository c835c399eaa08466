package sidecarconfig

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
)

// WebhookPath is where the injection webhook answers.
const WebhookPath = "/inject"

// maxAdmissionBytes bounds an AdmissionReview body (the API server sends at
// most ~3 MiB objects).
const maxAdmissionBytes = 8 << 20

// WebhookHandler answers the API server's AdmissionReview (v1) for pods
// with the JSON patch InjectPod makes. It never refuses a pod: anything it
// cannot inject is allowed unchanged, with the reason in a warning, so a
// glassmesh problem cannot stop a cluster's pods (the webhook's
// failurePolicy is Ignore too).
func WebhookHandler(cfg InjectConfig, logger *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, maxAdmissionBytes+1))
		if err != nil || len(body) > maxAdmissionBytes {
			http.Error(w, "body unreadable or over 8 MiB", http.StatusBadRequest)
			return
		}
		var review admissionv1.AdmissionReview
		if err := json.Unmarshal(body, &review); err != nil || review.Request == nil {
			http.Error(w, fmt.Sprintf("want an admission.k8s.io/v1 AdmissionReview with a request: %v", err), http.StatusBadRequest)
			return
		}
		resp := admit(review.Request, cfg)
		if len(resp.Warnings) > 0 {
			logger.Warn("injection skipped", "namespace", review.Request.Namespace, "name", review.Request.Name, "reason", resp.Warnings[0])
		}
		review.Response = resp
		review.Request = nil
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(review)
	})
}

// admit injects the pod of one request and says how, as a JSON patch.
func admit(req *admissionv1.AdmissionRequest, cfg InjectConfig) *admissionv1.AdmissionResponse {
	resp := &admissionv1.AdmissionResponse{UID: req.UID, Allowed: true}
	if req.Kind.Kind != "Pod" || req.Operation != admissionv1.Create {
		return resp
	}
	var pod corev1.Pod
	if err := json.Unmarshal(req.Object.Raw, &pod); err != nil {
		resp.Warnings = []string{"glassmesh: pod not injected: " + err.Error()}
		return resp
	}
	if pod.Namespace == "" {
		pod.Namespace = req.Namespace
	}
	changed, err := InjectPod(&pod.ObjectMeta, &pod.Spec, WorkloadOf(&pod.ObjectMeta), cfg)
	if err != nil {
		resp.Warnings = []string{"glassmesh: pod not injected: " + err.Error()}
		return resp
	}
	if !changed {
		return resp
	}
	patch, err := json.Marshal([]map[string]any{
		{"op": "replace", "path": "/spec", "value": pod.Spec},
		{"op": "add", "path": "/metadata/annotations", "value": pod.Annotations},
	})
	if err != nil {
		resp.Warnings = []string{"glassmesh: pod not injected: " + err.Error()}
		return resp
	}
	pt := admissionv1.PatchTypeJSONPatch
	resp.Patch, resp.PatchType = patch, &pt
	return resp
}
