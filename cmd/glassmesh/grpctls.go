package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/spf13/pflag"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"

	"github.com/glassmesh/glassmesh/control/ca"
	"github.com/glassmesh/glassmesh/control/xds"
)

// grpcTLSFlags secure --grpc-addr: xDS, SDS, access logs and OTLP.
type grpcTLSFlags struct {
	cert, key, clientCA string
	// xdsAddr serves xDS and SDS only, over TLS with a certificate of the
	// mesh CA for xdsHosts, to clients that prove their workload (Istio's
	// 15012 beside 15010).
	xdsAddr  string
	xdsHosts []string
}

func (f *grpcTLSFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.cert, "grpc-tls-cert", "", "PEM certificate chain for --grpc-addr (serve TLS); reread when the file changes, so it can be renewed in place")
	fs.StringVar(&f.key, "grpc-tls-key", "", "PEM private key of --grpc-tls-cert")
	fs.StringVar(&f.clientCA, "grpc-tls-client-ca", "", "PEM CA bundle: --grpc-addr then requires client certificates it signed (mutual TLS); the mesh root (--data-dir/ca/root-cert.pem) lets workloads use their SVIDs")
	fs.StringVar(&f.xdsAddr, "xds-tls-addr", "", "also serve xDS and SDS here (e.g. :15012), over TLS with a certificate from the mesh CA for --xds-tls-hosts, "+
		"to clients that prove their workload with a bearer token or their SVID, whatever --attestation says; clients trust the mesh root. Empty: off")
	fs.StringSliceVar(&f.xdsHosts, "xds-tls-hosts", []string{"glassmesh.glassmesh-system.svc", "localhost", "127.0.0.1"},
		"host names (or addresses) of --xds-tls-addr's certificate: how clients reach it")
}

// newXDSTLS makes the attested-only xDS server of --xds-tls-addr: TLS with
// a serving certificate the mesh CA issues (and issues again at half its
// life), client certificates optional but verified against the mesh root,
// and every stream required to prove its workload.
func (a *app) newXDSTLS() error {
	f := a.flags.grpcTLS
	if f.xdsAddr == "" {
		return nil
	}
	if a.flags.ca.attestation == attestOff {
		return errors.New("--xds-tls-addr serves attested clients only: it needs --attestation ca or all")
	}
	sc, err := ca.NewServingCert(a.ca, f.xdsHosts)
	if err != nil {
		return fmt.Errorf("--xds-tls-hosts: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(a.ca.RootPEM()) {
		return errors.New("--xds-tls-addr: the mesh root is not PEM")
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: sc.GetCertificate, NextProtos: []string{"h2"},
		ClientCAs: roots, ClientAuth: tls.VerifyClientCertIfGiven}
	a.xdsTLS = grpc.NewServer(grpc.Creds(credentials.NewTLS(cfg)), grpc.MaxConcurrentStreams(1<<20),
		grpc.MaxRecvMsgSize(maxMessageBytes), grpc.StreamInterceptor(xds.RequireAttestationInterceptor),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}))
	a.xds.Register(a.xdsTLS)
	if a.xdsTLSLis, err = net.Listen("tcp", f.xdsAddr); err != nil {
		return fmt.Errorf("--xds-tls-addr: %w", err)
	}
	return nil
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
