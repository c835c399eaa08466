package kubetest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/google/uuid"
	"k8s.io/apiserver/pkg/storage/storagebackend"
	"k8s.io/client-go/rest"
	apiservertesting "k8s.io/kubernetes/cmd/kube-apiserver/app/testing"
	"k8s.io/kubernetes/test/utils/ktesting"
)

// Restartable is a kube-apiserver that can be stopped and started again
// over the same etcd and storage prefix, with the same serving certificate
// and client certificate, so objects, resource versions and every client's
// kubeconfig survive the restart. The in-process test server listens on a
// new port each time it starts: clients reach it through Links (NewLink
// with Addr), which the caller takes down and up around the restart.
type Restartable struct {
	// Dir holds the certificates and etcd's data; Close removes it.
	Dir string
	// Addr is the host:port the API server listens on now ("" while
	// stopped).
	Addr string

	tb       ktesting.TB
	etcd     *Etcd
	storage  *storagebackend.Config
	flags    []string
	ca       []byte // PEM, of the serving and client certificates
	cert     []byte // PEM client certificate (system:masters)
	key      []byte
	teardown func()
	stopping []chan struct{}
}

// StartRestartable starts etcd and kube-apiserver with certificates of its
// own. tb gets the API server's logs and cleanups (a *testing.T is fine);
// etcd's output goes to log. The caller must Close it.
func StartRestartable(tb ktesting.TB, log io.Writer) (*Restartable, error) {
	dir, err := os.MkdirTemp(tmpRoot(), "glassmesh-kube-restart")
	if err != nil {
		return nil, err
	}
	r := &Restartable{Dir: dir, tb: tb}
	if err := r.writeCerts(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if r.etcd, err = StartEtcd(context.Background(), dir, log); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	r.storage = storagebackend.NewDefaultConfig("/"+uuid.NewString()+"/registry", nil)
	r.storage.Transport.ServerList = []string{r.etcd.URL}
	r.flags = append(append([]string{}, Flags...),
		"--tls-cert-file="+filepath.Join(dir, "serving.crt"),
		"--tls-private-key-file="+filepath.Join(dir, "serving.key"),
		"--client-ca-file="+filepath.Join(dir, "ca.crt"))
	if err := r.Start(); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

// Start starts the API server (again).
func (r *Restartable) Start() error {
	if r.teardown != nil {
		return fmt.Errorf("kube-apiserver already running at %s", r.Addr)
	}
	opts := apiservertesting.NewDefaultTestServerOptions()
	opts.DisableInvariantChecks = true
	// Client certificates are ours (--client-ca-file); the test server's
	// own would also want a peer CA file it writes only with its own
	// serving certificate.
	opts.EnableCertAuth = false
	ts, err := apiservertesting.StartTestServer(r.tb, opts, r.flags, r.storage)
	if err != nil {
		return fmt.Errorf("start kube-apiserver: %w", err)
	}
	u, err := url.Parse(ts.ClientConfig.Host)
	if err != nil {
		ts.TearDownFn()
		return err
	}
	r.teardown, r.Addr = ts.TearDownFn, u.Host
	return nil
}

// Stop stops the API server (etcd keeps running). It returns at once: the
// returned channel is closed once the server has shut down, which takes
// as long as its graceful shutdown waits for requests in flight (up to its
// request timeout, a minute). Start may be called meanwhile: the new
// server listens on a port of its own.
func (r *Restartable) Stop() <-chan struct{} {
	done := make(chan struct{})
	teardown := r.teardown
	r.teardown, r.Addr = nil, ""
	r.stopping = append(r.stopping, done)
	go func() {
		defer close(done)
		if teardown != nil {
			teardown()
		}
	}()
	return done
}

// Close stops the API server, waits for every stop, stops etcd and
// removes Dir.
func (r *Restartable) Close() {
	r.Stop()
	for _, done := range r.stopping {
		<-done
	}
	if r.etcd != nil {
		r.etcd.Stop()
		r.etcd = nil
	}
	os.RemoveAll(r.Dir)
}

// ConfigFor is a cluster-admin client config for the API server reached at
// addr (a Link's address, or Addr).
func (r *Restartable) ConfigFor(addr string) *rest.Config {
	return &rest.Config{
		Host: "https://" + addr,
		TLSClientConfig: rest.TLSClientConfig{
			CAData: r.ca, CertData: r.cert, KeyData: r.key,
		},
	}
}

// writeCerts makes a CA, the API server's serving certificate (127.0.0.1,
// localhost) and a client certificate in system:masters.
func (r *Restartable) writeCerts() error {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "glassmesh-test-ca"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return err
	}
	r.ca = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	leaf := func(serial int64, tmpl *x509.Certificate) (certPEM, keyPEM []byte, err error) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, nil, err
		}
		tmpl.SerialNumber, tmpl.NotBefore, tmpl.NotAfter = big.NewInt(serial), now.Add(-time.Hour), now.Add(24*time.Hour)
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			return nil, nil, err
		}
		kb, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			return nil, nil, err
		}
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), nil
	}
	servingCert, servingKey, err := leaf(2, &x509.Certificate{
		Subject: pkix.Name{CommonName: "kube-apiserver"}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
	})
	if err != nil {
		return err
	}
	if r.cert, r.key, err = leaf(3, &x509.Certificate{
		Subject: pkix.Name{CommonName: "glassmesh-test", Organization: []string{"system:masters"}}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}); err != nil {
		return err
	}
	for name, b := range map[string][]byte{"ca.crt": r.ca, "serving.crt": servingCert, "serving.key": servingKey} {
		if err := os.WriteFile(filepath.Join(r.Dir, name), b, 0o600); err != nil {
			return err
		}
	}
	return nil
}
