package ca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/glassmesh/glassmesh/control/naming"
)

// clockSkew backdates certificates, so a peer whose clock is a little
// behind still accepts them.
const clockSkew = time.Minute

// Certificate is an issued SVID.
type Certificate struct {
	SPIFFEID  string
	ChainPEM  []byte // the leaf, then the CA's chain up to (not including) the root
	KeyPEM    []byte // only when the CA made the key (Issue)
	RootPEM   []byte
	NotAfter  time.Time
	NotBefore time.Time
}

// ID is the SPIFFE id of a service account in the CA's trust domain.
func (c *CA) ID(namespace, serviceAccount string) string {
	return naming.SPIFFEID(c.cfg.TrustDomain, namespace, serviceAccount)
}

// Sign issues a certificate for id over the public key of a CSR. The CSR's
// own names are ignored: the identity is the one the caller was found to
// have, never one it asks for.
func (c *CA) Sign(csr *x509.CertificateRequest, id string) (Certificate, error) {
	if err := csr.CheckSignature(); err != nil {
		return Certificate{}, fmt.Errorf("the CSR's signature does not verify: %w", err)
	}
	cert, err := c.issue(csr.PublicKey, id)
	if err == nil {
		c.issued.WithLabelValues("csr").Inc()
	}
	return cert, err
}

// Issue makes a key and a certificate for id, for workloads that get both
// from the control plane (Envoy over SDS).
func (c *CA) Issue(id string) (Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Certificate{}, err
	}
	cert, err := c.issue(key.Public(), id)
	if err != nil {
		return Certificate{}, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return Certificate{}, err
	}
	cert.KeyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	c.issued.WithLabelValues("sds").Inc()
	return cert, nil
}

func (c *CA) issue(pub any, id string) (Certificate, error) {
	u, err := url.Parse(id)
	if err != nil || u.Scheme != "spiffe" || u.Host != c.cfg.TrustDomain || !strings.HasPrefix(u.Path, "/") {
		return Certificate{}, fmt.Errorf("%q is not a SPIFFE id in trust domain %s", id, c.cfg.TrustDomain)
	}
	return c.sign(pub, &x509.Certificate{
		Subject:  pkix.Name{Organization: []string{"glassmesh"}},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		// Both: a workload is a client of some services and a server to others.
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		URIs:                  []*url.URL{u},
	}, id)
}

// sign completes tmpl (serial, validity from now for the TTL, cut short by
// the CA's own expiry) and signs pub with it.
func (c *CA) sign(pub any, tmpl *x509.Certificate, id string) (Certificate, error) {
	now := time.Now()
	tmpl.NotBefore, tmpl.NotAfter = now.Add(-clockSkew), now.Add(c.cfg.TTL)
	if tmpl.NotAfter.After(c.cert.NotAfter) {
		tmpl.NotAfter = c.cert.NotAfter
	}
	c.mu.Lock()
	c.serial.Add(c.serial, big.NewInt(1))
	tmpl.SerialNumber = new(big.Int).Set(c.serial)
	c.mu.Unlock()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, pub, c.signer)
	if err != nil {
		return Certificate{}, err
	}
	chain := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	for _, p := range c.chain {
		if p != c.root {
			chain = append(chain, encodeCerts(p)...)
		}
	}
	return Certificate{SPIFFEID: id, ChainPEM: chain, RootPEM: c.RootPEM(), NotBefore: tmpl.NotBefore, NotAfter: tmpl.NotAfter}, nil
}

// Resolver finds the service account of a workload in the serving config.
type Resolver func(namespace, name string) (serviceAccount string, ok bool)

// CertificateRequest is the body of POST /api/ca/certificates.
type CertificateRequest struct {
	Workload string `json:"workload"` // namespace/name
	CSR      string `json:"csr"`      // PEM
}

// CertificateResponse is its answer.
type CertificateResponse struct {
	SPIFFEID  string    `json:"spiffeId"`
	CertChain string    `json:"certChain"` // PEM, leaf first
	RootCert  string    `json:"rootCert"`  // PEM, the trust bundle
	ExpiresAt time.Time `json:"expiresAt"`
}

// Authorizer decides whether a request may get the certificate of workload
// namespace/name, whose service account is serviceAccount: nil, or the
// status and reason to answer.
type Authorizer func(r *http.Request, namespace, name, serviceAccount string) *StatusError

// StatusError is an HTTP status and its reason.
type StatusError struct {
	Code int
	Msg  string
}

func (e *StatusError) Error() string { return e.Msg }

// Handler serves POST /api/ca/certificates: a CSR and a workload in, the
// workload's SVID out. authorize decides who may ask for which workload;
// with nil, anyone who reaches the handler may (the API token's holder).
func (c *CA) Handler(resolve Resolver, authorize Authorizer) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req CertificateRequest
		body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10+1))
		if err == nil && len(body) > 64<<10 {
			err = errors.New("body over 64 KiB")
		}
		if err == nil {
			err = json.Unmarshal(body, &req)
		}
		if err != nil {
			writeError(w, http.StatusBadRequest, "body: "+err.Error())
			return
		}
		ns, name, ok := strings.Cut(req.Workload, "/")
		if !ok || ns == "" || name == "" {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("workload: want namespace/name, got %q", req.Workload))
			return
		}
		sa, ok := resolve(ns, name)
		if !ok {
			writeError(w, http.StatusNotFound, fmt.Sprintf("workload %s is not in the mesh config", req.Workload))
			return
		}
		if authorize != nil {
			if e := authorize(r, ns, name, sa); e != nil {
				writeError(w, e.Code, e.Msg)
				return
			}
		}
		blk, _ := pem.Decode([]byte(req.CSR))
		if blk == nil || blk.Type != "CERTIFICATE REQUEST" {
			writeError(w, http.StatusBadRequest, "csr: want a PEM CERTIFICATE REQUEST block")
			return
		}
		csr, err := x509.ParseCertificateRequest(blk.Bytes)
		if err != nil {
			writeError(w, http.StatusBadRequest, "csr: "+err.Error())
			return
		}
		cert, err := c.Sign(csr, c.ID(ns, sa))
		if err != nil {
			writeError(w, http.StatusBadRequest, "csr: "+err.Error())
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(CertificateResponse{SPIFFEID: cert.SPIFFEID, CertChain: string(cert.ChainPEM),
			RootCert: string(cert.RootPEM), ExpiresAt: cert.NotAfter.UTC()})
	})
}

func writeError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

// IssueServing makes a key and a TLS server certificate for host names and
// addresses (no SPIFFE id), for glassmesh's own endpoints that clients
// outside the mesh call with the mesh root as their CA bundle: the
// sidecar injection webhook, which the Kubernetes API server calls.
func (c *CA) IssueServing(dnsNames []string, ips []net.IP) (Certificate, error) {
	if len(dnsNames) == 0 && len(ips) == 0 {
		return Certificate{}, errors.New("a serving certificate needs a host name or an address")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Certificate{}, err
	}
	cert, err := c.sign(key.Public(), &x509.Certificate{
		Subject:     pkix.Name{Organization: []string{"glassmesh"}, CommonName: firstOf(dnsNames)},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:    dnsNames,
		IPAddresses: ips,
	}, "")
	if err != nil {
		return Certificate{}, err
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return Certificate{}, err
	}
	cert.KeyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb})
	return cert, nil
}

func firstOf(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}
