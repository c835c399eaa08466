package source

import (
	"encoding/json"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/glassmesh/glassmesh/control/model"
)

// The canary controller's state lives in each Canary's status on
// Kubernetes: what the leader decided is in the API server, where every
// replica serves it and the next leader resumes from it. The source only
// moves the JSON (control/canary's ObjectStore reads and writes it), so it
// stays free of the controller.

var canaryGVR = schema.GroupVersionResource{Group: model.CRDGroup, Version: model.CRDVersion, Resource: "canaries"}

// CanaryStatuses returns the status, as JSON, of every Canary in scope that
// carries a canary state, by "namespace/name". It reads the informer cache.
func (k *Kubernetes) CanaryStatuses() (map[string][]byte, error) {
	k.mu.Lock()
	inf := k.watched["canaries"]
	k.mu.Unlock()
	out := map[string][]byte{}
	if inf == nil {
		return out, nil
	}
	for _, obj := range inf.GetStore().List() {
		u := obj.(*unstructured.Unstructured)
		if !k.cfg.inScope(u.GetNamespace()) {
			continue
		}
		raw, ok, _ := unstructured.NestedMap(u.Object, "status")
		if !ok || raw["state"] == nil {
			continue
		}
		b, err := json.Marshal(raw)
		if err != nil {
			return nil, err
		}
		out[u.GetNamespace()+"/"+u.GetName()] = b
	}
	return out, nil
}

// PatchCanaryStatus queues a JSON merge patch of a Canary's status (an
// object of the fields to set; null removes one). Only the leader writes
// (SetLeading); a follower's patches are dropped.
func (k *Kubernetes) PatchCanaryStatus(namespace, name string, status []byte) error {
	b, err := json.Marshal(map[string]json.RawMessage{"status": status})
	if err != nil {
		return err
	}
	k.status.enqueue(statusWrite{what: "canary", gvr: canaryGVR, namespace: namespace, name: name, patch: b})
	return nil
}
