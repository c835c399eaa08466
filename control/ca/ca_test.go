package ca

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func discard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func csrPEM(t testing.TB, uris ...string) (*x509.CertificateRequest, []byte) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.CertificateRequest{Subject: pkix.Name{CommonName: "evil"}}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	csr, _ := x509.ParseCertificateRequest(der)
	return csr, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

func TestAGeneratedRootIsKeptAndIssuesVerifiableSVIDs(t *testing.T) {
	dir := t.TempDir()
	c, err := New(Config{DataDir: dir, TTL: time.Hour}, discard(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "ca", "root-key.pem")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("root key: %v %v", fi, err)
	}
	again, err := New(Config{DataDir: dir}, discard(), nil)
	if err != nil || !bytes.Equal(again.RootPEM(), c.RootPEM()) {
		t.Fatalf("a restart made another root: %v", err)
	}
	csr, _ := csrPEM(t)
	cert, err := c.Sign(csr, c.ID("default", "reviews"))
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(cert.ChainPEM)
	leaf, _ := x509.ParseCertificate(blk.Bytes)
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(cert.RootPEM)
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
			t.Errorf("leaf does not verify for %v: %v", usage, err)
		}
	}
	if len(leaf.URIs) != 1 || leaf.URIs[0].String() != "spiffe://cluster.local/ns/default/sa/reviews" || leaf.Subject.CommonName == "evil" {
		t.Errorf("leaf names: %v %q (the CSR's names must be ignored)", leaf.URIs, leaf.Subject.CommonName)
	}
	if d := time.Until(leaf.NotAfter); d > time.Hour || d < 59*time.Minute {
		t.Errorf("leaf lives %s, want the 1h TTL", d)
	}
	if _, err := c.Sign(csr, "spiffe://other.domain/ns/a/sa/b"); err == nil {
		t.Error("signed an id of another trust domain")
	}
}

// writeCA writes a CA certificate and key made from tmpl.
func writeCA(t *testing.T, tmpl *x509.Certificate, otherKey bool) (certFile, keyFile string) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	if otherKey {
		key, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	kd, _ := x509.MarshalPKCS8PrivateKey(key)
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd}), 0o600)
	return certFile, keyFile
}

func TestABadUserSuppliedCAIsAClearError(t *testing.T) {
	ok := func() *x509.Certificate {
		return &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "mine"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(48 * time.Hour),
			IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	}
	expired, notCA := ok(), ok()
	expired.NotBefore, expired.NotAfter = time.Now().Add(-48*time.Hour), time.Now().Add(-time.Hour)
	notCA.IsCA, notCA.KeyUsage = false, x509.KeyUsageDigitalSignature
	tests := []struct {
		name     string
		tmpl     *x509.Certificate
		otherKey bool
		want     string
	}{
		{"an expired CA", expired, false, "the CA expired at"},
		{"a certificate that is not a CA", notCA, false, "is not a CA"},
		{"a key that is not the certificate's", ok(), true, "does not hold the key of"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cf, kf := writeCA(t, tt.tmpl, tt.otherKey)
			_, err := New(Config{CertFile: cf, KeyFile: kf}, discard(), nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), filepath.Base(cf)) && !strings.Contains(err.Error(), filepath.Base(kf)) {
				t.Errorf("error = %v, want one naming the file and %q", err, tt.want)
			}
		})
	}
	t.Run("garbage", func(t *testing.T) {
		cf := filepath.Join(t.TempDir(), "ca.pem")
		os.WriteFile(cf, []byte("not pem"), 0o644)
		if _, err := New(Config{CertFile: cf, KeyFile: cf}, discard(), nil); err == nil || !strings.Contains(err.Error(), "no PEM CERTIFICATE") {
			t.Errorf("error = %v", err)
		}
	})
	t.Run("a good one signs", func(t *testing.T) {
		cf, kf := writeCA(t, ok(), false)
		c, err := New(Config{CertFile: cf, KeyFile: kf, TTL: 72 * time.Hour}, discard(), nil)
		if err != nil {
			t.Fatal(err)
		}
		csr, _ := csrPEM(t)
		cert, err := c.Sign(csr, c.ID("a", "b"))
		if err != nil || time.Until(cert.NotAfter) > 48*time.Hour {
			t.Errorf("cert %v, %v: want it cut at the CA's expiry", cert.NotAfter, err)
		}
	})
}

func TestCertificatesAPI(t *testing.T) {
	c, err := New(Config{DataDir: t.TempDir()}, discard(), nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(c.Handler(func(ns, name string) (string, bool) {
		return "reviews", ns == "default" && name == "reviews-v1"
	}, nil))
	defer srv.Close()
	_, good := csrPEM(t)
	post := func(body any) (int, map[string]any) {
		b, _ := json.Marshal(body)
		resp, err := http.Post(srv.URL, "application/json", bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	for _, tc := range []struct {
		name string
		body map[string]string
		code int
		want string
	}{
		{"a known workload gets its SVID", map[string]string{"workload": "default/reviews-v1", "csr": string(good)}, 200, "spiffe://cluster.local/ns/default/sa/reviews"},
		{"an unknown workload is 404", map[string]string{"workload": "default/nope", "csr": string(good)}, 404, "not in the mesh config"},
		{"a malformed workload is 400", map[string]string{"workload": "nope", "csr": string(good)}, 400, "want namespace/name"},
		{"a malformed CSR is 400", map[string]string{"workload": "default/reviews-v1", "csr": "junk"}, 400, "CERTIFICATE REQUEST"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out := post(tc.body)
			got := out["error"]
			if code == 200 {
				got = out["spiffeId"]
			}
			if code != tc.code || !strings.Contains(got.(string), tc.want) {
				t.Errorf("%d %v, want %d with %q", code, out, tc.code, tc.want)
			}
		})
	}
}
