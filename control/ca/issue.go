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
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/glassmesh/glassmesh/control/model"
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
	return model.SPIFFEID(c.cfg.TrustDomain, namespace, serviceAccount)
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
	now := time.Now()
	notAfter := now.Add(c.cfg.TTL)
	if notAfter.After(c.cert.NotAfter) {
		notAfter = c.cert.NotAfter
	}
	c.mu.Lock()
	c.serial.Add(c.serial, big.NewInt(1))
	serial := new(big.Int).Set(c.serial)
	c.mu.Unlock()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{Organization: []string{"glassmesh"}},
		NotBefore:    now.Add(-clockSkew),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		// Both: a workload is a client of some services and a server to others.
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		URIs:                  []*url.URL{u},
	}
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
	return Certificate{SPIFFEID: id, ChainPEM: chain, RootPEM: c.RootPEM(), NotBefore: tmpl.NotBefore, NotAfter: notAfter}, nil
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

// Handler serves POST /api/ca/certificates: a CSR and a workload in, the
// workload's SVID out. Who may ask is the caller's to decide (the API
// token, today).
func (c *CA) Handler(resolve Resolver) http.Handler {
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
