package pipelinetest

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	accesslogdatav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/glassmesh/glassmesh/control/naming"
)

// Sidecar is the node of an Envoy sidecar as DESIGN.md names it: id and
// NAMESPACE, WORKLOAD_NAME, LABELS metadata.
func Sidecar(ip, instance, namespace, workload string, labels map[string]any) *corev3.Node {
	md, err := structpb.NewStruct(map[string]any{
		naming.NodeMetaNamespace:    namespace,
		naming.NodeMetaWorkloadName: workload,
		naming.NodeMetaLabels:       labels,
	})
	if err != nil {
		panic(err) // only for labels that are not strings: a bug in the test
	}
	return &corev3.Node{Id: naming.NodeID(ip, instance, namespace), Metadata: md}
}

// Addr is a socket address as Envoy logs it.
func Addr(ip string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: ip, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
	}}}
}

// Cert is a certificate's properties with one URI SAN (a SPIFFE id).
func Cert(uri string) *accesslogdatav3.TLSProperties_CertificateProperties {
	return &accesslogdatav3.TLSProperties_CertificateProperties{SubjectAltName: []*accesslogdatav3.TLSProperties_CertificateProperties_SubjectAltName{
		{San: &accesslogdatav3.TLSProperties_CertificateProperties_SubjectAltName_Uri{Uri: uri}},
	}}
}
