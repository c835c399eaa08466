package canary

import (
	"encoding/json"
	"log/slog"
	"sync"
)

// PendingAction is an action request waiting on a Canary: its
// glassmesh.io/action annotation (a follower's forwarded API call, or
// kubectl annotate).
type PendingAction struct {
	Namespace, Name string
	Value           string // the annotation
	// AnsweredID is the id of the request answered last (the status's
	// lastAction.id), so a request answered but not yet removed is not
	// carried out twice.
	AnsweredID string
}

// Requests carries out, on the leader, the actions asked on the Canaries:
// each is answered (the answer recorded in the Canary's status) and its
// request removed, by the functions the config source gives.
type Requests struct {
	Controller *Controller
	// Pending lists the requests waiting, by namespace/name.
	Pending func() []PendingAction
	// Answer records the answer to p (nil: none, it was answered before)
	// and then removes the request unless a newer one replaced it.
	Answer func(p PendingAction, answer []byte) error
	// Push serves the controller's weights after an action moved them.
	Push   func()
	Logger *slog.Logger

	mu    sync.Mutex
	taken map[string]string // canary → the request answered, until it is gone
}

// Forget drops what was answered: the writes of a replica that lost the
// lead may never have been made.
func (r *Requests) Forget() {
	r.mu.Lock()
	r.taken = nil
	r.mu.Unlock()
}

// Serve answers the pending requests; call it after each config load and on
// taking the lead. A replica that does not lead answers none.
func (r *Requests) Serve() {
	r.mu.Lock()
	defer r.mu.Unlock()
	seen := map[string]bool{}
	changed, complete := false, true
	for _, p := range r.Pending() {
		key := p.Namespace + "/" + p.Name
		seen[key] = true
		if r.taken[key] == p.Value {
			continue // answered; its removal is on its way
		}
		req, perr := ParseActionRequest(p.Value)
		var answer []byte
		if req.ID == "" || req.ID != p.AnsweredID {
			ans, moved, err := r.Controller.Answer(p.Namespace, p.Name, req, perr)
			if err != nil {
				complete = false
				break // not leading (yet, or any more): the leader answers
			}
			r.Logger.Info("canary action asked on the Canary", "canary", key, "action", req.Action, "by", req.By, "replica", req.Replica, "code", ans.Code, "error", ans.Error)
			changed = changed || moved
			if answer, err = json.Marshal(ans); err != nil {
				r.Logger.Error("encoding a canary action's answer", "canary", key, "error", err)
				continue
			}
		}
		if err := r.Answer(p, answer); err != nil {
			r.Logger.Error("answering a canary action", "canary", key, "error", err)
			continue
		}
		if r.taken == nil {
			r.taken = map[string]string{}
		}
		r.taken[key] = p.Value
	}
	if complete {
		for key := range r.taken {
			if !seen[key] {
				delete(r.taken, key) // its request is gone
			}
		}
	}
	if changed && r.Push != nil {
		r.Push()
	}
}
