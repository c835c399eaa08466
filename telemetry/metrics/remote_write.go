package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	config_util "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/relabel"
	"github.com/prometheus/prometheus/storage/remote"
	"github.com/prometheus/prometheus/tsdb"
)

// Remote-write defaults (Prometheus's).
const (
	DefaultRemoteFlushDeadline     = time.Minute
	DefaultRemoteBatchSendDeadline = 5 * time.Second
	DefaultRemoteTimeout           = 30 * time.Second
)

// RemoteWriteConfig configures shipping stored samples to other
// Prometheus-compatible stores.
type RemoteWriteConfig struct {
	// URLs are remote-write endpoints (--remote-write-url), for example
	// http://mimir:9009/api/v1/push; user info becomes basic auth.
	URLs []string
	// ExternalLabels are added to every series sent.
	ExternalLabels map[string]string
	// ReplicaLabel names the external label that tells several replicas'
	// series apart in a shared store (each replica holds its share of the
	// mesh's traffic; queries sum them). Rule results — recording rules'
	// series (named level:metric:operations, so holding a colon) and
	// ALERTS / ALERTS_FOR_STATE — are sent without it: only the leader
	// writes them, for the whole mesh, so the next leader continues the
	// same series (no duplicate lingering for the staleness period) and
	// restores the alerts' "for" state from them. Empty: no such label.
	ReplicaLabel string
	// SendExemplars and SendNativeHistograms are off by default, as in
	// Prometheus: receivers that do not support them reject whole batches.
	SendExemplars, SendNativeHistograms bool
	// FlushDeadline bounds how long shutdown waits for pending samples [1m].
	FlushDeadline time.Duration
	// BatchSendDeadline is the longest a sample waits for its batch to
	// fill before it is sent [5s].
	BatchSendDeadline time.Duration
	// Timeout bounds one send [30s].
	Timeout time.Duration
}

// Validate reports every setting that cannot work, by key.
func (c RemoteWriteConfig) Validate() error {
	_, err := c.prometheusConfigs()
	var errs []error
	if err != nil {
		errs = append(errs, err)
	}
	for _, d := range []struct {
		key string
		d   time.Duration
	}{
		{"remote-write.flush-deadline", c.FlushDeadline},
		{"remote-write.batch-send-deadline", c.BatchSendDeadline},
		{"remote-write.timeout", c.Timeout},
	} {
		if d.d < 0 {
			errs = append(errs, fmt.Errorf("%s: must be >= 0, got %s", d.key, d.d))
		}
	}
	for name, value := range c.ExternalLabels {
		if !model.UTF8Validation.IsValidLabelName(name) || !model.LabelValue(value).IsValid() {
			errs = append(errs, fmt.Errorf("remote-write.external-label: invalid label %q=%q", name, value))
		}
	}
	if c.ReplicaLabel != "" && (!model.UTF8Validation.IsValidLabelName(c.ReplicaLabel) || c.ReplicaLabel == model.MetricNameLabel) {
		errs = append(errs, fmt.Errorf("remote-write.replica-label: invalid label name %q", c.ReplicaLabel))
	}
	return errors.Join(errs...)
}

// RuleResultNames matches the names of the series rules write: recording
// rules' (Prometheus's naming convention level:metric:operations puts a
// colon in each, and in no ingested metric) and the alerts' own.
const RuleResultNames = `ALERTS|ALERTS_FOR_STATE|.*:.*`

// leaderOnly is the write relabeling that sends rule results without the
// replica label (RemoteWriteConfig.ReplicaLabel). Prometheus applies
// external labels before write relabeling, and a replace to "" deletes.
func (c RemoteWriteConfig) leaderOnly() []*relabel.Config {
	if c.ReplicaLabel == "" {
		return nil
	}
	return []*relabel.Config{{
		SourceLabels:         model.LabelNames{model.MetricNameLabel},
		Regex:                relabel.MustNewRegexp(RuleResultNames),
		TargetLabel:          c.ReplicaLabel,
		Replacement:          "",
		Action:               relabel.Replace,
		NameValidationScheme: model.UTF8Validation,
	}}
}

// prometheusConfigs is one Prometheus remote_write entry per URL.
func (c RemoteWriteConfig) prometheusConfigs() ([]*config.RemoteWriteConfig, error) {
	var out []*config.RemoteWriteConfig
	seen := map[string]bool{}
	for i, raw := range c.URLs {
		u, err := url.Parse(raw)
		switch {
		case err != nil:
			return nil, fmt.Errorf("remote-write-url[%d]: %w", i, err)
		case u.Scheme != "http" && u.Scheme != "https":
			return nil, fmt.Errorf("remote-write-url[%d]: %q: scheme must be http or https", i, raw)
		case u.Host == "":
			return nil, fmt.Errorf("remote-write-url[%d]: %q: missing host", i, raw)
		case seen[raw]:
			return nil, fmt.Errorf("remote-write-url[%d]: %q given twice", i, raw)
		}
		seen[raw] = true
		rw := config.DefaultRemoteWriteConfig
		rw.QueueConfig.BatchSendDeadline = model.Duration(orDefault(c.BatchSendDeadline, DefaultRemoteBatchSendDeadline))
		rw.RemoteTimeout = model.Duration(orDefault(c.Timeout, DefaultRemoteTimeout))
		// Metadata comes from scrape targets in Prometheus; glassmesh has none.
		rw.MetadataConfig.Send = false
		rw.SendExemplars = c.SendExemplars
		rw.SendNativeHistograms = c.SendNativeHistograms
		rw.WriteRelabelConfigs = c.leaderOnly()
		if u.User != nil {
			pw, _ := u.User.Password()
			rw.HTTPClientConfig.BasicAuth = &config_util.BasicAuth{Username: u.User.Username(), Password: config_util.Secret(pw)}
			u.User = nil
		}
		if err := rw.HTTPClientConfig.Validate(); err != nil {
			return nil, fmt.Errorf("remote-write-url[%d]: %w", i, err)
		}
		rw.URL = &config_util.URL{URL: u}
		out = append(out, &rw)
	}
	return out, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// RemoteWrite ships every sample written to the TSDB to remote-write
// endpoints with Prometheus's remote storage: one queue per URL tails the
// TSDB's WAL (so whatever is appended, by any writer, is sent), batches,
// retries with backoff and reshards like Prometheus does. Samples written
// before Run started are not sent (Prometheus's WAL watcher starts at the
// current time).
type RemoteWrite struct {
	cfg     RemoteWriteConfig
	configs []*config.RemoteWriteConfig
	db      *tsdb.DB
	logger  *slog.Logger
	reg     prometheus.Registerer
	relay   *notifyRelay
}

// NewRemoteWrite prepares shipping from db. Create it before anything
// appends to db: it registers for the TSDB's write notifications (a
// queue would otherwise notice new WAL records only every 15s), which
// the TSDB does not allow to change while it is being written.
func NewRemoteWrite(cfg RemoteWriteConfig, db *tsdb.DB, logger *slog.Logger, reg prometheus.Registerer) (*RemoteWrite, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if db == nil {
		return nil, errors.New("remote-write: no TSDB")
	}
	configs, err := cfg.prometheusConfigs()
	if err != nil {
		return nil, err
	}
	relay := &notifyRelay{}
	if len(configs) > 0 {
		db.SetWriteNotified(relay)
	}
	return &RemoteWrite{cfg: cfg, configs: configs, db: db, logger: logger, reg: reg, relay: relay}, nil
}

// Run ships samples until ctx ends, then flushes for up to the flush
// deadline and stops. With no URLs it only waits for ctx.
func (w *RemoteWrite) Run(ctx context.Context) error {
	if len(w.configs) == 0 {
		<-ctx.Done()
		return nil
	}
	flush := orDefault(w.cfg.FlushDeadline, DefaultRemoteFlushDeadline)
	s := remote.NewStorage(w.logger.With("component", "remote"), w.reg, w.db.StartTime, w.db.Dir(), flush, nil, false)
	c := PrometheusConfig(w.configs)
	c.GlobalConfig.ExternalLabels = labels.FromMap(w.cfg.ExternalLabels)
	if err := s.ApplyConfig(&c); err != nil {
		_ = s.Close()
		return fmt.Errorf("remote-write: %w", err)
	}
	w.relay.s.Store(s)
	<-ctx.Done()
	w.relay.s.Store(nil)
	return s.Close()
}

// notifyRelay forwards the TSDB's write notifications to the remote
// storage while it runs; the TSDB holds the relay for its whole life.
type notifyRelay struct {
	s atomic.Pointer[remote.Storage]
}

// Notify implements wlog.WriteNotified.
func (n *notifyRelay) Notify() {
	if s := n.s.Load(); s != nil {
		s.Notify()
	}
}
