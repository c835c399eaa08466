package kube

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"

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
func (k *Source) CanaryStatuses() (map[string][]byte, error) {
	out := map[string][]byte{}
	var err error
	k.eachCanary(func(u *unstructured.Unstructured) {
		raw, ok, _ := unstructured.NestedMap(u.Object, "status")
		if !ok || raw["state"] == nil || err != nil {
			return
		}
		var b []byte
		if b, err = json.Marshal(raw); err == nil {
			out[u.GetNamespace()+"/"+u.GetName()] = b
		}
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// canaryInformer is the Canaries' informer; nil until their CRD is
// established.
func (k *Source) canaryInformer() cache.SharedIndexInformer {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.watched["canaries"]
}

// eachCanary calls f with every Canary in scope in the informer cache.
func (k *Source) eachCanary(f func(u *unstructured.Unstructured)) {
	inf := k.canaryInformer()
	if inf == nil {
		return
	}
	for _, obj := range inf.GetStore().List() {
		if u := obj.(*unstructured.Unstructured); k.cfg.inScope(u.GetNamespace()) {
			f(u)
		}
	}
}

// PatchCanaryStatus queues a JSON merge patch of a Canary's status (an
// object of the fields to set; null removes one). Only the leader writes
// (SetLeading); a follower's patches are dropped.
func (k *Source) PatchCanaryStatus(namespace, name string, status []byte) error {
	b, err := json.Marshal(map[string]json.RawMessage{"status": status})
	if err != nil {
		return err
	}
	k.status.enqueue(statusWrite{what: "canary", gvr: canaryGVR, namespace: namespace, name: name, patch: b})
	return nil
}

// The canary actions asked of the leader through a Canary annotation
// (control/canary's AnnotationAction: a follower forwards its API calls so,
// and an operator can write it with kubectl).

// annotationAction is control/canary's AnnotationAction.
const annotationAction = "glassmesh.io/action"

// ErrObjectNotFound: the object is not in the API server.
var ErrObjectNotFound = errors.New("object not found")

// RequestCanaryAction writes an action request into a Canary's annotation,
// replacing one not yet taken. Any replica may; it is written at once.
func (k *Source) RequestCanaryAction(ctx context.Context, namespace, name string, request []byte) error {
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{annotationAction: string(request)}}})
	if err != nil {
		return err
	}
	_, err = k.status.dyn.Resource(canaryGVR).Namespace(namespace).Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: "glassmesh"})
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("%w: Canary %s/%s", ErrObjectNotFound, namespace, name)
	}
	return err
}

// CanaryStatus returns a Canary's status as JSON, from the informer cache,
// and whether the Canary exists.
func (k *Source) CanaryStatus(namespace, name string) ([]byte, bool) {
	u := k.canary(namespace, name)
	if u == nil {
		return nil, false
	}
	raw, _, _ := unstructured.NestedMap(u.Object, "status")
	b, err := json.Marshal(raw)
	if err != nil {
		return nil, false
	}
	return b, true
}

func (k *Source) canary(namespace, name string) *unstructured.Unstructured {
	inf := k.canaryInformer()
	if inf == nil || !k.cfg.inScope(namespace) {
		return nil
	}
	obj, ok, err := inf.GetStore().GetByKey(namespace + "/" + name)
	if err != nil || !ok {
		return nil
	}
	return obj.(*unstructured.Unstructured)
}

// PendingCanaryAction is an action request on a Canary.
type PendingCanaryAction struct {
	Namespace, Name string
	Value           string // the annotation
	// AnsweredID is the id of the request answered last (the status's
	// lastAction.id), so a request answered but not yet removed is not
	// carried out twice.
	AnsweredID string
}

// PendingCanaryActions lists the action requests on Canaries in scope,
// from the informer cache, by namespace/name.
func (k *Source) PendingCanaryActions() []PendingCanaryAction {
	var out []PendingCanaryAction
	k.eachCanary(func(u *unstructured.Unstructured) {
		if v, ok := u.GetAnnotations()[annotationAction]; ok {
			id, _, _ := unstructured.NestedString(u.Object, "status", "lastAction", "id")
			out = append(out, PendingCanaryAction{Namespace: u.GetNamespace(), Name: u.GetName(), Value: v, AnsweredID: id})
		}
	})
	sort.Slice(out, func(i, j int) bool {
		return out[i].Namespace+"/"+out[i].Name < out[j].Namespace+"/"+out[j].Name
	})
	return out
}

// AnswerCanaryAction queues the leader's answer to the request p (the
// status field lastAction; nil writes none) and then the removal of the
// annotation, unless it changed since (a newer request).
func (k *Source) AnswerCanaryAction(p PendingCanaryAction, answer []byte) error {
	var ws []statusWrite
	if answer != nil {
		b, err := json.Marshal(map[string]map[string]json.RawMessage{"status": {"lastAction": answer}})
		if err != nil {
			return err
		}
		// Sorts after "canary", the state's write: the state an answer
		// refers to is in place when the answer shows.
		ws = append(ws, statusWrite{what: "canary-answer", gvr: canaryGVR, namespace: p.Namespace, name: p.Name, patch: b})
	}
	path := "/metadata/annotations/" + strings.ReplaceAll(strings.ReplaceAll(annotationAction, "~", "~0"), "/", "~1")
	remove, err := json.Marshal([]map[string]any{{"op": "test", "path": path, "value": p.Value}, {"op": "remove", "path": path}})
	if err != nil {
		return err
	}
	ws = append(ws, statusWrite{what: "canary-unannotate", gvr: canaryGVR, namespace: p.Namespace, name: p.Name, patch: remove, object: true})
	k.status.enqueue(ws...)
	return nil
}
