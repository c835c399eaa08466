package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/glassmesh/glassmesh/demo"
)

// teamFile is one team's config: service svc in namespace ns with two
// versions (ports p1, p2) and a route weighting them w1/w2.
func teamFile(ns, svc string, p1, p2, w1, w2 int) string {
	return fmt.Sprintf(`apiVersion: glassmesh.io/v1alpha1
kind: Service
metadata: {name: %[2]s, namespace: %[1]s}
spec:
  ports: [{name: grpc, port: 9080, protocol: GRPC}]
  selector: {app: %[2]s}
---
apiVersion: glassmesh.io/v1alpha1
kind: Workload
metadata: {name: %[2]s-v1, namespace: %[1]s, labels: {app: %[2]s, version: v1}}
spec:
  endpoints: [{address: 127.0.0.1, ports: {grpc: %[3]d}}]
---
apiVersion: glassmesh.io/v1alpha1
kind: Workload
metadata: {name: %[2]s-v2, namespace: %[1]s, labels: {app: %[2]s, version: v2}}
spec:
  endpoints: [{address: 127.0.0.1, ports: {grpc: %[4]d}}]
---
apiVersion: glassmesh.io/v1alpha1
kind: TrafficRoute
metadata: {name: %[2]s, namespace: %[1]s}
spec:
  service: %[2]s
  subsets:
    - {name: v1, labels: {version: v1}}
    - {name: v2, labels: {version: v2}}
  rules:
    - destinations: [{subset: v1, weight: %[5]d}, {subset: v2, weight: %[6]d}]
`, ns, svc, p1, p2, w1, w2)
}

// versions makes n calls to service svc and counts the answering versions.
func versions(t *testing.T, cc *grpc.ClientConn, svc string, n int) map[string]int {
	t.Helper()
	counts := map[string]int{}
	for range n {
		for attempt := 0; ; attempt++ {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			out, err := demo.Call(ctx, cc, svc, nil, grpc.WaitForReady(true))
			cancel()
			if status.Code(err) == codes.Unavailable && attempt < 3 {
				time.Sleep(20 * time.Millisecond) // a route moving between clusters
				continue
			}
			if err != nil {
				t.Fatalf("call %s: %v", svc, err)
			}
			counts[out.Fields["version"].GetStringValue()]++
			break
		}
	}
	return counts
}

// One team's invalid route is set aside: its last good routing keeps
// serving, and another team's endpoint and weight changes go through at
// once, as grpc-go's real xDS client sees them.
func TestOneTeamsMistakeDoesNotHoldAnother(t *testing.T) {
	a1, a2 := backend(t, "a", "v1"), backend(t, "a", "v2")
	b1, b2, b1moved := backend(t, "b", "v1"), backend(t, "b", "v2"), backend(t, "b", "v1-moved")
	dir := t.TempDir()
	aPath, bPath := filepath.Join(dir, "team-a.yaml"), filepath.Join(dir, "team-b.yaml")
	writeFile(t, aPath, teamFile("team-a", "a", a1, a2, 100, 0))
	writeFile(t, bPath, teamFile("team-b", "b", b1, b2, 100, 0))
	gm := start(t, dir)
	ccA := xdsClient(t, gm.GRPCAddr, "caller", "xds:///a.team-a.svc.cluster.local:9080")
	ccB := xdsClient(t, gm.GRPCAddr, "caller", "xds:///b.team-b.svc.cluster.local:9080")
	all := func(cc *grpc.ClientConn, svc, version string) func() error {
		return func() error {
			if got := versions(t, cc, svc, 10); got[version] != 10 {
				return fmt.Errorf("%s answered by %v, want all %s", svc, got, version)
			}
			return nil
		}
	}
	eventually(t, 10*time.Second, all(ccA, "a", "v1"))
	eventually(t, 10*time.Second, all(ccB, "b", "v1"))

	// Team a breaks its route (weights sum to 120).
	writeFile(t, aPath, teamFile("team-a", "a", a1, a2, 60, 60))
	var st containStatus
	eventually(t, 10*time.Second, func() error {
		gm.getJSON(t, "/api/mesh/config", &st)
		if len(st.InvalidObjects) != 1 {
			return fmt.Errorf("invalid objects %+v", st.InvalidObjects)
		}
		return nil
	})
	o := st.InvalidObjects[0]
	if o.Kind != "TrafficRoute" || o.Namespace != "team-a" || o.Serving != "lastGood" || len(o.Errors) != 1 ||
		o.Errors[0].File != aPath || o.Errors[0].Line != 29 || o.Since.IsZero() {
		t.Fatalf("invalid object %+v", o)
	}

	t.Run("team b's endpoint change reaches the client", func(t *testing.T) {
		edited := time.Now()
		writeFile(t, bPath, teamFile("team-b", "b", b1moved, b2, 100, 0))
		eventually(t, 10*time.Second, all(ccB, "b", "v1-moved"))
		t.Logf("team b's new endpoint serving %s after the edit", time.Since(edited).Round(time.Millisecond))
	})
	t.Run("team b's weight change reaches the client", func(t *testing.T) {
		edited := time.Now()
		writeFile(t, bPath, teamFile("team-b", "b", b1moved, b2, 0, 100))
		eventually(t, 10*time.Second, all(ccB, "b", "v2"))
		t.Logf("team b's new weights serving %s after the edit", time.Since(edited).Round(time.Millisecond))
	})
	t.Run("team a keeps its last good routing", func(t *testing.T) {
		if got := versions(t, ccA, "a", 50); got["v1"] != 50 {
			t.Fatalf("a answered by %v, want all v1", got)
		}
	})
	t.Run("fixing team a's route recovers it", func(t *testing.T) {
		writeFile(t, aPath, teamFile("team-a", "a", a1, a2, 0, 100))
		eventually(t, 10*time.Second, all(ccA, "a", "v2"))
		gm.getJSON(t, "/api/mesh/config", &st)
		if len(st.InvalidObjects) != 0 || len(st.Errors) != 0 {
			t.Fatalf("still reported: %+v", st)
		}
	})
}

type containStatus struct {
	Errors         []struct{ File, Message string }
	InvalidObjects []struct {
		Kind, Namespace, Name, Origin, Serving string
		Errors                                 []struct {
			File    string
			Line    int
			Message string
		}
		Since time.Time
	}
}
