package source

import (
	"encoding/json"
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/glassmesh/glassmesh/control/canary"
	"github.com/glassmesh/glassmesh/control/model"
)

// MaxStatusDecisions bounds the decisions kept in a Canary's status: the
// whole object must stay well within etcd's 1.5 MB.
const MaxStatusDecisions = 100

// CanaryStates is a canary.StateStore over the Canary objects' status:
// what the leader decided is in the API server, where every replica serves
// it and the next leader resumes from it. Load reads the informer cache;
// Save queues a status patch (made by the leader only, see SetLeading).
func (k *Kubernetes) CanaryStates() canary.StateStore { return canaryStates{k} }

type canaryStates struct{ k *Kubernetes }

var canaryGVR = schema.GroupVersionResource{Group: model.CRDGroup, Version: model.CRDVersion, Resource: "canaries"}

// Load implements canary.StateStore: the state in the status of every
// Canary in scope that has one.
func (s canaryStates) Load() ([]*canary.Status, error) {
	k := s.k
	k.mu.Lock()
	inf := k.watched["canaries"]
	k.mu.Unlock()
	if inf == nil {
		return nil, nil
	}
	var out []*canary.Status
	for _, obj := range inf.GetStore().List() {
		u := obj.(*unstructured.Unstructured)
		if !k.cfg.inScope(u.GetNamespace()) {
			continue
		}
		st, err := canaryStatusOf(u)
		if err != nil {
			return nil, err
		}
		if st != nil {
			out = append(out, st)
		}
	}
	return out, nil
}

// canaryStatusOf reads the controller's state from a Canary's status; nil
// when it has none yet.
func canaryStatusOf(u *unstructured.Unstructured) (*canary.Status, error) {
	raw, ok, _ := unstructured.NestedMap(u.Object, "status")
	if !ok || raw["state"] == nil {
		return nil, nil
	}
	b, err := json.Marshal(raw)
	if err != nil {
		return nil, err
	}
	st := &canary.Status{}
	if err := json.Unmarshal(b, st); err != nil {
		return nil, fmt.Errorf("canary state in the status of Canary %s/%s: %w", u.GetNamespace(), u.GetName(), err)
	}
	st.Namespace, st.Name = u.GetNamespace(), u.GetName()
	return st, nil
}

// Save implements canary.StateStore.
func (s canaryStates) Save(st *canary.Status) error {
	c := *st
	if n := len(c.Decisions) - MaxStatusDecisions; n > 0 {
		c.Decisions = c.Decisions[n:]
	}
	b, err := json.Marshal(&c)
	if err != nil {
		return err
	}
	var status map[string]any
	if err := json.Unmarshal(b, &status); err != nil {
		return err
	}
	if c.NextEvaluationAt.IsZero() {
		status["nextEvaluationAt"] = nil // a merge patch leaves out what it does not null
	}
	if b, err = json.Marshal(map[string]any{"status": status}); err != nil {
		return err
	}
	s.k.status.enqueue(statusWrite{what: "canary", gvr: canaryGVR, namespace: st.Namespace, name: st.Name, patch: b})
	return nil
}

// Remove implements canary.StateStore: the state goes with its Canary.
func (s canaryStates) Remove(string) error { return nil }
