package topology

import (
	"encoding/json"
	"errors"
	"net/http"
	"time"
)

// Paths served by Register.
const (
	PathGraph  = "/api/namespaces/graph"
	PathStream = "/api/graph/stream"
)

// Register adds GET /api/namespaces/graph and GET /api/graph/stream to mux.
func (g *Graph) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET "+PathGraph, g.serveGraph)
	mux.HandleFunc("GET "+PathStream, g.serveStream)
}

// errorBody is Kiali's error JSON.
type errorBody struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, code int, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(errorBody{Error: err.Error()})
}

// serveGraph answers one graph.
func (g *Graph) serveGraph(w http.ResponseWriter, r *http.Request) {
	o, err := g.parse(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	body, err := g.buildJSON(r.Context(), o)
	if err != nil {
		g.logger.Warn("graph failed", "err", err)
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}

// parse reads and checks the options of a request.
func (g *Graph) parse(r *http.Request) (Options, error) {
	o, err := ParseOptions(r.URL.Query())
	if err != nil {
		return o, err
	}
	if o.Refresh < g.cfg.MinRefresh {
		return o, errors.New("refresh: must be at least " + g.cfg.MinRefresh.String())
	}
	if o.Duration > 30*24*time.Hour {
		return o, errors.New("duration: must be at most 30d")
	}
	return o, nil
}
