package source

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"hash"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/glassmesh/glassmesh/control/model"
)

// Store holds the mesh config that is serving. A load without errors
// serves as it is. A load with errors is contained (model.Contain): the
// objects with errors are set aside, each serving its last good version
// or nothing, and the rest of the load serves; only errors that belong to
// no object hold more (a file that is not YAML holds the objects it held).
// The accept hook (translation to xDS) failing holds the whole config.
// The errors are kept for /api/mesh/config until a later load is clean.
type Store struct {
	logger *slog.Logger

	// applyMu serialises Apply and Reapply (the config loop runs one
	// change at a time) and guards overlay; base and the state below are
	// written with both held, so the loop reads them holding applyMu only.
	// Readers take mu alone and never wait for a push.
	applyMu sync.Mutex
	// versions computes the serving mesh's version; guarded by applyMu.
	versions versioner
	overlay  Overlay

	mu        sync.RWMutex
	base      *model.Mesh // the serving config as loaded (contained)
	mesh      *model.Mesh // base with the overlay applied: what is serving
	overrides []model.Override
	version   string
	loadedAt  time.Time
	errors    []model.Diagnostic
	warnings  []model.Diagnostic
	setAside  []ObjectStatus
	held      []string             // files whose objects serve as they were
	since     map[string]time.Time // set-aside objects, by key: since when
	loaded    bool

	reloads     *prometheus.CounterVec
	errorsGauge prometheus.Gauge
	lastSuccess prometheus.Gauge
	invalid     *prometheus.GaugeVec
	stale       *prometheus.GaugeVec
}

// ObjectStatus is an object whose newest version does not serve, and
// since when.
type ObjectStatus struct {
	model.SetAside
	Since time.Time `json:"since"`
}

// NewStore returns a Store serving the empty mesh until the first Apply.
func NewStore(logger *slog.Logger, reg prometheus.Registerer) *Store {
	s := &Store{
		logger: logger,
		base:   model.Empty(),
		mesh:   model.Empty(),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "glassmesh_config_reloads_total",
			Help: "Mesh config loads, by result (success: now serving; failure: the last good config keeps serving).",
		}, []string{"result"}),
		errorsGauge: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "glassmesh_config_errors",
			Help: "Errors in the newest mesh config load; while above zero the last good config keeps serving.",
		}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "glassmesh_config_last_reload_success_timestamp_seconds",
			Help: "When the serving mesh config was loaded.",
		}),
		invalid: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "glassmesh_config_invalid_objects",
			Help: "Objects whose newest version has errors and is set aside (serving its last good version, or nothing), by kind.",
		}, []string{"kind"}),
		stale: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "glassmesh_config_stale_objects",
			Help: "Objects serving their last good version instead of their newest, by kind.",
		}, []string{"kind"}),
		since: map[string]time.Time{},
	}
	s.version = s.versions.of(s.mesh)
	if reg != nil {
		reg.MustRegister(s.reloads, s.errorsGauge, s.lastSuccess, s.invalid, s.stale)
	}
	return s
}

// Overlay derives the serving mesh from a loaded one, and says what it
// changed. It must not modify its argument.
type Overlay func(*model.Mesh) (*model.Mesh, []model.Override)

// SetOverlay sets the overlay applied to every config from now on. Call
// Reapply to apply it to the serving one.
func (s *Store) SetOverlay(o Overlay) {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	s.overlay = o
}

// effective applies the overlay, if any, to m.
func (s *Store) effective(m *model.Mesh) (*model.Mesh, []model.Override) {
	if s.overlay == nil {
		return m, nil
	}
	return s.overlay(m)
}

// Reapply derives the serving mesh again from the last good config, for
// when the overlay changed. accept is called as in Apply; when it fails the
// previous serving mesh stays and the error is returned.
func (s *Store) Reapply(accept func(*model.Mesh) error) error {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	m, overrides := s.effective(s.base)
	if accept != nil {
		if err := accept(m); err != nil {
			s.logger.Error("mesh overlay rejected; the previous config keeps serving", "error", err, "version", s.version)
			return err
		}
	}
	version := s.versions.of(m)
	s.mu.Lock()
	s.mesh, s.overrides, s.version = m, overrides, version
	s.mu.Unlock()
	return nil
}

// Apply offers a new load result and returns what it set aside. It
// returns taken false when nothing of the result serves (an error that
// belongs to no file, or accept failed). accept, when not nil, is called
// with the new serving mesh before it is taken; an error from it holds the
// whole config.
func (s *Store) Apply(r model.Result, accept func(*model.Mesh) error) (setAside []ObjectStatus, taken bool) {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	// Unchanged objects keep their identity, so the translation reuses
	// what it built of them.
	objs, interned := model.Intern(r.Objects, s.base)
	r.Objects = objs
	var c model.Contained
	switch {
	case len(r.Errors) == 0 && r.Mesh != nil && interned == 0:
		c = model.Contained{Mesh: r.Mesh}
	case len(r.Errors) == 0 && r.Mesh != nil:
		c = model.Contained{Mesh: model.NewMesh(objs)}
	default:
		c = model.Contain(r.Objects, r.ReadErrors, s.base)
	}
	errs := c.Errors
	if len(r.Errors) > 0 && len(errs) == 0 {
		errs = r.Errors // a Result without the objects to contain
		c = model.Contained{Mesh: s.base, Errors: errs, Whole: true}
	}
	var serving *model.Mesh
	var overrides []model.Override
	var version string
	if !c.Whole {
		serving, overrides = s.effective(c.Mesh)
		if accept != nil {
			if err := accept(serving); err != nil {
				errs = append(errs, model.Diagnostic{Message: "translation failed: " + err.Error()})
				c.Whole = true
			}
		}
		version = s.versions.of(serving) // outside mu: it may encode the whole mesh
	}
	// The new state is taken at once after the push, so the status never
	// shows old errors for long while the new config is routing.
	s.mu.Lock()
	defer s.mu.Unlock()
	s.loaded = true
	logged := s.loggedLocked()
	s.errors, s.warnings = errs, r.Warnings
	s.errorsGauge.Set(float64(len(errs)))
	if c.Whole {
		s.reloads.WithLabelValues("failure").Inc()
		for _, e := range errs {
			if !logged[said{true, e.Error()}] {
				s.logger.Error("mesh config rejected; the last good config keeps serving", "error", e.Error(), "version", s.version)
			}
		}
		return s.setAside, false
	}
	s.setAsideLocked(c)
	s.base, s.mesh, s.overrides = c.Mesh, serving, overrides
	versionBefore := s.version
	s.version = version
	s.loadedAt = time.Now()
	result := "success"
	if len(errs) > 0 {
		result = "contained"
	}
	s.reloads.WithLabelValues(result).Inc()
	s.lastSuccess.Set(float64(s.loadedAt.UnixNano()) / 1e9)
	for _, o := range s.setAside {
		for _, e := range o.Errors {
			if logged[said{true, e.Error()}] {
				continue
			}
			msg := "mesh config object set aside; its last good version keeps serving"
			if o.Serving == model.ServingNone {
				msg = "mesh config object set aside; no version of it serves"
			}
			s.logger.Error(msg, "object", o.Key(), "error", e.Error())
		}
	}
	for _, w := range r.Warnings {
		if !logged[said{false, w.Error()}] {
			s.logger.Warn("mesh config", "warning", w.Error())
		}
	}
	level := slog.LevelInfo
	if s.version == versionBefore {
		level = slog.LevelDebug // read again, same config (a status write on Kubernetes)
	}
	s.logger.Log(context.Background(), level, "mesh config loaded", "version", s.version, "files", r.Files,
		"services", len(c.Mesh.Services), "workloads", len(c.Mesh.Workloads), "routes", len(c.Mesh.Routes),
		"setAside", len(s.setAside), "heldFiles", len(c.HeldFiles))
	return s.setAside, true
}

// said is a diagnostic logged while it lasts: a config that is read
// again and again (every status write on Kubernetes) would repeat them.
type said struct {
	err bool
	msg string
}

// loggedLocked is what was logged of the errors and warnings standing now.
func (s *Store) loggedLocked() map[said]bool {
	logged := make(map[said]bool, len(s.errors)+len(s.warnings))
	for _, d := range s.errors {
		logged[said{true, d.Error()}] = true
	}
	for _, d := range s.warnings {
		logged[said{false, d.Error()}] = true
	}
	return logged
}

// setAsideLocked records what c set aside, keeping since when each object
// has been, and sets the gauges.
func (s *Store) setAsideLocked(c model.Contained) {
	now := time.Now()
	since := make(map[string]time.Time, len(c.SetAside))
	s.setAside = make([]ObjectStatus, 0, len(c.SetAside))
	s.invalid.Reset()
	s.stale.Reset()
	for _, o := range c.SetAside {
		t, ok := s.since[o.Key()]
		if !ok {
			t = now
		}
		since[o.Key()] = t
		s.setAside = append(s.setAside, ObjectStatus{SetAside: o, Since: t.UTC()})
		s.invalid.WithLabelValues(o.Kind).Inc()
		if o.Serving == model.ServingLastGood {
			s.stale.WithLabelValues(o.Kind).Inc()
		}
	}
	s.since, s.held = since, c.HeldFiles
}

// Mesh returns the serving mesh (overlay applied) and its version.
func (s *Store) Mesh() (*model.Mesh, string) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.mesh, s.version
}

// Loaded reports whether a load result has been applied, good or bad.
func (s *Store) Loaded() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.loaded
}

// ConfigStatus is the body of GET /api/mesh/config.
type ConfigStatus struct {
	Version   string             `json:"version"`
	LoadedAt  *time.Time         `json:"loadedAt"`
	Errors    []model.Diagnostic `json:"errors"`
	Warnings  []model.Diagnostic `json:"warnings"`
	Resources Resources          `json:"resources"`
	// Overrides are the run-time changes (canary weights) in Resources.
	Overrides []model.Override `json:"overrides"`
	// InvalidObjects are the objects whose newest version has errors:
	// each serves its last good version ("lastGood") or nothing
	// ("none"). Every other object serves as the config has it now.
	InvalidObjects []ObjectStatus `json:"invalidObjects"`
	// HeldFiles are files with errors that belong to no object (not
	// YAML at all): the objects they held before serve as they were.
	HeldFiles []string `json:"heldFiles"`
	// Origins says where each object in Resources came from, keyed by
	// "<Kind>/<namespace>/<name>": a file (with ":<line>" when known) or
	// kubernetes:<resource>/<namespace>/<name>, such as
	// kubernetes:httproutes.gateway.networking.k8s.io/default/reviews for
	// a TrafficRoute imported from an HTTPRoute.
	Origins map[string]string `json:"origins"`
}

// Resources is the effective config, by kind.
type Resources struct {
	Services              []*model.Service             `json:"services"`
	Workloads             []*model.Workload            `json:"workloads"`
	TrafficRoutes         []*model.TrafficRoute        `json:"trafficRoutes"`
	SLOs                  []*model.SLO                 `json:"slos"`
	Canaries              []*model.Canary              `json:"canaries"`
	SLOPolicies           []*model.SLOPolicy           `json:"sloPolicies"`
	PeerAuthentications   []*model.PeerAuthentication  `json:"peerAuthentications"`
	AuthorizationPolicies []*model.AuthorizationPolicy `json:"authorizationPolicies"`
}

// Status returns what /api/mesh/config shows.
func (s *Store) Status() ConfigStatus {
	s.mu.RLock()
	defer s.mu.RUnlock()
	st := ConfigStatus{
		Version:   s.version,
		Errors:    nonNil(s.errors),
		Warnings:  nonNil(s.warnings),
		Resources: resourcesOf(s.mesh),
		Overrides: nonNil(s.overrides),
		Origins:   originsOf(s.mesh),

		InvalidObjects: nonNil(s.setAside),
		HeldFiles:      nonNil(s.held),
	}
	if !s.loadedAt.IsZero() {
		t := s.loadedAt.UTC()
		st.LoadedAt = &t
	}
	return st
}

// ServeHTTP serves GET /api/mesh/config.
func (s *Store) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(s.Status())
}

func resourcesOf(m *model.Mesh) Resources {
	return Resources{
		Services:              nonNil(m.Services),
		Workloads:             nonNil(m.Workloads),
		TrafficRoutes:         nonNil(m.Routes),
		SLOs:                  nonNil(m.SLOs),
		Canaries:              nonNil(m.Canaries),
		SLOPolicies:           nonNil(m.Policies),
		PeerAuthentications:   nonNil(m.PeerAuthentications),
		AuthorizationPolicies: nonNil(m.AuthzPolicies),
	}
}

// originsOf maps every object of m to where it came from. Origins stay out
// of the objects' JSON, so the version does not depend on file paths.
func originsOf(m *model.Mesh) map[string]string {
	out := map[string]string{}
	add := func(kind string, meta model.Meta, o model.Origin) {
		out[kind+"/"+meta.Namespace+"/"+meta.Name] = o.String()
	}
	for _, o := range m.Services {
		add(model.KindService, o.Meta, o.Origin)
	}
	for _, o := range m.Workloads {
		add(model.KindWorkload, o.Meta, o.Origin)
	}
	for _, o := range m.Routes {
		add(model.KindTrafficRoute, o.Meta, o.Origin)
	}
	for _, o := range m.SLOs {
		add(model.KindSLO, o.Meta, o.Origin)
	}
	for _, o := range m.Canaries {
		add(model.KindCanary, o.Meta, o.Origin)
	}
	for _, o := range m.Policies {
		add(model.KindSLOPolicy, o.Meta, o.Origin)
	}
	for _, o := range m.PeerAuthentications {
		add(model.KindPeerAuthentication, o.Meta, o.Origin)
	}
	for _, o := range m.AuthzPolicies {
		add(model.KindAuthorizationPolicy, o.Meta, o.Origin)
	}
	return out
}

// versioner computes a mesh's version: a content hash, so replicas
// loading the same config agree. Each object is encoded once and the
// encoding kept while the object is (unchanged objects keep their identity
// from load to load), so a change costs what it touches.
type versioner struct {
	last map[any][]byte
}

func (v *versioner) of(m *model.Mesh) string {
	next := make(map[any][]byte, len(v.last))
	h := sha256.New()
	r := resourcesOf(m)
	encodeEach(h, "services", r.Services, v.last, next)
	encodeEach(h, "workloads", r.Workloads, v.last, next)
	encodeEach(h, "trafficRoutes", r.TrafficRoutes, v.last, next)
	encodeEach(h, "slos", r.SLOs, v.last, next)
	encodeEach(h, "canaries", r.Canaries, v.last, next)
	encodeEach(h, "sloPolicies", r.SLOPolicies, v.last, next)
	encodeEach(h, "peerAuthentications", r.PeerAuthentications, v.last, next)
	encodeEach(h, "authorizationPolicies", r.AuthorizationPolicies, v.last, next)
	v.last = next
	return hex.EncodeToString(h.Sum(nil)[:6])
}

// encodeEach writes kind and the JSON of each object (as the API shows it)
// to h, reusing last's encodings.
func encodeEach[T any](h hash.Hash, kind string, objs []*T, last, next map[any][]byte) {
	h.Write([]byte(kind + "\n"))
	for _, o := range objs {
		b, ok := last[o]
		if !ok {
			b, _ = json.Marshal(o)
		}
		next[o] = b
		h.Write(b)
		h.Write([]byte{'\n'})
	}
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
