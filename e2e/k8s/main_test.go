// Package k8s tests glassmesh against a real Kubernetes API server: one
// kube-apiserver (in-process) and one etcd (Debian's, a child process) per
// test binary, started by TestMain.
package k8s

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"

	"github.com/glassmesh/glassmesh/e2e/k8s/kubetest"
)

// server is the API server all tests of this binary share (TestMain).
var server *kubetest.Server

// crdDir holds the CRDs of every glassmesh kind.
const crdDir = "../../deploy/crds"

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(run(m))
}

func run(m *testing.M) int {
	// The API server logs a great deal through klog and its test logger;
	// keep it in a file and show the file's name when something fails.
	logf, err := os.CreateTemp("", "kube-apiserver-*.log")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer logf.Close()
	klog.LogToStderr(false)
	klog.SetOutput(logf)
	tb := kubetest.NewProcessTB("kube-apiserver", logf)
	defer tb.Close()

	start := time.Now()
	s, err := kubetest.Start(tb, logf)
	if err != nil {
		fmt.Fprintf(os.Stderr, "start the API server: %v (log: %s)\n", err, logf.Name())
		return 1
	}
	defer s.Stop()
	server = s
	fmt.Printf("kube-apiserver %s up in %v, kubeconfig %s, log %s\n", s.Config.Host, time.Since(start).Round(time.Millisecond), s.Kubeconfig, logf.Name())
	code := m.Run()
	if code != 0 {
		fmt.Printf("kube-apiserver log: %s\n", logf.Name())
	} else {
		defer os.Remove(logf.Name())
	}
	return code
}

// startAPIServer returns a client config for the shared API server (a copy:
// tests may change it) and the path of a kubeconfig file for it, usable as
// `glassmesh run --source kubernetes --kubeconfig PATH`. Tests share the
// server, so each works in namespaces of its own (newNamespace).
func startAPIServer(t testing.TB) (*rest.Config, string) {
	t.Helper()
	if server == nil {
		t.Fatal("no API server: TestMain did not start one")
	}
	return rest.CopyConfig(server.Config), server.Kubeconfig
}

// installCRDs installs every CRD in dir and waits until each is Established;
// it skips the test when dir does not exist.
func installCRDs(t testing.TB, cfg *rest.Config, dir string) []*apiextensionsv1.CustomResourceDefinition {
	t.Helper()
	if _, err := os.Stat(dir); os.IsNotExist(err) {
		abs, _ := filepath.Abs(dir)
		t.Skipf("no CRDs yet: %s does not exist", abs)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	crds, err := kubetest.InstallCRDs(ctx, cfg, dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(crds) == 0 {
		t.Skipf("no CRDs in %s", dir)
	}
	return crds
}
