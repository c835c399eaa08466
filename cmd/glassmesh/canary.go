package main

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"

	"github.com/glassmesh/glassmesh/control/canary"
	"github.com/glassmesh/glassmesh/control/source"
	"github.com/glassmesh/glassmesh/telemetry/slo"
)

// newCanary builds the canary controller over the metrics engine, makes its
// weights the store's overlay and serves its API.
func (a *app) newCanary() error {
	cfg := canary.Config{
		DataDir: filepath.Join(a.flags.dataDir, "canaries"),
		Querier: canary.EngineQuerier{Engine: a.tel.engine.PromQL(), Queryable: a.tel.storage.Queryable()},
	}
	if a.tel.remoteQuery != nil {
		// Several replicas remote-write to the store: judge on all traffic.
		cfg.Querier = canary.VectorQuerier(a.tel.remoteQuery.Query)
	}
	if a.kube != nil {
		// Several replicas: the states live in the Canary objects' status,
		// and this replica follows until it wins the election (leader.go).
		cfg.Store = canary.ObjectStore{List: a.kube.CanaryStatuses, Patch: a.kube.PatchCanaryStatus}
		cfg.Follower = true
	} else {
		a.leaderGauge.Set(1)
	}
	c, err := canary.New(cfg, a.logger.With("component", "canary"), a.reg)
	if err != nil {
		return err
	}
	a.canary = c
	a.store.SetOverlay(c.Overlay)
	h := canary.Handler{Controller: c, Push: a.reapply}
	if a.kube != nil {
		// A follower takes actions to the leader through the Canary.
		h.Forward = canary.Forwarder{
			Ask: func(ctx context.Context, namespace, name string, request []byte) error {
				err := a.kube.RequestCanaryAction(ctx, namespace, name, request)
				if errors.Is(err, source.ErrObjectNotFound) {
					return fmt.Errorf("%w: %w", canary.ErrNotFound, err)
				}
				return err
			},
			Get:     a.kube.CanaryStatus,
			Replica: a.flags.leader.identity,
		}.Forward
	}
	a.mux.HandleFunc("GET /api/canaries", h.List)
	a.mux.HandleFunc("GET /api/canaries/{namespace}/{name}", h.Get)
	a.mux.Handle("POST /api/canaries/{namespace}/{name}/{action}", a.requireToken(http.HandlerFunc(h.Act)))
	return nil
}

// canaryActions carries out, on the leader, the actions asked through the
// Canaries' glassmesh.io/action annotation (a follower's forwarded API
// call, or kubectl annotate): each is answered in the Canary's status and
// the annotation removed.
type canaryActions struct {
	mu    sync.Mutex
	taken map[string]string // canary → the annotation answered, until it is gone
}

func (ca *canaryActions) forget() {
	ca.mu.Lock()
	ca.taken = nil
	ca.mu.Unlock()
}

// serveCanaryActions answers the pending action requests; called after
// each config load and on taking the lead.
func (a *app) serveCanaryActions() {
	if a.kube == nil || !a.leading.Load() {
		return
	}
	ca := &a.canaryActions
	ca.mu.Lock()
	defer ca.mu.Unlock()
	pending := a.kube.PendingCanaryActions()
	seen := map[string]bool{}
	changed, complete := false, true
answering:
	for _, p := range pending {
		key := p.Namespace + "/" + p.Name
		seen[key] = true
		if ca.taken[key] == p.Value {
			continue // answered; its removal is on its way
		}
		req, perr := canary.ParseActionRequest(p.Value)
		var answer []byte
		if req.ID == "" || req.ID != p.AnsweredID {
			ans, moved, err := a.canary.Answer(p.Namespace, p.Name, req, perr)
			if err != nil {
				complete = false
				break answering // not leading (yet, or any more): the leader answers
			}
			a.logger.Info("canary action asked on the Canary", "canary", key, "action", req.Action, "by", req.By, "replica", req.Replica, "code", ans.Code, "error", ans.Error)
			changed = changed || moved
			if answer, err = json.Marshal(ans); err != nil {
				a.logger.Error("encoding a canary action's answer", "canary", key, "error", err)
				continue
			}
		}
		if err := a.kube.AnswerCanaryAction(p, answer); err != nil {
			a.logger.Error("answering a canary action", "canary", key, "error", err)
			continue
		}
		if ca.taken == nil {
			ca.taken = map[string]string{}
		}
		ca.taken[key] = p.Value
	}
	if complete {
		for key := range ca.taken {
			if !seen[key] {
				delete(ca.taken, key) // its annotation is gone
			}
		}
	}
	if changed {
		a.reapply()
	}
}

// newSLOs keeps the SLOs' generated rule groups in the rules manager and
// serves /api/slos.
func (a *app) newSLOs() error {
	query := a.tel.engine.QueryFunc(a.tel.storage.Queryable())
	if a.tel.remoteQuery != nil {
		// The store's recordings, when it runs the SLO rules over every
		// replica's series; else this replica's own.
		query = slo.PreferQuery(a.tel.remoteQuery.Query, query)
	}
	mg, err := slo.NewManager(a.tel.rules, query, a.logger.With("component", "slo"))
	if err != nil {
		return err
	}
	a.slos = mg
	mg.Register(a.mux)
	return nil
}

// reapply pushes the loaded config again with the overlay's current
// weights; the canary controller calls it when it moved them.
func (a *app) reapply() { _ = a.store.Reapply(a.pusher.Push) }

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
