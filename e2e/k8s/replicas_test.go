package k8s

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
)

var canaries = schema.GroupVersionResource{Group: "glassmesh.io", Version: "v1alpha1", Resource: "canaries"}

// replica is one `glassmesh run` of several sharing the API server.
type replica struct {
	*process
	name string
}

// startReplica runs glassmesh as one replica of a leader-elected set (a
// short lease, so a killed leader is replaced within seconds).
func startReplica(t *testing.T, name, ns string, extra ...string) *replica {
	t.Helper()
	show := func(line string) bool {
		return strings.Contains(line, "leading") || strings.Contains(line, "following") || strings.Contains(line, "canary decision")
	}
	args := append([]string{"--source", "kubernetes", "--kubeconfig", server.Kubeconfig, "--kubernetes.namespaces", ns,
		"--leader-elect.namespace", ns, "--leader-elect.identity", name,
		"--leader-elect.lease-duration", "3s", "--leader-elect.renew-deadline", "2s", "--leader-elect.retry-period", "500ms"}, extra...)
	p := startGlassmesh(t, name, show, args...)
	return &replica{process: p, name: name}
}

// leader reads the replica's glassmesh_leader gauge.
func (r *replica) leader() (bool, error) {
	v, found, err := readMetric("http://"+r.httpAddr+"/metrics", "glassmesh_leader")
	if err == nil && !found {
		err = fmt.Errorf("%s: no glassmesh_leader in /metrics", r.name)
	}
	return v == 1, err
}

// readMetric sums the samples of the metric name on the /metrics page at
// url; found says whether it has any.
func readMetric(url, name string) (sum float64, found bool, err error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, false, err
	}
	defer resp.Body.Close()
	page, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, false, err
	}
	for line := range strings.Lines(string(page)) {
		if strings.HasPrefix(line, name+" ") || strings.HasPrefix(line, name+"{") {
			f := strings.Fields(line)
			v, err := strconv.ParseFloat(f[len(f)-1], 64)
			if err != nil {
				return 0, false, fmt.Errorf("%s: %q: %w", url, line, err)
			}
			sum, found = sum+v, true
		}
	}
	return sum, found, nil
}

// servedWeights is the weights reviews' last rule has in the replica's
// serving config (/api/mesh/config: the canary overlay applied).
func (r *replica) servedWeights(ns string) (map[string]int64, error) {
	resp, err := http.Get("http://" + r.httpAddr + "/api/mesh/config")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var st struct {
		Resources struct {
			TrafficRoutes []struct {
				Metadata struct{ Name, Namespace string }
				Spec     struct {
					Rules []struct {
						Destinations []struct {
							Subset string
							Weight int64
						}
					}
				}
			}
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return nil, err
	}
	for _, tr := range st.Resources.TrafficRoutes {
		if tr.Metadata.Namespace == ns && tr.Metadata.Name == "reviews" && len(tr.Spec.Rules) > 0 {
			out := map[string]int64{}
			for _, d := range tr.Spec.Rules[len(tr.Spec.Rules)-1].Destinations {
				out[d.Subset] = d.Weight
			}
			return out, nil
		}
	}
	return nil, fmt.Errorf("%s serves no route %s/reviews", r.name, ns)
}

// canaryState is what the leader recorded in the Canary's status.
type canaryState struct {
	State     string
	Step      int
	Weights   map[string]int64
	Decisions []struct {
		At      time.Time
		Verdict string
		Step    int
		By      string
	}
	LastAction *struct {
		ID, Action, By, Replica, Error string
		Code                           int
	}
	annotated bool // carries a glassmesh.io/action request
}

func readCanary(ctx context.Context, dyn dynamic.Interface, ns string) (canaryState, error) {
	var st canaryState
	u, err := dyn.Resource(canaries).Namespace(ns).Get(ctx, "reviews", metav1.GetOptions{})
	if err != nil {
		return st, err
	}
	raw, _, _ := unstructured.NestedMap(u.Object, "status")
	b, _ := json.Marshal(raw)
	err = json.Unmarshal(b, &st)
	_, st.annotated = u.GetAnnotations()["glassmesh.io/action"]
	return st, err
}

// act posts a canary action to a replica's API.
func (r *replica) act(ns, action string) (int, canaryState, error) {
	var st canaryState
	resp, err := http.Post("http://"+r.httpAddr+"/api/canaries/"+ns+"/reviews/"+action, "application/json", strings.NewReader(`{"reason":"e2e"}`))
	if err != nil {
		return 0, st, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, st, err
	}
	if resp.StatusCode == http.StatusOK {
		err = json.Unmarshal(b, &st)
	} else {
		err = fmt.Errorf("%s", b)
	}
	return resp.StatusCode, st, err
}

// TestTwoReplicasOneLeaderRunsTheCanary: two glassmesh replicas share the
// API server; one wins the Lease and runs the canary, recording each
// decision in the Canary's status, while the other serves the same weights
// and forwards the actions asked of it to the leader through the Canary (as
// kubectl annotate can). The leader is killed (no hand-over: the lease has to expire); the other
// takes over and finishes the canary from the recorded step.
func TestTwoReplicasOneLeaderRunsTheCanary(t *testing.T) {
	// No backends: weights are read from /api/mesh/config, not from calls.
	ports := map[string]int{"v1": 19081, "v2": 19082}
	_, dyn, ns := reviewsMesh(t, func(_, version string) int { return ports[version] })
	ctx := context.Background()
	// Ten steps of 2 s, no gates and no traffic needed: what is tested is
	// who decides and that the decisions carry over, not the gates.
	steps := []any{int64(10), int64(20), int64(30), int64(40), int64(50), int64(60), int64(70), int64(80), int64(90), int64(100)}
	if _, err := dyn.Resource(canaries).Namespace(ns).Create(ctx, &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "glassmesh.io/v1alpha1", "kind": "Canary",
		"metadata": map[string]any{"name": "reviews", "namespace": ns},
		"spec": map[string]any{"route": "reviews", "stable": "v1", "canary": "v2", "steps": steps,
			"interval": "2s", "minRequests": int64(0), "maxInconclusive": int64(3)},
	}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	a := startReplica(t, "replica-a", ns)
	within(t, 60*time.Second, "replica-a leads", func() error {
		if ok, err := a.leader(); !ok {
			return fmt.Errorf("not leading (%v)", err)
		}
		return nil
	})
	b := startReplica(t, "replica-b", ns)
	within(t, 60*time.Second, "the canary at step 3, recorded in its status", func() error {
		st, err := readCanary(ctx, dyn, ns)
		if err != nil {
			return err
		}
		if st.Step < 3 || st.State != "progressing" {
			return fmt.Errorf("status %s at step %d", st.State, st.Step)
		}
		return nil
	})
	if ok, err := b.leader(); ok || err != nil {
		t.Fatalf("replica-b leads too (%v): two leaders", err)
	}
	within(t, 25*time.Second, "the follower serving the leader's weights", func() error {
		st, err := readCanary(ctx, dyn, ns)
		if err != nil {
			return err
		}
		wa, errA := a.servedWeights(ns)
		wb, errB := b.servedWeights(ns)
		if errA != nil || errB != nil {
			return fmt.Errorf("%v %v", errA, errB)
		}
		if wb["v2"] == 0 || wb["v2"] != st.Weights["v2"] || wa["v2"] != wb["v2"] {
			return fmt.Errorf("leader serves %v, follower %v, status says %v", wa, wb, st.Weights)
		}
		return nil
	})
	// An action asked of the follower is the leader's to carry out: the
	// follower forwards it through the Canary and answers with the state
	// the leader recorded.
	asked := time.Now()
	code, got, err := b.act(ns, "pause")
	if code != http.StatusOK || got.State != "paused" {
		t.Fatalf("pause on the follower: %d %s (%v), want 200 and paused", code, got.State, err)
	}
	if d := got.Decisions[len(got.Decisions)-1]; d.Verdict != "pause" || d.By != "api" {
		t.Errorf("the last decision is %+v, want the pause by the api", d)
	}
	t.Logf("the follower's pause answered in %s", time.Since(asked).Round(time.Millisecond))
	within(t, 25*time.Second, "the answered request removed", func() error {
		st, err := readCanary(ctx, dyn, ns)
		if err != nil {
			return err
		}
		if st.annotated || st.LastAction == nil || st.LastAction.Replica != "replica-b" || st.LastAction.Code != http.StatusOK {
			return fmt.Errorf("annotated %v, last action %+v", st.annotated, st.LastAction)
		}
		return nil
	})
	// The leader answers what cannot be done as the API would, through
	// the follower.
	if code, _, err := b.act(ns, "pause"); code != http.StatusConflict {
		t.Errorf("pausing a paused canary on the follower: %d (%v), want 409", code, err)
	}
	// An operator asks with kubectl annotate: resume.
	if _, err := dyn.Resource(canaries).Namespace(ns).Patch(ctx, "reviews", types.MergePatchType,
		[]byte(`{"metadata":{"annotations":{"glassmesh.io/action":"resume"}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	within(t, 25*time.Second, "the annotation's resume carried out", func() error {
		st, err := readCanary(ctx, dyn, ns)
		if err != nil {
			return err
		}
		if st.State != "progressing" || st.annotated || st.LastAction == nil || st.LastAction.Action != "resume" || st.LastAction.By != "annotation" {
			return fmt.Errorf("%s, annotated %v, last action %+v", st.State, st.annotated, st.LastAction)
		}
		return nil
	})

	// Kill the leader: no hand-over, the lease must expire.
	if err := a.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = a.cmd.Wait()
	killed := time.Now()
	before, err := readCanary(ctx, dyn, ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("killed the leader at step %d of 10", before.Step)
	within(t, 60*time.Second, "replica-b leads", func() error {
		if ok, err := b.leader(); !ok {
			return fmt.Errorf("not leading (%v)", err)
		}
		return nil
	})
	t.Logf("replica-b leads %s after the kill (lease 3 s)", time.Since(killed).Round(10*time.Millisecond))
	within(t, 90*time.Second, "the canary succeeded", func() error {
		st, err := readCanary(ctx, dyn, ns)
		if err != nil {
			return err
		}
		if st.State != "succeeded" {
			return fmt.Errorf("status %s at step %d", st.State, st.Step)
		}
		return nil
	})
	st, err := readCanary(ctx, dyn, ns)
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	after := 0
	for _, d := range st.Decisions {
		count[d.Verdict]++
		if d.At.After(killed) {
			after++
		}
	}
	if count["start"] != 1 || count["advance"] != 9 || count["promote"] != 1 || count["pause"] != 1 || count["resume"] != 1 {
		t.Errorf("decisions %v, want 1 start, 9 advances, 1 pause, 1 resume and 1 promote over both leaders: %+v", count, st.Decisions)
	}
	if after == 0 || after > 10-before.Step+1 {
		t.Errorf("%d decisions after the kill at step %d: the new leader did not resume from the recorded step: %+v", after, before.Step, st.Decisions)
	}
	if w, err := b.servedWeights(ns); err != nil || w["v2"] != 100 {
		t.Errorf("replica-b serves %v (%v), want all at v2", w, err)
	}
	// The Canary is valid: the leader says so in its status too.
	if c, _, err := validCondition(ctx, dyn, canaries, ns, "reviews"); err != nil || c["status"] != "True" {
		t.Errorf("Valid condition %v (%v)", c, err)
	}
}
