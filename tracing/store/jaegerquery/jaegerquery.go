// Package jaegerquery reads traces from a Jaeger query service, the store
// that several glassmesh replicas forward their spans to: a store.Reader
// over Jaeger's API v3 over HTTP (/api/v3/traces, /api/v3/services,
// /api/v3/operations, OTLP JSON) and, for dependencies, the Jaeger HTTP
// API's /api/dependencies. glassmesh's own tracing/query serves the same
// paths, so one glassmesh can read another's store too.
//
// A read either returns what the store holds or fails as a whole with an
// error naming the store and wrapping store.ErrUnavailable (unreachable,
// too slow, 503) or store.ErrBadResponse (an error answer, or one that
// cannot be read, is cut short or too large). Requests are bounded in
// time, size and number in flight.
package jaegerquery

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/glassmesh/glassmesh/tracing/store"
)

// Defaults of Config's zero fields.
const (
	DefaultTimeout              = 30 * time.Second
	DefaultMaxResponseBytes     = 64 << 20
	DefaultMaxConcurrent        = 8
	DefaultAttributeSearchDepth = 1000
)

// Config configures a Reader.
type Config struct {
	// URL is the Jaeger query service's HTTP base URL (Jaeger's port
	// 16686, or a glassmesh's --http-addr), e.g. http://jaeger:16686; a
	// path is kept as a prefix.
	URL string
	// Timeout bounds each request, its answer's body included (0: 30 s).
	Timeout time.Duration
	// MaxResponseBytes bounds one answer's (decompressed) body; a larger
	// one fails the read, it is never cut (0: 64 MiB).
	MaxResponseBytes int64
	// MaxConcurrent bounds the requests in flight; more reads wait for
	// one to end, or for their context (0: 8).
	MaxConcurrent int
	// AttributeSearchDepth is how many of the newest traces a search with
	// attribute conditions asks for: Jaeger's API v3 over HTTP ignores
	// attributes (v1.75), so the conditions are checked here on what it
	// answers (0: 1000). It must not exceed what the store allows (the
	// memory store's max_traces).
	AttributeSearchDepth int
	// Client is the HTTP client (nil: one of its own). Its own Timeout,
	// if any, applies on top of Timeout.
	Client *http.Client
}

// Validate checks the config; errors name the field.
func (c *Config) Validate() error {
	u, err := url.Parse(c.URL)
	switch {
	case err != nil:
		return fmt.Errorf("url: %w", err)
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("url: %q: must be an http:// or https:// URL", c.URL)
	case u.Host == "":
		return fmt.Errorf("url: %q: has no host", c.URL)
	case u.RawQuery != "" || u.Fragment != "":
		return fmt.Errorf("url: %q: must have no query or fragment", c.URL)
	case c.Timeout < 0:
		return errors.New("timeout: must not be negative")
	case c.MaxResponseBytes < 0:
		return errors.New("max-response-bytes: must not be negative")
	case c.MaxConcurrent < 0:
		return errors.New("max-concurrent: must not be negative")
	case c.AttributeSearchDepth < 0:
		return errors.New("attribute-search-depth: must not be negative")
	}
	return nil
}

// Reader is a store.Reader over a Jaeger query service. It is safe for
// concurrent use and holds nothing to close.
type Reader struct {
	cfg    Config
	base   *url.URL
	name   string // the store's URL without credentials, for errors
	client *http.Client
	slots  chan struct{}
}

// New returns a Reader of the store at cfg.URL; it does not contact it.
func New(cfg Config) (*Reader, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxResponseBytes == 0 {
		cfg.MaxResponseBytes = DefaultMaxResponseBytes
	}
	if cfg.MaxConcurrent == 0 {
		cfg.MaxConcurrent = DefaultMaxConcurrent
	}
	if cfg.AttributeSearchDepth == 0 {
		cfg.AttributeSearchDepth = DefaultAttributeSearchDepth
	}
	base, _ := url.Parse(cfg.URL) // checked by Validate
	base.Path = strings.TrimSuffix(base.Path, "/")
	base.RawPath = ""
	client := cfg.Client
	if client == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = cfg.MaxConcurrent
		client = &http.Client{Transport: tr}
	}
	return &Reader{cfg: cfg, base: base, name: base.Redacted(), client: client,
		slots: make(chan struct{}, cfg.MaxConcurrent)}, nil
}

// URL is the store's base URL, without credentials.
func (r *Reader) URL() string { return r.name }

// storeError is a failed read: the store's name, what was asked, and one
// of store.ErrUnavailable and store.ErrBadResponse (or none, when the
// caller gave up).
type storeError struct {
	store string
	kind  error
	err   error
}

func (e *storeError) Error() string { return "trace store " + e.store + ": " + e.err.Error() }

func (e *storeError) Unwrap() []error {
	if e.kind == nil {
		return []error{e.err}
	}
	return []error{e.kind, e.err}
}

func (r *Reader) fail(kind error, format string, args ...any) error {
	return &storeError{store: r.name, kind: kind, err: fmt.Errorf(format, args...)}
}

// answer is a store's HTTP answer, its body read whole.
type answer struct {
	status int
	body   []byte
}

// get asks the store for path?q and reads the whole answer, within the
// timeout and the size bound. Only a failure to get an answer is an
// error here; the caller judges the status.
func (r *Reader) get(ctx context.Context, path string, q url.Values) (answer, error) {
	what := "GET " + path
	select {
	case r.slots <- struct{}{}:
		defer func() { <-r.slots }()
	case <-ctx.Done():
		return answer{}, r.fail(nil, "%s: waiting for a free connection: %w", what, ctx.Err())
	}
	u := *r.base
	u.Path += path
	u.RawQuery = q.Encode()
	rctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return answer{}, r.fail(store.ErrBadResponse, "%s: %w", what, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := r.client.Do(req)
	if err != nil {
		return answer{}, r.transportError(ctx, what, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, r.cfg.MaxResponseBytes+1))
	if err != nil {
		if ctx.Err() != nil || isTimeout(err) {
			return answer{}, r.transportError(ctx, what, err)
		}
		return answer{}, r.fail(store.ErrBadResponse, "%s: answer cut short: %w", what, err)
	}
	if int64(len(body)) > r.cfg.MaxResponseBytes {
		return answer{}, r.fail(store.ErrBadResponse, "%s: answer larger than %d bytes", what, r.cfg.MaxResponseBytes)
	}
	return answer{status: resp.StatusCode, body: body}, nil
}

// transportError is the error of a request that got no (whole) answer:
// the caller's own end, a timeout, or a store that cannot be reached.
func (r *Reader) transportError(ctx context.Context, what string, err error) error {
	switch {
	case ctx.Err() != nil:
		return r.fail(nil, "%s: %w", what, ctx.Err())
	case isTimeout(err):
		return r.fail(store.ErrUnavailable, "%s: no answer within %s", what, r.cfg.Timeout)
	}
	return r.fail(store.ErrUnavailable, "%s: %w", what, err)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

// statusError is the error for an answer whose status is not the one
// expected: unavailable for 502, 503, 504 and 429 (a proxy or the store
// saying "not now"), a bad answer otherwise, with the store's message.
func (r *Reader) statusError(what string, a answer) error {
	kind := store.ErrBadResponse
	switch a.status {
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout, http.StatusTooManyRequests:
		kind = store.ErrUnavailable
	}
	return r.fail(kind, "%s: answered %d %s: %s", what, a.status, http.StatusText(a.status), message(a.body))
}

// message is what an error answer says: Jaeger's error message when the
// body is one of its error objects, else the start of the body.
func message(body []byte) string {
	if e, ok := decodeGatewayError(body); ok {
		return e.Message
	}
	if m, ok := decodeV1Error(body); ok {
		return m
	}
	s := strings.TrimSpace(string(body))
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return strings.ToValidUTF8(s, "?")
}
