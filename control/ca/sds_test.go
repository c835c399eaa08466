package ca

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"testing"
	"time"
)

func TestSecretsRenewAtHalfLifeAndVerify(t *testing.T) {
	c, err := New(Config{DataDir: t.TempDir(), TTL: time.Hour}, discard(), nil)
	if err != nil {
		t.Fatal(err)
	}
	s := NewSecrets(c)
	now := time.Now()
	s.now = func() time.Time { return now }
	id := c.ID("default", "reviews")

	cert, root, err := s.For(id)
	if err != nil {
		t.Fatal(err)
	}
	for _, sec := range []interface{ ValidateAll() error }{cert, root} {
		if err := sec.ValidateAll(); err != nil {
			t.Errorf("secret does not validate: %v", err)
		}
	}
	if cert.Name != SecretCert || root.Name != SecretRoot {
		t.Errorf("names %q, %q", cert.Name, root.Name)
	}
	tc := cert.GetTlsCertificate()
	pair, err := tls.X509KeyPair(tc.GetCertificateChain().GetInlineBytes(), tc.GetPrivateKey().GetInlineBytes())
	if err != nil {
		t.Fatalf("certificate and key do not pair: %v", err)
	}
	leaf, _ := x509.ParseCertificate(pair.Certificate[0])
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(root.GetValidationContext().GetTrustedCa().GetInlineBytes()) {
		t.Fatal("no root in the trust bundle")
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("certificate does not verify against the bundle: %v", err)
	}
	if len(leaf.URIs) != 1 || leaf.URIs[0].String() != id {
		t.Errorf("URI SANs %v, want %s", leaf.URIs, id)
	}

	// Before half-life: the same secret object (so xDS pushes nothing).
	now = now.Add(29 * time.Minute)
	again, _, _ := s.For(id)
	if again != cert {
		t.Errorf("re-issued before half of the lifetime")
	}
	if next := s.NextRenewal(); next.Sub(now) > 2*time.Minute || next.Before(now) {
		t.Errorf("next renewal at %s, want about a minute after %s", next, now)
	}
	// Past it: a new certificate.
	now = now.Add(2 * time.Minute)
	renewed, _, _ := s.For(id)
	if renewed == cert {
		t.Errorf("not re-issued past half of the lifetime")
	}

	s.Retain(map[string]bool{})
	if !s.NextRenewal().IsZero() {
		t.Errorf("a forgotten identity still has a renewal time")
	}
}

// BenchmarkIssue is the CA's rate for Envoy sidecars (it makes the key,
// then signs) and for proxyless apps (it signs their CSR).
func BenchmarkIssue(b *testing.B) {
	c, err := New(Config{DataDir: b.TempDir(), TTL: time.Hour}, discard(), nil)
	if err != nil {
		b.Fatal(err)
	}
	id := c.ID("default", "reviews")
	b.Run("key+sign", func(b *testing.B) {
		for b.Loop() {
			if _, err := c.Issue(id); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "SVIDs/s")
	})
	b.Run("csr", func(b *testing.B) {
		csr, _ := csrPEM(b)
		for b.Loop() {
			if _, err := c.Sign(csr, id); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "SVIDs/s")
	})
}

func TestIssueServingVerifiesForItsNames(t *testing.T) {
	c, err := New(Config{DataDir: t.TempDir(), TTL: time.Hour}, discard(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.IssueServing(nil, nil); err == nil {
		t.Error("a serving certificate without names was issued")
	}
	cert, err := c.IssueServing([]string{"glassmesh.glassmesh-system.svc"}, []net.IP{net.ParseIP("127.0.0.1")})
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(cert.ChainPEM, cert.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(pair.Certificate[0])
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(c.RootPEM())
	for _, host := range []string{"glassmesh.glassmesh-system.svc", "127.0.0.1"} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: host}); err != nil {
			t.Errorf("%s: %v", host, err)
		}
	}
	if len(leaf.URIs) != 0 {
		t.Errorf("a serving certificate with URI SANs %v", leaf.URIs)
	}
}
