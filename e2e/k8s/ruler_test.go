package k8s

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/glassmesh/glassmesh/e2e/prometheustest"
)

// replicasWriting lists the replica labels of the series q returns in the
// store at prom, sorted.
func replicasWriting(prom, q string) ([]string, error) {
	resp, err := http.Get(prom + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body struct {
		Data struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, err
	}
	var out []string
	for _, r := range body.Data.Result {
		out = append(out, r.Metric["replica"])
	}
	sort.Strings(out)
	return out, nil
}

// TestTwoReplicasOnlyTheLeaderEvaluatesRules runs two replicas that
// remote-write to one Prometheus and read it (--metrics.query-url): only
// the leader evaluates the rules, so the store holds one recording, not
// one per replica (which a sum would count twice); when the leader stops,
// the other takes over and the old leader's series ends.
func TestTwoReplicasOnlyTheLeaderEvaluatesRules(t *testing.T) {
	prom := prometheustest.Start(t)
	ns := newNamespace(t, kubernetes.NewForConfigOrDie(server.Config))
	rules := filepath.Join(t.TempDir(), "mesh.rules.yml")
	if err := os.WriteFile(rules, []byte("groups:\n  - name: mesh\n    rules:\n      - record: mesh:one\n        expr: vector(1)\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	replica := func(name string) *replica {
		return startReplica(t, name, ns, "--remote-write-url", prom+"/api/v1/write", "--remote-write.external-label", "replica="+name,
			"--metrics.query-url", prom, "--rules", rules, "--rules.interval", "1s")
	}
	a := replica("replica-a")
	within(t, 60*time.Second, "replica-a leads", func() error {
		if ok, err := a.leader(); !ok {
			return fmt.Errorf("not leading (%v)", err)
		}
		return nil
	})
	b := replica("replica-b")
	within(t, 60*time.Second, "the leader's recording in the store", func() error {
		got, err := replicasWriting(prom, "mesh:one")
		if err != nil || strings.Join(got, ",") != "replica-a" {
			return fmt.Errorf("mesh:one written by %v (%v), want replica-a alone", got, err)
		}
		return nil
	})
	// The follower has run long enough to have written by now, if it did.
	for range 10 {
		time.Sleep(500 * time.Millisecond)
		if got, err := replicasWriting(prom, "mesh:one"); err != nil || strings.Join(got, ",") != "replica-a" {
			t.Fatalf("mesh:one written by %v (%v): the follower evaluates too", got, err)
		}
	}
	// A clean stop hands the lead over, and stopping its rules marks the
	// old leader's series stale.
	if err := a.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	_ = a.cmd.Wait()
	within(t, 60*time.Second, "replica-b leads", func() error {
		if ok, err := b.leader(); !ok {
			return fmt.Errorf("not leading (%v)", err)
		}
		return nil
	})
	within(t, 60*time.Second, "the new leader's recording in the store", func() error {
		got, err := replicasWriting(prom, "mesh:one")
		if err != nil || !strings.Contains(strings.Join(got, ","), "replica-b") {
			return fmt.Errorf("mesh:one written by %v (%v), want replica-b", got, err)
		}
		return nil
	})
}
