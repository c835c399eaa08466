package source

import (
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	"github.com/glassmesh/glassmesh/control/model"
	"github.com/glassmesh/glassmesh/control/naming"
)

// How objects read from Kubernetes become the mesh model. Pure functions of
// the informers' contents, so they are tested without an API server.

// originPrefix starts the File of every Origin and Diagnostic of an object
// read from Kubernetes: kubernetes:<resource>/<namespace>/<name>.
const originPrefix = "kubernetes:"

func origin(resource, namespace, name string) model.Origin {
	return model.Origin{File: originPrefix + resource + "/" + namespace + "/" + name}
}

// serviceFromKubernetes is a core Service as the mesh sees it: its TCP
// ports with the protocol Istio's rules give them (appProtocol, else the
// port name's prefix: grpc, http2, http, else TCP), and its selector. Services
// without a selector or of type ExternalName select no pods: nil.
func serviceFromKubernetes(s *corev1.Service) *model.Service {
	if s.Spec.Type == corev1.ServiceTypeExternalName || len(s.Spec.Selector) == 0 {
		return nil
	}
	out := &model.Service{
		Meta:   model.Meta{Name: s.Name, Namespace: s.Namespace, Labels: s.Labels},
		Spec:   model.ServiceSpec{Selector: s.Spec.Selector},
		Origin: origin("services", s.Namespace, s.Name),
	}
	for _, p := range s.Spec.Ports {
		if p.Protocol != "" && p.Protocol != corev1.ProtocolTCP {
			continue
		}
		name := p.Name
		if name == "" {
			name = fmt.Sprintf("port-%d", p.Port) // a Service of one port may leave it unnamed
		}
		appProtocol := ""
		if p.AppProtocol != nil {
			appProtocol = *p.AppProtocol
		}
		out.Spec.Ports = append(out.Spec.Ports, model.ServicePort{Name: name, Port: uint32(p.Port), Protocol: portProtocol(name, appProtocol)})
	}
	if len(out.Spec.Ports) == 0 {
		return nil
	}
	return out
}

// portProtocol follows Istio's protocol selection: appProtocol first, then
// the port name up to its first "-".
func portProtocol(name, appProtocol string) string {
	p := strings.ToLower(appProtocol)
	if p == "" {
		p, _, _ = strings.Cut(strings.ToLower(name), "-")
	}
	switch p {
	case "grpc", "grpc-web":
		return model.ProtocolGRPC
	case "http2", "h2c", "kubernetes.io/h2c":
		return model.ProtocolHTTP2
	case "http", "https", "kubernetes.io/ws":
		return model.ProtocolHTTP
	}
	return model.ProtocolTCP
}

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
		kind, owner := "", ""
		if c := metav1.GetControllerOfNoCopy(p); c != nil {
			kind, owner = c.Kind, c.Name
		}
		name := naming.PodWorkload(p.Name, p.GenerateName, p.Labels, kind, owner)
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
				Origin: origin("pods", p.Namespace, p.Name),
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
	file := originPrefix + resource + "/" + u.GetNamespace() + "/" + u.GetName()
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

// ImportManifests is the model.Importer of `glassmesh validate` on a
// directory of Kubernetes manifests: core v1 Services become mesh Services
// as the Kubernetes source converts them, HTTPRoutes and TrafficSplits
// become TrafficRoutes as the source imports them (a native TrafficRoute
// wins), and every other kind is skipped.
func ImportManifests(objs *model.Objects, ms []model.Manifest) (errs, warns []model.Diagnostic, skipped []model.Manifest) {
	selectors := map[string]map[string]string{}
	var routes []model.Manifest
	for _, m := range ms {
		group, _, _ := strings.Cut(m.APIVersion, "/")
		switch {
		case m.APIVersion == "v1" && m.Kind == "Service":
			var s corev1.Service
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(m.Object, &s); err != nil {
				errs = append(errs, model.Diagnostic{File: m.Origin.File, Line: m.Origin.Line, Message: "not a Service: " + err.Error()})
				continue
			}
			s.Namespace = m.Namespace
			selectors[s.Namespace+"/"+s.Name] = s.Spec.Selector
			if ms := serviceFromKubernetes(&s); ms != nil {
				ms.Origin = m.Origin
				objs.Services = append(objs.Services, ms)
			}
		case group == gatewayGroup && m.Kind == "HTTPRoute", group == smiSplitGroup && m.Kind == "TrafficSplit":
			routes = append(routes, m)
		default:
			skipped = append(skipped, m)
		}
	}
	sel := func(namespace, name string) (map[string]string, bool) {
		s, ok := selectors[namespace+"/"+name]
		return s, ok
	}
	var imports []imported
	for _, m := range routes {
		rs, e, w := importObject(m.Kind == "HTTPRoute", m.Object, m.Origin, sel)
		errs, warns = append(errs, e...), append(warns, w...)
		for _, r := range rs {
			imports = append(imports, imported{route: r})
		}
	}
	warns = append(warns, mergeImported(objs, imports)...)
	return errs, warns, skipped
}
