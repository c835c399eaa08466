package k8s

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/glassmesh/glassmesh/control/naming"
)

// TestAttestedIdentity: a pod's projected service-account token, reviewed
// by the real API server (TokenReview), gets the pod's own workload its
// certificate and xDS config, and nothing of another service account's or
// another pod's workload; a token for another audience proves nothing.
func TestAttestedIdentity(t *testing.T) {
	cs, _, ns := reviewsMesh(t, func(string, string) int { return 9080 })
	ctx := context.Background()
	for _, sa := range []string{"reviews", "ratings"} {
		if _, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	ratings, err := cs.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "ratings-0", Namespace: ns, Labels: map[string]string{"app": "ratings"}},
		Spec:       corev1.PodSpec{ServiceAccountName: "ratings", Containers: []corev1.Container{{Name: "app", Image: "example/ratings"}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ratings.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: hostIP(t)}
	if _, err := cs.CoreV1().Pods(ns).UpdateStatus(ctx, ratings, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	reviewsPod, err := cs.CoreV1().Pods(ns).Get(ctx, "reviews-v1-5d8f9-abcde", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// What the kubelet mounts: a token for glassmesh's audience, bound to
	// the pod.
	token := func(sa, audience string, pod *corev1.Pod) string {
		t.Helper()
		req := &authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{Audiences: []string{audience}, ExpirationSeconds: ptr.To(int64(600))}}
		if pod != nil {
			req.Spec.BoundObjectRef = &authnv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID}
		}
		tr, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa, req, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("token for %s: %v", sa, err)
		}
		f := filepath.Join(t.TempDir(), "token")
		if err := os.WriteFile(f, []byte(tr.Status.Token), 0o600); err != nil {
			t.Fatal(err)
		}
		return f
	}
	reviewsToken := token("reviews", "glassmesh", reviewsPod)
	vaultToken := token("reviews", "vault", reviewsPod)
	xdsTLSAddr := freeAddr(t)
	httpAddr, grpcAddr := runGlassmesh(t, "--kubernetes.namespaces", ns, "--leader-elect=false", "--attestation", "all",
		"--xds-tls-addr", xdsTLSAddr, "--xds-tls-hosts", "127.0.0.1")

	certs := func(workload, tokenFile string, dir ...string) (string, error) {
		out, err := exec.Command(glassmeshBinary(t), "sidecar", "certs", "--workload", ns+"/"+workload, "--dir", append(dir, t.TempDir())[0],
			"--server", "http://"+httpAddr, "--token-file", tokenFile).CombinedOutput()
		return string(out), err
	}
	certsDir := t.TempDir()
	within(t, 60*time.Second, "the pod's token gets its workload's certificate", func() error {
		out, err := certs("reviews-v1", reviewsToken, certsDir)
		if err != nil || !strings.Contains(out, "spiffe://cluster.local/ns/"+ns+"/sa/reviews") {
			return fmt.Errorf("%v %s", err, out)
		}
		return nil
	})
	for name, tc := range map[string]struct{ workload, token, want string }{
		"another service account's workload": {"ratings-0", reviewsToken, "403"},
		"another pod's workload":             {"reviews-v2", reviewsToken, "of workload " + ns + "/reviews-v1"},
		"a token for another audience":       {"reviews-v1", vaultToken, "401"},
	} {
		if out, err := certs(tc.workload, tc.token); err == nil || !strings.Contains(out, tc.want) {
			t.Errorf("%s: %v %s, want %q", name, err, out, tc.want)
		}
	}

	read := func(f string) string {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	cluster := "outbound|9080||reviews." + ns + ".svc.cluster.local"
	// The same checks on the main gRPC port and on the attested-only TLS
	// listener, whose certificate the mesh root (written by sidecar
	// certs) verifies.
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM([]byte(read(filepath.Join(certsDir, "root-cert.pem")))) {
		t.Fatal("no mesh root in root-cert.pem")
	}
	transports := map[string]struct {
		addr  string
		creds credentials.TransportCredentials
	}{
		"plaintext": {grpcAddr, insecure.NewCredentials()},
		"TLS":       {xdsTLSAddr, credentials.NewTLS(&tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12})},
	}
	for tname, tr := range transports {
		for name, tc := range map[string]struct{ token, workload, instance, want string }{
			"its own workload":                   {read(reviewsToken), "reviews-v1", "reviews-v1-5d8f9-abcde", ""},
			"another service account's workload": {read(reviewsToken), "ratings-0", "ratings-0", "service account " + ns + "/reviews (pod reviews-v1-5d8f9-abcde), but workload " + ns + "/ratings-0 runs as service account " + ns + "/ratings"},
			"no credential":                      {"", "reviews-v1", "reviews-v1-5d8f9-abcde", "presents no workload credential"},
		} {
			name := tname + ", " + name
			cc, err := grpc.NewClient(tr.addr, grpc.WithTransportCredentials(tr.creds))
			if err != nil {
				t.Fatal(err)
			}
			sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			if tc.token != "" {
				sctx = metadata.AppendToOutgoingContext(sctx, "authorization", "Bearer "+tc.token)
			}
			meta, _ := structpb.NewStruct(map[string]any{
				naming.NodeMetaNamespace: ns, naming.NodeMetaWorkloadName: tc.workload, naming.NodeMetaGenerator: naming.GeneratorGRPC,
			})
			st, err := discoveryv3.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(sctx)
			if err == nil {
				err = st.Send(&discoveryv3.DiscoveryRequest{TypeUrl: resource.ClusterType, ResourceNames: []string{cluster},
					Node: &corev3.Node{Id: naming.NodeID("10.0.0.1", tc.instance, ns), Metadata: meta}})
			}
			var r *discoveryv3.DiscoveryResponse
			if err == nil {
				r, err = st.Recv()
			}
			cancel()
			cc.Close()
			switch {
			case tc.want == "" && (err != nil || len(r.GetResources()) != 1):
				t.Errorf("xDS, %s: %v, %d clusters, want its cluster", name, err, len(r.GetResources()))
			case tc.want != "" && (status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("xDS, %s: %v, want PERMISSION_DENIED saying %q", name, err, tc.want)
			}
		}
	}
}

// freeAddr is a free loopback address to listen on.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
