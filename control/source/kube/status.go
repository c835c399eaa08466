package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/glassmesh/glassmesh/control/model"
	"github.com/glassmesh/glassmesh/control/source"
	"github.com/glassmesh/glassmesh/control/source/internal/unstr"
)

// What glassmesh writes back to the API server, on the leader only: a Valid
// condition in the status of every glassmesh object (and a Warning Event
// when one becomes invalid, naming the field), and the canaries' states
// (canary.go). Writes are queued and made by one goroutine, so
// a slow API server never holds up a config push; the latest wanted write
// of an object replaces an older one still queued.

// ConditionValid is the condition type glassmesh sets on its objects.
const ConditionValid = "Valid"

// Reasons of the Valid condition.
const (
	ReasonValid   = "Valid"
	ReasonInvalid = "Invalid"
)

// EventController is the reportingController of glassmesh's Events.
const EventController = "glassmesh.io/control-plane"

// statusWriter is the queue of status writes and Events, with the source's
// clients; idle until SetLeading(true).
type statusWriter struct {
	mu        sync.Mutex
	leading   bool
	identity  string
	started   bool
	last      *model.Result
	lastAside []source.ObjectStatus
	pending   map[string]statusWrite // by write.key
	forbidden map[string]bool        // resources whose writes RBAC refused (logged once)
	kick      chan struct{}
	dyn       dynamic.Interface
	cs        kubernetes.Interface
}

// statusWrite is one queued status patch, and the Event that goes with it.
type statusWrite struct {
	what      string // "conditions" or "canary": writes of one object that do not replace each other
	gvr       schema.GroupVersionResource
	namespace string
	name      string
	patch     []byte // a JSON merge patch of the status subresource
	event     *eventsv1.Event
	// object: patch is a JSON patch of the object itself, not a merge
	// patch of its status; a failed "test" in it means nothing to do.
	object bool
	// conflictDrops: patch carries the resourceVersion it was made from;
	// a conflict drops it (the object changed, and its next report writes
	// again from the new one).
	conflictDrops bool
}

// SetLeading turns the writes on (this replica won the leader election;
// identity names it in Events) or off. Turning them on reports the last
// build's findings at once.
func (k *Source) SetLeading(leading bool, identity string) {
	w := &k.status
	w.mu.Lock()
	if leading && !w.started {
		w.started = true
		go k.writeLoop()
	}
	w.leading, w.identity = leading, identity
	if !leading {
		w.pending = nil
	}
	last, aside := w.last, w.lastAside
	w.mu.Unlock()
	if leading && last != nil {
		k.report(*last, aside)
	}
}

// enqueue queues writes, replacing older ones of the same objects.
func (w *statusWriter) enqueue(ws ...statusWrite) {
	if len(ws) == 0 {
		return
	}
	w.mu.Lock()
	if !w.leading {
		w.mu.Unlock()
		return
	}
	if w.pending == nil {
		w.pending = map[string]statusWrite{}
	}
	for _, x := range ws {
		w.pending[x.key()] = x
	}
	w.mu.Unlock()
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// writeLoop makes the queued writes. A failed write is retried (with the
// newest wanted content) after a second, unless the object is gone.
func (k *Source) writeLoop() {
	w := &k.status
	for range w.kick {
		w.mu.Lock()
		batch := w.pending
		w.pending = nil
		w.mu.Unlock()
		keys := make([]string, 0, len(batch))
		for key := range batch {
			keys = append(keys, key)
		}
		sort.Strings(keys)
		var failed []statusWrite
		for _, key := range keys {
			if err := k.writeOne(batch[key]); err != nil {
				k.logger.Warn("kubernetes source: writing status failed; will retry", "object", key, "error", err)
				failed = append(failed, batch[key])
			}
		}
		if len(failed) > 0 {
			time.AfterFunc(time.Second, func() {
				w.mu.Lock()
				for _, x := range failed {
					key := x.key()
					if _, newer := w.pending[key]; !newer && w.leading {
						if w.pending == nil {
							w.pending = map[string]statusWrite{}
						}
						w.pending[key] = x
					}
				}
				w.mu.Unlock()
				select {
				case w.kick <- struct{}{}:
				default:
				}
			})
		}
	}
}

func (x statusWrite) key() string {
	return x.gvr.Resource + "/" + x.namespace + "/" + x.name + "#" + x.what
}

func (k *Source) writeOne(x statusWrite) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	w := &k.status
	res := w.dyn.Resource(x.gvr).Namespace(x.namespace)
	var err error
	if x.object {
		_, err = res.Patch(ctx, x.name, types.JSONPatchType, x.patch, metav1.PatchOptions{FieldManager: "glassmesh"})
		if apierrors.IsInvalid(err) {
			return nil // its "test" failed: the object changed since, nothing to undo
		}
	} else {
		_, err = res.Patch(ctx, x.name, types.MergePatchType, x.patch, metav1.PatchOptions{FieldManager: "glassmesh"}, "status")
	}
	switch {
	case apierrors.IsNotFound(err):
		return nil // deleted since: nothing to say about it
	case apierrors.IsConflict(err) && x.conflictDrops:
		return nil
	case apierrors.IsForbidden(err):
		// Retrying cannot help until RBAC changes; the next report tries
		// again. Said once per resource.
		w.mu.Lock()
		first := !w.forbidden[x.gvr.Resource]
		if w.forbidden == nil {
			w.forbidden = map[string]bool{}
		}
		w.forbidden[x.gvr.Resource] = true
		w.mu.Unlock()
		if first {
			k.logger.Warn("kubernetes source: not allowed to write this resource's status (RBAC); skipped", "object", x.key(), "error", err)
		}
		return nil
	case err != nil:
		return err
	}
	if x.event != nil {
		if _, err := w.cs.EventsV1().Events(x.namespace).Create(ctx, x.event, metav1.CreateOptions{}); err != nil {
			k.logger.Warn("kubernetes source: creating an Event failed", "object", x.namespace+"/"+x.name, "error", err)
		}
	}
	return nil
}

// report compares what a build found about each glassmesh object with the
// Valid condition it carries, and queues the writes that bring them in line.
// aside is what the consumer set aside of the build: which version of each
// invalid object serves.
func (k *Source) report(r model.Result, aside []source.ObjectStatus) {
	w := &k.status
	w.mu.Lock()
	w.last, w.lastAside = &r, aside
	leading, identity := w.leading, w.identity
	w.mu.Unlock()
	if !leading {
		return
	}
	// What the build says of each object, by origin.
	errs := map[string][]model.Diagnostic{}
	for _, d := range r.Errors {
		errs[d.File] = append(errs[d.File], d)
	}
	serving := map[string]model.Serving{}
	for _, o := range aside {
		serving[o.Origin] = o.Serving
	}
	conflicts := map[string]string{} // imports that lost their service to another route
	for _, d := range r.Warnings {
		if strings.HasPrefix(d.Message, source.NotImported) {
			conflicts[d.File] = d.Message
		}
	}
	now := time.Now()
	var writes []statusWrite
	k.mu.Lock()
	k.eachObject(k.watched, func(plural string, u *unstructured.Unstructured) {
		var msgs []string
		o := source.KubernetesOrigin(plural, u.GetNamespace(), u.GetName()).File
		for _, d := range errs[o] {
			msgs = append(msgs, fieldMessage(d))
		}
		cond := validCondition(msgs, serving[o], u.GetGeneration())
		if x, ok := conditionWrite(plural, u, cond, now, identity); ok {
			writes = append(writes, x)
		}
	})
	k.eachObject(k.imports, func(plural string, u *unstructured.Unstructured) {
		if plural != source.HTTPRoutesPlural {
			return // TrafficSplits have no status
		}
		file := source.ImportedOrigin(plural, u).File
		want := routeConditions(errs[file], conflicts[file], serving[file], u.GetGeneration())
		if x, ok := parentsWrite(u, want, now); ok {
			writes = append(writes, x)
		}
	})
	k.mu.Unlock()
	w.enqueue(writes...)
}

// fieldMessage is "path: message", the diagnostic without the origin.
func fieldMessage(d model.Diagnostic) string {
	if d.Path == "" {
		return d.Message
	}
	return d.Path + ": " + d.Message
}

// validCondition is the Valid condition an object should carry: errs are
// its errors, serving which version of it serves when it has some.
func validCondition(errs []string, serving model.Serving, generation int64) metav1.Condition {
	c := metav1.Condition{Type: ConditionValid, ObservedGeneration: generation}
	if len(errs) > 0 {
		c.Status, c.Reason = metav1.ConditionFalse, ReasonInvalid
		c.Message = strings.Join(errs, "; ") + servingNote(serving)
		return c
	}
	c.Status, c.Reason, c.Message = metav1.ConditionTrue, ReasonValid, "accepted"
	return c
}

// servingNote says, after an invalid object's errors, what serves of it.
func servingNote(serving model.Serving) string {
	if serving == model.ServingLastGood {
		return " (its last good version keeps serving; other objects are not held back)"
	}
	return " (no version of it serves; other objects are not held back)"
}

// maxConditionMessage keeps a condition's message within what the API
// server takes (metav1.Condition allows 32768).
const maxConditionMessage = 4096

// conditionWrite is the write that gives u the condition want, if it does
// not carry it yet: the status patch and, when it became invalid or its
// errors changed, a Warning Event.
func conditionWrite(plural string, u *unstructured.Unstructured, want metav1.Condition, now time.Time, identity string) (statusWrite, bool) {
	if len(want.Message) > maxConditionMessage {
		want.Message = want.Message[:maxConditionMessage-3] + "..."
	}
	have, found := currentCondition(u, want.Type)
	if found && have.Status == want.Status && have.Reason == want.Reason && have.Message == want.Message && have.ObservedGeneration == want.ObservedGeneration {
		return statusWrite{}, false
	}
	want.LastTransitionTime = metav1.NewTime(now.Truncate(time.Second))
	if found && have.Status == want.Status {
		want.LastTransitionTime = have.LastTransitionTime
	}
	patch, _ := json.Marshal(map[string]any{"status": map[string]any{
		"observedGeneration": u.GetGeneration(),
		"conditions":         []metav1.Condition{want},
	}})
	gvr := schema.GroupVersionResource{Group: model.CRDGroup, Version: model.CRDVersion, Resource: plural}
	x := statusWrite{what: "conditions", gvr: gvr, namespace: u.GetNamespace(), name: u.GetName(), patch: patch}
	if want.Status == metav1.ConditionFalse && (!found || have.Status != want.Status || have.Message != want.Message) {
		x.event = invalidEvent(u, want.Message, now, identity)
	}
	return x, true
}

// currentCondition reads one condition of u's status.
func currentCondition(u *unstructured.Unstructured, typ string) (metav1.Condition, bool) {
	return findCondition(unstr.List(u.Object, "status", "conditions"), typ)
}

// findCondition reads the condition of type typ in a conditions list.
func findCondition(conditions []any, typ string) (metav1.Condition, bool) {
	for _, item := range conditions {
		b, err := json.Marshal(item)
		if err != nil {
			continue
		}
		var c metav1.Condition
		if json.Unmarshal(b, &c) == nil && c.Type == typ {
			return c, true
		}
	}
	return metav1.Condition{}, false
}

// maxEventNote is the API server's limit on an Event's note.
const maxEventNote = 1024

// invalidEvent is the Warning Event for an object found invalid.
func invalidEvent(u *unstructured.Unstructured, message string, now time.Time, identity string) *eventsv1.Event {
	if len(message) > maxEventNote {
		message = message[:maxEventNote-3] + "..."
	}
	if identity == "" {
		identity = "glassmesh"
	}
	return &eventsv1.Event{
		// Named as client-go's recorder names them (events.k8s.io refuses a
		// generateName ending in ".").
		ObjectMeta:          metav1.ObjectMeta{Name: fmt.Sprintf("%s.%x", u.GetName(), now.UnixNano()), Namespace: u.GetNamespace()},
		EventTime:           metav1.NewMicroTime(now),
		ReportingController: EventController,
		ReportingInstance:   identity,
		Action:              "Validate",
		Reason:              ReasonInvalid,
		Type:                corev1.EventTypeWarning,
		Note:                message,
		Regarding: corev1.ObjectReference{
			APIVersion: u.GetAPIVersion(), Kind: u.GetKind(),
			Namespace: u.GetNamespace(), Name: u.GetName(),
			UID: u.GetUID(), ResourceVersion: u.GetResourceVersion(),
		},
	}
}
