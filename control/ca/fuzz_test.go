package ca

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// FuzzCertificatesAPI feeds POST /api/ca/certificates arbitrary bodies: it
// answers 200 with a certificate for the resolved identity, or 4xx with a
// reason; never 5xx, never a panic.
func FuzzCertificatesAPI(f *testing.F) {
	c, err := New(Config{DataDir: f.TempDir(), TTL: time.Hour}, discard(), nil)
	if err != nil {
		f.Fatal(err)
	}
	h := c.Handler(func(ns, name string) (string, bool) { return "reviews", ns == "default" && name == "reviews-v1" }, nil)
	_, csr := csrPEM(f)
	good, _ := json.Marshal(CertificateRequest{Workload: "default/reviews-v1", CSR: string(csr)})
	f.Add(good)
	f.Add([]byte(`{"workload":"default/reviews-v1","csr":"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"}`))
	f.Add([]byte(`{"workload":"a/b"}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/api/ca/certificates", bytes.NewReader(body)))
		switch {
		case rec.Code == http.StatusOK:
			var resp CertificateResponse
			if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
				t.Fatalf("200 with a body that does not decode: %v", err)
			}
			blk, _ := pem.Decode([]byte(resp.CertChain))
			if blk == nil {
				t.Fatal("200 without a certificate")
			}
			cert, err := x509.ParseCertificate(blk.Bytes)
			if err != nil || len(cert.URIs) != 1 || cert.URIs[0].String() != "spiffe://cluster.local/ns/default/sa/reviews" {
				t.Fatalf("200 with certificate %v (%v), want the resolved identity only", cert, err)
			}
		case rec.Code >= 400 && rec.Code < 500:
			var e map[string]string
			if json.Unmarshal(rec.Body.Bytes(), &e) != nil || e["error"] == "" {
				t.Fatalf("%d without a reason: %s", rec.Code, rec.Body.String())
			}
		default:
			t.Fatalf("status %d for %q", rec.Code, body)
		}
	})
}
