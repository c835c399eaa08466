package e2e

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/pem"
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
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/glassmesh/glassmesh/control/naming"
)

// TestSidecarCerts gets a workload's SVID from a running glassmesh's CA with
// `glassmesh sidecar certs`, as the demo and Kubernetes pods do: only with a
// workload credential (a workload token from `glassmesh ca token`) that
// proves the workload's service account; the operator's token mints those
// but is no workload credential itself. With --attestation=all the same
// tokens decide which node an xDS stream may name.
func TestSidecarCerts(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "mesh.yaml"), reviewsService+"---\n"+reviewsWorkloads(19081, 19082))
	operator := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(operator, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	gm := start(t, dir, "--api-token-file", operator, "--trust-domain", "example.org", "--attestation", "all")
	run := func(args ...string) (string, error) {
		out, err := exec.Command(binary, args...).CombinedOutput()
		return string(out), err
	}
	mint := func(sa, workload string, extra ...string) string {
		t.Helper()
		file := filepath.Join(t.TempDir(), sa+".jwt")
		args := append([]string{"ca", "token", "--service-account", sa, "--workload", workload, "-o", file}, extra...)
		if out, err := run(args...); err != nil {
			t.Fatalf("ca token %v: %v %s", extra, err, out)
		}
		return file
	}
	api := []string{"--server", "http://" + gm.HTTPAddr, "--token-file", operator}
	reviews, ratings := mint("reviews", "reviews-v2", api...), mint("ratings", "", api...)
	// Offline, with the CA files of the data dir: the same CA's token.
	offline := mint("reviews", "", "--data-dir", gm.DataDir)

	if out, err := run("ca", "token", "--service-account", "reviews", "--server", "http://"+gm.HTTPAddr); err == nil || !strings.Contains(out, "401") {
		t.Errorf("minting without the operator token: %v %s, want 401", err, out)
	}
	certs := t.TempDir()
	certsCmd := func(extra ...string) (string, error) {
		return run(append([]string{"sidecar", "certs", "--workload", "default/reviews-v2", "--dir", certs, "--server", "http://" + gm.HTTPAddr}, extra...)...)
	}
	for name, tc := range map[string]struct {
		token string
		want  string
	}{
		"no credential":             {"", "401"},
		"the operator's token":      {operator, "401"},
		"another service account's": {ratings, "403"},
		"its own, from the API":     {reviews, "spiffe://example.org/ns/default/sa/reviews"},
		"its own, minted offline":   {offline, "spiffe://example.org/ns/default/sa/reviews"},
	} {
		var args []string
		if tc.token != "" {
			args = []string{"--token-file", tc.token}
		}
		out, err := certsCmd(args...)
		if !strings.Contains(out, tc.want) || (err == nil) != strings.HasPrefix(tc.want, "spiffe") {
			t.Errorf("%s: %v %s, want %s", name, err, out, tc.want)
		}
		if tc.want == "403" && !(strings.Contains(out, "default/ratings") && strings.Contains(out, "default/reviews")) {
			t.Errorf("%s: the refusal does not name both identities: %s", name, out)
		}
	}

	t.Run("an xDS stream may name only the node its credential proves", func(t *testing.T) {
		read := func(f string) string {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			return strings.TrimSpace(string(b))
		}
		for name, tc := range map[string]struct{ token, workload, want string }{
			"no credential":             {"", "reviews-v1", "presents no workload credential"},
			"another service account's": {read(ratings), "reviews-v1", "service account default/ratings, but workload default/reviews-v1 runs as service account default/reviews"},
			"bound to another workload": {read(reviews), "reviews-v1", "bound to workload reviews-v2"},
			"its own":                   {read(reviews), "reviews-v2", ""},
		} {
			cc, err := grpc.NewClient(gm.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			if tc.token != "" {
				ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tc.token)
			}
			st, err := discoveryv3.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(ctx)
			if err == nil {
				meta, _ := structpb.NewStruct(map[string]any{
					naming.NodeMetaNamespace: "default", naming.NodeMetaWorkloadName: tc.workload, naming.NodeMetaGenerator: naming.GeneratorGRPC,
				})
				err = st.Send(&discoveryv3.DiscoveryRequest{TypeUrl: resource.ClusterType, ResourceNames: []string{"outbound|9080||reviews.default.svc.cluster.local"},
					Node: &corev3.Node{Id: naming.NodeID("127.0.0.1", tc.workload+"-0", "default"), Metadata: meta}})
			}
			var r *discoveryv3.DiscoveryResponse
			if err == nil {
				r, err = st.Recv()
			}
			cancel()
			cc.Close()
			switch {
			case tc.want == "" && (err != nil || len(r.GetResources()) != 1):
				t.Errorf("%s: %v, %d clusters, want its cluster", name, err, len(r.GetResources()))
			case tc.want != "" && (status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("%s: %v, want PERMISSION_DENIED saying %q", name, err, tc.want)
			}
		}
	})

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
