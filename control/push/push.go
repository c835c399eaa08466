// Package push carries the serving mesh to the proxies: the last mile of
// the config loop. For each mesh it runs the config reloaders (the SLO
// rules, in order), translates the mesh, gives every sidecar view its SDS
// secrets, checks that every name a node will ask for exists, and hands
// the snapshot to the xDS server, which validates what changed and pushes
// it. It also renews the sidecars' certificates in time.
//
//	source (file / Kubernetes) ──▶ source.Store (contain, overlay) ──▶ Pusher.Push ──▶ xds.Server
//	canary moves ──▶ Store.Reapply ─────────────────────────────────────┘
package push

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	resource "github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/glassmesh/glassmesh/control/ca"
	"github.com/glassmesh/glassmesh/control/model"
	"github.com/glassmesh/glassmesh/control/translate"
	"github.com/glassmesh/glassmesh/control/xds"
)

// Reloader is a part that follows the serving mesh (as Prometheus's main
// hands its config to each part): Apply gets every mesh before it is
// pushed; an error rejects the mesh.
type Reloader struct {
	Name  string
	Apply func(*model.Mesh) error
}

// Config configures a Pusher.
type Config struct {
	// XDS serves the result.
	XDS *xds.Server
	// CA issues the sidecars' SDS certificates; nil gives no secrets.
	CA *ca.CA
	// Translate are the translation's options; TrustDomain defaults to
	// the CA's.
	Translate translate.Options
	// Reloaders run first, in order.
	Reloaders []Reloader
}

// Pusher translates meshes and serves them over xDS. Pushes are serialised.
type Pusher struct {
	cfg     Config
	logger  *slog.Logger
	secrets *ca.Secrets

	mu    sync.Mutex // serialises Push
	last  *model.Mesh
	refs  translate.RefCache
	built translate.Cache
}

// New returns a Pusher; nothing is served until the first Push.
func New(cfg Config, logger *slog.Logger) *Pusher {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	p := &Pusher{cfg: cfg, logger: logger}
	if cfg.CA != nil {
		p.secrets = ca.NewSecrets(cfg.CA)
		if p.cfg.Translate.TrustDomain == "" {
			p.cfg.Translate.TrustDomain = cfg.CA.TrustDomain()
		}
	}
	return p
}

// Push makes m the served config. On an error nothing of m is served (the
// reloaders that ran before the failing one have seen it).
func (p *Pusher) Push(m *model.Mesh) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pushLocked(m)
}

func (p *Pusher) pushLocked(m *model.Mesh) error {
	for _, r := range p.cfg.Reloaders {
		if err := r.Apply(m); err != nil {
			return fmt.Errorf("%s: %w", r.Name, err)
		}
	}
	snap, err := translate.TranslateWith(m, p.cfg.Translate, &p.built)
	if err != nil {
		return err
	}
	if err := p.addSecrets(snap, m); err != nil {
		return err
	}
	if err := snap.CheckReferencesWith(&p.refs); err != nil {
		return err
	}
	for _, w := range snap.Warnings {
		p.logger.Warn("translation", "warning", w)
	}
	if err := p.cfg.XDS.Update(snap); err != nil {
		return err
	}
	p.last = m
	return nil
}

// addSecrets puts each workload's SDS secrets (its certificate and the
// trust bundle) into its sidecar view. Workloads of one service account
// share a certificate; the secrets of departed identities are forgotten.
func (p *Pusher) addSecrets(snap *translate.Snapshot, m *model.Mesh) error {
	if p.secrets == nil {
		return nil
	}
	keep := map[string]bool{}
	for _, w := range m.Workloads {
		res, ok := snap.Sidecars[translate.SidecarKey(w)]
		if !ok {
			continue
		}
		id := p.cfg.CA.ID(w.Namespace, w.Spec.ServiceAccount)
		keep[id] = true
		cert, root, err := p.secrets.For(id)
		if err != nil {
			return fmt.Errorf("workload %s: %w", w.Key(), err)
		}
		res[resource.SecretType] = map[string]types.Resource{cert.Name: cert, root.Name: root}
	}
	p.secrets.Retain(keep)
	return nil
}

// RenewSecrets pushes the last mesh again whenever a sidecar certificate
// is due for renewal (half of its lifetime), so sidecars get the new one
// over SDS long before the old one expires. It checks at least every
// quarter TTL, so a first certificate issued after it started waiting is
// not missed. repush, when not nil, pushes instead (through the store, so
// the push follows the config's serialisation); it returns when ctx ends.
func (p *Pusher) RenewSecrets(ctx context.Context, repush func()) error {
	if p.secrets == nil {
		<-ctx.Done()
		return nil
	}
	for {
		wait := p.cfg.CA.TTL() / 4
		if next := p.secrets.NextRenewal(); !next.IsZero() {
			wait = min(wait, max(time.Until(next), 100*time.Millisecond))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		if next := p.secrets.NextRenewal(); next.IsZero() || time.Now().Before(next) {
			continue
		}
		p.logger.Info("renewing sidecar certificates")
		if repush != nil {
			repush()
			continue
		}
		p.mu.Lock()
		if p.last != nil {
			if err := p.pushLocked(p.last); err != nil {
				p.logger.Error("renewing sidecar certificates", "error", err)
			}
		}
		p.mu.Unlock()
	}
}
