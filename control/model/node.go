package model

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
