package canary

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
)

// Handler serves the canary API (DESIGN.md) on a mux that routes with
// patterns: GET /api/canaries, GET /api/canaries/{namespace}/{name} and
// POST /api/canaries/{namespace}/{name}/{action}. push is called after an
// action changed weights. Authentication is the caller's to wrap around
// the POST route.
type Handler struct {
	Controller *Controller
	Push       func()
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
	st, changed, err := h.Controller.Act(r.PathValue("namespace"), r.PathValue("name"), Verdict(r.PathValue("action")), body.Reason)
	switch {
	case errors.Is(err, ErrNotFound):
		writeError(w, http.StatusNotFound, err.Error())
		return
	case errors.Is(err, ErrConflict):
		writeError(w, http.StatusConflict, err.Error())
		return
	case errors.Is(err, ErrNotLeader):
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	case err != nil:
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if changed && h.Push != nil {
		h.Push()
	}
	writeJSON(w, http.StatusOK, st)
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
