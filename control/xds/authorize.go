package xds

import (
	"context"
	"fmt"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
)

// SPIFFEAuthorizer is a Config.Authorize that lets an xDS client presenting
// a SPIFFE certificate (a workload's own SVID, with --grpc-tls-client-ca)
// act only as a workload of that identity, so it gets no other workload's
// config or SDS keys. identity gives the SPIFFE id a workload must have,
// or false when the mesh has no such workload. Clients without a
// certificate, or with one that carries no SPIFFE id (an operator's), may
// name any node: whether such clients connect at all is the TLS config's
// decision.
func SPIFFEAuthorizer(identity func(namespace, workload string) (string, bool)) func(ctx context.Context, namespace, workload string) error {
	return func(ctx context.Context, namespace, workload string) error {
		id := peerSPIFFEID(ctx)
		if id == "" {
			return nil
		}
		want, ok := identity(namespace, workload)
		if !ok {
			return fmt.Errorf("the client's certificate is %s, and its node names workload %s/%s, which the mesh config does not have", id, namespace, workload)
		}
		if id != want {
			return fmt.Errorf("the client's certificate is %s, but its node names workload %s/%s, which is %s", id, namespace, workload, want)
		}
		return nil
	}
}

// peerSPIFFEID is the SPIFFE id of the client's certificate, or "".
func peerSPIFFEID(ctx context.Context) string {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return ""
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.PeerCertificates) == 0 {
		return ""
	}
	id := ""
	for _, u := range info.State.PeerCertificates[0].URIs {
		if u.Scheme == "spiffe" {
			id = u.String()
		}
	}
	return id
}
