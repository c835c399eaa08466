package xds

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/url"
	"strings"
	"testing"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
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
