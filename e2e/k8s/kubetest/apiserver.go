package kubetest

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/uuid"
	"k8s.io/apiserver/pkg/storage/storagebackend"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	apiservertesting "k8s.io/kubernetes/cmd/kube-apiserver/app/testing"
	"k8s.io/kubernetes/test/utils/ktesting"
)

// Flags are the kube-apiserver flags every Server gets.
var Flags = []string{
	// On loopback the "kubernetes" Service's endpoints cannot be reconciled.
	"--endpoint-reconciler-type=none",
	// No controller-manager creates the "default" ServiceAccount of new
	// namespaces, so the admission plugin would refuse every Pod; pods keep
	// the serviceAccountName they are given.
	"--disable-admission-plugins=ServiceAccount",
}

// Server is a kube-apiserver on a free loopback port backed by its own etcd.
type Server struct {
	// Config is a cluster-admin client config (the server's loopback token).
	Config *rest.Config
	// Kubeconfig is a kubeconfig file holding Config, for programs such as
	// `glassmesh run --source kubernetes --kubeconfig FILE`.
	Kubeconfig string
	// Dir holds the kubeconfig and etcd's data; Stop removes it.
	Dir string

	etcd     *Etcd
	teardown func()
}

// Start starts etcd and kube-apiserver and writes the kubeconfig. tb receives
// the API server's log lines and cleanups (use NewProcessTB from TestMain to
// share one server between all tests of a binary); etcd's output goes to log.
// The caller must call Stop.
func Start(tb ktesting.TB, log io.Writer, extraFlags ...string) (*Server, error) {
	dir, err := os.MkdirTemp(tmpRoot(), "glassmesh-kube")
	if err != nil {
		return nil, err
	}
	s := &Server{Dir: dir}
	if s.etcd, err = StartEtcd(context.Background(), dir, log); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	storage := storagebackend.NewDefaultConfig("/"+uuid.NewString()+"/registry", nil)
	storage.Transport.ServerList = []string{s.etcd.URL}
	opts := apiservertesting.NewDefaultTestServerOptions()
	// The invariant checks scrape metrics at teardown and fail on a server
	// shared by many tests; they test Kubernetes, not us.
	opts.DisableInvariantChecks = true
	ts, err := apiservertesting.StartTestServer(tb, opts, append(append([]string{}, Flags...), extraFlags...), storage)
	if err != nil {
		s.Stop()
		return nil, fmt.Errorf("start kube-apiserver: %w", err)
	}
	s.teardown = ts.TearDownFn
	s.Config = ts.ClientConfig
	s.Kubeconfig = filepath.Join(dir, "kubeconfig")
	if err := WriteKubeconfig(s.Kubeconfig, s.Config); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

// Stop stops kube-apiserver, then etcd, and removes Dir.
func (s *Server) Stop() {
	if s.teardown != nil {
		s.teardown()
		s.teardown = nil
	}
	if s.etcd != nil {
		s.etcd.Stop()
		s.etcd = nil
	}
	os.RemoveAll(s.Dir)
}

// WriteKubeconfig writes cfg (server, CA, token or client certificate) as a
// kubeconfig file with one context, "test", which is current.
func WriteKubeconfig(path string, cfg *rest.Config) error {
	kc := clientcmdapi.NewConfig()
	kc.Clusters["test"] = &clientcmdapi.Cluster{
		Server:                   cfg.Host,
		CertificateAuthorityData: cfg.CAData,
		CertificateAuthority:     cfg.CAFile,
		TLSServerName:            cfg.ServerName,
		InsecureSkipTLSVerify:    cfg.Insecure,
	}
	kc.AuthInfos["test"] = &clientcmdapi.AuthInfo{
		Token:                 cfg.BearerToken,
		ClientCertificateData: cfg.CertData,
		ClientKeyData:         cfg.KeyData,
	}
	kc.Contexts["test"] = &clientcmdapi.Context{Cluster: "test", AuthInfo: "test"}
	kc.CurrentContext = "test"
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		return fmt.Errorf("write kubeconfig %s: %w", path, err)
	}
	return nil
}

// tmpRoot prefers memory-backed /dev/shm: etcd fsyncs every write and 3.4
// has no --unsafe-no-fsync.
func tmpRoot() string {
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		if f, err := os.CreateTemp("/dev/shm", "probe"); err == nil {
			f.Close()
			os.Remove(f.Name())
			return "/dev/shm"
		}
	}
	return strings.TrimSpace(os.TempDir())
}
