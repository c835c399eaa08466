package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	secretservice "github.com/envoyproxy/go-control-plane/envoy/service/secret/v3"
	resource "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	xdscreds "google.golang.org/grpc/credentials/xds"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/xds"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/glassmesh/glassmesh/control/translate"
	"github.com/glassmesh/glassmesh/demo"
	sidecarconfig "github.com/glassmesh/glassmesh/sidecar-config"
	"github.com/glassmesh/glassmesh/telemetry/grpcreport"
)

// The security tests run grpc-go's real xDS client against an xDS-enabled
// grpc-go server (xds.NewGRPCServer), both with xDS credentials and
// certificates from glassmesh's CA, fetched and renewed by `glassmesh
// sidecar certs --watch` and read by grpc-go's file_watcher provider.

const certTTL = 10 * time.Second // the CA's minimum: renewal every 5 s

// securityMesh: reviews-v1 listens on port, in a namespace that is STRICT;
// only productpage may call reviews.
func securityMesh(port int) string {
	return reviewsService + fmt.Sprintf(`---
apiVersion: glassmesh.io/v1alpha1
kind: Workload
metadata: {name: reviews-v1, namespace: default, labels: {app: reviews, version: v1}}
spec: {serviceAccount: reviews, endpoints: [{address: 127.0.0.1, ports: {grpc: %d}}]}
---
apiVersion: glassmesh.io/v1alpha1
kind: Workload
metadata: {name: productpage, namespace: default, labels: {app: productpage, version: v1}}
spec: {serviceAccount: productpage}
---
apiVersion: glassmesh.io/v1alpha1
kind: Workload
metadata: {name: ratings, namespace: default, labels: {app: ratings, version: v1}}
spec: {serviceAccount: ratings}
---
apiVersion: glassmesh.io/v1alpha1
kind: PeerAuthentication
metadata: {name: default, namespace: default}
spec: {mtls: STRICT}
---
apiVersion: glassmesh.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: reviews, namespace: default}
spec:
  selector: {app: reviews}
  action: ALLOW
  rules:
    - from: [{principals: ["cluster.local/ns/default/sa/productpage"]}]
`, port)
}

// watchCerts runs `glassmesh sidecar certs --watch` for a workload until
// the test ends and waits for its first files. It presents a workload
// token bound to the workload, minted offline from gm's CA (its data dir,
// or the --ca-cert/--ca-key given as ca); the workloads here run as their
// service's account: reviews-v1 as reviews.
func watchCerts(t *testing.T, gm *instance, workload string, ca ...string) string {
	t.Helper()
	token := filepath.Join(t.TempDir(), "token")
	sa := strings.TrimSuffix(workload, "-v1")
	if len(ca) == 0 {
		ca = []string{"--data-dir", gm.DataDir}
	}
	args := append([]string{"ca", "token", "--service-account", sa, "--workload", workload, "-o", token}, ca...)
	if out, err := exec.Command(binary, args...).CombinedOutput(); err != nil {
		t.Fatalf("ca token: %v %s", err, out)
	}
	dir := t.TempDir()
	cmd := exec.Command(binary, "sidecar", "certs", "--workload", "default/"+workload, "--dir", dir,
		"--server", "http://"+gm.HTTPAddr, "--token-file", token, "--watch")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	eventually(t, 30*time.Second, func() error {
		_, err := os.Stat(filepath.Join(dir, sidecarconfig.RootCertFile))
		return err
	})
	return dir
}

func proxylessBootstrap(t *testing.T, gm *instance, workload, certs string) []byte {
	t.Helper()
	app := strings.TrimSuffix(workload, "-v1")
	b, err := sidecarconfig.ProxylessBootstrapFor(sidecarconfig.NodeInfo{
		Namespace: "default", Workload: workload, Instance: workload, IP: "127.0.0.1",
		Labels: map[string]string{"app": app, "version": "v1"},
	}, sidecarconfig.BootstrapOptions{XDSAddr: gm.GRPCAddr, CertsDir: certs, CertsRefresh: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// secureServer is reviews-v1 as an xDS-enabled gRPC server: its listener,
// TLS and RBAC come from glassmesh. It answers with the caller's SPIFFE id
// and remembers the serial numbers of the client certificates it saw.
type secureServer struct {
	mu      sync.Mutex
	serials map[string]bool
	serving chan struct{}
}

func startSecureServer(t *testing.T, gm *instance, lis net.Listener, certs string) *secureServer {
	t.Helper()
	s := &secureServer{serials: map[string]bool{}, serving: make(chan struct{})}
	creds, err := xdscreds.NewServerCredentials(xdscreds.ServerOptions{FallbackCreds: insecure.NewCredentials()})
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	srv, err := xds.NewGRPCServer(grpc.Creds(creds),
		xds.BootstrapContentsForTesting(proxylessBootstrap(t, gm, "reviews-v1", certs)),
		xds.ServingModeCallback(func(addr net.Addr, a xds.ServingModeChangeArgs) {
			t.Logf("xDS server %s: %s %v", addr, a.Mode, a.Err)
			if a.Mode == connectivity.ServingModeServing {
				once.Do(func() { close(s.serving) })
			}
		}),
		// Connections live 2 s, so new handshakes keep testing the
		// current certificates while they rotate.
		grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionAge: 2 * time.Second, MaxConnectionAgeGrace: 5 * time.Second}))
	if err != nil {
		t.Fatal(err)
	}
	demo.Register(srv, "reviews", func(ctx context.Context, _ *structpb.Struct) (*structpb.Struct, error) {
		caller := "plaintext"
		if p, ok := peer.FromContext(ctx); ok {
			if info, ok := p.AuthInfo.(credentials.TLSInfo); ok && len(info.State.PeerCertificates) > 0 {
				c := info.State.PeerCertificates[0]
				caller = fmt.Sprint(c.URIs)
				s.mu.Lock()
				s.serials[c.SerialNumber.String()] = true
				s.mu.Unlock()
			}
		}
		return structpb.NewStruct(map[string]any{"version": "v1", "caller": caller})
	})
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return s
}

func (s *secureServer) clientSerials() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.serials)
}

// secureClient is a workload's proxyless client of reviews with xDS
// credentials, reporting its calls to glassmesh like the demo apps do.
func secureClient(t *testing.T, gm *instance, workload, certs string) *grpc.ClientConn {
	t.Helper()
	builder, err := xds.NewXDSResolverWithConfigForTesting(proxylessBootstrap(t, gm, workload, certs))
	if err != nil {
		t.Fatal(err)
	}
	creds, err := xdscreds.NewClientCredentials(xdscreds.ClientOptions{FallbackCreds: insecure.NewCredentials()})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := grpcreport.NewReporter(grpcreport.Config{Target: gm.GRPCAddr, IP: "127.0.0.1", Instance: workload,
		Namespace: "default", Workload: workload, Labels: map[string]string{"app": workload, "version": "v1"},
		FlushInterval: 200 * time.Millisecond}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rep.Close() })
	cc, err := grpc.NewClient(demo.Target("reviews"), grpc.WithTransportCredentials(creds), grpc.WithResolvers(builder),
		grpc.WithUnaryInterceptor(rep.UnaryClientInterceptor()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

func callReviews(cc grpc.ClientConnInterface) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := demo.Call(ctx, cc, "reviews", nil, grpc.WaitForReady(true))
	if err != nil {
		return "", err
	}
	return out.Fields["caller"].GetStringValue(), nil
}

// foreignCert is a client certificate with productpage's SPIFFE id from a
// CA the mesh does not trust.
func foreignCert(t *testing.T) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	u, _ := url.Parse("spiffe://cluster.local/ns/default/sa/productpage")
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		URIs: []*url.URL{u}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func TestSecurityProxylessMTLSAndAuthorization(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := lis.Addr().(*net.TCPAddr).Port
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "mesh.yaml"), securityMesh(port))
	gm := start(t, dir, "--cert-ttl", certTTL.String())

	srv := startSecureServer(t, gm, lis, watchCerts(t, gm, "reviews-v1"))
	select {
	case <-srv.serving:
	case <-time.After(30 * time.Second):
		t.Fatalf("the xDS server never served its listener %s", "grpc/server?xds.resource.listening_address=127.0.0.1:"+fmt.Sprint(port))
	}
	productpage := secureClient(t, gm, "productpage", watchCerts(t, gm, "productpage"))

	t.Run("STRICT mTLS works end to end and the server sees the caller's SPIFFE id", func(t *testing.T) {
		caller, err := callReviews(productpage)
		if err != nil {
			t.Fatalf("productpage → reviews: %v", err)
		}
		if caller != "[spiffe://cluster.local/ns/default/sa/productpage]" {
			t.Errorf("server saw caller %s, want productpage's SPIFFE id", caller)
		}
	})

	t.Run("a client without a mesh certificate is refused", func(t *testing.T) {
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		foreign := foreignCert(t)
		for name, creds := range map[string]credentials.TransportCredentials{
			"plaintext":      insecure.NewCredentials(),
			"no certificate": credentials.NewTLS(&tls.Config{InsecureSkipVerify: true}), //nolint:gosec // the test is about the server's check
			// Sent whatever CAs the server names, as an attacker would.
			"a certificate from another CA": credentials.NewTLS(&tls.Config{
				GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &foreign, nil },
				InsecureSkipVerify:   true, //nolint:gosec // as above
			}),
		} {
			cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			_, err = demo.Call(ctx, cc, "reviews", nil)
			cancel()
			cc.Close()
			if status.Code(err) != codes.Unavailable {
				t.Errorf("%s: %v, want the connection refused (UNAVAILABLE)", name, err)
			} else {
				t.Logf("%s: refused: %v", name, err)
			}
		}
	})

	t.Run("an AuthorizationPolicy denies a principal it does not allow", func(t *testing.T) {
		ratings := secureClient(t, gm, "ratings", watchCerts(t, gm, "ratings"))
		for range 5 {
			_, err := callReviews(ratings)
			if status.Code(err) != codes.PermissionDenied {
				t.Fatalf("ratings → reviews: %v, want PERMISSION_DENIED", err)
			}
		}
		// The denial is in the caller's metrics, over mTLS, with both principals.
		q := `sum(istio_requests_total{reporter="source", source_workload="ratings", destination_workload="reviews-v1", grpc_response_status="7", ` +
			`connection_security_policy="mutual_tls", source_principal="spiffe://cluster.local/ns/default/sa/ratings", destination_principal="spiffe://cluster.local/ns/default/sa/reviews"})`
		eventually(t, 20*time.Second, func() error {
			if r := gm.query(t, q); len(r) == 0 {
				return fmt.Errorf("no denied requests in %s", q)
			}
			return nil
		})
		if _, err := callReviews(productpage); err != nil {
			t.Errorf("productpage is still allowed: %v", err)
		}
	})

	t.Run("a policy naming an unknown namespace is a clear error and the last good policy keeps serving", func(t *testing.T) {
		writeFile(t, filepath.Join(dir, "bad.yaml"), `apiVersion: glassmesh.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: open-up, namespace: default}
spec:
  selector: {app: reviews}
  rules:
    - from: [{namespaces: [shop]}]
`)
		var st meshConfig
		eventually(t, 20*time.Second, func() error {
			gm.getJSON(t, "/api/mesh/config", &st)
			if len(st.Errors) == 0 {
				return errors.New("no config error yet")
			}
			return nil
		})
		if e := st.Errors[0]; filepath.Base(e.File) != "bad.yaml" || !strings.Contains(e.Message, `unknown namespace "shop"`) {
			t.Errorf("error %+v, want bad.yaml naming the unknown namespace", e)
		}
		if _, err := callReviews(productpage); err != nil {
			t.Errorf("productpage after the bad edit: %v", err)
		}
		ratings := secureClient(t, gm, "ratings", watchCerts(t, gm, "ratings"))
		if _, err := callReviews(ratings); status.Code(err) != codes.PermissionDenied {
			t.Errorf("ratings after the bad edit: %v, want still PERMISSION_DENIED", err)
		}
		if err := os.Remove(filepath.Join(dir, "bad.yaml")); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("certificates rotate under traffic without a failed call", func(t *testing.T) {
		// Past the first certificates' lifetime, with connections renewed
		// every 2 s: every handshake after 10 s needs renewed certificates
		// on both sides.
		began, calls, failures := time.Now(), 0, []error(nil)
		for time.Since(began) < certTTL+5*time.Second {
			if _, err := callReviews(productpage); err != nil {
				failures = append(failures, err)
			}
			calls++
			time.Sleep(50 * time.Millisecond)
		}
		if len(failures) > 0 {
			t.Fatalf("%d of %d calls failed while certificates rotated; first: %v", len(failures), calls, failures[0])
		}
		if n := srv.clientSerials(); n < 2 {
			t.Fatalf("the server saw %d client certificate(s) in %s with a %s TTL, want renewed ones", n, time.Since(began).Round(time.Second), certTTL)
		}
		t.Logf("%d calls over %s, none failed; the server saw %d distinct client certificates", calls, time.Since(began).Round(time.Second), srv.clientSerials())
	})
}

// testPKI is a CA and certificates it signed, written as PEM files.
type testPKI struct {
	dir  string
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test xDS CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	p := &testPKI{dir: t.TempDir(), cert: cert, key: key}
	writeFile(t, filepath.Join(p.dir, "ca.pem"), string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	kb, _ := x509.MarshalPKCS8PrivateKey(key)
	writeFile(t, filepath.Join(p.dir, "ca-key.pem"), string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb})))
	return p
}

// issue writes a leaf for 127.0.0.1 with the given usage into dir as
// certFile and keyFile.
func (p *testPKI) issue(t *testing.T, dir, certFile, keyFile string, usage x509.ExtKeyUsage) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{usage}, KeyUsage: x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.cert, key.Public(), p.key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalPKCS8PrivateKey(key)
	writeFile(t, filepath.Join(dir, certFile), string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	writeFile(t, filepath.Join(dir, keyFile), string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb})))
}

// TestSecurityXDSOverMTLS: with --grpc-tls-*, glassmesh's gRPC port takes
// only TLS clients holding a certificate of the client CA, and a proxyless
// app bootstrapped with --xds-ca gets its config over it.
func TestSecurityXDSOverMTLS(t *testing.T) {
	pki := newTestPKI(t)
	pki.issue(t, pki.dir, "server.pem", "server-key.pem", x509.ExtKeyUsageServerAuth)
	certs := t.TempDir()
	pki.issue(t, certs, sidecarconfig.CertChainFile, sidecarconfig.KeyFile, x509.ExtKeyUsageClientAuth)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "mesh.yaml"), reviewsService+"---\n"+reviewsWorkloads(backend(t, "reviews", "v1"), backend(t, "reviews", "v2")))
	gm := start(t, dir, "--grpc-tls-cert", filepath.Join(pki.dir, "server.pem"), "--grpc-tls-key", filepath.Join(pki.dir, "server-key.pem"),
		"--grpc-tls-client-ca", filepath.Join(pki.dir, "ca.pem"))

	client := func(opts sidecarconfig.BootstrapOptions) *grpc.ClientConn {
		opts.XDSAddr = gm.GRPCAddr
		b, err := sidecarconfig.ProxylessBootstrapFor(sidecarconfig.NodeInfo{Namespace: "default", Workload: "productpage",
			Instance: "productpage", IP: "127.0.0.1", Labels: map[string]string{"app": "productpage"}}, opts)
		if err != nil {
			t.Fatal(err)
		}
		builder, err := xds.NewXDSResolverWithConfigForTesting(b)
		if err != nil {
			t.Fatal(err)
		}
		cc, err := grpc.NewClient(demo.Target("reviews"), grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithResolvers(builder))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cc.Close() })
		return cc
	}
	call := func(cc *grpc.ClientConn, within time.Duration) error {
		ctx, cancel := context.WithTimeout(context.Background(), within)
		defer cancel()
		_, err := demo.Call(ctx, cc, "reviews", nil, grpc.WaitForReady(true))
		return err
	}
	t.Run("an app with the xDS CA and a client certificate gets its config over mTLS", func(t *testing.T) {
		if err := call(client(sidecarconfig.BootstrapOptions{XDSCA: filepath.Join(pki.dir, "ca.pem"), CertsDir: certs}), 20*time.Second); err != nil {
			t.Fatalf("call through xDS over mTLS: %v", err)
		}
	})
	t.Run("plaintext xDS clients and TLS clients without a certificate get nothing", func(t *testing.T) {
		for name, opts := range map[string]sidecarconfig.BootstrapOptions{
			"plaintext":             {},
			"no client certificate": {XDSCA: filepath.Join(pki.dir, "ca.pem")},
		} {
			if err := call(client(opts), 3*time.Second); err == nil {
				t.Errorf("%s: the call went through", name)
			} else {
				t.Logf("%s: %v", name, err)
			}
		}
	})
}

// TestSecuritySDS asks glassmesh for a sidecar's secrets over ADS as Envoy
// does (Envoy itself cannot run here): the workload's certificate with its
// SPIFFE id, the trust bundle that verifies it, and a renewed certificate
// pushed at half of its lifetime, each response valid by the protos' rules.
func TestSecuritySDS(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "mesh.yaml"), securityMesh(19080))
	gm := start(t, dir, "--cert-ttl", certTTL.String())
	cc, err := grpc.NewClient(gm.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := discoveryv3.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	node := envoyNode("reviews-v1", "reviews", "127.0.0.1")
	send := func(version, nonce string) {
		if err := st.Send(&discoveryv3.DiscoveryRequest{Node: node, TypeUrl: resource.SecretType,
			ResourceNames: []string{translate.SDSCertName, translate.SDSRootName}, VersionInfo: version, ResponseNonce: nonce}); err != nil {
			t.Fatal(err)
		}
	}
	// recv reads one response: the leaf (verified against the bundle, as
	// it was last sent: SotW responses for SDS carry only what changed)
	// and the version.
	roots := x509.NewCertPool()
	recv := func() (*x509.Certificate, *discoveryv3.DiscoveryResponse) {
		t.Helper()
		resp, err := st.Recv()
		if err != nil {
			t.Fatal(err)
		}
		var leaf *x509.Certificate
		for _, a := range resp.Resources {
			s := &tlsv3.Secret{}
			if err := a.UnmarshalTo(s); err != nil {
				t.Fatal(err)
			}
			if err := s.ValidateAll(); err != nil {
				t.Errorf("secret %s does not validate: %v", s.Name, err)
			}
			switch s.Name {
			case translate.SDSCertName:
				tc := s.GetTlsCertificate()
				pair, err := tls.X509KeyPair(tc.GetCertificateChain().GetInlineBytes(), tc.GetPrivateKey().GetInlineBytes())
				if err != nil {
					t.Fatalf("certificate and key: %v", err)
				}
				leaf, _ = x509.ParseCertificate(pair.Certificate[0])
			case translate.SDSRootName:
				roots.AppendCertsFromPEM(s.GetValidationContext().GetTrustedCa().GetInlineBytes())
			}
		}
		if leaf == nil {
			t.Fatalf("no %s secret in %d resources", translate.SDSCertName, len(resp.Resources))
		}
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Errorf("certificate does not verify against ROOTCA: %v", err)
		}
		if len(leaf.URIs) != 1 || leaf.URIs[0].String() != "spiffe://cluster.local/ns/default/sa/reviews" {
			t.Errorf("URI SANs %v", leaf.URIs)
		}
		return leaf, resp
	}
	send("", "")
	first, resp := recv()
	began := time.Now()
	send(resp.VersionInfo, resp.Nonce) // ACK; the next response is a renewal
	renewed, _ := recv()
	took := time.Since(began)
	if renewed.SerialNumber.Cmp(first.SerialNumber) == 0 {
		t.Fatalf("the pushed certificate is the same one")
	}
	if took > certTTL {
		t.Errorf("renewal pushed %s after the first; the certificate lives %s", took, certTTL)
	}
	t.Logf("renewed certificate pushed %s after the first (TTL %s, renewal due at half)", took.Round(10*time.Millisecond), certTTL)

	// Envoys whose sds_config names the SDS service rather than ADS get the
	// same secrets there.
	sds, err := secretservice.NewSecretDiscoveryServiceClient(cc).StreamSecrets(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := sds.Send(&discoveryv3.DiscoveryRequest{Node: node, TypeUrl: resource.SecretType,
		ResourceNames: []string{translate.SDSCertName, translate.SDSRootName}}); err != nil {
		t.Fatal(err)
	}
	st = sds
	if leaf, _ := recv(); leaf.SerialNumber.Cmp(renewed.SerialNumber) != 0 {
		t.Errorf("the SDS service sent certificate %s, ADS %s", leaf.SerialNumber, renewed.SerialNumber)
	}
}

// TestSecuritySDSBoundToCertificate: with --grpc-tls-client-ca set to the
// mesh CA, a workload connects to xDS with its own SVID and may act only as
// a workload of that identity: it gets its own SDS secrets, and a stream
// whose node names another workload is refused.
func TestSecuritySDSBoundToCertificate(t *testing.T) {
	pki := newTestPKI(t)
	pki.issue(t, pki.dir, "server.pem", "server-key.pem", x509.ExtKeyUsageServerAuth)
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "mesh.yaml"), securityMesh(19080))
	ca := filepath.Join(pki.dir, "ca.pem")
	gm := start(t, dir, "--ca-cert", ca, "--ca-key", filepath.Join(pki.dir, "ca-key.pem"),
		"--grpc-tls-cert", filepath.Join(pki.dir, "server.pem"), "--grpc-tls-key", filepath.Join(pki.dir, "server-key.pem"), "--grpc-tls-client-ca", ca)
	certs := watchCerts(t, gm, "productpage", "--ca-cert", ca, "--ca-key", filepath.Join(pki.dir, "ca-key.pem"))
	pair, err := tls.LoadX509KeyPair(filepath.Join(certs, sidecarconfig.CertChainFile), filepath.Join(certs, sidecarconfig.KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(pki.cert)
	cc, err := grpc.NewClient(gm.GRPCAddr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{
		Certificates: []tls.Certificate{pair}, RootCAs: roots, ServerName: "127.0.0.1",
	})))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	secretsAs := func(workload, app string) (*discoveryv3.DiscoveryResponse, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		st, err := discoveryv3.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(ctx)
		if err != nil {
			return nil, err
		}
		if err := st.Send(&discoveryv3.DiscoveryRequest{Node: envoyNode(workload, app, "127.0.0.1"), TypeUrl: resource.SecretType,
			ResourceNames: []string{translate.SDSCertName, translate.SDSRootName}}); err != nil {
			return nil, err
		}
		return st.Recv()
	}
	t.Run("its own workload: the secrets come", func(t *testing.T) {
		resp, err := secretsAs("productpage", "productpage")
		if err != nil || len(resp.Resources) != 2 {
			t.Fatalf("productpage's secrets: %v (%d resources)", err, len(resp.GetResources()))
		}
	})
	t.Run("another workload: PERMISSION_DENIED naming both identities", func(t *testing.T) {
		_, err := secretsAs("reviews-v1", "reviews")
		if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "sa/productpage") || !strings.Contains(err.Error(), "sa/reviews") {
			t.Fatalf("as reviews-v1 with productpage's certificate: %v, want PERMISSION_DENIED naming both", err)
		}
		t.Logf("refused: %v", err)
	})
}

// xdsCallChildEnv holds the grpc-go bootstrap a child of
// TestSecurityXDSCallCredentials calls reviews with.
const xdsCallChildEnv = "GLASSMESH_E2E_XDS_CALL_BOOTSTRAP"

// TestSecurityXDSCallCredentials: a proxyless app whose bootstrap (`sidecar
// bootstrap --xds-ca --xds-token-file`) sends its workload token with
// every xDS request (grpc-go's jwt_token_file call credentials over TLS)
// gets its config from a glassmesh that refuses xDS clients without a
// credential (--attestation all); with another service account's token it
// gets nothing. grpc-go reads the switch for call credentials once, at
// start, so each app is this test binary run again with it set.
func TestSecurityXDSCallCredentials(t *testing.T) {
	if b := os.Getenv(xdsCallChildEnv); b != "" {
		xdsCallChild(t, []byte(b))
		return
	}
	pki := newTestPKI(t)
	pki.issue(t, pki.dir, "server.pem", "server-key.pem", x509.ExtKeyUsageServerAuth)
	dir := t.TempDir()
	port := backend(t, "reviews", "v1")
	writeFile(t, filepath.Join(dir, "mesh.yaml"), reviewsService+"---\n"+reviewsWorkloads(port, port)+`---
apiVersion: glassmesh.io/v1alpha1
kind: Workload
metadata: {name: productpage, namespace: default, labels: {app: productpage, version: v1}}
spec: {serviceAccount: productpage}
`)
	// Two ways to an attested xDS stream: --attestation all on the main
	// gRPC port (served with the operator's certificate), and the
	// attested-only listener (--xds-tls-addr, a certificate of the mesh
	// CA) beside a main port that still takes clients without proof.
	for _, mode := range []string{"attestation all", "xds-tls-addr"} {
		t.Run(mode, func(t *testing.T) {
			var gm *instance
			var xdsAddr, xdsCA string
			if mode == "attestation all" {
				gm = start(t, dir, "--attestation", "all",
					"--grpc-tls-cert", filepath.Join(pki.dir, "server.pem"), "--grpc-tls-key", filepath.Join(pki.dir, "server-key.pem"))
				xdsAddr, xdsCA = gm.GRPCAddr, filepath.Join(pki.dir, "ca.pem")
			} else {
				gm = start(t, dir, "--xds-tls-addr", "127.0.0.1:0")
				xdsAddr, xdsCA = gm.XDSTLSAddr, filepath.Join(gm.DataDir, "ca", "root-cert.pem")
			}
			app := func(sa string) (string, error) {
				args := []string{"sidecar", "bootstrap", "--proxyless", "--workload", "default/productpage", "--ip", "127.0.0.1", "--instance", "productpage", "--label", "app=productpage",
					"--xds-addr", xdsAddr, "--xds-ca", xdsCA}
				if sa != "" {
					token := filepath.Join(t.TempDir(), "token")
					if out, err := exec.Command(binary, "ca", "token", "--data-dir", gm.DataDir, "--service-account", sa, "-o", token).CombinedOutput(); err != nil {
						t.Fatalf("ca token: %v %s", err, out)
					}
					args = append(args, "--xds-token-file", token)
				}
				b, err := exec.Command(binary, args...).Output()
				if err != nil {
					var stderr []byte
					if ee, ok := err.(*exec.ExitError); ok {
						stderr = ee.Stderr
					}
					t.Fatalf("sidecar bootstrap: %v %s", err, stderr)
				}
				cmd := exec.Command(os.Args[0], "-test.run=^TestSecurityXDSCallCredentials$", "-test.v")
				cmd.Env = append(os.Environ(), xdsCallChildEnv+"="+string(b), "GRPC_EXPERIMENTAL_XDS_BOOTSTRAP_CALL_CREDS=true")
				out, err := cmd.CombinedOutput()
				return string(out), err
			}
			if out, err := app("productpage"); err != nil {
				t.Errorf("with its own token: %v\n%s", err, out)
			}
			for name, sa := range map[string]string{"no token": "", "another service account's token": "ratings"} {
				if out, err := app(sa); err == nil {
					t.Errorf("%s: the call went through:\n%s", name, out)
				}
			}
			for _, want := range []string{
				"the caller is service account default/ratings, but workload default/productpage runs as service account default/productpage",
				"the client presents no workload credential",
			} {
				if !strings.Contains(gm.Logs(), want) {
					t.Errorf("glassmesh did not log the refusal %q", want)
				}
			}
		})
	}
}

// xdsCallChild calls reviews through xDS with bootstrap: it fails unless
// the call succeeds within 10 s.
func xdsCallChild(t *testing.T, bootstrap []byte) {
	builder, err := xds.NewXDSResolverWithConfigForTesting(bootstrap)
	if err != nil {
		t.Fatal(err)
	}
	cc, err := grpc.NewClient(demo.Target("reviews"), grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithResolvers(builder))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := demo.Call(ctx, cc, "reviews", nil, grpc.WaitForReady(true)); err != nil {
		t.Fatal(err)
	}
}
