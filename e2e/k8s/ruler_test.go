package k8s

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/glassmesh/glassmesh/e2e/prometheustest"
)

// ruleGroups counts the rule groups a replica evaluates (/api/v1/rules).
func (r *replica) ruleGroups() (int, error) {
	resp, err := http.Get("http://" + r.httpAddr + "/api/v1/rules")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var body struct {
		Data struct {
			Groups []json.RawMessage `json:"groups"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return 0, err
	}
	return len(body.Data.Groups), nil
}

// lastSample is the time of the newest sample of the one series q selects
// in the store at prom, and that series' labels.
func lastSample(prom, q string) (time.Time, map[string]string, error) {
	r, err := promQuery(prom, "timestamp("+q+")")
	if err != nil {
		return time.Time{}, nil, err
	}
	if len(r) != 1 {
		return time.Time{}, nil, fmt.Errorf("%s: %d series in the store, want 1: %+v", q, len(r), r)
	}
	var sec float64
	fmt.Sscan(r[0].Value[1].(string), &sec)
	return time.UnixMilli(int64(sec * 1000)), r[0].Metric, nil
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
		_, lbls, err := lastSample(prom, "mesh:one")
		if err == nil && lbls["replica"] != "" {
			err = fmt.Errorf("mesh:one carries replica %q: rule results are the mesh's, not a replica's", lbls["replica"])
		}
		return err
	})
	// The follower has run long enough to have evaluated by now, if it did.
	for range 10 {
		time.Sleep(500 * time.Millisecond)
		if n, err := b.ruleGroups(); err != nil || n != 0 {
			t.Fatalf("the follower evaluates %d rule groups (%v)", n, err)
		}
	}
	if n, err := a.ruleGroups(); err != nil || n != 1 {
		t.Fatalf("the leader evaluates %d rule groups (%v), want 1", n, err)
	}
	// A clean stop hands the lead over; the new leader goes on writing the
	// same series.
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
	led := time.Now()
	within(t, 60*time.Second, "the new leader's samples in the same series", func() error {
		last, _, err := lastSample(prom, "mesh:one")
		if err == nil && !last.After(led) {
			err = fmt.Errorf("the newest mesh:one sample is from %s, before replica-b led at %s", last, led)
		}
		return err
	})
}
