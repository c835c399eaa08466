package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/xds"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/glassmesh/glassmesh/demo"
	sidecarconfig "github.com/glassmesh/glassmesh/sidecar-config"
)

// backend is an in-process gRPC server answering for one version of a service.
func backend(t *testing.T, service, version string) int {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	demo.Register(srv, service, func(context.Context, *structpb.Struct) (*structpb.Struct, error) {
		return structpb.NewStruct(map[string]any{"version": version})
	})
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	return lis.Addr().(*net.TCPAddr).Port
}

const reviewsService = `apiVersion: glassmesh.io/v1alpha1
kind: Service
metadata: {name: reviews, namespace: default}
spec:
  ports: [{name: grpc, port: 9080, protocol: GRPC}]
  selector: {app: reviews}
`

func reviewsWorkloads(p1, p2 int) string {
	return fmt.Sprintf(`apiVersion: glassmesh.io/v1alpha1
kind: Workload
metadata: {name: reviews-v1, namespace: default, labels: {app: reviews, version: v1}}
spec:
  serviceAccount: reviews
  endpoints: [{address: 127.0.0.1, ports: {grpc: %d}}]
---
apiVersion: glassmesh.io/v1alpha1
kind: Workload
metadata: {name: reviews-v2, namespace: default, labels: {app: reviews, version: v2}}
spec:
  serviceAccount: reviews
  endpoints: [{address: 127.0.0.1, ports: {grpc: %d}}]
`, p1, p2)
}

func reviewsRoute(w1, w2 int) string {
	return fmt.Sprintf(`apiVersion: glassmesh.io/v1alpha1
kind: TrafficRoute
metadata: {name: reviews, namespace: default}
spec:
  service: reviews
  subsets:
    - {name: v1, labels: {version: v1}}
    - {name: v2, labels: {version: v2}}
  rules:
    - match: {headers: {x-user: {exact: tester}}}
      destinations: [{subset: v2, weight: 100}]
    - destinations: [{subset: v1, weight: %d}, {subset: v2, weight: %d}]
      timeout: 5s
`, w1, w2)
}

func writeFile(t testing.TB, path, body string) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// xdsClient dials target through glassmesh with grpc-go's real xDS client,
// as a proxyless node of its own.
func xdsClient(t testing.TB, xdsAddr, workload, target string, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	bootstrap, err := sidecarconfig.ProxylessBootstrapFor(sidecarconfig.NodeInfo{
		Namespace: "default", Workload: workload, Instance: workload + "-0", IP: "127.0.0.1",
		Labels: map[string]string{"app": workload, "version": "v1"},
	}, sidecarconfig.BootstrapOptions{XDSAddr: xdsAddr})
	if err != nil {
		t.Fatal(err)
	}
	var builder resolver.Builder
	if builder, err = xds.NewXDSResolverWithConfigForTesting(bootstrap); err != nil {
		t.Fatal(err)
	}
	opts = append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithResolvers(builder))
	cc, err := grpc.NewClient(target, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// split makes n calls and counts the answering versions.
func split(t *testing.T, cc *grpc.ClientConn, n int, md ...string) map[string]int {
	t.Helper()
	counts := map[string]int{}
	retries := 0
	for range n {
		for attempt := 0; ; attempt++ {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			if len(md) > 0 {
				ctx = metadata.AppendToOutgoingContext(ctx, md...)
			}
			out, err := demo.Call(ctx, cc, "reviews", nil, grpc.WaitForReady(true))
			cancel()
			// While a route moves between clusters grpc-go can fail a call
			// with "unknown cluster selected" once; a real client retries.
			if status.Code(err) == codes.Unavailable && attempt < 3 {
				retries++
				time.Sleep(20 * time.Millisecond)
				continue
			}
			if err != nil {
				t.Fatalf("call: %v", err)
			}
			counts[out.Fields["version"].GetStringValue()]++
			break
		}
	}
	if retries > n/100+1 {
		t.Fatalf("%d of %d calls needed a retry", retries, n)
	}
	return counts
}

// allTo waits until n calls in a row reach version, and says how long it took.
func allTo(t *testing.T, cc *grpc.ClientConn, version string, n int, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	eventually(t, within, func() error {
		c := split(t, cc, n)
		if c[version] != n {
			return fmt.Errorf("want all %d calls at %s, got %v", n, version, c)
		}
		return nil
	})
	return time.Since(start)
}

func TestRoutingFollowsConfig(t *testing.T) {
	p1, p2 := backend(t, "reviews", "v1"), backend(t, "reviews", "v2")
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "services.yaml"), reviewsService)
	writeFile(t, filepath.Join(dir, "workloads.yaml"), reviewsWorkloads(p1, p2))
	routePath := filepath.Join(dir, "route.yaml")
	writeFile(t, routePath, reviewsRoute(80, 20))
	gm := start(t, dir)
	cc := xdsClient(t, gm.GRPCAddr, "productpage", "xds:///reviews.default.svc.cluster.local:9080")

	t.Run("an 80/20 route splits 1000 calls within 5 points", func(t *testing.T) {
		c := split(t, cc, 1000)
		share := float64(c["v1"]) / 1000
		if share < 0.75 || share > 0.85 {
			t.Fatalf("v1 got %.1f%% of calls (%v), want 80%% ± 5", share*100, c)
		}
	})
	t.Run("a header match routes to its subset", func(t *testing.T) {
		if c := split(t, cc, 100, "x-user", "tester"); c["v2"] != 100 {
			t.Fatalf("tester calls: %v, want all at v2", c)
		}
	})
	t.Run("editing the file moves traffic", func(t *testing.T) {
		writeFile(t, routePath, reviewsRoute(0, 100))
		took := allTo(t, cc, "v2", 20, 10*time.Second)
		t.Logf("traffic moved %s after the edit", took)
	})
	t.Run("a bad file keeps the old routing and is reported", func(t *testing.T) {
		writeFile(t, routePath, strings.Replace(reviewsRoute(0, 100), "weight: 0}", "weight: 20}", 1))
		var st meshConfig
		eventually(t, 10*time.Second, func() error {
			gm.getJSON(t, "/api/mesh/config", &st)
			if len(st.Errors) == 0 {
				return fmt.Errorf("no errors reported yet")
			}
			return nil
		})
		e := st.Errors[0]
		if e.File != routePath || e.Line != 12 || !strings.Contains(e.Message, "120") {
			t.Errorf("error = %+v, want %s line 12 naming the sum 120", e, routePath)
		}
		if c := split(t, cc, 50); c["v2"] != 50 {
			t.Fatalf("after a bad edit traffic moved: %v", c)
		}
	})
	t.Run("fixing the file recovers", func(t *testing.T) {
		writeFile(t, routePath, reviewsRoute(100, 0))
		allTo(t, cc, "v1", 20, 10*time.Second)
		var st meshConfig
		gm.getJSON(t, "/api/mesh/config", &st)
		if len(st.Errors) != 0 {
			t.Fatalf("errors still reported after the fix: %+v", st.Errors)
		}
	})
	t.Run("the client is listed with its ACKed versions", func(t *testing.T) {
		var px proxies
		gm.getJSON(t, "/api/xds/proxies", &px)
		var found bool
		for _, p := range px.Proxies {
			if p.Workload != "productpage" {
				continue
			}
			found = true
			if p.Flavour != "proxyless" || p.Namespace != "default" {
				t.Errorf("proxy %+v: want flavour proxyless in default", p)
			}
			for typ, st := range p.Types {
				if st.Sent == "" || st.Sent != st.Acked {
					t.Errorf("%s: sent %q, acked %q", typ, st.Sent, st.Acked)
				}
			}
			if len(p.Types) < 4 {
				t.Errorf("want LDS, RDS, CDS and EDS, got %v", p.Types)
			}
		}
		if !found {
			t.Fatalf("productpage not in %+v", px)
		}
	})
}

func TestValidateCommand(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "services.yaml"), reviewsService)
	writeFile(t, filepath.Join(dir, "workloads.yaml"), reviewsWorkloads(1001, 1002))
	writeFile(t, filepath.Join(dir, "route.yaml"), reviewsRoute(80, 20))
	if out, err := exec.Command(binary, "validate", dir).CombinedOutput(); err != nil {
		t.Fatalf("valid config: %v\n%s", err, out)
	}
	writeFile(t, filepath.Join(dir, "route.yaml"), reviewsRoute(80, 30))
	out, err := exec.Command(binary, "validate", dir).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("invalid config: want exit 1, got %v\n%s", err, out)
	}
	want := filepath.Join(dir, "route.yaml") + ":12: spec.rules[1].destinations"
	if !strings.Contains(string(out), want) || !strings.Contains(string(out), "110") {
		t.Fatalf("output does not name %q and the sum 110:\n%s", want, out)
	}
}

type meshConfig struct {
	Version string `json:"version"`
	Errors  []struct {
		File    string `json:"file"`
		Line    int    `json:"line"`
		Path    string `json:"path"`
		Message string `json:"message"`
	} `json:"errors"`
}

type proxies struct {
	Proxies []struct {
		ID        string `json:"id"`
		Namespace string `json:"namespace"`
		Workload  string `json:"workload"`
		Flavour   string `json:"flavour"`
		Types     map[string]struct {
			Sent  string `json:"sent"`
			Acked string `json:"acked"`
			Nack  *struct {
				Version string `json:"version"`
				Nonce   string `json:"nonce"`
				Error   string `json:"error"`
			} `json:"nack"`
		} `json:"types"`
	} `json:"proxies"`
}
