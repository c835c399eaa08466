package pipeline

import (
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// clusterDomain is the DNS suffix of every mesh service (DESIGN.md).
const clusterDomain = ".svc.cluster.local"

// cluster is what an upstream cluster name says about a request.
type cluster struct {
	inbound bool   // the reporter is the callee (inbound|…); else the caller
	port    uint32 // service port (outbound) or workload port (inbound); 0 when unknown
	host    string // outbound only: the service host, e.g. reviews.default.svc.cluster.local
}

// parseCluster reads the cluster names control/translate gives:
// outbound|<port>|<subset>|<host> and inbound|<port>||. Istio's inbound
// passthrough clusters are inbound too; every other name (PassthroughCluster,
// BlackHoleCluster, "" when no route matched) is taken as outbound, because
// only the caller's sidecar routes to such clusters.
func parseCluster(name string) cluster {
	dir, rest, ok := strings.Cut(name, "|")
	if !ok {
		return cluster{inbound: strings.HasPrefix(name, "InboundPassthroughCluster")}
	}
	portText, rest, _ := strings.Cut(rest, "|")
	port, err := strconv.ParseUint(portText, 10, 32)
	if err != nil {
		port = 0
	}
	switch dir {
	case "inbound":
		return cluster{inbound: true, port: uint32(port)}
	case "outbound":
		_, host, _ := strings.Cut(rest, "|")
		return cluster{port: uint32(port), host: host}
	}
	return cluster{}
}

// splitServiceHost splits a mesh service host (name.namespace.svc.cluster.local)
// into name and namespace. It reports false for hosts of another shape.
func splitServiceHost(host string) (name, namespace string, ok bool) {
	rest, ok := strings.CutSuffix(host, clusterDomain)
	if !ok {
		return "", "", false
	}
	name, namespace, ok = strings.Cut(rest, ".")
	if !ok || name == "" || namespace == "" || strings.Contains(namespace, ".") {
		return "", "", false
	}
	return name, namespace, true
}

// authorityService reads an :authority (host or host:port) the way DNS in a
// mesh resolves it: name, name.namespace, name.namespace.svc or the full
// name.namespace.svc.cluster.local; a bare name is in defaultNamespace. It
// reports false for addresses and other hosts.
func authorityService(authority, defaultNamespace string) (name, namespace string, ok bool) {
	host := authority
	if h, _, err := net.SplitHostPort(authority); err == nil {
		host = h
	}
	if host == "" || isIP(host) {
		return "", "", false
	}
	host = strings.TrimSuffix(host, ".cluster.local")
	host = strings.TrimSuffix(host, ".svc")
	name, namespace, found := strings.Cut(host, ".")
	switch {
	case name == "":
		return "", "", false
	case !found:
		return name, defaultNamespace, defaultNamespace != ""
	case namespace == "" || strings.Contains(namespace, "."):
		return "", "", false
	}
	return name, namespace, true
}

// isIP says whether host is an IP address. It only parses what could be
// one: netip.ParseAddr allocates its error for every name it rejects.
func isIP(host string) bool {
	maybe := strings.IndexByte(host, ':') >= 0 || strings.Trim(host, "0123456789.") == ""
	if !maybe {
		return false
	}
	_, err := netip.ParseAddr(host)
	return err == nil
}
