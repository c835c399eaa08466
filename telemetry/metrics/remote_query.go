package metrics

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	pmodel "github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/timestamp"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/rules"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/util/annotations"
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
	api      promv1.API // for range selections (Queryable)
	client   *http.Client
	queryURL string // .../api/v1/query
	name     string // the URL without user info, for errors
	timeout  time.Duration
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
	queryURL, err := url.JoinPath(cfg.URL, "api/v1/query")
	if err != nil {
		return nil, fmt.Errorf("metrics.query-url: %w", err)
	}
	client := cfg.Client
	if client == nil {
		client = &http.Client{Transport: http.DefaultTransport}
	}
	u, _ := url.Parse(cfg.URL) // valid: checked above
	u.User = nil
	return &RemoteQuery{api: promv1.NewAPI(c), client: client, queryURL: queryURL, name: u.String(), timeout: cfg.Timeout}, nil
}

// Query evaluates q at ts on the remote store (a POST to /api/v1/query,
// decoded in one pass). Its warnings and infos are dropped: a partial
// answer still draws the traffic it has. Errors name the store.
func (h *RemoteQuery) Query(ctx context.Context, q string, ts time.Time) (promql.Vector, error) {
	vec, err := h.query(ctx, q, ts)
	if err != nil {
		return nil, fmt.Errorf("metrics store %s: %w", h.name, err) // callers name the query
	}
	return vec, nil
}

func (h *RemoteQuery) query(ctx context.Context, q string, ts time.Time) (promql.Vector, error) {
	ctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	form := url.Values{"query": {q}, "time": {strconv.FormatFloat(float64(ts.UnixNano())/1e9, 'f', -1, 64)},
		"timeout": {h.timeout.String()}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.queryURL, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	// Uncompressed: Prometheus's gzip writer costs more per answer than
	// the many small answers of rule evaluation save on a cluster network.
	req.Header.Set("Accept-Encoding", "identity")
	resp, err := h.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer func() {
		// Read what is left (a final newline) so the connection is reused.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		resp.Body.Close()
	}()
	vec, err := decodeVector(&capReader{r: resp.Body, left: maxRemoteAnswer})
	if err != nil && resp.StatusCode/100 != 2 && strings.HasPrefix(err.Error(), "malformed answer") {
		return nil, errors.New(resp.Status) // not an API answer (a proxy's page, say)
	}
	return vec, err
}

// capReader fails a read past left bytes instead of cutting the stream.
type capReader struct {
	r    io.Reader
	left int64
}

func (c *capReader) Read(p []byte) (int, error) {
	if c.left <= 0 {
		return 0, fmt.Errorf("answer over %d MiB", maxRemoteAnswer>>20)
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	return n, err
}

// PreferQuery answers from primary, a shared store (--metrics.query-url)
// that holds every replica's series, and from fallback, the local TSDB,
// when primary holds none of what was asked: the store may not hold the
// rules' recordings (no replica remote-writes them). When primary fails
// its error is the answer: a replica's own share is not the mesh's.
func PreferQuery(primary, fallback rules.QueryFunc) rules.QueryFunc {
	return func(ctx context.Context, q string, t time.Time) (promql.Vector, error) {
		vec, err := primary(ctx, q, t)
		if err != nil || len(vec) > 0 {
			return vec, err
		}
		return fallback(ctx, q, t)
	}
}

// Queryable reads raw samples from the remote store, for what needs
// series rather than a query's answer: the rules manager restores the
// alerts' "for" state from ALERTS_FOR_STATE when this replica takes the
// lead. A Select is one instant query of a range selector ({matchers}[maxt-mint]
// at maxt), which every Prometheus-compatible API answers with the raw
// samples, so no remote-read endpoint is needed. Label names and values
// are not served.
func (h *RemoteQuery) Queryable() storage.Queryable {
	return storage.QueryableFunc(func(mint, maxt int64) (storage.Querier, error) {
		return &remoteQuerier{h: h, mint: mint, maxt: maxt}, nil
	})
}

type remoteQuerier struct {
	h          *RemoteQuery
	mint, maxt int64
}

func (q *remoteQuerier) Select(ctx context.Context, _ bool, _ *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	sel := make([]string, len(ms))
	for i, m := range ms {
		sel[i] = m.String()
	}
	expr := fmt.Sprintf("{%s}[%dms]", strings.Join(sel, ","), max(q.maxt-q.mint, 1))
	ctx, cancel := context.WithTimeout(ctx, q.h.timeout)
	defer cancel()
	res, _, _, err := q.h.api.Query(ctx, expr, timestamp.Time(q.maxt), promv1.WithTimeout(q.h.timeout))
	if err != nil {
		return storage.ErrSeriesSet(fmt.Errorf("metrics store %s: select %s: %w", q.h.name, expr, err))
	}
	m, ok := res.(pmodel.Matrix)
	if !ok {
		return storage.ErrSeriesSet(fmt.Errorf("metrics store %s: select %s: want a matrix, got %s", q.h.name, expr, res.Type()))
	}
	series := make([]storage.Series, 0, len(m))
	for _, s := range m {
		var b labels.ScratchBuilder
		for k, v := range s.Metric {
			b.Add(string(k), string(v))
		}
		b.Sort()
		samples := make([]chunks.Sample, 0, len(s.Values))
		for _, p := range s.Values {
			samples = append(samples, sample{t: int64(p.Timestamp), f: float64(p.Value)})
		}
		series = append(series, storage.NewListSeries(b.Labels(), samples))
	}
	slices.SortFunc(series, func(a, b storage.Series) int { return labels.Compare(a.Labels(), b.Labels()) })
	return &listSeriesSet{series: series, i: -1}
}

// listSeriesSet iterates over series in memory.
type listSeriesSet struct {
	series []storage.Series
	i      int
}

func (s *listSeriesSet) Next() bool                        { s.i++; return s.i < len(s.series) }
func (s *listSeriesSet) At() storage.Series                { return s.series[s.i] }
func (s *listSeriesSet) Err() error                        { return nil }
func (s *listSeriesSet) Warnings() annotations.Annotations { return nil }

func (q *remoteQuerier) LabelValues(context.Context, string, *storage.LabelHints, ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return nil, nil, errors.New("remote querier: label values are not served")
}

func (q *remoteQuerier) LabelNames(context.Context, *storage.LabelHints, ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	return nil, nil, errors.New("remote querier: label names are not served")
}

func (q *remoteQuerier) Close() error { return nil }

// sample is one float sample of a remote series.
type sample struct {
	t int64
	f float64
}

func (s sample) T() int64                      { return s.t }
func (s sample) F() float64                    { return s.f }
func (s sample) H() *histogram.Histogram       { return nil }
func (s sample) FH() *histogram.FloatHistogram { return nil }
func (s sample) ST() int64                     { return 0 }
func (s sample) Type() chunkenc.ValueType      { return chunkenc.ValFloat }
func (s sample) Copy() chunks.Sample           { return s }
