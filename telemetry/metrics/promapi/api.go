// Package promapi serves Prometheus's own HTTP API (web/api/v1) over
// glassmesh's metrics storage, PromQL engine and rules, so its answers are
// byte for byte Prometheus's: Grafana's Prometheus data source, promtool
// and the UI read it.
package promapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"time"

	"github.com/grafana/regexp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/common/route"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/scrape"
	"github.com/prometheus/prometheus/util/notifications"
	v1 "github.com/prometheus/prometheus/web/api/v1"

	"github.com/glassmesh/glassmesh/telemetry/metrics"
	"github.com/glassmesh/glassmesh/telemetry/metrics/ruler"
	"github.com/glassmesh/glassmesh/telemetry/record"
)

// Prefix is where the Prometheus HTTP API lives on the HTTP mux.
const Prefix = "/api/v1"

// Prometheus's remote-read defaults (--storage.remote.read-*).
const (
	remoteReadSampleLimit      = 5e7
	remoteReadConcurrencyLimit = 10
	remoteReadMaxBytesInFrame  = 1 << 20
)

// Config configures the Prometheus HTTP API.
type Config struct {
	// Version, Revision, Branch and BuildDate are served by
	// /api/v1/status/buildinfo.
	Version, Revision, Branch, BuildDate string
	// ExternalURL is how users reach glassmesh (alert generator links,
	// the OpenAPI spec). Empty means http://<hostname>:20001/.
	ExternalURL string
	// ListenAddress is the --http-addr, shown by the targets API.
	ListenAddress string
	// Retention is shown by /api/v1/status/runtimeinfo.
	Retention time.Duration
	// Flags are served by /api/v1/status/flags.
	Flags map[string]string
	// Store, when set (--metrics.query-url), is the shared store several
	// replicas remote-write to: the data reads (query, query_range,
	// series, labels, label values, metadata) are forwarded to it, so the
	// UI's charts and Grafana see the whole mesh whichever replica they
	// reach; query_exemplars is asked of the store, then of this replica
	// when the store has none. Rules and alerts stay this replica's.
	Store string
	// StoreTimeout bounds waiting for the store's answer [metrics.DefaultRemoteQueryTimeout].
	StoreTimeout time.Duration
	// Ready, when set, gates the API: while it returns false every
	// endpoint answers 503 "Service Unavailable", as Prometheus does
	// while it starts or stops.
	Ready func() bool
	// NotReady, when set, gates the API too: while it returns an error
	// (a *record.NotReady while the TSDB replays its WAL) every endpoint
	// answers 503 with Retry-After and the error as the reason, in
	// Prometheus's JSON error shape.
	NotReady func() error
}

// Validate reports settings that cannot work, by key.
func (c Config) Validate() error {
	return metrics.ValidateExternalURL("api.external-url", c.ExternalURL)
}

// API is Prometheus's own HTTP API (web/api/v1) over the glassmesh
// storage, engine and rules, so its answers are byte for byte Prometheus's.
type API struct {
	api      *v1.API
	store    *storeProxy
	ready    func() error
	requests *prometheus.CounterVec
}

// New builds the API. rules may be nil (no rules: /api/v1/rules and
// /api/v1/alerts answer empty lists). The remote-write and OTLP receivers
// are not part of it: telemetry/receiver's MetricsReceiver mounts them
// next to it.
func New(cfg Config, b metrics.Backend, eng *metrics.Engine, rules *ruler.Ruler, logger *slog.Logger, reg prometheus.Registerer) (*API, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := b.Validate(); err != nil {
		return nil, err
	}
	if eng == nil {
		return nil, errors.New("api: engine is nil")
	}
	ext, err := metrics.ExternalURL(cfg.ExternalURL)
	if err != nil {
		return nil, err
	}
	promCfg := metrics.PrometheusConfig(nil)
	rr, ar := retrievers(rules)
	started := time.Now()
	a := v1.NewAPI(eng.PromQL(), b.Queryable, nil, b.ExemplarQueryable,
		func(context.Context) v1.ScrapePoolsRetriever { return noTargets{} },
		func(context.Context) v1.TargetRetriever { return noTargets{} },
		ar,
		func() config.Config { return promCfg },
		cfg.Flags,
		v1.GlobalURLOptions{ListenAddress: cfg.ListenAddress, Host: ext.Host, Scheme: ext.Scheme},
		readyGate(cfg.gate()),
		tsdbStats{late: b.TSDB}, b.Dir(),
		false,    // admin API: deleting series is not ours to offer
		false, 0, // search API (experimental in Prometheus)
		logger.With("component", "api"),
		rr,
		remoteReadSampleLimit, remoteReadConcurrencyLimit, remoteReadMaxBytesInFrame,
		false,                          // agent mode
		regexp.MustCompile("^(?:.*)$"), // Prometheus's default --web.cors.origin
		runtimeInfo(started, cfg.Retention),
		&v1.PrometheusVersion{
			Version: cfg.Version, Revision: cfg.Revision, Branch: cfg.Branch,
			BuildDate: cfg.BuildDate, GoVersion: runtime.Version(),
		},
		func() []notifications.Notification { return nil },
		func() (<-chan notifications.Notification, func(), bool) { return nil, func() {}, false },
		gathererOf(reg), reg,
		nil,        // stats renderer: Prometheus's default
		false, nil, // remote-write receiver: telemetry/receiver serves /api/v1/write
		false, false, false, // OTLP receiver: telemetry/receiver serves it
		eng.LookbackDelta(),
		false, false, // type and unit labels, metadata WAL records
		nil, nil, // error code overrides, feature registry
		v1.OpenAPIOptions{ExternalURL: ext.String(), Version: cfg.Version},
		nil, // default PromQL parser
		false,
		eng.Timeout(),
	)
	requests := promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
		Name: "glassmesh_metrics_api_requests_total",
		Help: "Prometheus HTTP API requests served, by handler and status code.",
	}, []string{"handler", "code"})
	out := &API{api: a, ready: cfg.gate(), requests: requests}
	if cfg.Store != "" {
		timeout := cfg.StoreTimeout
		if timeout == 0 {
			timeout = metrics.DefaultRemoteQueryTimeout
		}
		if out.store, err = newStoreProxy(cfg.Store, timeout, logger.With("component", "api")); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Register mounts the API under /api/v1/ on mux. Paths that glassmesh does
// not serve (targets, admin) answer as a Prometheus without scrape targets
// and with the admin API disabled does.
func (a *API) Register(mux *http.ServeMux) {
	r := route.New().WithPrefix(Prefix).WithInstrumentation(a.instrument)
	a.api.Register(r)
	mux.Handle(Prefix+"/", r)
	if a.store != nil {
		for _, path := range storeReads {
			h := a.instrument(path, a.store.proxy.ServeHTTP)
			if a.ready != nil {
				h = readyGate(a.ready)(h)
			}
			mux.Handle(Prefix+path, h)
		}
		h := a.instrument(exemplarsPath, a.store.exemplars(r))
		if a.ready != nil {
			h = readyGate(a.ready)(h)
		}
		mux.Handle(Prefix+exemplarsPath, h)
	}
}

func (a *API) instrument(handler string, next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		next(sw, r)
		a.requests.WithLabelValues(handler, fmt.Sprint(sw.code)).Inc()
	}
}

// statusWriter remembers the status code. It keeps http.Flusher working
// for the notifications stream through Unwrap.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// retrievers hand the API the rules manager and notifier, or empty ones.
func retrievers(r *ruler.Ruler) (func(context.Context) v1.RulesRetriever, func(context.Context) v1.AlertmanagerRetriever) {
	if r == nil {
		return func(context.Context) v1.RulesRetriever { return noRules{} },
			func(context.Context) v1.AlertmanagerRetriever { return noAlertmanagers{} }
	}
	return func(context.Context) v1.RulesRetriever { return r.Manager() },
		func(context.Context) v1.AlertmanagerRetriever { return r.Notifier() }
}

// gate is the API's readiness: Ready and NotReady together, nil without
// either.
func (c Config) gate() func() error {
	if c.Ready == nil && c.NotReady == nil {
		return nil
	}
	return func() error {
		if c.NotReady != nil {
			if err := c.NotReady(); err != nil {
				return err
			}
		}
		if c.Ready != nil && !c.Ready() {
			return errNotReady
		}
		return nil
	}
}

var errNotReady = errors.New("Service Unavailable")

func readyGate(ready func() error) func(http.HandlerFunc) http.HandlerFunc {
	return func(f http.HandlerFunc) http.HandlerFunc {
		if ready == nil {
			return f
		}
		return func(w http.ResponseWriter, r *http.Request) {
			err := ready()
			switch {
			case err == nil:
				f(w, r)
			case errors.Is(err, errNotReady):
				w.WriteHeader(http.StatusServiceUnavailable)
				fmt.Fprint(w, "Service Unavailable")
			default:
				w.Header().Set("Retry-After", strconv.Itoa(max(1, int(record.RetryAfter(err, time.Second).Seconds()))))
				writeError(w, http.StatusServiceUnavailable, promError{Status: "error", ErrorType: "unavailable", Error: err.Error()})
			}
		}
	}
}

func runtimeInfo(started time.Time, retention time.Duration) func() (v1.RuntimeInfo, error) {
	return func() (v1.RuntimeInfo, error) {
		cwd, err := os.Getwd()
		if err != nil {
			cwd = "<error retrieving current working directory>"
		}
		host, _ := os.Hostname()
		ri := v1.RuntimeInfo{
			StartTime:           started,
			CWD:                 cwd,
			Hostname:            host,
			ServerTime:          time.Now().UTC(),
			ReloadConfigSuccess: true,
			LastConfigTime:      started,
			GoroutineCount:      runtime.NumGoroutine(),
			GOMAXPROCS:          runtime.GOMAXPROCS(0),
			GOGC:                os.Getenv("GOGC"),
			GODEBUG:             os.Getenv("GODEBUG"),
		}
		if retention > 0 {
			ri.StorageRetention = retention.String()
		}
		return ri, nil
	}
}

func gathererOf(reg prometheus.Registerer) prometheus.Gatherer {
	if g, ok := reg.(prometheus.Gatherer); ok {
		return g
	}
	return prometheus.Gatherers{}
}

// noTargets is the scrape side of a Prometheus that scrapes nothing:
// glassmesh is pushed to. /api/v1/targets and /api/v1/metadata answer
// empty, as Prometheus does with no scrape configs.
type noTargets struct{}

func (noTargets) ScrapePools() []string                       { return []string{} }
func (noTargets) TargetsActive() map[string][]*scrape.Target  { return map[string][]*scrape.Target{} }
func (noTargets) TargetsDropped() map[string][]*scrape.Target { return map[string][]*scrape.Target{} }
func (noTargets) TargetsDroppedCounts() map[string]int        { return map[string]int{} }
func (noTargets) ScrapePoolConfig(string) (*config.ScrapeConfig, error) {
	return nil, errors.New("glassmesh does not scrape")
}

// noAlertmanagers stands in when there is no rules manager.
type noAlertmanagers struct{}

func (noAlertmanagers) Alertmanagers() []*url.URL        { return nil }
func (noAlertmanagers) DroppedAlertmanagers() []*url.URL { return nil }

var (
	_ v1.TargetRetriever       = noTargets{}
	_ v1.ScrapePoolsRetriever  = noTargets{}
	_ v1.AlertmanagerRetriever = noAlertmanagers{}
	_ v1.RulesRetriever        = noRules{}
	_ v1.TSDBAdminStats        = tsdbStats{}
)

// noRules stands in for a rules manager when there is none.
type noRules struct{}

func (noRules) RuleGroups() []*rules.Group           { return nil }
func (noRules) AlertingRules() []*rules.AlertingRule { return nil }
