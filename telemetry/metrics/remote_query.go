package metrics

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	pmodel "github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/rules"
)

// DefaultRemoteQueryTimeout bounds one query to a remote store when
// RemoteQueryConfig.Timeout is zero.
const DefaultRemoteQueryTimeout = 30 * time.Second

// RemoteQueryConfig configures a RemoteQuery: instant queries against a
// remote Prometheus-compatible HTTP API (--metrics.query-url).
type RemoteQueryConfig struct {
	// URL is the API's base, under which /api/v1/query is served:
	// http://prometheus:9090, or e.g. http://mimir:8080/prometheus.
	URL string
	// Timeout bounds one query, on the server (the timeout parameter) and
	// in the client [DefaultRemoteQueryTimeout].
	Timeout time.Duration
	// Client sends the requests (TLS, authentication, proxies); nil means
	// a client over http.DefaultTransport.
	Client *http.Client
}

// Validate reports settings that cannot work, naming the key.
func (c RemoteQueryConfig) Validate() error {
	var errs []error
	u, err := url.Parse(c.URL)
	switch {
	case err != nil:
		errs = append(errs, fmt.Errorf("metrics.query-url: %w", err))
	case (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		errs = append(errs, fmt.Errorf("metrics.query-url: %q must be an absolute http(s) URL", c.URL))
	}
	if c.Timeout < 0 {
		errs = append(errs, fmt.Errorf("metrics.query-url: timeout must be >= 0, got %s", c.Timeout))
	}
	return errors.Join(errs...)
}

// RemoteQuery runs instant queries on a remote Prometheus-compatible HTTP
// API (Prometheus, Mimir, Thanos, VictoriaMetrics, or another glassmesh);
// its Query is a rules.QueryFunc, as the local engine's QueryFunc is, for
// the graph, the canary gates and the SLO status alike.
type RemoteQuery struct {
	api     promv1.API
	timeout time.Duration
}

// NewRemoteQuery returns a RemoteQuery that sends instant queries to
// cfg.URL's /api/v1/query.
func NewRemoteQuery(cfg RemoteQueryConfig) (*RemoteQuery, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultRemoteQueryTimeout
	}
	c, err := api.NewClient(api.Config{Address: cfg.URL, Client: cfg.Client})
	if err != nil {
		return nil, fmt.Errorf("metrics.query-url: %w", err)
	}
	return &RemoteQuery{api: promv1.NewAPI(c), timeout: cfg.Timeout}, nil
}

// Query evaluates q at ts on the remote store. Its warnings and infos are
// dropped: a partial answer still draws the traffic it has.
func (h *RemoteQuery) Query(ctx context.Context, q string, ts time.Time) (promql.Vector, error) {
	ctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	res, _, _, err := h.api.Query(ctx, q, ts, promv1.WithTimeout(h.timeout))
	if err != nil {
		return nil, fmt.Errorf("remote query %s: %w", q, err)
	}
	vec, ok := res.(pmodel.Vector)
	if !ok {
		return nil, fmt.Errorf("remote query %s: want a vector, got %s", q, res.Type())
	}
	out := make(promql.Vector, 0, len(vec))
	var b labels.ScratchBuilder
	for _, s := range vec {
		if s.Histogram != nil {
			continue // our queries are over float series
		}
		b.Reset()
		for k, v := range s.Metric {
			b.Add(string(k), string(v))
		}
		b.Sort()
		out = append(out, promql.Sample{Metric: b.Labels(), T: int64(s.Timestamp), F: float64(s.Value)})
	}
	return out, nil
}

// PreferQuery answers from primary, a shared store (--metrics.query-url)
// that holds every replica's series, and from fallback, the local TSDB,
// when primary fails or holds none of what was asked: the store may not
// run the rules that record what is asked (the SLO status reads the SLO
// rules' recordings).
func PreferQuery(primary, fallback rules.QueryFunc) rules.QueryFunc {
	return func(ctx context.Context, q string, t time.Time) (promql.Vector, error) {
		if vec, err := primary(ctx, q, t); err == nil && len(vec) > 0 {
			return vec, nil
		}
		return fallback(ctx, q, t)
	}
}
