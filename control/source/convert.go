package source

import (
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/glassmesh/glassmesh/control/model"
)

// Kubernetes objects as the mesh model sees them, in files (ImportManifests,
// for the file source and validate) and from the API server (the
// Kubernetes source in ./kube). Pure functions.

// OriginPrefix starts the File of every Origin and Diagnostic of an object
// read from Kubernetes: kubernetes:<resource>/<namespace>/<name>.
const OriginPrefix = "kubernetes:"

// KubernetesOrigin is where an object read from Kubernetes came from:
// kubernetes:<resource>/<namespace>/<name>.
func KubernetesOrigin(resource, namespace, name string) model.Origin {
	return model.Origin{File: OriginPrefix + resource + "/" + namespace + "/" + name}
}

// ServiceFromKubernetes is a core Service as the mesh sees it: its TCP
// ports with the protocol Istio's rules give them (appProtocol, else the
// port name's prefix: grpc, http2, http, else TCP), and its selector. Services
// without a selector or of type ExternalName select no pods: nil.
func ServiceFromKubernetes(s *corev1.Service) *model.Service {
	if s.Spec.Type == corev1.ServiceTypeExternalName || len(s.Spec.Selector) == 0 {
		return nil
	}
	out := &model.Service{
		Meta:   model.Meta{Name: s.Name, Namespace: s.Namespace, Labels: s.Labels},
		Spec:   model.ServiceSpec{Selector: s.Spec.Selector},
		Origin: KubernetesOrigin("services", s.Namespace, s.Name),
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

// ImportManifests is the model.Importer of `glassmesh validate` on a
// directory of Kubernetes manifests: core v1 Services become mesh Services
// as the Kubernetes source converts them, HTTPRoutes and TrafficSplits
// become TrafficRoutes as the source imports them (a native TrafficRoute
// wins), and every other kind is skipped.
func ImportManifests(objs *model.Objects, ms []model.Manifest) (errs, warns []model.Diagnostic, skipped []model.Manifest) {
	imports := RouteImports{Selectors: map[string]map[string]string{}}
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
			imports.Selectors[s.Namespace+"/"+s.Name] = s.Spec.Selector
			if ms := ServiceFromKubernetes(&s); ms != nil {
				ms.Origin = m.Origin
				objs.Services = append(objs.Services, ms)
			}
		case group == GatewayGroup && m.Kind == "HTTPRoute", group == smiSplitGroup && m.Kind == "TrafficSplit":
			routes = append(routes, m)
		default:
			skipped = append(skipped, m)
		}
	}
	for _, m := range routes {
		imports.add(m.Kind == "HTTPRoute", m.Object, m.Origin, time.Time{})
	}
	errs, warns = append(errs, imports.Errors...), append(warns, imports.Warnings...)
	warns = append(warns, imports.MergeInto(objs)...)
	return errs, warns, skipped
}
