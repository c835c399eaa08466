package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/spf13/pflag"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// grpcTLSFlags secure --grpc-addr: xDS, SDS, access logs and OTLP.
type grpcTLSFlags struct {
	cert, key, clientCA string
}

func (f *grpcTLSFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.cert, "grpc-tls-cert", "", "PEM certificate chain for --grpc-addr (serve TLS); reread when the file changes, so it can be renewed in place")
	fs.StringVar(&f.key, "grpc-tls-key", "", "PEM private key of --grpc-tls-cert")
	fs.StringVar(&f.clientCA, "grpc-tls-client-ca", "", "PEM CA bundle: --grpc-addr then requires client certificates it signed (mutual TLS); the mesh root (--data-dir/ca/root-cert.pem) lets workloads use their SVIDs")
}

// serverOption is the gRPC server's transport security, or nil for
// plaintext. A bad file is an error at start-up, not at the first
// handshake.
func (f grpcTLSFlags) serverOption() (grpc.ServerOption, error) {
	switch {
	case f.cert == "" && f.key == "" && f.clientCA == "":
		return nil, nil
	case f.cert == "" || f.key == "":
		return nil, errors.New("--grpc-tls-cert and --grpc-tls-key go together (and --grpc-tls-client-ca needs both)")
	}
	kp := &keyPair{certFile: f.cert, keyFile: f.key}
	if _, err := kp.get(); err != nil {
		return nil, fmt.Errorf("--grpc-tls-cert/--grpc-tls-key: %w", err)
	}
	cfg := &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return kp.get() },
		NextProtos:     []string{"h2"},
	}
	if f.clientCA != "" {
		b, err := os.ReadFile(f.clientCA)
		if err != nil {
			return nil, fmt.Errorf("--grpc-tls-client-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("--grpc-tls-client-ca %s: no PEM certificate in it", f.clientCA)
		}
		cfg.ClientCAs, cfg.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return grpc.Creds(credentials.NewTLS(cfg)), nil
}

// keyPair is a certificate and key read from files, read again when either
// file's modification time changes (checked at most once a second).
type keyPair struct {
	certFile, keyFile string

	mu      sync.Mutex
	cert    *tls.Certificate
	mtimes  [2]time.Time
	checked time.Time
}

func (k *keyPair) get() (*tls.Certificate, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.cert != nil && time.Since(k.checked) < time.Second {
		return k.cert, nil
	}
	k.checked = time.Now()
	var mtimes [2]time.Time
	for i, f := range []string{k.certFile, k.keyFile} {
		st, err := os.Stat(f)
		if err != nil {
			if k.cert != nil {
				return k.cert, nil // keep serving the last good pair
			}
			return nil, err
		}
		mtimes[i] = st.ModTime()
	}
	if k.cert != nil && mtimes == k.mtimes {
		return k.cert, nil
	}
	c, err := tls.LoadX509KeyPair(k.certFile, k.keyFile)
	if err != nil {
		if k.cert != nil {
			return k.cert, nil // a half-written renewal: the old pair still works
		}
		return nil, err
	}
	k.cert, k.mtimes = &c, mtimes
	return k.cert, nil
}

// workloadIdentity is the SPIFFE id workload namespace/name must present
// (xds.SPIFFEAuthorizer), or false when the serving mesh has no such
// workload.
func (a *app) workloadIdentity(namespace, name string) (string, bool) {
	m, _ := a.store.Mesh()
	w := m.Workload(namespace, name)
	if w == nil {
		return "", false
	}
	return a.ca.ID(w.Namespace, w.Spec.ServiceAccount), true
}
