package topology

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/glassmesh/glassmesh/tracing/store"
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
	e, err := g.cached(r.Context(), o, o.Refresh)
	if err != nil {
		g.logger.Warn("graph failed", "err", err)
		writeError(w, store.HTTPStatus(err), err) // 502/503 when the shared trace store failed
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Add("Vary", "Accept-Encoding")
	body := e.body
	if acceptsGzip(r.Header) {
		h.Set("Content-Encoding", "gzip")
		body = e.gzipped()
	}
	_, _ = w.Write(body)
}

// acceptsGzip reports whether the request's Accept-Encoding allows gzip.
func acceptsGzip(h http.Header) bool {
	for _, v := range h.Values("Accept-Encoding") {
		for _, part := range strings.Split(v, ",") {
			coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
			if strings.EqualFold(strings.TrimSpace(coding), "gzip") {
				q := strings.ReplaceAll(strings.TrimSpace(params), " ", "")
				return q != "q=0" && q != "q=0.0" && q != "q=0.00" && q != "q=0.000"
			}
		}
	}
	return false
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
