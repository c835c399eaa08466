// Package ca is the mesh's certificate authority: it issues short-lived
// X.509 SVIDs whose URI SAN is a workload's SPIFFE id, signed by a root kept
// in the data dir (generated on first start) or by a CA the operator gives.
package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Config configures a CA.
type Config struct {
	// DataDir keeps the generated root (root-cert.pem, root-key.pem) when
	// CertFile and KeyFile are empty.
	DataDir string
	// TrustDomain of the SPIFFE ids the CA issues [cluster.local].
	TrustDomain string
	// CertFile and KeyFile name an operator's CA (a root, or an
	// intermediate followed by its chain up to the root) and its key, PEM.
	CertFile, KeyFile string
	// TTL of issued certificates [24h]; workloads renew at half of it.
	TTL time.Duration
	// RootTTL of a generated root [10 years].
	RootTTL time.Duration
}

// Defaults.
const (
	DefaultTrustDomain = "cluster.local"
	DefaultTTL         = 24 * time.Hour
	DefaultRootTTL     = 10 * 365 * 24 * time.Hour
	// MinTTL bounds how short a certificate may be: clocks skew, and
	// workloads need time to renew.
	MinTTL = 10 * time.Second
)

// CA issues workload certificates.
type CA struct {
	cfg    Config
	logger *slog.Logger

	signer crypto.Signer
	cert   *x509.Certificate   // the signing certificate
	chain  []*x509.Certificate // cert and its parents up to the root
	root   *x509.Certificate

	mu     sync.Mutex
	serial *big.Int

	issued   *prometheus.CounterVec
	rootTime prometheus.Gauge
}

// New loads or creates the CA. A user-supplied CA that does not parse, is
// not a CA, has expired or does not match its key is an error naming the
// file and the reason.
func New(cfg Config, logger *slog.Logger, reg prometheus.Registerer) (*CA, error) {
	if cfg.TrustDomain == "" {
		cfg.TrustDomain = DefaultTrustDomain
	}
	if cfg.TTL == 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.RootTTL == 0 {
		cfg.RootTTL = DefaultRootTTL
	}
	if err := validTrustDomain(cfg.TrustDomain); err != nil {
		return nil, fmt.Errorf("trust domain: %w", err)
	}
	if cfg.TTL < MinTTL {
		return nil, fmt.Errorf("certificate TTL %s is shorter than %s", cfg.TTL, MinTTL)
	}
	if (cfg.CertFile == "") != (cfg.KeyFile == "") {
		return nil, errors.New("a CA certificate and its key go together: give both or neither")
	}
	c := &CA{cfg: cfg, logger: logger}
	var err error
	if cfg.CertFile != "" {
		err = c.loadUser()
	} else {
		err = c.loadOrCreate()
	}
	if err != nil {
		return nil, err
	}
	c.serial, err = rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, err
	}
	c.issued = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "glassmesh_ca_certificates_issued_total",
		Help: "Workload certificates issued by the mesh CA, by how they were asked for (csr: POST /api/ca/certificates; sds: served to an Envoy).",
	}, []string{"via"})
	c.rootTime = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "glassmesh_ca_expiry_timestamp_seconds",
		Help: "When the mesh CA's signing certificate expires.",
	})
	c.rootTime.Set(float64(c.cert.NotAfter.Unix()))
	if reg != nil {
		reg.MustRegister(c.issued, c.rootTime)
	}
	return c, nil
}

// TrustDomain is the trust domain of the ids the CA issues.
func (c *CA) TrustDomain() string { return c.cfg.TrustDomain }

// TTL is the lifetime of issued certificates.
func (c *CA) TTL() time.Duration { return c.cfg.TTL }

// RootPEM is the trust bundle: the root certificate, PEM.
func (c *CA) RootPEM() []byte { return encodeCerts(c.root) }

// loadOrCreate reads the root from the data dir, or generates one.
func (c *CA) loadOrCreate() error {
	dir := filepath.Join(c.cfg.DataDir, "ca")
	certFile, keyFile := filepath.Join(dir, "root-cert.pem"), filepath.Join(dir, "root-key.pem")
	if _, err := os.Stat(certFile); err == nil {
		c.cfg.CertFile, c.cfg.KeyFile = certFile, keyFile
		return c.loadUser()
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{Organization: []string{"glassmesh"}, CommonName: "glassmesh root CA " + c.cfg.TrustDomain},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(c.cfg.RootTTL),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		URIs:                  []*url.URL{{Scheme: "spiffe", Host: c.cfg.TrustDomain}},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := writeFileAtomic(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return err
	}
	if err := writeFileAtomic(certFile, encodeCerts(cert), 0o644); err != nil {
		return err
	}
	c.signer, c.cert, c.chain, c.root = key, cert, []*x509.Certificate{cert}, cert
	c.logger.Info("generated a mesh CA", "trustDomain", c.cfg.TrustDomain, "cert", certFile, "expires", cert.NotAfter)
	return nil
}

// loadUser reads CertFile (the signing certificate first, then its chain)
// and KeyFile, and checks that they make a usable CA.
func (c *CA) loadUser() error {
	certs, err := readCerts(c.cfg.CertFile)
	if err != nil {
		return err
	}
	key, err := readKey(c.cfg.KeyFile)
	if err != nil {
		return err
	}
	cert := certs[0]
	now := time.Now()
	switch {
	case !cert.IsCA || !cert.BasicConstraintsValid:
		return fmt.Errorf("%s: the certificate is not a CA (basic constraints CA:TRUE missing)", c.cfg.CertFile)
	case cert.KeyUsage != 0 && cert.KeyUsage&x509.KeyUsageCertSign == 0:
		return fmt.Errorf("%s: the certificate may not sign certificates (key usage lacks certSign)", c.cfg.CertFile)
	case now.After(cert.NotAfter):
		return fmt.Errorf("%s: the CA expired at %s", c.cfg.CertFile, cert.NotAfter.UTC().Format(time.RFC3339))
	case now.Before(cert.NotBefore):
		return fmt.Errorf("%s: the CA is not valid before %s", c.cfg.CertFile, cert.NotBefore.UTC().Format(time.RFC3339))
	case !publicKeysEqual(cert.PublicKey, key.Public()):
		return fmt.Errorf("%s does not hold the key of %s", c.cfg.KeyFile, c.cfg.CertFile)
	case now.Add(c.cfg.TTL).After(cert.NotAfter):
		c.logger.Warn("the mesh CA expires before a certificate it issues now would; issued certificates are cut short", "expires", cert.NotAfter)
	}
	for i := 1; i < len(certs); i++ {
		if err := certs[i-1].CheckSignatureFrom(certs[i]); err != nil {
			return fmt.Errorf("%s: certificate %d is not signed by certificate %d: %w", c.cfg.CertFile, i, i+1, err)
		}
	}
	root := certs[len(certs)-1]
	if root.CheckSignatureFrom(root) != nil {
		c.logger.Warn("the CA file does not end with a self-signed root; the last certificate is the trust bundle", "file", c.cfg.CertFile)
	}
	c.signer, c.cert, c.chain, c.root = key, cert, certs, root
	return nil
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	e, ok := a.(equaler)
	return ok && e.Equal(b)
}

func readCerts(file string) ([]*x509.Certificate, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var certs []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: certificate %d: %w", file, len(certs)+1, err)
		}
		certs = append(certs, cert)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("%s: no PEM CERTIFICATE block", file)
	}
	return certs, nil
}

func readKey(file string) (crypto.Signer, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("%s: no PEM block", file)
	}
	var key any
	switch blk.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(blk.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(blk.Bytes)
	default:
		return nil, fmt.Errorf("%s: PEM block %q is not a private key", file, blk.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	s, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%s: the key cannot sign", file)
	}
	return s, nil
}

func encodeCerts(certs ...*x509.Certificate) []byte {
	var b []byte
	for _, c := range certs {
		b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return b
}

func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// validTrustDomain checks a trust domain as SPIFFE defines it: lower-case
// letters, digits, dots, dashes and underscores.
func validTrustDomain(td string) error {
	if td == "" || len(td) > 255 {
		return fmt.Errorf("%q: want 1 to 255 characters", td)
	}
	if strings.Trim(td, "abcdefghijklmnopqrstuvwxyz0123456789.-_") != "" {
		return fmt.Errorf("%q: SPIFFE trust domains are lower-case letters, digits, '.', '-' and '_'", td)
	}
	return nil
}
