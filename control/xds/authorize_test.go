package xds

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/url"
	"strings"
	"testing"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	"github.com/glassmesh/glassmesh/control/ca"
)

func TestSPIFFEAuthorizer(t *testing.T) {
	ids := map[string]string{"shop/reviews-v1": "spiffe://cluster.local/ns/shop/sa/reviews"}
	authorize := SPIFFEAuthorizer(func(ns, w string) (string, bool) { id, ok := ids[ns+"/"+w]; return id, ok })
	withCert := func(uris ...string) context.Context {
		cert := &x509.Certificate{}
		for _, u := range uris {
			pu, err := url.Parse(u)
			if err != nil {
				t.Fatal(err)
			}
			cert.URIs = append(cert.URIs, pu)
		}
		info := credentials.TLSInfo{State: tls.ConnectionState{PeerCertificates: []*x509.Certificate{cert}}}
		return peer.NewContext(context.Background(), &peer.Peer{AuthInfo: info})
	}
	for _, tc := range []struct {
		name     string
		ctx      context.Context
		workload string
		want     string // "" allows
	}{
		{"no peer (in-process)", context.Background(), "shop/ratings-v1", ""},
		{"plaintext", peer.NewContext(context.Background(), &peer.Peer{}), "shop/ratings-v1", ""},
		{"a certificate without a SPIFFE id (an operator's)", withCert("https://ops.example"), "shop/ratings-v1", ""},
		{"its own workload", withCert("spiffe://cluster.local/ns/shop/sa/reviews"), "shop/reviews-v1", ""},
		{"another identity's workload", withCert("spiffe://cluster.local/ns/shop/sa/ratings"), "shop/reviews-v1", "which is spiffe://cluster.local/ns/shop/sa/reviews"},
		{"a workload the mesh does not have", withCert("spiffe://cluster.local/ns/shop/sa/reviews"), "shop/ghost", "which the mesh config does not have"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns, w, _ := strings.Cut(tc.workload, "/")
			err := authorize(tc.ctx, ns, w)
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("got %v, want %q", err, tc.want)
			}
		})
	}
}

func TestAttestedAuthorizer(t *testing.T) {
	workloads := map[string]string{"shop/reviews-v1": "reviews", "shop/ratings-v1": "ratings"}
	tokens := map[string]ca.Caller{
		"reviews-token":    {Namespace: "shop", ServiceAccount: "reviews"},
		"reviews-v2-token": {Namespace: "shop", ServiceAccount: "reviews", Workload: "reviews-v2"},
	}
	at := Attestation{
		Workload: func(ns, name string) (string, string, bool) {
			sa, ok := workloads[ns+"/"+name]
			return "spiffe://cluster.local/ns/" + ns + "/sa/" + sa, sa, ok
		},
		Attest: func(_ context.Context, token string) (ca.Caller, error) {
			c, ok := tokens[token]
			if !ok {
				return ca.Caller{}, errors.New("invalid bearer token")
			}
			return c, nil
		},
	}
	withToken := func(tok string) context.Context {
		return metadata.NewIncomingContext(context.Background(), metadata.Pairs("authorization", "Bearer "+tok))
	}
	for _, tc := range []struct {
		name     string
		required bool
		ctx      context.Context
		workload string
		want     string // "" allows
	}{
		{"no credential, not required", false, context.Background(), "shop/ratings-v1", ""},
		{"no credential, required", true, context.Background(), "shop/ratings-v1", "presents no workload credential"},
		{"no credential, on an attested-only listener", false, RequireAttestation(context.Background()), "shop/ratings-v1", "presents no workload credential"},
		{"its own token, on an attested-only listener", false, RequireAttestation(withToken("reviews-token")), "shop/reviews-v1", ""},
		{"its own service account's token", true, withToken("reviews-token"), "shop/reviews-v1", ""},
		{"a token of another service account", false, withToken("reviews-token"), "shop/ratings-v1", "service account shop/reviews, but workload shop/ratings-v1 runs as service account shop/ratings"},
		{"a token bound to another workload", false, withToken("reviews-v2-token"), "shop/reviews-v1", "bound to workload reviews-v2"},
		{"an invalid token", false, withToken("forged"), "shop/reviews-v1", "invalid bearer token"},
		{"a workload the mesh does not have", false, withToken("reviews-token"), "shop/ghost", "which the mesh config does not have"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			at := at
			at.Required = tc.required
			ns, w, _ := strings.Cut(tc.workload, "/")
			err := AttestedAuthorizer(at)(tc.ctx, ns, w)
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("got %v, want %q", err, tc.want)
			}
		})
	}
}
