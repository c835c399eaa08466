// Package naming holds the naming conventions every part shares: xDS node
// ids and node metadata, SPIFFE ids, the proxyless peer header and the
// workload names of Kubernetes pods (Istio's, so existing tools read
// them). It imports only the standard library, so an application that
// imports the proxyless interceptor (telemetry/grpcreport) links nothing
// else of glassmesh.
package naming

import (
	"fmt"
	"strings"
)

// Node metadata keys and values shared by sidecars, proxyless apps and the
// control plane (Istio's conventions, so existing tools understand them).
const (
	NodeMetaNamespace    = "NAMESPACE"
	NodeMetaWorkloadName = "WORKLOAD_NAME"
	NodeMetaLabels       = "LABELS"
	NodeMetaGenerator    = "GENERATOR"
	GeneratorGRPC        = "grpc"
)

// PeerHeader carries the caller's node id on proxyless requests, so the
// callee knows who called even when every app shares one address.
const PeerHeader = "x-glassmesh-peer"

// LoggedRequestHeaders returns the request headers an access-log entry
// carries to the telemetry pipeline, from a sidecar's log or a proxyless
// report alike: the trace context in both propagation formats (W3C and B3),
// the request id and the peer header.
func LoggedRequestHeaders() []string {
	return []string{"traceparent", "tracestate", "x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid", "x-b3-sampled", "b3", "x-request-id", PeerHeader}
}

// NodeID builds an xDS node id:
// sidecar~<ip>~<instance>.<namespace>~<namespace>.svc.cluster.local.
func NodeID(ip, instance, namespace string) string {
	return fmt.Sprintf("sidecar~%s~%s.%s~%s.svc.cluster.local", ip, instance, namespace, namespace)
}

// NodeIDParts are the fields of a node id built by NodeID.
type NodeIDParts struct {
	IP        string
	Instance  string
	Namespace string
}

// ParseNodeID splits a node id built by NodeID. It reports false for ids of
// another shape.
func ParseNodeID(id string) (NodeIDParts, bool) {
	f := strings.Split(id, "~")
	if len(f) != 4 {
		return NodeIDParts{}, false
	}
	ns, ok := strings.CutSuffix(f[3], ".svc.cluster.local")
	if !ok || ns == "" {
		return NodeIDParts{}, false
	}
	inst, ok := strings.CutSuffix(f[2], "."+ns)
	if !ok || inst == "" {
		return NodeIDParts{}, false
	}
	return NodeIDParts{IP: f[1], Instance: inst, Namespace: ns}, true
}

// SPIFFEID is the identity of a service account in a trust domain.
func SPIFFEID(trustDomain, namespace, serviceAccount string) string {
	return "spiffe://" + trustDomain + "/ns/" + namespace + "/sa/" + serviceAccount
}

// IsControllerLabel reports whether a pod label is one Kubernetes
// controllers stamp on each pod, not the workload's own.
func IsControllerLabel(key string) bool {
	switch key {
	case "pod-template-hash", "controller-revision-hash", "statefulset.kubernetes.io/pod-name", "pod-template-generation":
		return true
	}
	return false
}

// PodWorkload names the workload of a Kubernetes pod, Istio's way: its
// controller (for a ReplicaSet, the Deployment: the ReplicaSet's name less
// the pod-template-hash label), else the pod's name, else its generateName
// less the trailing dash. controllerKind is "" for a pod without one.
func PodWorkload(name, generateName string, labels map[string]string, controllerKind, controllerName string) string {
	switch {
	case controllerKind == "ReplicaSet" && labels["pod-template-hash"] != "":
		return strings.TrimSuffix(controllerName, "-"+labels["pod-template-hash"])
	case controllerKind != "":
		return controllerName
	case name != "":
		return name
	}
	return strings.TrimSuffix(generateName, "-")
}
