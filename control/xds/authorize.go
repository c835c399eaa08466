package xds

import (
	"context"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	"github.com/glassmesh/glassmesh/control/ca"
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

// Attestation is what AttestedAuthorizer checks a client against.
type Attestation struct {
	// Workload gives the SPIFFE id and service account workload
	// namespace/name has, or false when the mesh has no such workload.
	Workload func(namespace, name string) (spiffeID, serviceAccount string, ok bool)
	// Attest says who a bearer token proves its holder to be.
	Attest func(ctx context.Context, token string) (ca.Caller, error)
	// PodWorkload names the workload of a pod, for pod-bound tokens; nil
	// when the source has no pods.
	PodWorkload func(namespace, pod string) (string, bool)
	// Required refuses clients that present no credential at all;
	// otherwise they may name any node (as without attestation), except
	// on connections RequireAttestation marked.
	Required bool
}

type requireKey struct{}

// RequireAttestation marks a stream's context so AttestedAuthorizer
// refuses it unless it proves its workload, whatever Attestation.Required
// says: the interceptor of a listener only attested clients may use.
func RequireAttestation(ctx context.Context) context.Context {
	return context.WithValue(ctx, requireKey{}, true)
}

// RequireAttestationInterceptor applies RequireAttestation to every stream
// of a gRPC server.
func RequireAttestationInterceptor(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	return handler(srv, requiredStream{ss})
}

type requiredStream struct{ grpc.ServerStream }

func (s requiredStream) Context() context.Context {
	return RequireAttestation(s.ServerStream.Context())
}

// AttestedAuthorizer is a Config.Authorize that lets a client act only as a
// workload it proves it may: with a SPIFFE client certificate of that
// workload's identity (as SPIFFEAuthorizer), or with a bearer token in its
// stream's "authorization" metadata (a Kubernetes service-account token or
// a glassmesh workload token; grpc-go sends one with the bootstrap's
// jwt_token_file call credentials) whose caller the workload's service
// account (and, when bound, workload or pod) matches. A credential
// presented is always checked.
func AttestedAuthorizer(at Attestation) func(ctx context.Context, namespace, workload string) error {
	return func(ctx context.Context, namespace, workload string) error {
		id := peerSPIFFEID(ctx)
		token := ""
		if md, ok := metadata.FromIncomingContext(ctx); ok {
			for _, v := range md.Get("authorization") {
				if t := ca.BearerToken(v); t != "" {
					token = t
				}
			}
		}
		if id == "" && token == "" {
			if required, _ := ctx.Value(requireKey{}).(bool); at.Required || required {
				return fmt.Errorf("the node names workload %s/%s, but the client presents no workload credential "+
					"(a SPIFFE client certificate, or a bearer token: a Kubernetes service-account token or a glassmesh workload token)", namespace, workload)
			}
			return nil
		}
		want, sa, ok := at.Workload(namespace, workload)
		if !ok {
			return fmt.Errorf("the node names workload %s/%s, which the mesh config does not have", namespace, workload)
		}
		if id != "" {
			if id != want {
				return fmt.Errorf("the client's certificate is %s, but its node names workload %s/%s, which is %s", id, namespace, workload, want)
			}
			return nil
		}
		caller, err := at.Attest(ctx, token)
		if err != nil {
			return fmt.Errorf("the node names workload %s/%s: the client's token: %w", namespace, workload, err)
		}
		if err := caller.Permit(namespace, workload, sa, at.PodWorkload); err != nil {
			return fmt.Errorf("the node names workload %s/%s: %w", namespace, workload, err)
		}
		return nil
	}
}
