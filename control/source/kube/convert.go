package kube

import (
	"fmt"
	"sort"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/glassmesh/glassmesh/control/model"
	"github.com/glassmesh/glassmesh/control/naming"
	"github.com/glassmesh/glassmesh/control/source"
)

// How objects read from Kubernetes become the mesh model. Pure functions of
// the informers' contents, so they are tested without an API server.

// workloadsFromKubernetes groups pods that have an address into workloads (Deployment
// and the like) with one endpoint per pod. Endpoint ports come from the
// EndpointSlices that list the pod, keyed by their service port names, as
// the model keys them, and only while the slice says the pod is ready. A
// workload takes the labels and service account of
// its alphabetically first pod.
func workloadsFromKubernetes(pods []*corev1.Pod, slices []*discoveryv1.EndpointSlice) []*model.Workload {
	type podKey struct{ namespace, name string }
	ports := map[podKey]map[string]uint32{}
	for _, s := range slices {
		for _, e := range s.Endpoints {
			if e.TargetRef == nil || e.TargetRef.Kind != "Pod" || (e.Conditions.Ready != nil && !*e.Conditions.Ready) {
				continue // not ready: it gets no traffic
			}
			k := podKey{s.Namespace, e.TargetRef.Name}
			if ports[k] == nil {
				ports[k] = map[string]uint32{}
			}
			for _, p := range s.Ports {
				if p.Name == nil || p.Port == nil || (p.Protocol != nil && *p.Protocol != corev1.ProtocolTCP) {
					continue
				}
				name := *p.Name
				if name == "" {
					name = fmt.Sprintf("port-%d", *p.Port)
				}
				if _, taken := ports[k][name]; !taken {
					ports[k][name] = uint32(*p.Port)
				}
			}
		}
	}
	running := make([]*corev1.Pod, 0, len(pods))
	for _, p := range pods {
		// Pending pods with an address count: a new workload's first pod
		// asks for its certificate before it runs.
		if p.Status.PodIP != "" && p.DeletionTimestamp == nil && (p.Status.Phase == corev1.PodRunning || p.Status.Phase == corev1.PodPending) {
			running = append(running, p)
		}
	}
	sort.Slice(running, func(i, j int) bool {
		if running[i].Namespace != running[j].Namespace {
			return running[i].Namespace < running[j].Namespace
		}
		return running[i].Name < running[j].Name
	})
	byKey := map[string]*model.Workload{}
	var out []*model.Workload
	for _, p := range running {
		name := podWorkload(p)
		key := p.Namespace + "/" + name
		w, ok := byKey[key]
		if !ok {
			labels := map[string]string{}
			for k, v := range p.Labels {
				if !naming.IsControllerLabel(k) {
					labels[k] = v
				}
			}
			sa := p.Spec.ServiceAccountName
			if sa == "" {
				sa = model.DefaultServiceAccount
			}
			w = &model.Workload{
				Meta:   model.Meta{Name: name, Namespace: p.Namespace, Labels: labels},
				Spec:   model.WorkloadSpec{ServiceAccount: sa},
				Origin: source.KubernetesOrigin("pods", p.Namespace, p.Name),
			}
			byKey[key] = w
			out = append(out, w)
		}
		if ps := ports[podKey{p.Namespace, p.Name}]; len(ps) > 0 {
			w.Spec.Endpoints = append(w.Spec.Endpoints, model.Endpoint{Address: p.Status.PodIP, Ports: ps})
		}
	}
	return out
}

// parseCustomResource turns a glassmesh custom resource into model
// objects with the file parser, so a CR is checked exactly as a file is
// (unknown fields, types). Only metadata the model knows is kept. Line
// numbers of the YAML made here mean nothing to a user, so diagnostics
// keep the object and field path only.
func parseCustomResource(resource string, u *unstructured.Unstructured) (model.Objects, []model.Diagnostic) {
	doc := map[string]any{
		"apiVersion": u.GetAPIVersion(),
		"kind":       u.GetKind(),
		"metadata":   map[string]any{"name": u.GetName(), "namespace": u.GetNamespace()},
	}
	if l := u.GetLabels(); len(l) > 0 {
		doc["metadata"].(map[string]any)["labels"] = l
	}
	if spec, ok := u.Object["spec"]; ok {
		doc["spec"] = spec
	}
	file := source.OriginPrefix + resource + "/" + u.GetNamespace() + "/" + u.GetName()
	b, err := yaml.Marshal(doc)
	if err != nil {
		return model.Objects{}, []model.Diagnostic{{File: file, Message: err.Error()}}
	}
	objs, diags := model.Parse(file, b)
	for i := range diags {
		diags[i].Line = 0
	}
	// Lines of the YAML made from an object mean nothing to its author,
	// in validation's diagnostics either.
	objs.HideLines()
	return objs, diags
}

// podWorkload is the name of the mesh workload pod p belongs to.
func podWorkload(p *corev1.Pod) string {
	kind, owner := "", ""
	if c := metav1.GetControllerOfNoCopy(p); c != nil {
		kind, owner = c.Kind, c.Name
	}
	return naming.PodWorkload(p.Name, p.GenerateName, p.Labels, kind, owner)
}
