package ca

import (
	"fmt"
	"sync"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
)

// SDS secret names (Istio's), as translated TLS contexts refer to them.
const (
	SecretCert = "default"
	SecretRoot = "ROOTCA"
)

// Secrets are the SDS secrets of Envoy sidecars: per identity, a key and
// certificate the CA made, issued when first asked for and again once half
// of its lifetime has passed, so a sidecar always holds one with time left.
// Secrets are built once per issue, so an unchanged one hashes the same
// and is not pushed again.
type Secrets struct {
	ca  *CA
	now func() time.Time

	mu   sync.Mutex
	byID map[string]*secretPair
	root *tlsv3.Secret
}

type secretPair struct {
	cert    *tlsv3.Secret
	renewAt time.Time
}

// NewSecrets serves c's certificates as SDS secrets.
func NewSecrets(c *CA) *Secrets {
	return &Secrets{
		ca:   c,
		now:  time.Now,
		byID: map[string]*secretPair{},
		root: c.RootSecret(),
	}
}

// RootSecret is the trust bundle as an SDS secret (SecretRoot).
func (c *CA) RootSecret() *tlsv3.Secret {
	return &tlsv3.Secret{Name: SecretRoot, Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
		TrustedCa: &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: c.RootPEM()}},
	}}}
}

// CertSecret is an issued certificate and its key (Issue's) as an SDS
// secret (SecretCert).
func CertSecret(c Certificate) *tlsv3.Secret {
	return &tlsv3.Secret{Name: SecretCert, Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
		CertificateChain: &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: c.ChainPEM}},
		PrivateKey:       &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: c.KeyPEM}},
	}}}
}

// For returns the certificate secret (SecretCert) of the identity id and
// the trust bundle (SecretRoot), issuing a new certificate when there is
// none or the last one is past half of its life.
func (s *Secrets) For(id string) (cert, root *tlsv3.Secret, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if p, ok := s.byID[id]; ok && now.Before(p.renewAt) {
		return p.cert, s.root, nil
	}
	c, err := s.ca.Issue(id)
	if err != nil {
		return nil, nil, fmt.Errorf("issuing %s: %w", id, err)
	}
	p := &secretPair{cert: CertSecret(c), renewAt: now.Add(c.NotAfter.Sub(now) / 2)}
	s.byID[id] = p
	return p.cert, s.root, nil
}

// Retain forgets the certificates of identities not in keep, so a removed
// workload's key leaves memory; they are issued afresh if asked again.
func (s *Secrets) Retain(keep map[string]bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id := range s.byID {
		if !keep[id] {
			delete(s.byID, id)
		}
	}
}

// NextRenewal is when the soonest certificate is due for renewal; the zero
// time when none is held.
func (s *Secrets) NextRenewal() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	var next time.Time
	for _, p := range s.byID {
		if next.IsZero() || p.renewAt.Before(next) {
			next = p.renewAt
		}
	}
	return next
}
