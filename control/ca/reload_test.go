package ca

import (
	"crypto/x509"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestFileKeyPairFollowsItsFiles(t *testing.T) {
	c, err := New(Config{DataDir: t.TempDir()}, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	write := func(host string) {
		t.Helper()
		s, err := c.IssueServing([]string{host}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(certFile, s.ChainPEM, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(keyFile, s.KeyPEM, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := NewFileKeyPair(certFile, keyFile); err == nil {
		t.Fatal("missing files: no error")
	}
	write("one.example")
	kp, err := NewFileKeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	host := func() string {
		t.Helper()
		pair, err := kp.Get()
		if err != nil {
			t.Fatal(err)
		}
		leaf, err := x509.ParseCertificate(pair.Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		return leaf.DNSNames[0]
	}
	// Renewed in place (a later mtime): read again after the 1 s check.
	write("two.example")
	later := time.Now().Add(2 * time.Second)
	for _, f := range []string{certFile, keyFile} {
		if err := os.Chtimes(f, later, later); err != nil {
			t.Fatal(err)
		}
	}
	kp.mu.Lock()
	kp.checked = time.Time{}
	kp.mu.Unlock()
	if got := host(); got != "two.example" {
		t.Errorf("after renewal: %s", got)
	}
	// A half-written renewal keeps the last good pair.
	if err := os.WriteFile(keyFile, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	evenLater := later.Add(time.Second)
	_ = os.Chtimes(keyFile, evenLater, evenLater)
	kp.mu.Lock()
	kp.checked = time.Time{}
	kp.mu.Unlock()
	if got := host(); got != "two.example" {
		t.Errorf("after a broken write: %s", got)
	}
}

func TestServingCertRenewsPastHalfLife(t *testing.T) {
	c, err := New(Config{DataDir: t.TempDir()}, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewServingCert(c, []string{"glassmesh.glassmesh-system.svc", "10.0.0.7"})
	if err != nil {
		t.Fatal(err)
	}
	first, _ := s.GetCertificate(nil)
	leaf, err := x509.ParseCertificate(first.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if len(leaf.DNSNames) != 1 || len(leaf.IPAddresses) != 1 || leaf.IPAddresses[0].String() != "10.0.0.7" {
		t.Errorf("names %v, addresses %v", leaf.DNSNames, leaf.IPAddresses)
	}
	if again, _ := s.GetCertificate(nil); again != first {
		t.Error("issued again before half its life")
	}
	s.mu.Lock()
	s.renewAt = time.Now().Add(-time.Second)
	s.mu.Unlock()
	if again, _ := s.GetCertificate(nil); again == first {
		t.Error("not issued again past half its life")
	}
}
