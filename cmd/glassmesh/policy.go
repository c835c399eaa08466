package main

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"time"

	"github.com/spf13/pflag"

	"github.com/glassmesh/glassmesh/control/canary"
	"github.com/glassmesh/glassmesh/control/model"
	"github.com/glassmesh/glassmesh/control/policy"
	"github.com/glassmesh/glassmesh/telemetry/slo"
)

// policyFlags configure the SLO policy controller.
type policyFlags struct {
	interval time.Duration
}

func (f *policyFlags) register(fs *pflag.FlagSet) {
	fs.DurationVar(&f.interval, "slo-policy.interval", 10*time.Second,
		"how often every SLOPolicy reads its subsets' burn; also the fast path's window (a subset burning over the threshold in it, with the policy's minRequests, is drained)")
}

// newPolicies builds the SLO policy controller over the metrics engine,
// layers its weights over the canaries' and serves its API.
func (a *app) newPolicies() error {
	cfg := policy.Config{
		DataDir:  filepath.Join(a.flags.dataDir, "slo-policies"),
		Querier:  a.tel.engine.QueryFunc(a.tel.metrics),
		Interval: a.flags.policy.interval,
		CanaryOf: a.drivingCanary,
		Budget: func(s *model.SLO) (slo.Budget, bool) {
			if a.sloEngine == nil {
				return slo.Budget{}, false
			}
			return a.sloEngine.Budget(slo.ID(s))
		},
	}
	if a.tel.remoteQuery != nil {
		cfg.Querier = a.tel.remoteQuery.Query
	}
	p, err := policy.New(cfg, a.logger.With("component", "slo-policy"), a.reg)
	if err != nil {
		return err
	}
	a.policies = p
	// The canaries' weights first; a policy leaves a route a canary drives
	// alone, so the two never set the same weight.
	a.store.SetOverlay(func(m *model.Mesh) (*model.Mesh, []model.Override) {
		m, canaries := a.canary.Overlay(m)
		m, policies := p.Overlay(m)
		return m, append(canaries, policies...)
	})
	a.mux.HandleFunc("GET /api/slo-policies", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"policies": p.List()})
	})
	a.mux.HandleFunc("GET /api/slo-policies/{namespace}/{name}", func(w http.ResponseWriter, r *http.Request) {
		st, ok := p.Get(r.PathValue("namespace"), r.PathValue("name"))
		if !ok {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": "no SLOPolicy " + r.PathValue("namespace") + "/" + r.PathValue("name")})
			return
		}
		writeJSON(w, http.StatusOK, st)
	})
	return nil
}

// drivingCanary names the canary that owns a route's weights: one that
// progresses or is paused.
func (a *app) drivingCanary(namespace, route string) string {
	for _, st := range a.canary.List() {
		if st.Namespace == namespace && st.Route == route && (st.State == canary.Progressing || st.State == canary.Paused) {
			return st.Name
		}
	}
	return ""
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
