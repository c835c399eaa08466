package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"github.com/spf13/pflag"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/glassmesh/glassmesh/control/ca"
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
	kp, err := ca.NewFileKeyPair(f.cert, f.key)
	if err != nil {
		return nil, fmt.Errorf("--grpc-tls-cert/--grpc-tls-key: %w", err)
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: kp.GetCertificate, NextProtos: []string{"h2"}}
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
