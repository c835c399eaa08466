package promapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// storeReads are the data reads that go to the shared store when one is
// set (Config.Store): what the UI's charts, exemplar dots and PromQL
// autocompletion, and Grafana, ask. Rules, alerts, status and the TSDB's
// own endpoints stay this replica's.
var storeReads = []string{
	"/query", "/query_range", "/series", "/labels", "/label/{name}/values", "/metadata",
}

// exemplarsPath is asked of the store first, and of this replica when the
// store has none: remote-write does not send exemplars by default (a store
// without exemplar storage may refuse whole batches), and an exemplar is an
// example, so this replica's are true ones.
const exemplarsPath = "/query_exemplars"

// maxStoreErrorBody bounds how much of a failing store's answer is read to
// name the store in it.
const maxStoreErrorBody = 64 << 10

// storeProxy forwards data reads to a shared Prometheus-compatible store,
// streaming its answers through. Failures name the store, so a user (or
// the UI) sees which one fails: 502 when it cannot be reached or times
// out, and its own 5xx with "metrics store <url>: " before its message.
type storeProxy struct {
	base   *url.URL
	name   string // the URL without user info, for messages
	proxy  *httputil.ReverseProxy
	logger *slog.Logger
}

func newStoreProxy(raw string, timeout time.Duration, logger *slog.Logger) (*storeProxy, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("metrics.query-url: %q must be an absolute http(s) URL", raw)
	}
	named := *u
	named.User = nil
	p := &storeProxy{base: u, name: named.String(), logger: logger}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.ResponseHeaderTimeout = timeout
	p.proxy = &httputil.ReverseProxy{
		Rewrite:        p.rewrite,
		Transport:      transport,
		ModifyResponse: p.nameStoreInErrors,
		ErrorHandler:   p.unreachable,
	}
	return p, nil
}

func (p *storeProxy) rewrite(r *httputil.ProxyRequest) {
	target := *p.base
	target.User = nil
	r.SetURL(&target)
	// glassmesh's own credentials are not the store's.
	r.Out.Header.Del("Authorization")
	r.Out.Header.Del("Cookie")
	if p.base.User != nil {
		pw, _ := p.base.User.Password()
		r.Out.SetBasicAuth(p.base.User.Username(), pw)
	}
}

// nameStoreInErrors puts the store's name before the message of a 5xx
// answer (Prometheus's JSON error, or text).
func (p *storeProxy) nameStoreInErrors(resp *http.Response) error {
	if resp.StatusCode < 500 {
		return nil
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxStoreErrorBody))
	resp.Body.Close()
	if err != nil {
		return err
	}
	var e promError
	if json.Unmarshal(body, &e) != nil || e.Error == "" {
		e = promError{Status: "error", ErrorType: "unavailable", Error: strings.TrimSpace(string(body))}
		if e.Error == "" {
			e.Error = resp.Status
		}
	}
	e.Error = "metrics store " + p.name + ": " + e.Error
	out, _ := json.Marshal(e)
	resp.Body = io.NopCloser(bytes.NewReader(out))
	resp.ContentLength = int64(len(out))
	resp.Header.Set("Content-Length", strconv.Itoa(len(out)))
	resp.Header.Set("Content-Type", "application/json")
	resp.Header.Del("Content-Encoding")
	return nil
}

func (p *storeProxy) unreachable(w http.ResponseWriter, r *http.Request, err error) {
	if r.Context().Err() != nil {
		return // the client went away
	}
	p.logger.Warn("metrics store read failed", "store", p.name, "path", r.URL.Path, "err", err)
	writeError(w, http.StatusBadGateway, promError{Status: "error", ErrorType: "unavailable",
		Error: "metrics store " + p.name + ": " + err.Error()})
}

// exemplars answers from the store when it has exemplars for the query,
// else from local (this replica's API). Bounded: at most
// maxStoreExemplarsBody of the store's answer is held.
func (p *storeProxy) exemplars(local http.Handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			writeError(w, http.StatusBadRequest, promError{Status: "error", ErrorType: "bad_data", Error: err.Error()})
			return
		}
		rec := &bufferedResponse{header: http.Header{}, code: http.StatusOK}
		out := r.Clone(r.Context())
		out.Method, out.Body, out.ContentLength = http.MethodGet, http.NoBody, 0
		out.URL.RawQuery = r.Form.Encode()
		out.Header.Del("Content-Type")
		out.Header.Del("Accept-Encoding") // read here: plain JSON
		p.proxy.ServeHTTP(rec, out)
		var answer struct {
			Status string            `json:"status"`
			Data   []json.RawMessage `json:"data"`
		}
		if rec.code == http.StatusOK && !rec.overflow && json.Unmarshal(rec.body.Bytes(), &answer) == nil &&
			answer.Status == "success" && len(answer.Data) > 0 {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(rec.body.Bytes())
			return
		}
		local.ServeHTTP(w, r)
	}
}

// maxStoreExemplarsBody bounds the store's exemplars answer held in memory.
const maxStoreExemplarsBody = 16 << 20

// bufferedResponse holds a response up to maxStoreExemplarsBody.
type bufferedResponse struct {
	header   http.Header
	code     int
	body     bytes.Buffer
	overflow bool
}

func (b *bufferedResponse) Header() http.Header  { return b.header }
func (b *bufferedResponse) WriteHeader(code int) { b.code = code }
func (b *bufferedResponse) Write(p []byte) (int, error) {
	if b.body.Len()+len(p) > maxStoreExemplarsBody {
		b.overflow = true
		return 0, errors.New("exemplars answer too large")
	}
	return b.body.Write(p)
}

// promError is the Prometheus API's error body.
type promError struct {
	Status    string `json:"status"`
	ErrorType string `json:"errorType"`
	Error     string `json:"error"`
}

func writeError(w http.ResponseWriter, code int, e promError) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(e)
}
