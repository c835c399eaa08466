package canary

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"
)

// Handler serves the canary API (DESIGN.md) on a mux that routes with
// patterns: GET /api/canaries, GET /api/canaries/{namespace}/{name} and
// POST /api/canaries/{namespace}/{name}/{action}. push is called after an
// action changed weights. Authentication is the caller's to wrap around
// the POST route.
type Handler struct {
	Controller *Controller
	Push       func()
	// Forward, when set, takes an action this replica cannot carry out
	// (a follower's) to the leader and returns the leader's state after it
	// (Forwarder.Forward); else such an action gets 503.
	Forward func(ctx context.Context, namespace, name string, action Verdict, reason string) (Status, error)
	// ForwardTimeout bounds the wait for the leader's answer. Default 10s.
	ForwardTimeout time.Duration
}

// List serves GET /api/canaries.
func (h Handler) List(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"canaries": h.Controller.List()})
}

// Get serves GET /api/canaries/{namespace}/{name}.
func (h Handler) Get(w http.ResponseWriter, r *http.Request) {
	st, ok := h.Controller.Get(r.PathValue("namespace"), r.PathValue("name"))
	if !ok {
		writeError(w, http.StatusNotFound, ErrNotFound.Error())
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// Act serves POST /api/canaries/{namespace}/{name}/{action}; an optional
// JSON body {"reason": "..."} is recorded with the decision.
func (h Handler) Act(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Reason string `json:"reason"`
	}
	if b, _ := io.ReadAll(io.LimitReader(r.Body, 1<<16)); len(b) > 0 {
		if err := json.Unmarshal(b, &body); err != nil {
			writeError(w, http.StatusBadRequest, "body: "+err.Error())
			return
		}
	}
	ns, name, action := r.PathValue("namespace"), r.PathValue("name"), Verdict(r.PathValue("action"))
	st, changed, err := h.Controller.Act(ns, name, action, body.Reason)
	if errors.Is(err, ErrNotLeader) && h.Forward != nil {
		timeout := h.ForwardTimeout
		if timeout <= 0 {
			timeout = 10 * time.Second
		}
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		st, err = h.Forward(ctx, ns, name, action, body.Reason)
		cancel()
	}
	if err != nil {
		code := httpStatus(err)
		if code == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", "1")
		}
		writeError(w, code, err.Error())
		return
	}
	if changed && h.Push != nil {
		h.Push()
	}
	writeJSON(w, http.StatusOK, st)
}

// httpStatus is the API's status code for an action's error.
func httpStatus(err error) int {
	var ae *AnswerError
	switch {
	case errors.As(err, &ae):
		return ae.Code
	case errors.Is(err, ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, ErrConflict):
		return http.StatusConflict
	case errors.Is(err, ErrNotLeader):
		return http.StatusServiceUnavailable
	case errors.Is(err, ErrNoAnswer):
		return http.StatusGatewayTimeout
	case errors.Is(err, ErrForward):
		return http.StatusBadGateway
	}
	return http.StatusBadRequest
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}
