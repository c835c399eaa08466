package e2e

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestSidecarCerts gets a workload's SVID from a running glassmesh's CA with
// `glassmesh sidecar certs`, as the demo and Kubernetes pods do.
func TestSidecarCerts(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "mesh.yaml"), reviewsService+"---\n"+reviewsWorkloads(19081, 19082))
	token := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(token, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	gm := start(t, dir, "--api-token-file", token, "--trust-domain", "example.org")
	certs := t.TempDir()
	certsCmd := func(extra ...string) (string, error) {
		args := append([]string{"sidecar", "certs", "--workload", "default/reviews-v2", "--dir", certs, "--server", "http://" + gm.HTTPAddr}, extra...)
		out, err := exec.Command(binary, args...).CombinedOutput()
		return string(out), err
	}
	if out, err := certsCmd(); err == nil || !strings.Contains(out, "401") {
		t.Errorf("without the token: %v %s, want 401", err, out)
	}
	out, err := certsCmd("--token-file", token)
	if err != nil || !strings.Contains(out, "spiffe://example.org/ns/default/sa/reviews") {
		t.Fatalf("sidecar certs: %v %s", err, out)
	}
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(certs, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	blk, _ := pem.Decode(read("cert-chain.pem"))
	leaf, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(read("root-cert.pem"))
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("leaf does not verify against root-cert.pem: %v", err)
	}
	kb, _ := pem.Decode(read("key.pem"))
	key, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	signer, ok := key.(crypto.Signer)
	if err != nil || !ok || !leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(signer.Public()) {
		t.Errorf("key.pem does not hold the certificate's key: %v", err)
	}
}
