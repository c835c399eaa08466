// Package ruler evaluates recording and alerting rules (the SLO rules
// glassmesh generates and the user's files) with Prometheus's rules manager
// on the metrics engine and storage, and sends alerts with Prometheus's
// notifier, as Mimir's and Thanos's rulers do.
package ruler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/discovery/targetgroup"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/notifier"
	"github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/storage"

	"github.com/glassmesh/glassmesh/telemetry/metrics"
)

// Rules defaults (Prometheus's, except the interval which is glassmesh's
// --rules.interval).
const (
	DefaultRulesInterval          = 10 * time.Second
	DefaultAlertResendDelay       = time.Minute
	DefaultAlertOutageTolerance   = time.Hour
	DefaultAlertForGracePeriod    = 10 * time.Minute
	DefaultNotificationQueue      = 10000
	DefaultAlertmanagerTimeout    = 10 * time.Second
	defaultRulesNameValidationTag = model.UTF8Validation
)

// Config configures rule evaluation and alert delivery.
type Config struct {
	// Files are rule file globs (--rules).
	Files []string
	// Interval is the default evaluation interval of every group
	// (--rules.interval). Required; groups may set their own.
	Interval time.Duration
	// AlertmanagerURLs receive firing alerts (--alertmanager-url), each an
	// http(s) URL of an Alertmanager; its path is the prefix before
	// /api/v2/alerts, user info becomes basic auth.
	AlertmanagerURLs []string
	// ExternalURL is the base of alerts' generator links.
	ExternalURL string
	// ExternalLabels are added to alerts sent out.
	ExternalLabels map[string]string
	// ResendDelay is how often a still-firing alert is re-sent [1m].
	ResendDelay time.Duration
	// OutageTolerance and ForGracePeriod govern restoring the "for" state
	// of alerts after a restart [1h, 10m].
	OutageTolerance, ForGracePeriod time.Duration
	// QueueCapacity bounds alerts waiting to be sent; older ones are
	// dropped (and counted) beyond it [10000].
	QueueCapacity int
	// AlertmanagerTimeout bounds one send [10s].
	AlertmanagerTimeout time.Duration
	// Query evaluates the rules' expressions; nil means the local engine
	// on the backend. With several replicas it is the shared store's
	// (--metrics.query-url), so recordings and alerts cover every
	// replica's traffic, as Thanos's and Mimir's rulers evaluate; the
	// results are still written to the backend (and remote-written).
	Query rules.QueryFunc
	// Restore is where the alerts' "for" state (ALERTS_FOR_STATE) is read
	// back when groups start; nil means the backend. With a shared store
	// it is that store's (metrics.RemoteQuery.Queryable), where the last
	// leader wrote it, so an alert firing before a leader change fires on
	// the new leader's first evaluations instead of waiting its "for" again.
	Restore storage.Queryable
	// Follower starts the ruler without evaluating anything until
	// SetLeading(true): with several replicas that read one shared store,
	// only the leader evaluates, or every replica would write (and alert
	// on) the same results.
	Follower bool
}

// Validate reports every setting that cannot work, by key.
func (c Config) Validate() error {
	var errs []error
	if c.Interval <= 0 {
		errs = append(errs, fmt.Errorf("rules.interval: must be > 0, got %s", c.Interval))
	}
	for _, d := range []struct {
		key string
		d   time.Duration
	}{
		{"rules.resend-delay", c.ResendDelay}, {"rules.outage-tolerance", c.OutageTolerance},
		{"rules.for-grace-period", c.ForGracePeriod}, {"alertmanager.timeout", c.AlertmanagerTimeout},
	} {
		if d.d < 0 {
			errs = append(errs, fmt.Errorf("%s: must be >= 0, got %s", d.key, d.d))
		}
	}
	if c.QueueCapacity < 0 {
		errs = append(errs, fmt.Errorf("alertmanager.queue-capacity: must be >= 0, got %d", c.QueueCapacity))
	}
	if _, _, err := alertmanagers(c.AlertmanagerURLs, time.Second); err != nil {
		errs = append(errs, err)
	}
	if err := metrics.ValidateExternalURL("rules.external-url", c.ExternalURL); err != nil {
		errs = append(errs, err)
	}
	for name, value := range c.ExternalLabels {
		if !model.UTF8Validation.IsValidLabelName(name) || !model.LabelValue(value).IsValid() {
			errs = append(errs, fmt.Errorf("rules.external-labels: invalid label %q=%q", name, value))
		}
	}
	return errors.Join(errs...)
}

func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.ResendDelay, DefaultAlertResendDelay)
	def(&c.OutageTolerance, DefaultAlertOutageTolerance)
	def(&c.ForGracePeriod, DefaultAlertForGracePeriod)
	def(&c.AlertmanagerTimeout, DefaultAlertmanagerTimeout)
	if c.QueueCapacity == 0 {
		c.QueueCapacity = DefaultNotificationQueue
	}
	return c
}

// Ruler evaluates recording and alerting rules with Prometheus's rules
// manager, writes their results through the backend's appender and sends
// firing alerts through Prometheus's notifier. Rules come from files
// (--rules) and from groups generated in memory (SetGeneratedGroups).
type Ruler struct {
	cfg      Config
	logger   *slog.Logger
	loader   *ruleLoader
	manager  *rules.Manager
	notifier *notifier.Manager
	amGroups map[string][]*targetgroup.Group
	extURL   *url.URL
	cancel   context.CancelFunc

	mu      sync.Mutex // serialises reloads; guards running and leading
	running bool
	leading bool
}

// New builds the rules manager and notifier and checks that the rule
// files parse. Nothing is evaluated until Run.
func New(cfg Config, b metrics.Backend, eng *metrics.Engine, logger *slog.Logger, reg prometheus.Registerer) (*Ruler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := b.Validate(); err != nil {
		return nil, err
	}
	if eng == nil {
		return nil, errors.New("rules: engine is nil")
	}
	cfg = cfg.withDefaults()
	ext, err := metrics.ExternalURL(cfg.ExternalURL)
	if err != nil {
		return nil, err
	}
	amCfgs, amGroups, err := alertmanagers(cfg.AlertmanagerURLs, cfg.AlertmanagerTimeout)
	if err != nil {
		return nil, err
	}
	extLabels := labels.FromMap(cfg.ExternalLabels)
	n := notifier.NewManager(&notifier.Options{QueueCapacity: cfg.QueueCapacity, Registerer: reg},
		defaultRulesNameValidationTag, logger.With("component", "notifier"))
	if err := n.ApplyConfig(notifierConfig(amCfgs, extLabels)); err != nil {
		return nil, fmt.Errorf("alertmanager-url: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Ruler{cfg: cfg, logger: logger, notifier: n, amGroups: amGroups, extURL: ext, cancel: cancel, leading: !cfg.Follower}
	query := cfg.Query
	if query == nil {
		query = rules.EngineQueryFunc(eng.PromQL(), b.Queryable)
	}
	restore := cfg.Restore
	if restore == nil {
		restore = b.Queryable
	}
	r.loader = newRuleLoader(logger.With("component", "rule loader"))
	r.manager = rules.NewManager(&rules.ManagerOptions{
		NameValidationScheme: defaultRulesNameValidationTag,
		ExternalURL:          ext,
		QueryFunc:            query,
		NotifyFunc:           rules.SendAlerts(n, ext.String()),
		Context:              ctx,
		AppendableV2:         b.Appendable,
		Queryable:            restore,
		// A follower's groups start when it takes the lead: restore their
		// alerts' "for" state then, not only at start-up.
		RestoreNewRuleGroups:   cfg.Follower,
		Logger:                 logger.With("component", "rule manager"),
		Registerer:             reg,
		OutageTolerance:        cfg.OutageTolerance,
		ForGracePeriod:         cfg.ForGracePeriod,
		ResendDelay:            cfg.ResendDelay,
		GroupLoader:            r.loader,
		DefaultRuleQueryOffset: func() time.Duration { return 0 },
	})
	if _, err := r.loadable(); err != nil {
		cancel()
		return nil, err
	}
	return r, nil
}

func notifierConfig(ams config.AlertmanagerConfigs, ext labels.Labels) *config.Config {
	c := config.DefaultConfig
	c.GlobalConfig = config.DefaultGlobalConfig
	c.GlobalConfig.ExternalLabels = ext
	c.AlertingConfig.AlertmanagerConfigs = ams
	return &c
}

// Run evaluates the rules and sends alerts until ctx ends, then stops
// both and waits for them. Call it once.
func (r *Ruler) Run(ctx context.Context) error {
	defer r.cancel()
	tsets := make(chan map[string][]*targetgroup.Group, 1)
	tsets <- r.amGroups
	var wg sync.WaitGroup
	wg.Go(func() { r.notifier.Run(tsets) })
	wg.Go(r.manager.Run)

	r.mu.Lock()
	r.running = true
	err := r.reloadLocked()
	r.mu.Unlock()
	if err == nil {
		<-ctx.Done()
	}

	r.mu.Lock()
	r.running = false
	r.mu.Unlock()
	// Rules first, so the last evaluations can still hand alerts over.
	r.manager.Stop()
	r.notifier.Stop()
	wg.Wait()
	return err
}

// Reload re-reads the rule files (and re-expands their globs). On error
// the rules in effect stay.
func (r *Ruler) Reload() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.reloadLocked()
}

// SetGeneratedGroups replaces the rule groups generated by source (for
// example "slo") and reloads. Groups are validated like a rule file; on
// error nothing changes. No groups removes source's groups. They are
// listed in /api/v1/rules under the file GeneratedRulesPrefix+source.
func (r *Ruler) SetGeneratedGroups(source string, groups []rulefmt.RuleGroup) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.loader.setGenerated(source, groups); err != nil {
		return err
	}
	return r.reloadLocked()
}

// RuleGroups returns the groups in effect, as /api/v1/rules shows them.
func (r *Ruler) RuleGroups() []*rules.Group { return r.manager.RuleGroups() }

// AlertingRules returns the alerting rules in effect with their alerts.
func (r *Ruler) AlertingRules() []*rules.AlertingRule { return r.manager.AlertingRules() }

// loadable expands the rule file globs and parses every source, so errors
// come back to the caller with file and rule instead of only being logged
// by the manager.
func (r *Ruler) loadable() ([]string, error) {
	files, err := expandRuleFiles(r.cfg.Files)
	if err != nil {
		return nil, err
	}
	ids := append(files, r.loader.identifiers()...)
	var errs []error
	for _, id := range ids {
		_, es := r.loader.Load(id, false, defaultRulesNameValidationTag)
		errs = append(errs, es...)
	}
	return ids, errors.Join(errs...)
}

func (r *Ruler) reloadLocked() error {
	ids, err := r.loadable()
	if err != nil {
		return err
	}
	if !r.running {
		return nil // Run loads them
	}
	if !r.leading {
		ids = nil // a follower evaluates nothing (the manager marks what it stops stale)
	}
	return r.manager.Update(r.cfg.Interval, ids, labels.FromMap(r.cfg.ExternalLabels), r.extURL.String(), nil)
}

// SetLeading starts (true) or stops (false) the evaluation of every rule
// of a Follower ruler as this replica wins or loses the leader election;
// other rulers always evaluate. Stopped groups write stale markers for
// their series, so the next leader's results take over at once in the
// shared store.
func (r *Ruler) SetLeading(leading bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.cfg.Follower || r.leading == leading {
		return nil
	}
	r.leading = leading
	return r.reloadLocked()
}

// Manager is the rules manager, for the API's /api/v1/rules and
// /api/v1/alerts.
func (r *Ruler) Manager() *rules.Manager { return r.manager }

// Notifier is the alert notifier, for the API's /api/v1/alertmanagers.
func (r *Ruler) Notifier() *notifier.Manager { return r.notifier }
