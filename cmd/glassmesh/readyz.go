package main

import (
	"encoding/json"
	"net/http"
)

// componentState is one component's line in /readyz.
type componentState struct {
	Ready  bool   `json:"ready"`
	State  string `json:"state"`
	Reason string `json:"reason,omitempty"`
	// Progress is the metrics WAL replay's share of segments done.
	Progress *float64 `json:"progress,omitempty"`
}

// readiness is /readyz's body.
type readiness struct {
	Ready      bool                      `json:"ready"`
	Components map[string]componentState `json:"components"`
}

// components are the states /readyz reports. glassmesh is ready (200)
// when xDS serves the mesh config: the part a restarted control plane must
// have back at once. The stores open in the background and their users
// answer 503/UNAVAILABLE until then; /readyz/{component} says 200 for
// each one that is ready, and /readyz/all once all of them are.
func (a *app) components() map[string]componentState {
	out := map[string]componentState{}
	if a.store.Loaded() {
		out["config"] = componentState{Ready: true, State: "loaded"}
	} else {
		out["config"] = componentState{State: "loading", Reason: "mesh config not loaded yet"}
	}
	if a.ready.Load() {
		out["xds"] = componentState{Ready: true, State: "serving"}
	} else {
		out["xds"] = componentState{State: "waiting", Reason: "no mesh config pushed yet"}
	}
	if err := a.tel.spanStore.Err(); err != nil {
		out["traces"] = componentState{State: "opening", Reason: err.Error()}
	} else {
		out["traces"] = componentState{Ready: true, State: "open"}
	}
	p := a.tel.metrics.Progress()
	if err := a.tel.metrics.Err(); err != nil {
		out["metrics"] = componentState{State: "replaying", Reason: err.Error(), Progress: &p}
	} else {
		out["metrics"] = componentState{Ready: true, State: "open", Progress: &p}
	}
	return out
}

// serveReadyz answers /readyz: 200 once xDS serves the mesh config, 503
// before, with every component's state as JSON either way.
func (a *app) serveReadyz(w http.ResponseWriter, _ *http.Request) {
	c := a.components()
	writeReadiness(w, readiness{Ready: c["xds"].Ready, Components: c})
}

// serveReadyzOf answers /readyz/{component}: 200 when that component (or,
// for "all", every one) is ready, 503 before, 404 for an unknown name.
func (a *app) serveReadyzOf(w http.ResponseWriter, r *http.Request) {
	c := a.components()
	name := r.PathValue("component")
	if name == "all" {
		ready := true
		for _, s := range c {
			ready = ready && s.Ready
		}
		writeReadiness(w, readiness{Ready: ready, Components: c})
		return
	}
	s, ok := c[name]
	if !ok {
		http.Error(w, "unknown component "+name+": want config, xds, traces, metrics or all", http.StatusNotFound)
		return
	}
	writeReadiness(w, readiness{Ready: s.Ready, Components: map[string]componentState{name: s}})
}

func writeReadiness(w http.ResponseWriter, r readiness) {
	w.Header().Set("Content-Type", "application/json")
	if !r.Ready {
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	_ = json.NewEncoder(w).Encode(r)
}
