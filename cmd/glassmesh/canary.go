package main

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"

	"github.com/glassmesh/glassmesh/control/canary"
	"github.com/glassmesh/glassmesh/control/source/kube"
	"github.com/glassmesh/glassmesh/telemetry/metrics"
	"github.com/glassmesh/glassmesh/telemetry/slo"
)

// newCanary builds the canary controller over the metrics engine, makes its
// weights the store's overlay and serves its API.
func (a *app) newCanary() error {
	cfg := canary.Config{
		DataDir: filepath.Join(a.flags.dataDir, "canaries"),
		Querier: a.tel.engine.QueryFunc(a.tel.metrics),
	}
	if a.tel.remoteQuery != nil {
		// Several replicas remote-write to the store: judge on all traffic.
		cfg.Querier = a.tel.remoteQuery.Query
	}
	if a.kube != nil {
		// Several replicas: the states live in the Canary objects' status,
		// and this replica follows until it wins the election (leader.go).
		cfg.Store = canary.ObjectStore{List: a.kube.CanaryStatuses, Patch: a.kube.PatchCanaryStatus}
		cfg.Follower = true
		// A leader serves only what reached the API server, and decides
		// only while its lease is being renewed (leader.go): a leader cut
		// off from the API server moves no traffic that the next leader
		// would not know of.
		cfg.ServeSaved = true
		cfg.LeaseValid = a.leaseValid
	} else {
		a.leaderGauge.Set(1)
	}
	// An error-budget policy (SLOPolicy freezeCanaries) pauses the
	// canaries of a service whose budget is spent.
	cfg.Frozen = func(namespace, service string) string {
		if a.policies == nil {
			return ""
		}
		return a.policies.Frozen(namespace, service)
	}
	c, err := canary.New(cfg, a.logger.With("component", "canary"), a.reg)
	if err != nil {
		return err
	}
	a.canary = c
	a.store.SetOverlay(c.Overlay)
	a.tel.graph.SetCanaryStates(c.StateOf)
	h := canary.Handler{Controller: c, Push: a.reapply}
	if a.kube != nil {
		// A follower takes actions to the leader through the Canary.
		h.Forward = canary.Forwarder{
			Ask: func(ctx context.Context, namespace, name string, request []byte) error {
				err := a.kube.RequestCanaryAction(ctx, namespace, name, request)
				if errors.Is(err, kube.ErrObjectNotFound) {
					return fmt.Errorf("%w: %w", canary.ErrNotFound, err)
				}
				return err
			},
			Get:     a.kube.CanaryStatus,
			Replica: a.flags.leader.identity,
		}.Forward
		// The leader carries them out.
		a.canaryRequests = &canary.Requests{Controller: c, Push: a.reapply, Logger: a.logger.With("component", "canary"),
			Pending: func() []canary.PendingAction {
				ps := a.kube.PendingCanaryActions()
				out := make([]canary.PendingAction, len(ps))
				for i, p := range ps {
					out[i] = canary.PendingAction(p)
				}
				return out
			},
			Answer: func(p canary.PendingAction, answer []byte) error {
				return a.kube.AnswerCanaryAction(kube.PendingCanaryAction(p), answer)
			},
		}
	}
	a.mux.HandleFunc("GET /api/canaries", h.List)
	a.mux.HandleFunc("GET /api/canaries/{namespace}/{name}", h.Get)
	a.mux.Handle("POST /api/canaries/{namespace}/{name}/{action}", a.requireToken(http.HandlerFunc(h.Act)))
	return nil
}

// serveCanaryActions answers the action requests on the Canaries, on the
// leader; called after each config load and on taking the lead.
func (a *app) serveCanaryActions() {
	if a.canaryRequests != nil && a.leading.Load() {
		a.canaryRequests.Serve()
	}
}

// newSLOs keeps the SLOs' generated rule groups in the rules manager and
// serves /api/slos.
func (a *app) newSLOs() error {
	query := a.tel.engine.QueryFunc(a.tel.metrics)
	if a.tel.remoteQuery != nil {
		// The store's recordings, when it runs the SLO rules over every
		// replica's series; else this replica's own.
		query = metrics.PreferQuery(a.tel.remoteQuery.Query, query)
	}
	mg, err := slo.NewManager(a.tel.rules, query, a.logger.With("component", "slo"))
	if err != nil {
		return err
	}
	a.slos = mg
	mg.Register(a.mux)
	return a.newSLOEngine(mg, query)
}

// reapply pushes the loaded config again with the overlay's current
// weights; the canary controller calls it when it moved them.
func (a *app) reapply() { _ = a.store.Reapply(a.pusher.Push) }

// requireOperator guards what only an operator may do whatever the
// configuration (minting workload tokens): the --api-token-file bearer
// token, and without one, nobody over the API.
func (a *app) requireOperator(h http.Handler) http.Handler {
	if token, _ := a.flags.apiToken(); token == "" {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusForbidden)
			_, _ = w.Write([]byte(`{"error":"this call needs an operator: start glassmesh with --api-token-file ` +
				`(or mint workload tokens offline: glassmesh ca token --data-dir DIR)"}` + "\n"))
		})
	}
	return a.requireToken(h)
}

// requireToken guards a mutating API with the --api-token-file bearer
// token, when one is set.
func (a *app) requireToken(h http.Handler) http.Handler {
	token, _ := a.flags.apiToken() // checked in newApp
	if token == "" {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="glassmesh"`)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error":"this call needs the bearer token of --api-token-file"}` + "\n"))
			return
		}
		h.ServeHTTP(w, r)
	})
}
